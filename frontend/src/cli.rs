//! The command line: one subcommand per mode of the binary.

use clap::{Parser, Subcommand};

use crate::conformance::ConformanceCommand;

/// ferrite: a portable x86 PC emulator.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version, about)]
pub struct Cli {
    /// What to do; with none, run the built-in CPU test programs (demo).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a machine.
    Run(Box<crate::run::RunArgs>),
    /// Run the built-in CPU test programs and show their output.
    Demo,
    /// Run external CPU conformance suites.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn singlestep_options_parse() {
        let cli = Cli::try_parse_from([
            "ferrite",
            "conformance",
            "singlestep",
            "a",
            "b.json.gz",
            "--limit",
            "20",
            "--filter",
            "add",
            "--diff",
            "--jobs",
            "1",
        ])
        .unwrap();
        let Some(Command::Conformance(ConformanceCommand::Singlestep(args))) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.paths.len(), 2);
        assert_eq!(args.limit, Some(20));
        assert_eq!(args.filter.as_deref(), Some("add"));
        assert!(args.diff && !args.verbose && !args.quiet);
        assert_eq!(args.jobs, Some(1));
        assert!(Cli::try_parse_from(["ferrite", "conformance", "singlestep"]).is_err());
    }
}
