//! Fills `RenderJob.status.vetting` from a report.

use super::report::Report;
use crate::crd::render_job::{ModelPinStatus, VettingPolicyRef, VettingStatus};

/// Most violations listed in status; `violationCount` carries the total.
pub const MAX_LISTED_VIOLATIONS: usize = 100;
/// Most model pins listed in status (the schema's bound).
pub const MAX_LISTED_PINS: usize = 256;

/// The `status.vetting` block for `report`, checked against `policy`. The first 100 violations
/// (in the report's stable order) are listed.
pub fn vetting_status(report: &Report, policy: VettingPolicyRef) -> VettingStatus {
    VettingStatus {
        verdict: report.verdict,
        policy,
        violations: report
            .violations
            .iter()
            .take(MAX_LISTED_VIOLATIONS)
            .cloned()
            .collect(),
        violation_count: report.violation_count,
        checked_nodes: report.checked_nodes,
        workflow_sha256: report.workflow_sha256.clone(),
        // The worker verifies these before ComfyUI may load them.
        model_pins: report
            .resources
            .models
            .iter()
            .filter_map(|(identifier, used)| {
                used.sha256.as_ref().map(|sha256| ModelPinStatus {
                    identifier: identifier.clone(),
                    sha256: sha256.clone(),
                })
            })
            .take(MAX_LISTED_PINS)
            .collect(),
    }
}

/// The policy reference recorded beside a verdict: the foundry at its generation, the mode, and
/// each merged ApprovedNodeList at the generation used.
pub fn policy_ref(
    foundry: &str,
    foundry_generation: Option<i64>,
    mode: crate::crd::video_foundry::VettingMode,
    lists: &[crate::crd::ApprovedNodeList],
) -> VettingPolicyRef {
    VettingPolicyRef {
        name: foundry.to_owned(),
        generation: foundry_generation,
        mode,
        approved_node_lists: lists
            .iter()
            .map(|list| crate::crd::render_job::PolicyRef {
                name: list.metadata.name.clone().unwrap_or_default(),
                generation: list.metadata.generation,
            })
            .collect(),
    }
}
