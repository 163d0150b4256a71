//! The outcome of one provisioning step, shared by the backends (database, secrets, storage)
//! that produce it and the controllers that turn it into conditions. It lives outside
//! `controller/` so that backends never depend on a controller.

/// What one provisioning step found, as the condition it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    /// The condition type the step sets (e.g. `NetworkIsolated`).
    pub condition: &'static str,
    /// Whether the step's guarantee holds.
    pub ready: bool,
    /// PascalCase reason.
    pub reason: String,
    /// What holds, or what is wrong and how to fix it (never a secret).
    pub message: String,
    /// A failure that may heal by itself (unreachable backend), retried with backoff; other
    /// failures wait for an edit or the periodic re-check.
    pub transient: bool,
    /// Drift found and repaired on the way (one line each), told by a `DriftRepaired` Event
    /// rather than the condition, so the status stays the same and is not rewritten.
    pub repairs: Vec<String>,
}

impl StepOutcome {
    /// The step's guarantee holds.
    pub fn ready(condition: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            condition,
            ready: true,
            reason: reason.to_owned(),
            message: message.into(),
            transient: false,
            repairs: Vec::new(),
        }
    }

    /// The same outcome, reporting `repairs`.
    pub fn with_repairs(mut self, repairs: Vec<String>) -> Self {
        self.repairs = repairs;
        self
    }

    /// The step failed; `transient` when retrying may help.
    pub fn failed(
        condition: &'static str,
        reason: &str,
        message: impl Into<String>,
        transient: bool,
    ) -> Self {
        Self {
            condition,
            ready: false,
            reason: reason.to_owned(),
            message: message.into(),
            transient,
            repairs: Vec::new(),
        }
    }
}
