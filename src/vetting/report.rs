//! The vetting report: verdict, violations in a stable order, resources found, SHA-256.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::policy::{Mode, NodePin};
use crate::crd::render_job::{VettingVerdict, Violation};

/// Rules that reject whatever the mode: the workflow cannot be vetted (or run) as written, or a
/// node is blocked.
pub const ALWAYS_REJECT: &[&str] = &[
    rules::INVALID_JSON,
    rules::DUPLICATE_KEY,
    rules::LIMIT_EXCEEDED,
    rules::UNKNOWN_FORMAT,
    rules::UNEXPECTED_SHAPE,
    rules::AMBIGUOUS_ID,
    rules::DUPLICATE_ID,
    rules::DANGLING_LINK,
    rules::CYCLE,
    rules::SUBGRAPH_CYCLE,
    rules::NODE_BLOCKED,
];

/// Rule ids, stable across versions.
pub mod rules {
    /// Not valid JSON.
    pub const INVALID_JSON: &str = "invalid-json";
    /// An object names the same key twice.
    pub const DUPLICATE_KEY: &str = "duplicate-key";
    /// Size, depth, string length, value or node count over the limit.
    pub const LIMIT_EXCEEDED: &str = "limit-exceeded";
    /// Neither the API nor the UI format, or both at once.
    pub const UNKNOWN_FORMAT: &str = "unknown-format";
    /// A node, input, link or property of a shape ComfyUI would not read as expected.
    pub const UNEXPECTED_SHAPE: &str = "unexpected-shape";
    /// Ids that differ only in type, case, whitespace or leading zeros.
    pub const AMBIGUOUS_ID: &str = "ambiguous-id";
    /// The same node, link or subgraph id twice.
    pub const DUPLICATE_ID: &str = "duplicate-id";
    /// A link to a node or output that does not exist.
    pub const DANGLING_LINK: &str = "dangling-link";
    /// Links form a cycle.
    pub const CYCLE: &str = "cycle";
    /// Subgraph definitions contain each other.
    pub const SUBGRAPH_CYCLE: &str = "subgraph-cycle";
    /// Neither core nor approved.
    pub const NODE_NOT_APPROVED: &str = "node-not-approved";
    /// Listed under `blockedNodes`.
    pub const NODE_BLOCKED: &str = "node-blocked";
    /// `cnr_id`, `aux_id` or `ver` contradict the approval.
    pub const PROVENANCE_MISMATCH: &str = "provenance-mismatch";
    /// A ComfyUI API node while egress is blocked.
    pub const API_NODE_EGRESS: &str = "api-node-egress";
    /// A model reference no approval matches.
    pub const MODEL_NOT_APPROVED: &str = "model-not-approved";
    /// A loader's file input without a concrete name (empty, missing, object-shaped, or
    /// computed by another node), for which ComfyUI would choose the file.
    pub const MODEL_UNRESOLVED: &str = "model-unresolved";
    /// A URL-valued input.
    pub const URL_INPUT: &str = "url-input";
    /// A URL approved as a model source whose host the foundry does not approve by name.
    pub const URL_HOST_NOT_APPROVED: &str = "url-host-not-approved";
    /// An absolute path.
    pub const ABSOLUTE_PATH: &str = "absolute-path";
    /// A path that climbs with `..`.
    pub const PATH_TRAVERSAL: &str = "path-traversal";
    /// NUL or another control character in a value.
    pub const CONTROL_CHARACTER: &str = "control-character";

    /// Every rule id.
    pub const ALL: [&str; 20] = [
        INVALID_JSON,
        DUPLICATE_KEY,
        LIMIT_EXCEEDED,
        UNKNOWN_FORMAT,
        UNEXPECTED_SHAPE,
        AMBIGUOUS_ID,
        DUPLICATE_ID,
        DANGLING_LINK,
        CYCLE,
        SUBGRAPH_CYCLE,
        NODE_NOT_APPROVED,
        NODE_BLOCKED,
        PROVENANCE_MISMATCH,
        API_NODE_EGRESS,
        MODEL_NOT_APPROVED,
        MODEL_UNRESOLVED,
        URL_INPUT,
        ABSOLUTE_PATH,
        PATH_TRAVERSAL,
        CONTROL_CHARACTER,
    ];

