//! Command-line interface: one binary, one subcommand per job.

mod crds;
pub mod egress_gateway;
mod import_allowlist;
mod migrate;
pub mod plan;
pub mod run;
pub mod vet;
pub mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs untrusted ComfyUI video workflows for many tenants on one Kubernetes cluster, safely.
///
/// `run` starts the operator; the other subcommands work offline, for CI pipelines and GitOps
/// checks.
#[derive(Debug, Parser)]
#[command(name = "videofoundry-operator", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster in KUBECONFIG (or the in-cluster service account).
    Run(crate::config::RunArgs),
    /// Print the CustomResourceDefinitions as YAML (apply them with `kubectl apply --server-side -f -`).
    Crds(crds::CrdsArgs),
    /// Apply the database migrations and provision one foundry's roles, schema, grants and
    /// row-level-security policies (repairing any drift), then report what changed.
    Migrate(migrate::MigrateArgs),
    /// Vet a ComfyUI workflow offline against ApprovedNodeLists (exit 0 approved, 1 rejected,
    /// 2 usage error or unreadable input).
    Vet(vet::VetArgs),
    /// Show offline, without a cluster, everything the operator would create or check for
    /// VideoFoundry, ApprovedNodeList and RenderJob manifests (exit 0 all fine, 1 a render
    /// rejected or unresolvable or an object invalid, 2 usage error or unreadable input).
    Plan(plan::PlanArgs),
    /// Convert approved_nodes.json or workflow_allowlist.yaml into an ApprovedNodeList manifest.
    ImportAllowlist(import_allowlist::ImportAllowlistArgs),
    /// Run one render inside its worker pod: verify the plan, download the inputs, run the
    /// workflow in the image's ComfyUI, upload the outputs (exit codes in docs/worker.md).
    Worker(Box<worker::WorkerArgs>),
    /// Copy this binary into DIR (the worker Job's init container does this).
    InstallWorker(worker::InstallWorkerArgs),
    /// Run a foundry's egress gateway: an HTTP CONNECT proxy to the approved hosts only, with
    /// address, SNI and size checks, a log line and metrics per connection (docs/egress.md).
    EgressGateway(Box<egress_gateway::EgressGatewayArgs>),
}

/// Runs the parsed command and maps its outcome to the process exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::execute(args).await,
        Command::Crds(args) => crds::execute(&args),
        Command::Migrate(args) => migrate::execute(args).await,
        Command::Vet(args) => vet::execute(&args),
        Command::ImportAllowlist(args) => import_allowlist::execute(&args),
        Command::Plan(args) => plan::execute(&args),
        Command::Worker(args) => worker::execute(*args).await,
        Command::InstallWorker(args) => worker::install(&args),
        Command::EgressGateway(args) => egress_gateway::execute(*args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
