//! `videofoundry-operator`: the operator and its offline tools, one binary with subcommands.

use std::process::ExitCode;

use clap::Parser;
use videofoundry::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    videofoundry::install_crypto_provider();
    videofoundry::cli::execute(cli).await
}
