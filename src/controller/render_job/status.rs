//! The RenderJob status at each stage of a render's life, and the Events a change calls for.
//! Pure: the reconcile decides what happened, these functions say how status shows it.
//!
//! Conditions: `Vetted` (the verdict), `Recorded` (the database holds the render's current
//! phase), `Scheduled` (the worker Job exists, or why not yet), `Complete` (the render ended)
//! and `Ready` (it succeeded).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::follow::Observation;
use crate::controller::events::{EventNaming, PlannedEvent, condition_events};
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, Progress, find, types};
use crate::crd::render_job::{RenderJobStatus, RenderPhase, VettingStatus, VettingVerdict};

/// Reason of `Vetted=False`: the workflow is not fully allowed.
pub const REASON_REJECTED: &str = "WorkflowRejected";
/// Condition type: the database holds the render's current phase.
pub const RECORDED: &str = "Recorded";
/// Reason of a cancelled render.
pub const REASON_CANCELLED: &str = "Cancelled";

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

/// Writes status changes with one generation and time.
pub struct StatusChange<'a> {
    /// The status being built.
    pub status: &'a mut RenderJobStatus,
    /// The object's generation.
    pub generation: Option<i64>,
    /// The reconcile's time (used only where something flips).
    pub now: Time,
}

impl StatusChange<'_> {
    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: String) {
        ConditionUpdate {
            conditions: &mut self.status.conditions,
            generation: self.generation,
            now: self.now.clone(),
        }
        .set(type_, status, reason, message);
    }

    /// The outcome of vetting.
    pub fn vetting(&mut self, outcome: &VettingOutcome) {
        self.status.observed_generation = self.generation;
        match outcome {
            VettingOutcome::Waiting { reason, message } => {
                self.set(
                    types::VETTED,
                    ConditionStatus::Unknown,
                    reason,
                    message.clone(),
                );
                self.set(
                    types::READY,
                    ConditionStatus::False,
                    reason,
                    message.clone(),
                );
                self.status.phase = RenderPhase::Pending;
                self.status.vetting = None;
            }
            VettingOutcome::Vetted(vetting) if vetting.verdict == VettingVerdict::Rejected => {
                let message = rejection_summary(vetting);
                self.set(
                    types::VETTED,
                    ConditionStatus::False,
                    REASON_REJECTED,
                    message.clone(),
                );
                self.set(
                    types::READY,
                    ConditionStatus::False,
                    REASON_REJECTED,
                    message,
                );
                self.status.phase = RenderPhase::Rejected;
                self.status.vetting = Some(vetting.as_ref().clone());
            }
            VettingOutcome::Vetted(vetting) => {
                let reason = match vetting.verdict {
                    VettingVerdict::ApprovedWithWarnings => "ApprovedWithWarnings",
                    _ => "Approved",
                };
                self.set(
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
                self.status.phase = RenderPhase::Pending;
                self.status.vetting = Some(vetting.as_ref().clone());
            }
        }
    }

    /// Whether the database holds the render's current phase.
    pub fn recorded(&mut self, recorded: Result<(), (&str, String)>) {
        match recorded {
            Ok(()) => self.set(
                RECORDED,
                ConditionStatus::True,
                "Recorded",
                "the render and its audit trail are in the foundry's database".to_owned(),
            ),
            Err((reason, message)) => self.set(RECORDED, ConditionStatus::False, reason, message),
        }
    }

    /// The render cannot get its Job yet (foundry not ready, user unknown, no slot, ...).
    pub fn waiting(&mut self, phase: RenderPhase, reason: &str, message: String) {
        self.status.phase = phase;
        self.set(
            types::SCHEDULED,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
        self.set(types::READY, ConditionStatus::False, reason, message);
    }

    /// The worker Job exists; `seen` says what it is doing.
    pub fn following(&mut self, job_name: &str, output_prefix: &str, seen: &Observation) {
        self.status.job_name = Some(job_name.to_owned());
        self.status.output_prefix = Some(output_prefix.to_owned());
        self.status.phase = seen.phase;
        self.set(
            types::SCHEDULED,
            ConditionStatus::True,
            "JobCreated",
            format!("worker Job {job_name} exists"),
        );
        match seen.phase {
            RenderPhase::Succeeded => {
                self.set(
                    types::COMPLETE,
                    ConditionStatus::True,
                    seen.reason,
                    seen.message.clone(),
                );
                self.set(
                    types::READY,
                    ConditionStatus::True,
                    seen.reason,
                    format!(
                        "{} output(s) under {output_prefix}",
                        self.status.outputs.len()
                    ),
                );
                self.finished(seen.finished_at.clone());
            }
            RenderPhase::Failed => {
                self.set(
                    types::COMPLETE,
                    ConditionStatus::True,
                    seen.reason,
                    seen.message.clone(),
                );
                self.set(
                    types::READY,
                    ConditionStatus::False,
                    seen.reason,
                    seen.message.clone(),
                );
                self.finished(seen.finished_at.clone());
            }
            _ => {
                if seen.phase == RenderPhase::Running && self.status.started_at.is_none() {
                    self.status.started_at = Some(self.now.clone());
                }
                self.set(
                    types::COMPLETE,
                    ConditionStatus::False,
                    seen.reason,
                    seen.message.clone(),
                );
                self.set(
                    types::READY,
                    ConditionStatus::False,
                    seen.reason,
                    seen.message.clone(),
                );
            }
        }
    }

    /// The render was cancelled (annotation or deletion).
    pub fn cancelled(&mut self, message: String) {
        self.status.phase = RenderPhase::Cancelled;
        self.set(
            types::COMPLETE,
            ConditionStatus::True,
            REASON_CANCELLED,
            message.clone(),
        );
        self.set(
            types::READY,
            ConditionStatus::False,
            REASON_CANCELLED,
            message,
        );
        self.finished(None);
    }

    fn finished(&mut self, at: Option<Time>) {
        if self.status.finished_at.is_none() {
            self.status.finished_at = Some(at.unwrap_or_else(|| self.now.clone()));
        }
    }
}

/// Sets kstatus's `Reconciling` / `Stalled` from the phase, with `Ready`'s reason and message:
/// a render still on its way is reconciling; a rejected, failed or cancelled one is stalled (it
/// will never succeed, and a GitOps tool waiting on it should stop); a succeeded one carries
/// neither.
pub fn mark_progress(status: &mut RenderJobStatus, generation: Option<i64>, now: Time) {
    let progress = match status.phase {
        RenderPhase::Succeeded => Progress::Settled,
        RenderPhase::Rejected | RenderPhase::Failed | RenderPhase::Cancelled => Progress::Stalled,
        _ => Progress::Reconciling,
    };
    let (reason, message) = find(&status.conditions, types::READY)
        .map(|ready| (ready.reason.clone(), ready.message.clone()))
        .unwrap_or_else(|| ("Pending".to_owned(), "not reconciled yet".to_owned()));
    ConditionUpdate {
        conditions: &mut status.conditions,
        generation,
        now,
    }
    .progress(progress, &reason, &message);
}

/// Whether the render has ended for good: nothing about it will change again (the spec is
/// immutable), so it costs no request. A rejection is final once it is recorded.
pub fn is_final(status: &RenderJobStatus, generation: Option<i64>) -> bool {
    if status.observed_generation != generation {
        return false;
    }
    match status.phase {
        RenderPhase::Succeeded | RenderPhase::Failed | RenderPhase::Cancelled => true,
        RenderPhase::Rejected => {
            find(&status.conditions, RECORDED).is_some_and(|c| c.status == "True")
        }
        _ => false,
    }
}

/// Whether the database holds a `render_jobs` row for the render (it was submitted).
pub fn is_submitted(status: &RenderJobStatus) -> bool {
    matches!(
        status.phase,
        RenderPhase::Queued
            | RenderPhase::Running
            | RenderPhase::Succeeded
            | RenderPhase::Failed
            | RenderPhase::Cancelled
    )
}

/// Events for the change: Warnings for conditions that turned bad, Normal ones otherwise.
pub fn events_for_change(
    previous: Option<&RenderJobStatus>,
    next: &RenderJobStatus,
) -> Vec<PlannedEvent> {
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let failed = next.phase == RenderPhase::Failed;
    condition_events(
        before,
        &next.conditions,
        EventNaming::ByReason,
        |type_| match type_ {
            types::VETTED | types::SCHEDULED | RECORDED => "False",
            types::COMPLETE if failed => "True",
            _ => "Unknown",
        },
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn observation(phase: RenderPhase, reason: &'static str) -> Observation {
        Observation {
            phase,
            reason,
            message: "m".to_owned(),
            finished_at: None,
        }
    }

    #[test]
    fn kstatus_reads_a_render_in_progress_then_stalled_and_no_event_tells_it() {
        let mut status = RenderJobStatus::default();
        let mut change = StatusChange {
            status: &mut status,
            generation: Some(1),
            now: now(),
        };
        change.waiting(RenderPhase::Queued, "ConcurrencyLimit", "wait".into());
        mark_progress(&mut status, Some(1), now());
        let reconciling = find(&status.conditions, types::RECONCILING).unwrap();
        assert_eq!(
            (reconciling.status.as_str(), reconciling.reason.as_str()),
            ("True", "ConcurrencyLimit")
        );
        let before = status.clone();
        StatusChange {
            status: &mut status,
            generation: Some(1),
            now: now(),
        }
        .cancelled("cancelled by annotation".into());
        mark_progress(&mut status, Some(1), now());
        assert!(find(&status.conditions, types::RECONCILING).is_none());
        assert_eq!(
            find(&status.conditions, types::STALLED).unwrap().reason,
            REASON_CANCELLED
        );
        let events = events_for_change(Some(&before), &status);
        assert!(
            events.iter().all(|e| !e.note.starts_with("Stalled")),
            "{events:?}"
        );
    }

    #[test]
    fn a_render_moves_through_its_phases_and_ends_final() {
        let mut status = RenderJobStatus {
            observed_generation: Some(1),
            ..RenderJobStatus::default()
        };
        let mut change = StatusChange {
            status: &mut status,
            generation: Some(1),
            now: now(),
        };
        change.waiting(RenderPhase::Queued, "ConcurrencyLimit", "wait".into());
        assert!(is_submitted(change.status));
        change.following(
            "r-render",
            "users/u/renders/r/",
            &observation(RenderPhase::Running, "WorkerRunning"),
        );
        assert_eq!(change.status.started_at, Some(now()));
        assert!(!is_final(change.status, Some(1)));
        change.following(
            "r-render",
            "users/u/renders/r/",
            &observation(RenderPhase::Failed, "RetriesExhausted"),
        );
        assert!(is_final(&status, Some(1)));
        let complete = find(&status.conditions, types::COMPLETE).unwrap();
        assert_eq!(
            (complete.status.as_str(), complete.reason.as_str()),
            ("True", "RetriesExhausted")
        );
        assert!(status.finished_at.is_some());
    }

    #[test]
    fn a_rejection_is_final_only_once_recorded() {
        let mut status = RenderJobStatus {
            phase: RenderPhase::Rejected,
            observed_generation: Some(1),
            ..RenderJobStatus::default()
        };
        assert!(!is_final(&status, Some(1)));
        StatusChange {
            status: &mut status,
            generation: Some(1),
            now: now(),
        }
        .recorded(Ok(()));
        assert!(is_final(&status, Some(1)));
    }

    #[test]
    fn a_failed_render_gets_a_warning_event() {
        let mut status = RenderJobStatus::default();
        StatusChange {
            status: &mut status,
            generation: Some(1),
            now: now(),
        }
        .following(
            "j",
            "p/",
            &observation(RenderPhase::Failed, "DeadlineExceeded"),
        );
        let events = events_for_change(None, &status);
        let complete = events
            .iter()
            .find(|e| e.reason == "DeadlineExceeded")
            .unwrap();
        assert!(complete.warning);
    }
}
