//! Prometheus metrics, exposed at `/metrics` in the OpenMetrics text format.
//!
//! Conventions (checked by the tests below): every name starts with `videofoundry_`, is
//! snake_case and in base units (`_seconds`); counters end in `_total`. Cardinality is bounded:
//! each label takes its values from a fixed set in this file (controllers, verdicts, rule ids,
//! phases, exit codes, secrets, results, backends), except `namespace` and `foundry` on the
//! per-foundry gauges. Foundries are a platform team's installations (a handful per cluster, not
//! per user), and an on-call engineer must know *which* foundry is not Ready; those series are
//! removed when the foundry goes away. Render names, user ids, project ids, error text and
//! anything secret never become a label.
//!
//! docs/metrics.md lists every metric; docs/runbook.md says what to do when an alert fires.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::render_job::{RenderPhase, VettingVerdict};
use crate::vetting::rules;

/// The controllers, as metric label values.
pub const CONTROLLERS: [&str; 3] = ["videofoundry", "renderjob", "approvednodelist"];
/// Vetting verdicts, as label values.
pub const VERDICTS: [&str; 3] = ["approved", "approved_with_warnings", "rejected"];
/// Final render phases, as label values.
pub const FINAL_PHASES: [&str; 4] = ["succeeded", "failed", "cancelled", "rejected"];
/// Worker exit codes that mean the sandbox refused its inputs (docs/worker.md): 42 a digest or
/// model pin mismatch, 43 inputs unusable.
pub const REFUSAL_EXIT_CODES: [&str; 2] = ["42", "43"];
/// The rotated secrets, as label values.
pub const ROTATED_SECRETS: [&str; 2] = ["jwt", "database_password"];
/// Results of a rotation check.
pub const ROTATION_RESULTS: [&str; 3] = ["rotated", "unchanged", "failed"];
/// The foundry backends, as label values.
pub const BACKENDS: [&str; 3] = ["postgres", "vault", "s3"];

/// Labels of reconcile runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `videofoundry`, `renderjob` or `approvednodelist`.
    pub controller: &'static str,
}

/// Labels of reconcile failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The controller.
    pub controller: &'static str,
    /// The error category (a bounded PascalCase reason).
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExitLabels {
    exit_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    secret: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoundryLabels {
    namespace: String,
    foundry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    namespace: String,
    foundry: String,
    backend: &'static str,
}

/// Which secret a rotation check was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotatedSecret {
    /// The foundry's JWT signing secret.
    Jwt,
    /// The application role's database password.
    DatabasePassword,
}

/// What a rotation check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationResult {
    /// A new value is in force.
    Rotated,
    /// Nothing was due.
    Unchanged,
    /// The check or the rotation failed.
    Failed,
}

/// A foundry backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The foundry's PostgreSQL.
    Postgres,
    /// Vault / OpenBao.
    Vault,
    /// The S3 endpoint.
    S3,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Vault => "vault",
            Self::S3 => "s3",
        }
    }
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconcile_runs: Family<ControllerLabels, Counter>,
    reconcile_failures: Family<FailureLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    vetting_verdicts: Family<VerdictLabels, Counter>,
    vetting_violations: Family<RuleLabels, Counter>,
    renders_finished: Family<PhaseLabels, Counter>,
    render_duration: Family<PhaseLabels, Histogram>,
    worker_refusals: Family<ExitLabels, Counter>,
    rotations: Family<RotationLabels, Counter>,
    foundry_ready: Family<FoundryLabels, Gauge>,
    backend_up: Family<BackendLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("videofoundry"),
            reconcile_runs: Family::default(),
            reconcile_failures: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            vetting_verdicts: Family::default(),
            vetting_violations: Family::default(),
            renders_finished: Family::default(),
            // 1 s to about 9 h.
            render_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 16))
            }),
            worker_refusals: Family::default(),
            rotations: Family::default(),
            foundry_ready: Family::default(),
            backend_up: Family::default(),
        };
        metrics.register();
        metrics.expose_bounded_series();
        metrics
    }
}

