//! The chart's alerts, tested as shipped: `helm template` renders the PrometheusRule, and
//! `promtool test rules` evaluates it on the synthetic series of `tests/alerts/rules_test.yaml`,
//! where each alert has a case that fires and one that does not. Needs `helm` and `promtool`
//! (scripts/setup.sh installs both); skipped with a note without them unless
//! `VF_TEST_REQUIRE_SERVICES` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The PrometheusRule the chart renders with `extra` values.
fn rendered_rule(helm: &Path, extra: &[&str]) -> Value {
    let chart = root().join("charts/videofoundry-operator");
    let output = Command::new(helm)
        .args(["template", "vfo", chart.to_str().unwrap()])
        .args(["--set", "prometheusRule.enabled=true"])
        .args(["--show-only", "templates/prometheusrule.yaml"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml::from_slice(&output.stdout).unwrap()
}

/// Writes the rule's groups as a Prometheus rule file beside a copy of the promtool tests, and
/// runs them.
fn promtool_test(promtool: &Path, rule: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let groups =
        serde_yaml::Mapping::from_iter([(Value::from("groups"), rule["spec"]["groups"].clone())]);
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&groups).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/alerts/rules_test.yaml"),
        dir.path().join("rules_test.yaml"),
    )
    .unwrap();
    let output = Command::new(promtool)
        .args(["test", "rules", "rules_test.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    let helm = common::required_tool("helm")?;
    let promtool = common::required_tool("promtool")?;
    Some((helm, promtool))
}

fn alert_names(rule: &Value) -> BTreeSet<String> {
    rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap())
        .map(|rule| rule["alert"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_shipped_alerts_fire_and_stay_quiet_as_the_synthetic_series_say() {
    let Some((helm, promtool)) = tools() else {
        return;
    };
    let rule = rendered_rule(&helm, &[]);
    let (passed, output) = promtool_test(&promtool, &rule);
    assert!(passed, "promtool test rules failed:\n{output}");
    println!("{output}");
}

#[test]
fn the_tests_catch_a_rule_that_never_fires() {
    let Some((helm, promtool)) = tools() else {
        return;
    };
    // With thresholds no synthetic series reaches, the firing cases must fail: the tests are
    // not vacuous.
    let rule = rendered_rule(
        &helm,
        &[
            "--set",
            "prometheusRule.rejectionSpikeThreshold=100000",
            "--set",
            "prometheusRule.workerRefusalThreshold=100000",
        ],
    );
    let (passed, output) = promtool_test(&promtool, &rule);
    assert!(!passed, "{output}");
    assert!(output.contains("VideoFoundryRejectionSpike"), "{output}");
    assert!(
        output.contains("VideoFoundryWorkersRefusingInputs"),
        "{output}"
    );
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_case_and_a_runbook_section() {
    let Some((helm, _)) = tools() else {
        return;
    };
    let rule = rendered_rule(&helm, &[]);
    let names = alert_names(&rule);
    assert!(names.len() >= 5, "{names:?}");
    let tests: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("tests/alerts/rules_test.yaml")).unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, bool)> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_sequence().unwrap())
        .map(|case| {
            (
                case["alertname"].as_str().unwrap(),
                case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|alerts| !alerts.is_empty()),
            )
        })
        .collect();
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).unwrap();
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| {
            heading
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    for group in rule["spec"]["groups"].as_sequence().unwrap() {
        for alert in group["rules"].as_sequence().unwrap() {
            let name = alert["alert"].as_str().unwrap();
            assert!(
                cases.contains(&(name, true)),
                "{name} has no case where it fires"
            );
            assert!(
                cases.contains(&(name, false)),
                "{name} has no case where it stays quiet"
            );
            let url = alert["annotations"]["runbook_url"].as_str().unwrap();
            let anchor = url
                .split_once("docs/runbook.md#")
                .unwrap_or_else(|| panic!("{name}: {url} is not a runbook section"))
                .1;
            assert!(
                anchors.contains(anchor),
                "{name}: docs/runbook.md has no section #{anchor} (sections: {anchors:?})"
            );
            assert!(alert["labels"]["severity"].as_str().is_some(), "{name}");
        }
    }
}

#[test]
fn monitoring_objects_are_off_by_default_and_the_service_monitor_selects_the_metrics_service() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    let chart = root().join("charts/videofoundry-operator");
    let default = Command::new(&helm)
        .args(["template", "vfo", chart.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(default.status.success());
    let text = String::from_utf8_lossy(&default.stdout);
    assert!(!text.contains("kind: PrometheusRule"), "{text}");
    assert!(!text.contains("kind: ServiceMonitor"), "{text}");

    let enabled = Command::new(&helm)
        .args(["template", "vfo", chart.to_str().unwrap()])
        .args(["--set", "serviceMonitor.enabled=true"])
        .args(["--set", "serviceMonitor.labels.release=prometheus"])
        .output()
        .unwrap();
    assert!(enabled.status.success());
    let docs: Vec<Value> = serde_yaml::Deserializer::from_slice(&enabled.stdout)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect();
    let monitor = docs
        .iter()
        .find(|doc| doc["kind"] == "ServiceMonitor")
        .unwrap();
    let service = docs.iter().find(|doc| doc["kind"] == "Service").unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key:?}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");

    // The schema refuses what it does not know.
    let refused = Command::new(&helm)
        .args(["template", "vfo", chart.to_str().unwrap()])
        .args(["--set", "prometheusRule.renderFailureRatio=2"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
