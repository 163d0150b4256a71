//! Prometheus metrics. Labels are the controller and a bounded error category only, never
//! object names or error text (which could carry secrets and would explode cardinality).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The controllers, as metric label values.
pub const CONTROLLERS: [&str; 3] = ["videofoundry", "renderjob", "approvednodelist"];

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

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconcile_runs: Family<ControllerLabels, Counter>,
    reconcile_failures: Family<FailureLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("videofoundry");
        let reconcile_runs = Family::<ControllerLabels, Counter>::default();
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            });
        registry.register(
            "reconcile_runs",
            "Reconciliations started",
            reconcile_runs.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that ended in an error, by category",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        // Expose every controller's series from the start, at zero, so dashboards and alerts see
        // them before the first reconcile.
        for controller in CONTROLLERS {
            let labels = ControllerLabels { controller };
            let _ = reconcile_runs.get_or_create(&labels);
            let _ = reconcile_duration.get_or_create(&labels);
        }
        Self {
            registry,
            reconcile_runs,
            reconcile_failures,
            reconcile_duration,
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

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_runs_failures_and_durations_by_bounded_labels() {
        let metrics = Metrics::default();
        metrics.observe_run("approvednodelist", Duration::from_millis(3));
        metrics.observe_failure("approvednodelist", "InvalidSpec");
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"videofoundry_reconcile_runs_total{controller="approvednodelist"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"videofoundry_reconcile_failures_total{controller="approvednodelist",category="InvalidSpec"} 1"#
        ));
        assert!(text.contains("videofoundry_reconcile_duration_seconds_bucket"));
    }
}
