//! Status conditions: the metav1 `Condition` list, keyed by `type`, shared by every kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{Schema, SchemaGenerator, json_schema};

/// Condition types the operator sets. Reasons are PascalCase and bounded.
pub mod types {
    /// The resource is fully reconciled and usable.
    pub const READY: &str = "Ready";
    /// Postgres roles, schema and row-level security are in place.
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// Secrets, policies and auth roles are in place in Vault.
    pub const SECRETS_READY: &str = "SecretsReady";
    /// The bucket is hardened and the tenant principal confined.
    pub const STORAGE_READY: &str = "StorageReady";
    /// Default-deny NetworkPolicies for workers exist.
    pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
    /// The sandbox RuntimeClass exists with the expected handler.
    pub const SANDBOX_READY: &str = "SandboxReady";
    /// Some setting is weaker than the execution mode's default; the message lists which.
    pub const SECURITY_RELAXED: &str = "SecurityRelaxed";
    /// VideoFoundry being deleted: whether its reclaim policy has been carried out (each failing
    /// step named in the reason).
    pub const RECLAIMED: &str = "Reclaimed";
    /// The workflow was vetted against the foundry's ApprovedNodeLists.
    pub const VETTED: &str = "Vetted";
    /// The worker Job exists.
    pub const SCHEDULED: &str = "Scheduled";
    /// The render finished (successfully or not).
    pub const COMPLETE: &str = "Complete";
    /// kstatus: the operator is still working towards `Ready` (present only while `True`).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the object will not become `Ready` without a change from a person (present only
    /// while `True`).
    pub const STALLED: &str = "Stalled";
}

/// Where an object stands for GitOps tools, as kstatus (Flux, `kubectl wait`-style tooling)
/// reads it: `Reconciling=True` is in progress, `Stalled=True` has failed, neither (with the
/// generation observed) is current. Both are "abnormal-true" conditions, present only while
/// `True`, so a settled object carries neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing left to do: the object is `Ready`, or done for good in a way that is not a
    /// failure.
    Settled,
    /// The operator is still working on it.
    Reconciling,
    /// It cannot succeed without an edit (or it failed for good).
    Stalled,
}

/// Whether `type_` is one of kstatus's summary conditions ([`Progress`]): they restate `Ready`,
/// so they never get an Event of their own.
pub fn is_progress_type(type_: &str) -> bool {
    type_ == types::RECONCILING || type_ == types::STALLED
}

/// Status values of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl ConditionStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// `True` when `holds`, otherwise `False`.
    pub fn from_bool(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

/// The conditions one reconcile writes: every one carries the same generation and time.
pub struct ConditionUpdate<'a> {
    /// The status's conditions.
    pub conditions: &'a mut Vec<Condition>,
    /// The `metadata.generation` they describe.
    pub generation: Option<i64>,
    /// The reconcile's time (used only when a status flips).
    pub now: Time,
}

impl ConditionUpdate<'_> {
    /// Sets or replaces the condition of `type_` (see [`set_condition`]).
    pub fn set(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) {
        set_condition(
            self.conditions,
            type_,
            status,
            reason,
            message,
            self.generation,
            self.now.clone(),
        );
    }
}

impl ConditionUpdate<'_> {
    /// Sets `Reconciling` or `Stalled` (with `reason` and `message`) for `progress`, removing
    /// the other one; a settled object carries neither.
    pub fn progress(&mut self, progress: Progress, reason: &str, message: &str) {
        let keep = match progress {
            Progress::Settled => None,
            Progress::Reconciling => Some(types::RECONCILING),
            Progress::Stalled => Some(types::STALLED),
        };
        self.conditions
            .retain(|c| !is_progress_type(&c.type_) || Some(c.type_.as_str()) == keep);
        if let Some(type_) = keep {
            self.set(type_, ConditionStatus::True, reason, message);
        }
    }
}

/// Sets or replaces the condition of `type_`. `lastTransitionTime` moves only when the status
/// flips, so re-asserting the same state produces an identical status and no write.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) {
    let message = message.into();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status.as_str() {
            existing.last_transition_time = now;
        }
        existing.status = status.as_str().to_owned();
        existing.reason = reason.to_owned();
        existing.message = message;
        existing.observed_generation = observed_generation;
    } else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: now,
        });
    }
}

/// Looks up a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

/// Schema of a `conditions` list: metav1 Conditions as a list-map keyed by `type`, as
/// `kubectl` and server-side apply expect.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "description": "Current state, one entry per condition type.",
        "items": item,
        "maxItems": 32,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Ready",
            ConditionStatus::False,
            "Invalid",
            "bad",
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            "Ready",
            ConditionStatus::False,
            "Invalid",
            "still bad",
            Some(2),
            at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].message, "still bad");
        assert_eq!(conditions[0].observed_generation, Some(2));

        set_condition(
            &mut conditions,
            "Ready",
            ConditionStatus::True,
            "Valid",
            "",
            Some(3),
            at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert!(is_true(&conditions, "Ready"));
    }

    #[test]
    fn conditions_of_different_types_coexist() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Ready",
            ConditionStatus::True,
            "Valid",
            "",
            None,
            at(1),
        );
        set_condition(
            &mut conditions,
            "Vetted",
            ConditionStatus::False,
            "Rejected",
            "",
            None,
            at(1),
        );
        assert_eq!(conditions.len(), 2);
        assert!(!is_true(&conditions, "Vetted"));
        assert!(find(&conditions, "Missing").is_none());
    }

    #[test]
    fn progress_keeps_at_most_one_abnormal_true_condition() {
        let mut conditions = Vec::new();
        let mut update = ConditionUpdate {
            conditions: &mut conditions,
            generation: Some(2),
            now: at(1),
        };
        update.progress(Progress::Reconciling, "Provisioning", "working");
        update.progress(Progress::Reconciling, "Provisioning", "still working");
        let types_of = |c: &[Condition]| c.iter().map(|c| c.type_.clone()).collect::<Vec<_>>();
        assert_eq!(types_of(update.conditions), ["Reconciling"]);
        update.progress(Progress::Stalled, "InvalidSpec", "fix it");
        assert_eq!(types_of(update.conditions), ["Stalled"]);
        assert_eq!(update.conditions[0].status, "True");
        assert_eq!(update.conditions[0].observed_generation, Some(2));
        update.set(types::READY, ConditionStatus::True, "Provisioned", "ok");
        update.progress(Progress::Settled, "Provisioned", "ok");
        assert_eq!(types_of(update.conditions), ["Ready"]);
    }
}
