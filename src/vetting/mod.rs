//! Workflow vetting: a pure, fail-closed check of a ComfyUI workflow (API or UI format) against
//! the effective policy. No I/O: bytes and a [`Policy`] in, a deterministic [`Report`] out.
//!
//! The vetter sees exactly the graph ComfyUI would run: input that parses in more than one way
//! (duplicate keys, ids differing only in type or case, unexpected shapes) is rejected, never
//! resolved. Every node of every (nested) subgraph is checked. See `docs/vetting.md`.

mod api_format;
pub mod approved_list;
mod check;
pub mod core_nodes;
mod graph;
pub mod import;
pub mod json;
pub mod model_inputs;
pub mod patterns;
pub mod policy;
pub mod report;
pub mod status;
mod ui_flow;
mod ui_format;
pub mod values;

use sha2::{Digest, Sha256};

pub use core_nodes::CoreNodes;
pub use policy::{Egress, Mode, Policy, PolicyError};
pub use report::{Format, Report, Resources, rules};

use check::Checker;
use json::{Json, JsonError, JsonLimits};

/// Limits on a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Limits on the JSON document (1.5 MiB, depth, string length, value count).
    pub json: JsonLimits,
    /// Most nodes, subgraph nodes included.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            json: JsonLimits::default(),
            max_nodes: 50_000,
        }
    }
}

/// Vets `bytes` against `policy` with the default limits.
pub fn vet(bytes: &[u8], policy: &Policy) -> Report {
    vet_with_limits(bytes, policy, &Limits::default())
}

/// Lowercase hex SHA-256 of the workflow bytes, as reports record it and the worker builders
/// check it.
pub fn workflow_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Vets `bytes` against `policy` under `limits`.
pub fn vet_with_limits(bytes: &[u8], policy: &Policy, limits: &Limits) -> Report {
    let workflow_sha256 = workflow_sha256(bytes);
    let mut checker = Checker::new(policy, limits.max_nodes);
    let format = match json::parse(bytes, &limits.json) {
        Ok(document) => vet_document(&document, &mut checker),
        Err(error) => {
            let rule = match &error {
                JsonError::DuplicateKey { .. } => rules::DUPLICATE_KEY,
                JsonError::Syntax(_) => rules::INVALID_JSON,
                _ if error.is_limit() => rules::LIMIT_EXCEEDED,
                _ => rules::INVALID_JSON,
            };
            checker.workflow_violation(rule, format!("{error}; the workflow was not vetted"));
            None
        }
    };
    checker.finish(format, workflow_sha256)
}

/// Top-level keys of a ComfyUI `/prompt` request, which carries the API format.
const REQUEST_KEYS: &[&str] = &["prompt", "extra_data", "client_id", "prompt_id"];

fn vet_document(document: &Json, checker: &mut Checker<'_>) -> Option<Format> {
    let Some(members) = document.as_object() else {
        checker.workflow_violation(
            rules::UNKNOWN_FORMAT,
            format!(
                "the workflow is {}, not a JSON object in ComfyUI's API or UI format",
                document.kind()
            ),
        );
        return None;
    };
    let looks_like_ui = matches!(document.get("nodes"), Some(Json::Array(_)));
    let has_api_nodes = members
        .iter()
        .any(|(_, node)| node.get("class_type").is_some());
    // A request envelope (`prompt`, the API format ComfyUI queues) beside a UI `nodes` list
    // would be vetted as the one and run as the other.
    let envelope = REQUEST_KEYS.iter().find(|key| document.get(key).is_some());
    match (looks_like_ui, has_api_nodes) {
        (true, false) if envelope.is_some() => {
            checker.workflow_violation(
                rules::UNKNOWN_FORMAT,
                format!(
                    "the workflow has a UI-format `nodes` list and a top-level {} of a queue request; a document must be exactly one format: submit the UI workflow or the API prompt, not both",
                    envelope.map_or("", |key| key)
                ),
            );
            None
        }
        (true, false) => {
            ui_format::vet(document, checker);
            Some(Format::Ui)
        }
        (false, true) => {
            api_format::vet(members, checker);
            Some(Format::Api)
        }
        (true, true) => {
            checker.workflow_violation(
                rules::UNKNOWN_FORMAT,
                "the workflow has both a UI-format `nodes` list and API-format nodes with `class_type`; ComfyUI would read them differently depending on how it is submitted".into(),
            );
            None
        }
        (false, _) => {
            checker.workflow_violation(
                rules::UNKNOWN_FORMAT,
                "neither API-format nodes (objects with class_type) nor a UI-format `nodes` list"
                    .into(),
            );
            None
        }
    }
}
