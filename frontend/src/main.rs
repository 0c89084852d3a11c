//! `ferrite`: the command-line front end.

mod cli;
mod conformance;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    match cli::Cli::parse().command {
        cli::Command::Conformance(cmd) => conformance::run(cmd),
    }
}
