//! `vet`: vets a workflow offline against ApprovedNodeLists, for CI pipelines and GitOps
//! pre-merge checks. Exit 0 approved (with or without warnings), 1 rejected, 2 usage error or
//! unreadable input.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use crate::crd::render_job::VettingVerdict;
use crate::vetting::import::read_lists;
use crate::vetting::{CoreNodes, Egress, Mode, Policy, Report, vet};

/// Largest file `vet` reads at all; anything between the 1.5 MiB workflow limit and this is
/// read and rejected with a reason, anything larger is refused unread.
const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

/// Arguments of `vet`.
#[derive(Debug, clap::Args)]
pub struct VetArgs {
    /// The workflow (ComfyUI API or UI format JSON); `-` reads standard input.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,

    /// ApprovedNodeList manifests (YAML, several documents allowed), `approved_nodes.json` or
    /// `workflow_allowlist.yaml` files; all of them are merged.
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub approved: Vec<PathBuf>,

    /// `strict` rejects on any violation; `warn` records policy violations and approves
    /// (malformed workflows and blocked nodes are still rejected).
    #[arg(long, value_enum, default_value_t = ModeArg::Strict)]
    pub mode: ModeArg,

    /// The foundry's worker egress; with `blocked`, ComfyUI's API nodes are rejected.
    #[arg(long, value_enum, default_value_t = EgressArg::Blocked)]
    pub egress: EgressArg,

    /// Which document of a `workflow_allowlist.yaml` to use.
    #[arg(long, value_name = "EXECUTION_MODE", default_value = "production")]
    pub allowlist_mode: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,
}

/// Vetting mode.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// Any violation rejects.
    Strict,
    /// Policy violations are warnings.
    Warn,
}

/// Worker egress.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EgressArg {
    /// No internet.
    Blocked,
    /// An admin allowlist.
    Restricted,
    /// Open (developer mode).
    Open,
}

/// Output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputArg {
    /// Human-readable, one line per violation.
    Text,
    /// The full report as JSON.
    Json,
}

/// Runs `vet`.
pub fn execute(args: &VetArgs) -> ExitCode {
    match run(args) {
        Ok(report) => {
            if report.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &VetArgs) -> Result<Report, String> {
    let mut lists = Vec::new();
    let mut names = Vec::new();
    for path in &args.approved {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let imported = read_lists(&text, &file_name, &args.allowlist_mode)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for list in imported {
            names.push(list.name.clone());
            lists.push((list.name, list.spec));
        }
    }
    let mode = match args.mode {
        ModeArg::Strict => Mode::Strict,
        ModeArg::Warn => Mode::Warn,
    };
    let egress = match args.egress {
        EgressArg::Blocked => Egress::Blocked,
        EgressArg::Restricted => Egress::Restricted,
        EgressArg::Open => Egress::Open,
    };
    let policy =
        Policy::new(&lists, CoreNodes::builtin(), mode, egress).map_err(|e| e.to_string())?;
    let bytes = read_workflow(&args.workflow)?;
    let report = vet(&bytes, &policy);
    match args.output {
        OutputArg::Json => {
            let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            println!("{json}");
        }
        OutputArg::Text => print!("{}", render_text(&args.workflow, &report, &names, &policy)),
    }
    Ok(report)
}

fn read_workflow(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_READ_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_READ_BYTES {
        return Err(format!(
            "{} is larger than {MAX_READ_BYTES} bytes; workflows are limited to 1.5 MiB",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The text report: a verdict line, the policy, then one line per violation with a hint.
pub fn render_text(workflow: &Path, report: &Report, lists: &[String], policy: &Policy) -> String {
    let verdict = match report.verdict {
        VettingVerdict::Approved => "APPROVED",
        VettingVerdict::ApprovedWithWarnings => "APPROVED WITH WARNINGS",
        VettingVerdict::Rejected | VettingVerdict::Unknown => "REJECTED",
    };
    let format = report
        .format
        .map_or("unknown".to_owned(), |f| format!("{f:?}").to_lowercase());
    let mut out = format!(
        "{verdict}: {} ({format} format, {} nodes checked, {} violations, sha256 {})\n",
        workflow.display(),
        report.checked_nodes,
        report.violation_count,
        report.workflow_sha256
    );
    out.push_str(&format!(
        "policy: {:?} mode, egress {:?}, core nodes of {}, lists: {}\n",
        policy.mode,
        policy.egress,
        policy.core().comfyui_version,
        if lists.is_empty() {
            "none".to_owned()
        } else {
            lists.join(", ")
        }
    ));
    for violation in &report.violations {
        let node = if violation.node_id.is_empty() {
            "workflow".to_owned()
        } else if violation.class_type.is_empty() {
            format!("node {}", violation.node_id)
        } else {
            format!("node {} ({})", violation.node_id, violation.class_type)
        };
        out.push_str(&format!(
            "  {node} [{}]: {}\n",
            violation.rule, violation.message
        ));
    }
    let unlisted = (report.violation_count as usize).saturating_sub(report.violations.len());
    if unlisted > 0 {
        out.push_str(&format!(
            "  ... and {unlisted} more violations (only the first {} are listed)\n",
            report.violations.len()
        ));
    }
    out
}
