//! The ApprovedNodeList status computed from a validation report, and the Events a status
//! change calls for. Pure: the caller writes only when the result differs from what is stored.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controller::events::PlannedEvent;
use crate::crd::approved_node_list::ApprovedNodeListStatus;
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, Progress, types};
use crate::vetting::approved_list::ListReport;

/// Reason of `Ready=True`.
pub const REASON_VALID: &str = "Valid";
/// Reason of `Ready=False` for a malformed list.
pub const REASON_INVALID: &str = "InvalidSpec";
/// Reason of the Warning Event for entries both allowed and blocked.
pub const REASON_BLOCK_OVERRIDES: &str = "BlockOverridesAllow";

/// The status a list with this report should have. Conditions keep their transition time
/// unless their status flips, so an unchanged list yields an identical status.
pub fn desired_status(
    current: Option<&ApprovedNodeListStatus>,
    generation: Option<i64>,
    report: &ListReport,
    now: Time,
) -> ApprovedNodeListStatus {
    let mut conditions = current.map(|s| s.conditions.clone()).unwrap_or_default();
    let (status, reason, message) = if report.is_valid() {
        (ConditionStatus::True, REASON_VALID, ready_message(report))
    } else {
        (
            ConditionStatus::False,
            REASON_INVALID,
            report.problems.join("; "),
        )
    };
    let mut update = ConditionUpdate {
        conditions: &mut conditions,
        generation,
        now,
    };
    // kstatus: a malformed list stays so until someone edits it.
    let progress = if report.is_valid() {
        Progress::Settled
    } else {
        Progress::Stalled
    };
    update.set(types::READY, status, reason, message.clone());
    update.progress(progress, reason, &message);
    ApprovedNodeListStatus {
        observed_generation: generation,
        conditions,
        counts: Some(report.counts.clone()),
        overridden_by_block: report.overridden_by_block.clone(),
    }
}

fn ready_message(report: &ListReport) -> String {
    if report.overridden_by_block.is_empty() {
        "all entries are well-formed".to_owned()
    } else {
        format!(
            "all entries are well-formed; blocked despite being allowed: {}",
            report.overridden_by_block.join(", ")
        )
    }
}

/// Events that describe the change from `previous` to `next`; none when nothing changed, so a
/// no-op reconcile writes nothing at all.
pub fn events_for_change(
    previous: Option<&ApprovedNodeListStatus>,
    next: &ApprovedNodeListStatus,
    report: &ListReport,
) -> Vec<PlannedEvent> {
    if previous == Some(next) {
        return Vec::new();
    }
    let mut events = Vec::new();
    if report.is_valid() {
        let was_ready =
            previous.is_some_and(|s| crate::crd::conditions::is_true(&s.conditions, types::READY));
        if !was_ready {
            events.push(PlannedEvent {
                warning: false,
                reason: REASON_VALID.to_owned(),
                note: ready_message(report),
            });
        }
    } else {
        events.push(PlannedEvent {
            warning: true,
            reason: REASON_INVALID.to_owned(),
            note: report.problems.join("; "),
        });
    }
    let previously_overridden = previous
        .map(|s| s.overridden_by_block.as_slice())
        .unwrap_or_default();
    if !report.overridden_by_block.is_empty() && previously_overridden != report.overridden_by_block
    {
        events.push(PlannedEvent {
            warning: true,
            reason: REASON_BLOCK_OVERRIDES.to_owned(),
            note: format!(
                "allowed and blocked at once (blocking wins): {}",
                report.overridden_by_block.join(", ")
            ),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::approved_node_list::ApprovedNodeListCounts;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn valid() -> ListReport {
        ListReport {
            counts: ApprovedNodeListCounts {
                nodes: 2,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn an_unchanged_list_yields_the_same_status_and_no_events() {
        let first = desired_status(None, Some(1), &valid(), at(1));
        let second = desired_status(Some(&first), Some(1), &valid(), at(99));
        assert_eq!(first, second);
        assert!(events_for_change(Some(&first), &second, &valid()).is_empty());
    }

    #[test]
    fn an_invalid_list_is_not_ready_with_a_warning() {
        let report = ListReport {
            problems: vec!["models[0]: bad".into()],
            ..valid()
        };
        let status = desired_status(None, Some(2), &report, at(1));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", REASON_INVALID)
        );
        assert_eq!(ready.message, "models[0]: bad");
        let events = events_for_change(None, &status, &report);
        assert_eq!(events.len(), 1);
        assert!(events[0].warning);
        assert_eq!(events[0].reason, REASON_INVALID);
    }

    #[test]
    fn becoming_valid_flips_ready_and_announces_it_once() {
        let invalid = ListReport {
            problems: vec!["x".into()],
            ..valid()
        };
        let before = desired_status(None, Some(1), &invalid, at(1));
        let after = desired_status(Some(&before), Some(2), &valid(), at(2));
        assert_eq!(after.conditions[0].last_transition_time, at(2));
        assert_eq!(after.observed_generation, Some(2));
        let events = events_for_change(Some(&before), &after, &valid());
        assert_eq!(
            events,
            vec![PlannedEvent {
                warning: false,
                reason: REASON_VALID.to_owned(),
                note: "all entries are well-formed".into()
            }]
        );
    }

    #[test]
    fn block_overrides_are_warned_about_when_they_appear() {
        let report = ListReport {
            overridden_by_block: vec!["EvilNode".into()],
            ..valid()
        };
        let status = desired_status(None, Some(1), &report, at(1));
        let events = events_for_change(None, &status, &report);
        assert!(events.iter().any(|e| e.warning
            && e.reason == REASON_BLOCK_OVERRIDES
            && e.note.contains("EvilNode")));
        assert!(status.conditions[0].message.contains("EvilNode"));
    }
}
