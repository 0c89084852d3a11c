//! `ferrite`: the command-line front end.

mod audio;
mod cli;
mod conformance;
mod disk;
mod firmware;
mod run;
mod screenshot;
mod window;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Exit status when the command itself failed (unreadable input, bad
/// configuration), as opposed to 1 for "ran, and tests failed".
pub(crate) const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli::Cli::parse().command {
        Some(cli::Command::Conformance(cmd)) => conformance::run(cmd),
        Some(cli::Command::Run(args)) => run::run(*args),
        Some(cli::Command::Demo) | None => run::demo(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(EXIT_ERROR)
    })
}
