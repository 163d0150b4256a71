//! The VideoFoundry status computed from the outcome of each provisioning step, and the Events a
//! change calls for. Pure: the caller writes only when the result differs from what is stored.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controller::events::{EventNaming, PlannedEvent, condition_events};
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, Progress, types};
use crate::crd::video_foundry::{EffectiveSecurity, VideoFoundryStatus};
use crate::security_profile::ProfileError;

/// Reason of `Ready=True`.
pub const REASON_READY: &str = "Provisioned";
/// Reason of `Ready=False` when the spec asks for something the mode forbids or the operator
/// does not understand.
pub const REASON_INVALID: &str = "InvalidSpec";
/// Reason of `SecurityRelaxed=True`.
pub const REASON_RELAXED: &str = "SettingsRelaxed";
/// Reason of `SecurityRelaxed=False`.
pub const REASON_NOT_RELAXED: &str = "ModeDefaults";

pub use crate::provisioning::StepOutcome;

/// The status a foundry should have. `security` is the resolved profile (or why it does not
/// resolve); `steps` the outcome of each provisioning step in the order they ran.
pub fn desired_status(
    current: Option<&VideoFoundryStatus>,
    generation: Option<i64>,
    security: &Result<EffectiveSecurity, ProfileError>,
    steps: &[StepOutcome],
    now: Time,
) -> VideoFoundryStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let mut conditions = ConditionUpdate {
        conditions: &mut status.conditions,
        generation,
        now,
    };
    match security {
        Ok(effective) => {
            if effective.relaxations.is_empty() {
                conditions.set(
                    types::SECURITY_RELAXED,
                    ConditionStatus::False,
                    REASON_NOT_RELAXED,
                    format!(
                        "every setting is at least as strict as {:?} mode's defaults",
                        effective.execution_mode
                    ),
                );
            } else {
                conditions.set(
                    types::SECURITY_RELAXED,
                    ConditionStatus::True,
                    REASON_RELAXED,
                    effective.relaxations.join("; "),
                );
            }
        }
        Err(error) => conditions.set(
            types::SECURITY_RELAXED,
            ConditionStatus::Unknown,
            REASON_INVALID,
            error.to_string(),
        ),
    }
    for step in steps {
        conditions.set(
            step.condition,
            ConditionStatus::from_bool(step.ready),
            &step.reason,
            step.message.clone(),
        );
    }
    let (ready, reason, message) = match security {
        Err(error) => (
            false,
            REASON_INVALID.to_owned(),
            format!("{error}; fix the spec"),
        ),
        Ok(_) => match steps.iter().find(|step| !step.ready) {
            Some(failed) => (
                false,
                failed.reason.clone(),
                format!("{}: {}", failed.condition, failed.message),
            ),
            None => (
                true,
                REASON_READY.to_owned(),
                "every provisioning step succeeded".to_owned(),
            ),
        },
    };
    // kstatus: only a spec the operator refuses needs a person; anything else is retried.
    let progress = if ready {
        Progress::Settled
    } else if reason == REASON_INVALID {
        Progress::Stalled
    } else {
        Progress::Reconciling
    };
    conditions.set(
        types::READY,
        ConditionStatus::from_bool(ready),
        &reason,
        message.clone(),
    );
    conditions.progress(progress, &reason, &message);
    status.effective_security = security.as_ref().ok().cloned();
    status
}

/// Events for the conditions whose status or reason changed, each with the condition's type as
/// its reason: a Warning for a guarantee lost (or a relaxation appearing), a Normal Event for one
/// gained. None when nothing changed.
pub fn events_for_change(
    previous: Option<&VideoFoundryStatus>,
    next: &VideoFoundryStatus,
) -> Vec<PlannedEvent> {
    let before = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    condition_events(before, &next.conditions, EventNaming::ByType, |type_| {
        if type_ == types::SECURITY_RELAXED {
            "True"
        } else {
            "False"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::video_foundry::{ExecutionMode, VideoFoundrySpec};

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn developer_security() -> Result<EffectiveSecurity, ProfileError> {
        let spec: VideoFoundrySpec = serde_json::from_value(serde_json::json!({
            "executionMode": "developer",
            "database": {"connectionSecretRef": {"name": "db", "key": "url"}},
            "storage": {"endpoint": "http://127.0.0.1:7480", "bucket": "b",
                        "credentialsSecretRef": {"name": "s3"}},
            "workers": {"image": "comfy@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
        }))
        .unwrap();
        crate::security_profile::resolve(&spec)
    }

    fn condition<'a>(status: &'a VideoFoundryStatus, type_: &str) -> (&'a str, &'a str) {
        let found = status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"));
        (found.status.as_str(), found.reason.as_str())
    }

    #[test]
    fn all_steps_ready_makes_the_foundry_ready_and_reports_relaxations() {
        let steps = [StepOutcome::ready(types::NETWORK_ISOLATED, "Applied", "ok")];
        let status = desired_status(None, Some(3), &developer_security(), &steps, at(1));
        assert_eq!(condition(&status, types::READY), ("True", REASON_READY));
        assert_eq!(
            condition(&status, types::SECURITY_RELAXED),
            ("True", REASON_RELAXED)
        );
        assert_eq!(status.observed_generation, Some(3));
        let security = status.effective_security.as_ref().unwrap();
        assert_eq!(security.execution_mode, ExecutionMode::Developer);
        let events = events_for_change(None, &status);
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == types::SECURITY_RELAXED)
        );
        assert!(
            events
                .iter()
                .any(|e| !e.warning && e.reason == types::READY && e.note.contains(REASON_READY))
        );
    }

    #[test]
    fn a_failed_step_makes_the_foundry_not_ready_with_its_reason() {
        let steps = [
            StepOutcome::ready(types::NETWORK_ISOLATED, "Applied", "ok"),
            StepOutcome::failed(
                types::SANDBOX_READY,
                "RuntimeClassMissing",
                "no gvisor",
                false,
            ),
        ];
        let status = desired_status(None, Some(1), &developer_security(), &steps, at(1));
        assert_eq!(
            condition(&status, types::READY),
            ("False", "RuntimeClassMissing")
        );
        let events = events_for_change(None, &status);
        assert!(events.iter().any(|e| e.warning
            && e.reason == types::SANDBOX_READY
            && e.note == "SandboxReady is False (RuntimeClassMissing): no gvisor"));
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == types::READY && e.note.contains("no gvisor")),
            "Ready's own transition has its own Event"
        );
    }

    #[test]
    fn an_invalid_profile_is_not_ready_and_says_why() {
        let invalid = Err(ProfileError::Requirement {
            mode: ExecutionMode::Production,
            requirement: "spec.vault",
        });
        let status = desired_status(None, Some(1), &invalid, &[], at(1));
        assert_eq!(condition(&status, types::READY), ("False", REASON_INVALID));
        assert!(status.effective_security.is_none());
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.message.contains("spec.vault"))
        );
    }

    #[test]
    fn an_unchanged_foundry_yields_the_same_status_and_no_events() {
        let steps = [StepOutcome::ready(types::NETWORK_ISOLATED, "Applied", "ok")];
        let first = desired_status(None, Some(1), &developer_security(), &steps, at(1));
        let second = desired_status(Some(&first), Some(1), &developer_security(), &steps, at(50));
        assert_eq!(first, second);
        assert!(events_for_change(Some(&first), &second).is_empty());
    }
}
