//! Publishing Events: one helper for every controller, so notes are bounded and a failed Event
//! never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};

use super::Context;
use crate::crd::conditions::{is_progress_type, types};

/// Longest Event note the operator writes (the API server rejects notes over 1 KiB).
const MAX_NOTE_BYTES: usize = 1000;

/// An Event to publish with a status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// True for Warning, false for Normal.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: String,
    /// Human-readable note (never a secret).
    pub note: String,
}

/// How a condition change is named in its Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventNaming {
    /// Reason = the condition's reason (`Approved`, `Rejected`, ...); a failing `Ready` is left
    /// out (the failing condition's own Event says why). For renders, whose reasons are the
    /// story of the render.
    ByReason,
    /// Reason = the condition's type (`DatabaseReady`, `Ready`, ...), so `kubectl describe`
    /// lists every transition with its own message. For foundries, whose conditions are steps.
    ByType,
}

/// One Event per condition whose status or reason changed between `before` and `after`, named
/// as `naming` says: a Warning when the new status is the condition's bad one
/// (`bad_status(type)`) or `Unknown`, a Normal Event otherwise. None when nothing changed, so a
/// no-op reconcile writes nothing at all. Progress conditions (`Reconciling`, `Stalled`) never
/// make Events.
pub fn condition_events(
    before: &[Condition],
    after: &[Condition],
    naming: EventNaming,
    bad_status: impl Fn(&str) -> &'static str,
) -> Vec<PlannedEvent> {
    after
        .iter()
        .filter(|condition| !is_progress_type(&condition.type_))
        .filter(|condition| {
            !before.iter().any(|old| {
                old.type_ == condition.type_
                    && old.status == condition.status
                    && old.reason == condition.reason
            })
        })
        .filter(|condition| {
            naming == EventNaming::ByType
                || condition.type_ != types::READY
                || condition.status == "True"
        })
        .map(|condition| {
            let (reason, note) = match naming {
                EventNaming::ByReason => (
                    condition.reason.clone(),
                    format!("{}: {}", condition.type_, condition.message),
                ),
                EventNaming::ByType => (
                    condition.type_.clone(),
                    format!(
                        "{} is {} ({}): {}",
                        condition.type_, condition.status, condition.reason, condition.message
                    ),
                ),
            };
            PlannedEvent {
                warning: condition.status == bad_status(&condition.type_)
                    || condition.status == "Unknown",
                reason,
                note,
            }
        })
        .collect()
}

/// Publishes `event` about `reference`, with `action` (what the controller was doing).
pub async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
    action: &str,
    event: PlannedEvent,
) {
    let event = Event {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason,
        note: Some(truncate(event.note, MAX_NOTE_BYTES)),
        action: action.to_owned(),
        secondary: None,
    };
    // A recorder of its own per Event: the shared one merges Events by reason into a series that
    // keeps the first note, which would hide a later transition's message.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    // An Event that cannot be written must not fail the reconcile; status carries the same text.
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::warn!(%error, "cannot publish event");
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: None,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn each_changed_condition_gets_an_event_named_after_it_with_its_own_message() {
        let before = [
            condition("DatabaseReady", "False", "CredentialsMissing", "no Secret"),
            condition(
                "Ready",
                "False",
                "CredentialsMissing",
                "DatabaseReady: no Secret",
            ),
            condition("NetworkIsolated", "True", "PoliciesApplied", "ok"),
        ];
        let after = [
            condition("DatabaseReady", "True", "Provisioned", "schema s"),
            condition("Ready", "True", "Provisioned", "every step succeeded"),
            condition("NetworkIsolated", "True", "PoliciesApplied", "ok"),
        ];
        let events = condition_events(&before, &after, EventNaming::ByType, |_| "False");
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["DatabaseReady", "Ready"]);
        assert_eq!(
            events[1].note,
            "Ready is True (Provisioned): every step succeeded"
        );
        assert!(events.iter().all(|e| !e.warning));
        let back = condition_events(&after, &before, EventNaming::ByType, |_| "False");
        assert!(back.iter().all(|e| e.warning));
        assert!(back[1].note.contains("DatabaseReady: no Secret"));
        assert!(condition_events(&after, &after, EventNaming::ByType, |_| "False").is_empty());
    }

    #[test]
    fn by_reason_names_events_after_the_reason_and_leaves_out_a_failing_ready() {
        let before = [condition("Vetted", "Unknown", "Pending", "waiting")];
        let after = [
            condition("Vetted", "False", "Rejected", "1 violation"),
            condition("Ready", "False", "Rejected", "Vetted: 1 violation"),
        ];
        let events = condition_events(&before, &after, EventNaming::ByReason, |_| "False");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].reason, "Rejected");
        assert_eq!(events[0].note, "Vetted: 1 violation");
        assert!(events[0].warning);
    }

    #[test]
    fn truncation_keeps_short_notes_and_cuts_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("ééé".into(), 3), "é…");
    }
}