impl Metrics {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "reconcile_runs",
            "Reconciliations started, by controller",
            self.reconcile_runs.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciliations that ended in an error, by controller and error category",
            self.reconcile_failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            self.reconcile_duration.clone(),
        );
        r.register(
            "vetting_verdicts",
            "Workflow vetting verdicts of RenderJobs",
            self.vetting_verdicts.clone(),
        );
        r.register(
            "vetting_violations",
            "Vetting violations found in RenderJobs' workflows, by rule id",
            self.vetting_violations.clone(),
        );
        r.register(
            "renders_finished",
            "Renders that reached a final phase",
            self.renders_finished.clone(),
        );
        r.register(
            "render_duration_seconds",
            "Time from a render's start to its end, by final phase",
            self.render_duration.clone(),
        );
        r.register(
            "worker_refused_inputs",
            "Renders whose sandboxed worker refused its inputs, by exit code (42 digest or pin mismatch, 43 inputs unusable)",
            self.worker_refusals.clone(),
        );
        r.register(
            "secret_rotations",
            "Rotation checks of foundries' generated secrets, by secret and result",
            self.rotations.clone(),
        );
        r.register(
            "foundry_ready",
            "1 when the foundry's Ready condition is True, else 0",
            self.foundry_ready.clone(),
        );
        r.register(
            "backend_up",
            "1 when the foundry's last check reached the backend, 0 when it could not",
            self.backend_up.clone(),
        );
    }

    /// Creates the bounded series at zero, so dashboards and alerts (rates, `absent`) see them
    /// before the first event.
    fn expose_bounded_series(&self) {
        for controller in CONTROLLERS {
            let labels = ControllerLabels { controller };
            let _ = self.reconcile_runs.get_or_create(&labels);
            let _ = self.reconcile_duration.get_or_create(&labels);
        }
        for verdict in VERDICTS {
            let _ = self
                .vetting_verdicts
                .get_or_create(&VerdictLabels { verdict });
        }
        for phase in FINAL_PHASES {
            let _ = self.renders_finished.get_or_create(&PhaseLabels { phase });
        }
        for exit_code in REFUSAL_EXIT_CODES {
            let _ = self
                .worker_refusals
                .get_or_create(&ExitLabels { exit_code });
        }
        for secret in ROTATED_SECRETS {
            for result in ROTATION_RESULTS {
                let _ = self
                    .rotations
                    .get_or_create(&RotationLabels { secret, result });
            }
        }
    }
}

impl Metrics {
    /// Counts a reconcile run and its duration.
    pub fn observe_run(&self, controller: &'static str, elapsed: Duration) {
        let labels = ControllerLabels { controller };
        self.reconcile_runs.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed reconcile by category.
    pub fn observe_failure(&self, controller: &'static str, category: &'static str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels {
                controller,
                category,
            })
            .inc();
    }

