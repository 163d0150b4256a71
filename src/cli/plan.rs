//! `plan`: prints everything the operator would create or check for the given manifests,
//! offline (no cluster, no backend), for people (`text`) or machines (`yaml`, `json`).
//!
//! Exit codes, for CI pipelines and GitOps pre-merge checks (docs/plan.md):
//! 0 every render approved and every object valid; 1 a render rejected or not resolvable
//! offline, or an object invalid; 2 usage error or unreadable input (malformed YAML, too large).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::Value;

use crate::plan::{self, FoundryPlan, Plan, RenderOutcome, RenderPlan, SecretsPlanView, input};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Manifests: YAML or JSON files (several documents each), folders (read recursively; other
    /// files are listed as skipped), or `-` for standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Namespace of objects that name none (as kubectl would apply them).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = PlanOutput::Text)]
    pub output: PlanOutput,

    /// Image whose binary the worker Job's init container installs (the operator
    /// configuration's `worker.binaryImage`).
    #[arg(long, value_name = "IMAGE")]
    pub worker_binary_image: Option<String>,
}

/// Output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlanOutput {
    /// For people.
    Text,
    /// The whole plan as YAML.
    Yaml,
    /// The whole plan as JSON.
    Json,
}

/// Runs `plan`.
pub fn execute(args: &PlanArgs) -> ExitCode {
    let manifests = match input::read(&args.paths, &args.namespace) {
        Ok(manifests) => manifests,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let image = args
        .worker_binary_image
        .clone()
        .unwrap_or_else(|| crate::config::WorkerConfig::default().binary_image);
    let plan = plan::build(&manifests, &image);
    let printed = match args.output {
        PlanOutput::Text => Ok(render_text(&plan)),
        PlanOutput::Yaml => serde_yaml::to_string(&plan).map_err(|e| e.to_string()),
        PlanOutput::Json => serde_json::to_string_pretty(&plan)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
    };
    match printed {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("error: cannot print the plan: {error}");
            return ExitCode::from(2);
        }
    }
    if plan.summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The plan for people: a summary, then each foundry, list and render.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "{}: {} files, {} foundries, {} ApprovedNodeLists, {} renders ({} approved, {} rejected, {} unresolved), {} invalid, {} skipped",
        if s.ok { "PLAN OK" } else { "PLAN FAILS" },
        s.files,
        s.foundries,
        s.approved_node_lists,
        s.renders,
        s.approved,
        s.rejected,
        s.unresolved,
        s.invalid,
        s.skipped
    );
    for foundry in &plan.foundries {
        foundry_text(&mut out, foundry);
    }
    for list in &plan.approved_node_lists {
        let _ = writeln!(
            out,
            "\nApprovedNodeList {}/{} ({}): {}",
            list.namespace,
            list.name,
            list.source,
            if list.valid { "valid" } else { "INVALID" }
        );
        let _ = writeln!(out, "  counts: {}", list.counts);
        for problem in &list.problems {
            let _ = writeln!(out, "  problem: {problem}");
        }
        if !list.overridden_by_block.is_empty() {
            let _ = writeln!(
                out,
                "  allowed but blocked (blocking wins): {}",
                list.overridden_by_block.join(", ")
            );
        }
    }
    for render in &plan.renders {
        render_text_of(&mut out, render);
    }
    for invalid in &plan.invalid {
        let _ = writeln!(
            out,
            "\nINVALID {} ({}): {}",
            invalid.object, invalid.source, invalid.message
        );
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped:");
        for skipped in &plan.skipped {
            let _ = writeln!(out, "  {}: {}", skipped.source, skipped.reason);
        }
    }
    out
}

/// `Kind namespace/name` of a built object.
fn describe(object: &Value) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("?")
    };
    format!(
        "{} {}/{}",
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name")
    )
}

