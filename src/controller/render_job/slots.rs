//! The concurrency cap (`workers.maxConcurrentRenders`): a render gets a Job only while fewer
//! than the cap of its foundry's renders hold one, first come first served. The decision reads
//! the controller's cache of RenderJobs; because that cache lags behind this process's own
//! writes, admissions and releases made here are remembered until the cache shows them, and one
//! lock per foundry keeps two reconciles from taking the last slot at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::conditions::{find, types};
use crate::crd::render_job::{RenderJob, RenderPhase};

/// Reason of `Scheduled=False` while a render waits for a slot.
pub const REASON_CONCURRENCY_LIMIT: &str = "ConcurrencyLimit";

/// One render as the cap sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotView {
    /// Creation time then name: the first-come-first-served order.
    pub order: (Option<Time>, String),
    /// Holds a slot (its Job exists and has not finished).
    pub active: bool,
    /// Waits for a slot.
    pub waiting: bool,
}

/// The cap's answer for one render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free for it.
    Admit,
    /// It must wait: `active` renders hold the slots and `ahead` wait before it.
    Wait {
        /// Renders holding a slot.
        active: usize,
        /// Renders that came first and wait too.
        ahead: usize,
    },
}

/// Decides for the render ordered `me` among `others` (which may include it) under `cap`.
pub fn decide(me: &(Option<Time>, String), others: &[SlotView], cap: usize) -> Admission {
    let active = others.iter().filter(|view| view.active).count();
    let ahead = others
        .iter()
        .filter(|view| view.waiting && !view.active && &view.order < me)
        .count();
    if active + ahead < cap {
        Admission::Admit
    } else {
        Admission::Wait { active, ahead }
    }
}

/// The order key of a render.
pub fn order_of(render: &RenderJob) -> (Option<Time>, String) {
    (
        render.metadata.creation_timestamp.clone(),
        render.metadata.name.clone().unwrap_or_default(),
    )
}

/// Whether the cached render holds a slot, going by its status.
pub fn holds_slot(render: &RenderJob) -> bool {
    render.status.as_ref().is_some_and(|status| {
        status.job_name.is_some()
            && matches!(status.phase, RenderPhase::Queued | RenderPhase::Running)
    })
}

/// Whether the cached render waits for a slot, going by its status.
pub fn waits_for_slot(render: &RenderJob) -> bool {
    render.status.as_ref().is_some_and(|status| {
        status.job_name.is_none()
            && matches!(status.phase, RenderPhase::Pending | RenderPhase::Queued)
            && find(&status.conditions, types::SCHEDULED)
                .is_some_and(|c| c.reason == REASON_CONCURRENCY_LIMIT)
    })
}

/// Admissions and releases this process made, by render UID, and one lock per foundry.
#[derive(Default)]
pub struct SlotLedger {
    held: Mutex<HashMap<String, bool>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SlotLedger {
    /// The lock of one foundry (`namespace/name`).
    pub fn lock_for(&self, foundry: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.locks.lock() {
            Ok(mut locks) => locks.entry(foundry.to_owned()).or_default().clone(),
            // A poisoned map only means another task panicked: a fresh lock is still correct
            // for this task, and the cache catches up.
            Err(_) => Arc::default(),
        }
    }

    /// Records that the render `uid` took (`true`) or gave back (`false`) a slot.
    pub fn record(&self, uid: &str, holds: bool) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(uid.to_owned(), holds);
        }
    }

    /// Forgets a deleted render.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(uid);
        }
    }

    /// The view of a cached render, corrected by what this process did since.
    pub fn view(&self, render: &RenderJob) -> SlotView {
        let uid = render.metadata.uid.as_deref().unwrap_or_default();
        let remembered = self
            .held
            .lock()
            .ok()
            .and_then(|held| held.get(uid).copied());
        let active = remembered.unwrap_or_else(|| holds_slot(render));
        SlotView {
            order: order_of(render),
            active,
            waiting: !active && remembered.is_none() && waits_for_slot(render),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Option<Time> {
        Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap(),
        ))
    }

    fn view(second: i64, active: bool, waiting: bool) -> SlotView {
        SlotView {
            order: (at(second), format!("r{second}")),
            active,
            waiting,
        }
    }

    #[test]
    fn renders_are_admitted_until_the_cap() {
        let others = [view(1, true, false), view(2, true, false)];
        assert_eq!(decide(&(at(3), "r3".into()), &others, 3), Admission::Admit);
        assert_eq!(
            decide(&(at(3), "r3".into()), &others, 2),
            Admission::Wait {
                active: 2,
                ahead: 0
            }
        );
    }

    #[test]
    fn the_first_waiting_render_gets_the_freed_slot() {
        // Slot 1 of 2 is free; r5 and r7 wait; r9 arrives.
        let others = [
            view(1, true, false),
            view(5, false, true),
            view(7, false, true),
        ];
        assert_eq!(decide(&(at(5), "r5".into()), &others, 2), Admission::Admit);
        assert!(matches!(
            decide(&(at(7), "r7".into()), &others, 2),
            Admission::Wait { ahead: 1, .. }
        ));
        assert!(matches!(
            decide(&(at(9), "r9".into()), &others, 2),
            Admission::Wait { ahead: 2, .. }
        ));
    }

    #[test]
    fn the_ledger_corrects_a_lagging_cache() {
        let ledger = SlotLedger::default();
        let render: RenderJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "r", "uid": "u1"},
            "spec": {"foundryRef": {"name": "f"}, "userId": "7f1c0e1a-3b2d-4c5e-8f90-a1b2c3d4e5f6",
                     "workflow": {"inline": "{}"}}
        }))
        .unwrap();
        assert!(!ledger.view(&render).active);
        ledger.record("u1", true);
        assert!(ledger.view(&render).active);
        ledger.record("u1", false);
        assert!(!ledger.view(&render).active);
        ledger.forget("u1");
        assert!(!ledger.view(&render).active);
    }
}
