//! Every object the builders can produce validates against the Kubernetes OpenAPI schema in
//! strict mode (unknown fields are errors), for the oldest Kubernetes we support (1.28) and the
//! newest release the installed `kubernetes-validate` knows. Needs `kubernetes-validate`
//! (scripts/install/kubernetes-validate.sh).

use std::process::Command;

use videofoundry::crd::video_foundry::SandboxType;

use crate::{common, fixtures, golden};

/// The oldest Kubernetes release the operator supports (DESIGN.md §1).
const OLDEST_SUPPORTED: &str = "1.28.0";

/// The newest release the installed tool ships schemas for (its default version).
fn newest_known() -> String {
    let output = Command::new("kubernetes-validate")
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let version = help
        .split("Defaults to ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
        })
        .map(|v| v.trim_end_matches('.').to_owned())
        .unwrap_or_else(|| panic!("cannot find the default version in: {help}"));
    assert!(version.starts_with("1."), "unexpected version {version}");
    version
}

/// Every object for every legal foundry variant, with a CPU and a GPU render each.
fn all_objects_yaml() -> String {
    let mut out = String::new();
    for foundry in fixtures::legal_foundry_variants() {
        out.push_str(&golden::foundry_yaml(&foundry));
        out.push_str(&golden::render_yaml(&foundry, &fixtures::cpu_render()));
        out.push_str(&golden::render_yaml(&foundry, &fixtures::gpu_render()));
    }
    // A foundry with nothing optional: no models volume, resources, network or quota inputs.
    let mut minimal = fixtures::foundry();
    minimal.spec.network = None;
    minimal.spec.sandbox = None;
    minimal.spec.workers.models_volume = None;
    minimal.spec.workers.resources = None;
    minimal.spec.workers.node_selector.clear();
    minimal.spec.workers.tolerations.clear();
    out.push_str(&golden::foundry_yaml(&minimal));
    let mut bare_render = fixtures::cpu_render();
    bare_render.spec.resources = None;
    bare_render.spec.inputs.clear();
    bare_render.spec.timeout = None;
    bare_render.spec.retries = None;
    bare_render.spec.ttl_after_finished = None;
    out.push_str(&golden::render_yaml(&minimal, &bare_render));
    let mut firecracker = minimal.clone();
    firecracker.spec.sandbox = Some(videofoundry::crd::video_foundry::SandboxSpec {
        type_: Some(SandboxType::Firecracker),
        ..Default::default()
    });
    out.push_str(&golden::foundry_yaml(&firecracker));
    out
}

fn validate(version: &str, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", version])
        .arg(&file)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !report.contains("ERROR") && !report.contains("WARN"),
        "kubernetes-validate --strict -k {version} refused the built objects:\n{report}"
    );
}

#[test]
fn every_built_object_is_valid_for_the_oldest_supported_kubernetes() {
    if common::required_tool("kubernetes-validate").is_none() {
        return;
    }
    validate(OLDEST_SUPPORTED, &all_objects_yaml());
}

#[test]
fn every_built_object_is_valid_for_the_newest_known_kubernetes() {
    if common::required_tool("kubernetes-validate").is_none() {
        return;
    }
    validate(&newest_known(), &all_objects_yaml());
}

#[test]
fn the_validator_catches_an_unknown_field() {
    // Proves the check can fail: a field 1.28 does not know (Job managedBy came in 1.30).
    if common::required_tool("kubernetes-validate").is_none() {
        return;
    }
    let yaml = golden::render_yaml(&fixtures::foundry(), &fixtures::cpu_render()).replace(
        "  backoffLimit: 2\n",
        "  backoffLimit: 2\n  managedBy: kueue.x-k8s.io/multikueue\n",
    );
    assert!(yaml.contains("managedBy"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, yaml).unwrap();
    let status = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", OLDEST_SUPPORTED])
        .arg(&file)
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "an unknown Job field must be refused in strict mode"
    );
}