fn foundry_text(out: &mut String, foundry: &FoundryPlan) {
    let _ = writeln!(
        out,
        "\nVideoFoundry {}/{} ({}): {}",
        foundry.namespace,
        foundry.name,
        foundry.source,
        if foundry.problems.is_empty() {
            "valid"
        } else {
            "INVALID"
        }
    );
    for problem in &foundry.problems {
        let _ = writeln!(out, "  problem: {problem}");
    }
    if let Some(security) = &foundry.effective_security {
        let _ = writeln!(
            out,
            "  security: {}",
            serde_json::to_string(security).unwrap_or_default()
        );
    }
    let _ = writeln!(out, "  Kubernetes objects (server-side apply, in order):");
    for object in &foundry.kubernetes_objects {
        let _ = writeln!(out, "    {}", describe(object));
    }
    for check in &foundry.checks {
        let _ = writeln!(out, "  check: {check}");
    }
    if let Some(database) = &foundry.database {
        let _ = writeln!(
            out,
            "  PostgreSQL database {}, schema {}, roles {}:",
            database.database,
            database.schema,
            database.roles.join(", ")
        );
        for statement in &database.statements {
            let _ = writeln!(out, "    {statement};");
        }
    }
    match &foundry.secrets {
        Some(SecretsPlanView::Vault {
            address,
            kv_paths,
            policies,
            backend_auth_role,
            database_engine,
            ..
        }) => {
            let _ = writeln!(out, "  Vault {address}:");
            let _ = writeln!(out, "    generated secrets: {}", kv_paths.join(", "));
            for (name, body) in policies {
                let _ = writeln!(out, "    policy {name}:");
                for line in body.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
            if let Some(role) = backend_auth_role {
                let _ = writeln!(out, "    auth role: {role}");
            }
            for (what, path) in database_engine {
                let _ = writeln!(out, "    database engine {what}: {path}");
            }
        }
        Some(SecretsPlanView::KubernetesSecret { secret_name }) => {
            let _ = writeln!(
                out,
                "  secrets: Kubernetes Secret {}/{secret_name} (developer mode)",
                foundry.namespace
            );
        }
        None => {}
    }
    if let Some(storage) = &foundry.storage {
        let _ = writeln!(
            out,
            "  bucket {} prefix {:?}: {}",
            storage.bucket,
            storage.prefix,
            storage
                .settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let policy = serde_json::to_string_pretty(&storage.bucket_policy).unwrap_or_default();
        let _ = writeln!(out, "    bucket policy:");
        for line in policy.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
    if !foundry.missing_approved_node_lists.is_empty() {
        let _ = writeln!(
            out,
            "  note: ApprovedNodeLists not in the input: {}",
            foundry.missing_approved_node_lists.join(", ")
        );
    }
}

fn render_text_of(out: &mut String, render: &RenderPlan) {
    let outcome = match render.outcome {
        RenderOutcome::Approved => "APPROVED",
        RenderOutcome::ApprovedWithWarnings => "APPROVED WITH WARNINGS",
        RenderOutcome::Rejected => "REJECTED",
        RenderOutcome::Unresolved => "UNRESOLVED",
        RenderOutcome::Invalid => "INVALID",
    };
    let _ = writeln!(
        out,
        "\nRenderJob {}/{} ({}) on foundry {}: {outcome}",
        render.namespace, render.name, render.source, render.foundry
    );
    if let Some(reason) = &render.reason {
        let _ = writeln!(out, "  {reason}");
    }
    if let Some(vetting) = &render.vetting {
        let _ = writeln!(
            out,
            "  vetting: {} nodes checked, {} violations, sha256 {}",
            vetting.checked_nodes, vetting.violation_count, vetting.workflow_sha256
        );
        for violation in &vetting.violations {
            let node = if violation.node_id.is_empty() {
                "workflow".to_owned()
            } else {
                format!("node {} ({})", violation.node_id, violation.class_type)
            };
            let _ = writeln!(
                out,
                "    {node} [{}]: {}",
                violation.rule, violation.message
            );
        }
    }
    for object in &render.kubernetes_objects {
        let _ = writeln!(out, "  creates {}", describe(object));
    }
}
