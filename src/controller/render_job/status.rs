//! The RenderJob status for a vetting outcome, and the Events a change calls for. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controller::events::{PlannedEvent, condition_changes};
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, types};
use crate::crd::render_job::{RenderJobStatus, RenderPhase, VettingStatus, VettingVerdict};

/// Reason of `Vetted=False`: the workflow is not fully allowed.
pub const REASON_REJECTED: &str = "WorkflowRejected";
/// Reason of `Scheduled=False` after an approval: this version does not run renders yet.
pub const REASON_RENDERING_UNAVAILABLE: &str = "RenderingUnavailable";

/// What the vetting stage found.
#[derive(Clone, Debug, PartialEq)]
pub enum VettingOutcome {
    /// Something vetting needs is missing or unusable; nothing was vetted (fail closed).
    Waiting {
        /// PascalCase reason.
        reason: &'static str,
        /// What is missing and how to fix it.
        message: String,
    },
    /// The workflow was vetted.
    Vetted(Box<VettingStatus>),
}

/// The status a render should have after vetting.
pub fn desired_status(
    current: Option<&RenderJobStatus>,
    generation: Option<i64>,
    outcome: &VettingOutcome,
    now: Time,
) -> RenderJobStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let mut conditions = ConditionUpdate {
        conditions: &mut status.conditions,
        generation,
        now,
    };
    let (phase, vetting) = match outcome {
        VettingOutcome::Waiting { reason, message } => {
            conditions.set(
                types::VETTED,
                ConditionStatus::Unknown,
                reason,
                message.clone(),
            );
            conditions.set(
                types::READY,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            (RenderPhase::Pending, None)
        }
        VettingOutcome::Vetted(vetting) if vetting.verdict == VettingVerdict::Rejected => {
            let message = rejection_summary(vetting);
            conditions.set(
                types::VETTED,
                ConditionStatus::False,
                REASON_REJECTED,
                message.clone(),
            );
            conditions.set(
                types::READY,
                ConditionStatus::False,
                REASON_REJECTED,
                message,
            );
            (RenderPhase::Rejected, Some(vetting.as_ref().clone()))
        }
        VettingOutcome::Vetted(vetting) => {
            let reason = match vetting.verdict {
                VettingVerdict::ApprovedWithWarnings => "ApprovedWithWarnings",
                _ => "Approved",
            };
            conditions.set(
                types::VETTED,
                ConditionStatus::True,
                reason,
                format!(
                    "{} nodes checked against {}; {} warning(s)",
                    vetting.checked_nodes,
                    policy_names(vetting),
                    vetting.violation_count
                ),
            );
            let waiting = "the workflow is approved; this operator version vets RenderJobs but does not run them yet (see the README's project status)".to_owned();
            conditions.set(
                types::SCHEDULED,
                ConditionStatus::False,
                REASON_RENDERING_UNAVAILABLE,
                waiting.clone(),
            );
            conditions.set(
                types::READY,
                ConditionStatus::False,
                REASON_RENDERING_UNAVAILABLE,
                waiting,
            );
            (RenderPhase::Pending, Some(vetting.as_ref().clone()))
        }
    };
    status.phase = phase;
    status.vetting = vetting;
    status
}

/// Whether vetting has decided for good: a rejection is final (the spec is immutable).
pub fn is_final(status: &RenderJobStatus, generation: Option<i64>) -> bool {
    status.observed_generation == generation
        && matches!(
            status.phase,
            RenderPhase::Rejected
                | RenderPhase::Succeeded
                | RenderPhase::Failed
                | RenderPhase::Cancelled
        )
}

/// Events for the change: Warnings for a rejection or a vetting that cannot run.
pub fn events_for_change(
    previous: Option<&RenderJobStatus>,
    next: &RenderJobStatus,
) -> Vec<PlannedEvent> {
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    condition_changes(before, &next.conditions, |type_| {
        if type_ == types::VETTED {
            "False"
        } else {
            "Unknown"
        }
    })
}

fn policy_names(vetting: &VettingStatus) -> String {
    let lists: Vec<&str> = vetting
        .policy
        .approved_node_lists
        .iter()
        .map(|list| list.name.as_str())
        .collect();
    if lists.is_empty() {
        "the core node list".to_owned()
    } else {
        format!("ApprovedNodeList {}", lists.join(", "))
    }
}

/// One line: how many violations, and the first few (node, rule).
fn rejection_summary(vetting: &VettingStatus) -> String {
    let first: Vec<String> = vetting
        .violations
        .iter()
        .take(3)
        .map(|v| format!("node {} ({}): {}", v.node_id, v.class_type, v.rule))
        .collect();
    format!(
        "{} violation(s) against {}; first: {}; see status.vetting.violations",
        vetting.violation_count,
        policy_names(vetting),
        first.join("; ")
    )
}