    /// Counts a render's vetting verdict and each of its violations by rule id (rule ids outside
    /// the fixed set count as `other`).
    pub fn observe_vetting<'a>(
        &self,
        verdict: &VettingVerdict,
        violation_rules: impl IntoIterator<Item = &'a str>,
    ) {
        let verdict = match verdict {
            VettingVerdict::Approved => "approved",
            VettingVerdict::ApprovedWithWarnings => "approved_with_warnings",
            VettingVerdict::Rejected | VettingVerdict::Unknown => "rejected",
        };
        self.vetting_verdicts
            .get_or_create(&VerdictLabels { verdict })
            .inc();
        for rule in violation_rules {
            self.vetting_violations
                .get_or_create(&RuleLabels {
                    rule: rules::canonical(rule),
                })
                .inc();
        }
    }

    /// Counts a render that reached a final phase (`ran_for`: from its start to its end, when
    /// it started) and, for a worker that refused its inputs, its exit code.
    pub fn observe_render_end(&self, phase: RenderPhase, reason: &str, ran_for: Option<Duration>) {
        let phase = match phase {
            RenderPhase::Succeeded => "succeeded",
            RenderPhase::Failed => "failed",
            RenderPhase::Cancelled => "cancelled",
            RenderPhase::Rejected => "rejected",
            _ => return,
        };
        let labels = PhaseLabels { phase };
        self.renders_finished.get_or_create(&labels).inc();
        if let Some(ran_for) = ran_for {
            self.render_duration
                .get_or_create(&labels)
                .observe(ran_for.as_secs_f64());
        }
        let exit_code = match reason {
            crate::controller::render_job::follow::REASON_WORKER_REJECTED => "42",
            crate::controller::render_job::follow::REASON_INPUTS_UNUSABLE => "43",
            _ => return,
        };
        self.worker_refusals
            .get_or_create(&ExitLabels { exit_code })
            .inc();
    }

    /// Counts one rotation check.
    pub fn observe_rotation(&self, secret: RotatedSecret, result: RotationResult) {
        let secret = match secret {
            RotatedSecret::Jwt => "jwt",
            RotatedSecret::DatabasePassword => "database_password",
        };
        let result = match result {
            RotationResult::Rotated => "rotated",
            RotationResult::Unchanged => "unchanged",
            RotationResult::Failed => "failed",
        };
        self.rotations
            .get_or_create(&RotationLabels { secret, result })
            .inc();
    }

    /// Sets whether a foundry is Ready.
    pub fn set_foundry_ready(&self, namespace: &str, foundry: &str, ready: bool) {
        self.foundry_ready
            .get_or_create(&FoundryLabels {
                namespace: namespace.to_owned(),
                foundry: foundry.to_owned(),
            })
            .set(i64::from(ready));
    }

    /// Sets whether a foundry's last check reached `backend`.
    pub fn set_backend_up(&self, namespace: &str, foundry: &str, backend: Backend, up: bool) {
        self.backend_up
            .get_or_create(&BackendLabels {
                namespace: namespace.to_owned(),
                foundry: foundry.to_owned(),
                backend: backend.label(),
            })
            .set(i64::from(up));
    }

    /// Drops the series of a deleted object (only foundries have any), so a deleted foundry
    /// neither alerts nor lingers.
    pub fn forget_object(&self, controller: &str, namespace: &str, name: &str) {
        if controller == "videofoundry" {
            self.forget_foundry(namespace, name);
        }
    }

    fn forget_foundry(&self, namespace: &str, foundry: &str) {
        self.foundry_ready.remove(&FoundryLabels {
            namespace: namespace.to_owned(),
            foundry: foundry.to_owned(),
        });
        for backend in BACKENDS {
            self.backend_up.remove(&BackendLabels {
                namespace: namespace.to_owned(),
                foundry: foundry.to_owned(),
                backend,
            });
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    type Labels = BTreeMap<String, String>;

    /// Metric families (name → type) and samples (name, labels) of an exposition.
    fn scrape(text: &str) -> (Labels, Vec<(String, Labels)>) {
        let mut families = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                families.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let (series, _value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap();
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                samples.push((name.to_owned(), labels));
            }
        }
        (families, samples)
    }

    fn snake_case(name: &str) -> bool {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    /// Every metric used once, with hostile values where a caller could pass one.
    fn exercised() -> Metrics {
        let metrics = Metrics::default();
        metrics.observe_run("renderjob", Duration::from_millis(3));
        metrics.observe_failure("videofoundry", "VaultWriteFailed");
        metrics.observe_vetting(
            &VettingVerdict::Rejected,
            [
                "node-not-approved",
                "url-input",
                "password=hunter2 from a newer version",
            ],
        );
        metrics.observe_vetting(
            &VettingVerdict::ApprovedWithWarnings,
            ["model-not-approved"],
        );
        metrics.observe_render_end(
            RenderPhase::Failed,
            "WorkerRejectedInputs",
            Some(Duration::from_secs(90)),
        );
        metrics.observe_render_end(RenderPhase::Failed, "InputsUnusable", None);
        metrics.observe_render_end(
            RenderPhase::Succeeded,
            "RenderSucceeded",
            Some(Duration::from_secs(600)),
        );
        metrics.observe_render_end(RenderPhase::Running, "Running", None);
        metrics.observe_rotation(RotatedSecret::Jwt, RotationResult::Rotated);
        metrics.observe_rotation(RotatedSecret::DatabasePassword, RotationResult::Failed);
        metrics.set_foundry_ready("render", "studio", false);
        metrics.set_backend_up("render", "studio", Backend::Postgres, true);
        metrics.set_backend_up("render", "studio", Backend::Vault, false);
        metrics
    }

    #[test]
    fn names_and_labels_follow_the_prometheus_conventions_with_bounded_values() {
        let text = exercised().encode().unwrap();
        let (families, samples) = scrape(&text);
        assert_eq!(families.len(), 11, "{text}");
        for (name, kind) in &families {
            assert!(
                name.starts_with("videofoundry_") && snake_case(name),
                "{name}"
            );
            match kind.as_str() {
                "counter" => assert!(!name.ends_with("_total"), "{name}: the suffix is added"),
                "histogram" => assert!(name.ends_with("_seconds"), "{name}: base unit"),
                "gauge" => assert!(!name.ends_with("_total"), "{name}"),
                other => panic!("{name}: unexpected type {other}"),
            }
        }
        let rules: BTreeSet<&str> = rules::ALL.iter().copied().chain(["other"]).collect();
        for (name, labels) in &samples {
            let family = families
                .keys()
                .find(|family| name.starts_with(family.as_str()))
                .unwrap_or_else(|| panic!("{name} has no family"));
            match families[family].as_str() {
                "counter" => assert!(
                    name.ends_with("_total") || name.ends_with("_created"),
                    "{name}"
                ),
                "histogram" => assert!(
                    ["_bucket", "_sum", "_count", "_created"]
                        .iter()
                        .any(|suffix| name.ends_with(suffix)),
                    "{name}"
                ),
                _ => {}
            }
            for (key, value) in labels {
                assert!(snake_case(key), "{name}: label {key}");
                let bounded = match key.as_str() {
                    "controller" => CONTROLLERS.contains(&value.as_str()),
                    "category" => {
                        value.starts_with(|c: char| c.is_ascii_uppercase())
                            && value.chars().all(|c| c.is_ascii_alphanumeric())
                    }
                    "verdict" => VERDICTS.contains(&value.as_str()),
                    "rule" => rules.contains(value.as_str()),
                    "phase" => FINAL_PHASES.contains(&value.as_str()),
                    "exit_code" => REFUSAL_EXIT_CODES.contains(&value.as_str()),
                    "secret" => ROTATED_SECRETS.contains(&value.as_str()),
                    "result" => ROTATION_RESULTS.contains(&value.as_str()),
                    "backend" => BACKENDS.contains(&value.as_str()),
                    "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
                    // Foundry identity, on the per-foundry gauges only.
                    "namespace" | "foundry" => {
                        family == "videofoundry_foundry_ready"
                            || family == "videofoundry_backend_up"
                    }
                    _ => false,
                };
                assert!(bounded, "{name}: {key}={value:?} is not from a bounded set");
            }
        }
        assert!(!text.contains("hunter2"), "a label carried caller text");
    }

    #[test]
    fn each_event_lands_in_its_series() {
        let text = exercised().encode().unwrap();
        for expected in [
            r#"videofoundry_reconcile_runs_total{controller="renderjob"} 1"#,
            r#"videofoundry_reconcile_failures_total{controller="videofoundry",category="VaultWriteFailed"} 1"#,
            r#"videofoundry_vetting_verdicts_total{verdict="rejected"} 1"#,
            r#"videofoundry_vetting_verdicts_total{verdict="approved"} 0"#,
            r#"videofoundry_vetting_violations_total{rule="url-input"} 1"#,
            r#"videofoundry_vetting_violations_total{rule="other"} 1"#,
            r#"videofoundry_renders_finished_total{phase="failed"} 2"#,
            r#"videofoundry_renders_finished_total{phase="succeeded"} 1"#,
            r#"videofoundry_render_duration_seconds_count{phase="failed"} 1"#,
            r#"videofoundry_worker_refused_inputs_total{exit_code="42"} 1"#,
            r#"videofoundry_worker_refused_inputs_total{exit_code="43"} 1"#,
            r#"videofoundry_secret_rotations_total{secret="database_password",result="failed"} 1"#,
            r#"videofoundry_foundry_ready{namespace="render",foundry="studio"} 0"#,
            r#"videofoundry_backend_up{namespace="render",foundry="studio",backend="vault"} 0"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        // A phase that is not final is not counted.
        assert!(!text.contains("running"), "{text}");
    }

    #[test]
    fn a_deleted_foundry_takes_its_series_with_it() {
        let metrics = exercised();
        metrics.forget_object("renderjob", "render", "studio");
        assert!(metrics.encode().unwrap().contains("foundry=\"studio\""));
        metrics.forget_object("videofoundry", "render", "studio");
        assert!(!metrics.encode().unwrap().contains("foundry=\"studio\""));
    }
}
