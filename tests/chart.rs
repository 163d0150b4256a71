//! The Helm chart: lints strictly, renders, keeps the restricted security context and the
//! least-privilege RBAC promised in the README, and ships the same CRDs as `crds/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn chart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/videofoundry-operator")
}

fn render(helm: &Path, extra: &[&str]) -> Vec<Value> {
    let output = Command::new(helm)
        .args([
            "template",
            "vfo",
            chart().to_str().unwrap(),
            "--namespace",
            "videofoundry-system",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::from_value::<Value>(serde::Deserialize::deserialize(doc).unwrap()).unwrap()
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

#[test]
fn chart_lints_strictly() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    let output = Command::new(&helm)
        .args(["lint", "--strict", chart().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn values_outside_the_schema_are_refused() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    for bad in [
        "securityContext.allowPrivilegeEscalation=true",
        "replicas=0",
        "logFormat=xml",
        "config.unknownKey=1",
    ] {
        let output = Command::new(&helm)
            .args(["template", "vfo", chart().to_str().unwrap(), "--set", bad])
            .output()
            .unwrap();
        assert!(!output.status.success(), "--set {bad} was accepted");
    }
}

#[test]
fn rendered_operator_is_restricted_and_least_privileged() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    let objects = render(&helm, &["--set", "foundryNamespaces={render,render-dev}"]);
    let find = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);

    let deployment = find("Deployment").next().unwrap();
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );

    // No CRD writes and no Secret access anywhere cluster-wide.
    for role in find("ClusterRole") {
        for rule in role["rules"].as_array().unwrap() {
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert!(
                !resources.contains(&"secrets"),
                "cluster-wide Secret access: {rule}"
            );
            assert!(
                !resources.contains(&"customresourcedefinitions"),
                "CRD access: {rule}"
            );
        }
    }
    // Secret access only through Roles in the listed foundry namespaces.
    let secret_roles: Vec<&str> = find("Role")
        .filter(|r| {
            r["rules"].as_array().unwrap().iter().any(|rule| {
                rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == "secrets")
            })
        })
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(secret_roles, ["render", "render-dev"]);

    let config = find("ConfigMap").next().unwrap()["data"]["operator.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let parsed: videofoundry::config::OperatorConfig = serde_yaml::from_str(&config).unwrap();
    parsed.validate().unwrap();
}

#[test]
fn rendered_manifests_validate_against_the_kubernetes_schema() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    let Some(validator) = common::required_tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("chart.yaml");
    let output = Command::new(&helm)
        .args([
            "template",
            "vfo",
            chart().to_str().unwrap(),
            "--set",
            "foundryNamespaces={render}",
            "--include-crds",
        ])
        .output()
        .unwrap();
    std::fs::write(&manifest, &output.stdout).unwrap();
    for version in ["1.28.0", "1.33.0"] {
        let result = Command::new(&validator)
            .args(["--strict", "-k", version, manifest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "kubernetes {version}: {}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}

#[test]
fn render_pods_run_the_worker_binary_from_the_charts_own_image() {
    let Some(helm) = common::required_tool("helm") else {
        return;
    };
    let digest = format!("sha256:{}", "ab".repeat(32));
    for (extra, expected) in [
        (
            vec!["--set".to_owned(), format!("image.digest={digest}")],
            format!("ghcr.io/videofoundry/videofoundry-operator@{digest}"),
        ),
        (
            vec![
                "--set".to_owned(),
                "config.worker.binaryImage=mirror.example/vfo:1".to_owned(),
            ],
            "mirror.example/vfo:1".to_owned(),
        ),
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let config_map = render(&helm, &extra)
            .into_iter()
            .find(|doc| doc["kind"] == "ConfigMap")
            .unwrap();
        let text = config_map["data"]["operator.yaml"].as_str().unwrap();
        let config: videofoundry::config::OperatorConfig = serde_yaml::from_str(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.worker.binary_image, expected);
    }
}