    /// `rule` as one of [`ALL`], or `other` (a status written by another version), so a metric
    /// label never takes a value from outside the fixed set.
    pub fn canonical(rule: &str) -> &'static str {
        ALL.iter()
            .find(|known| **known == rule)
            .copied()
            .unwrap_or("other")
    }
}

/// Which ComfyUI format the workflow is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// `{"<id>": {"class_type", "inputs"}}`
    Api,
    /// `{"nodes": [...], "links": [...]}`
    Ui,
}

/// A model reference found in the workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUse {
    /// The identifier or pattern that approved it; None when not approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_as: Option<String>,
    /// SHA-256 the worker must verify before loading, when pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What the workflow uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Every node type, core and custom.
    pub node_types: BTreeSet<String>,
    /// Approved custom node types with the pins the worker must install.
    pub custom_nodes: BTreeMap<String, NodePin>,
    /// Repositories that UI nodes name through `aux_id` and that are approved.
    pub repositories: BTreeSet<String>,
    /// Model references, by value.
    pub models: BTreeMap<String, ModelUse>,
}

/// The result of vetting one workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The verdict.
    pub verdict: VettingVerdict,
    /// The format detected, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Violations, sorted by node id (numerically where ids are numbers), then rule, then
    /// message: the first `MAX_VIOLATIONS` found, in document order.
    pub violations: Vec<Violation>,
    /// How many distinct violations were found in all, listed or not.
    pub violation_count: u32,
    /// Nodes checked, subgraph nodes included.
    pub checked_nodes: u32,
    /// SHA-256 (lowercase hex) of the workflow bytes.
    pub workflow_sha256: String,
    /// What the workflow uses.
    pub resources: Resources,
}

impl Report {
    /// True when the render may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(
            self.verdict,
            VettingVerdict::Approved | VettingVerdict::ApprovedWithWarnings
        )
    }
}

/// The verdict for `count` violations under `mode`; `rejects_always` when one of them has a
/// rule of [`ALWAYS_REJECT`].
pub fn verdict_of(mode: Mode, count: usize, rejects_always: bool) -> VettingVerdict {
    if count == 0 {
        VettingVerdict::Approved
    } else if mode == Mode::Warn && !rejects_always {
        VettingVerdict::ApprovedWithWarnings
    } else {
        VettingVerdict::Rejected
    }
}

/// Sorts violations into the stable report order and drops exact repeats.
pub fn sort_violations(violations: &mut Vec<Violation>) {
    violations.sort_by(|a, b| {
        compare_node_ids(&a.node_id, &b.node_id)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.class_type.cmp(&b.class_type))
            .then_with(|| a.message.cmp(&b.message))
    });
    violations.dedup();
}

/// Orders `/`-separated id paths segment by segment, numbers numerically before other ids.
/// Workflow-wide violations (empty id) come first.
pub fn compare_node_ids(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    let mut left = a.split('/');
    let mut right = b.split('/');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (numeric(x), numeric(y)) {
                    (Some(m), Some(n)) => m.cmp(&n).then_with(|| x.cmp(y)),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn numeric(segment: &str) -> Option<u128> {
    if segment.is_empty() || segment.len() > 38 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_sort_numerically_then_by_path() {
        let mut ids = vec!["10", "9", "", "2/1", "2", "a", "2/10", "2/9", "10/1"];
        ids.sort_by(|a, b| compare_node_ids(a, b));
        assert_eq!(ids, ["", "2", "2/1", "2/9", "2/10", "9", "10", "10/1", "a"]);
    }
}
