//! The API as shipped: generated CRDs in sync with the code, examples valid against them, and
//! the CEL rules (immutability, exactly-one-of, mode requirements) doing what they say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use kube::core::cel::Validator;
use serde_json::{Value, json};
use videofoundry::crd::{self, ApprovedNodeList, RenderJob, VideoFoundry};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_of(kind: &str) -> Value {
    let crd = crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::from_value::<Value>(serde::Deserialize::deserialize(doc).unwrap()).unwrap()
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn examples() -> Vec<(PathBuf, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .flat_map(|p| documents(&p).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

#[test]
fn crds_in_sync() {
    let dirs = [
        repo().join("crds"),
        repo().join("charts/videofoundry-operator/crds"),
    ];
    for dir in dirs.iter().filter(|d| d.exists()) {
        let mut expected_files = Vec::new();
        for generated in crd::all() {
            let file = crd::file_name(&generated);
            let on_disk = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
            assert_eq!(
                on_disk,
                crd::to_yaml(std::slice::from_ref(&generated)).unwrap(),
                "{}/{file} is stale: run `cargo run -- crds --write-to {}`",
                dir.display(),
                dir.display()
            );
            expected_files.push(file);
        }
        let mut present: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        expected_files.sort();
        assert_eq!(
            present,
            expected_files,
            "unexpected files in {}",
            dir.display()
        );
    }
}

#[test]
fn crds_declare_the_promised_names_columns_and_subresources() {
    for crd in crd::all() {
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, "videofoundry.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            names.categories.as_deref(),
            Some(&["videofoundry".to_owned()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{} has no status subresource",
            names.kind
        );
        let columns: Vec<&str> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            columns.contains(&"Ready") && columns.contains(&"Age"),
            "{columns:?}"
        );
        let expected_short = match names.kind.as_str() {
            "VideoFoundry" => {
                assert!(columns.contains(&"Mode"));
                "vf"
            }
            "RenderJob" => {
                assert!(columns.contains(&"Phase"));
                "rj"
            }
            _ => "anl",
        };
        assert_eq!(
            names.short_names.as_deref(),
            Some(&[expected_short.to_owned()][..])
        );
        let schema = schema_of(&names.kind);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

/// Every field of the generated schemas carries a description (`kubectl explain` text).
#[test]
fn every_field_is_documented() {
    fn walk(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in properties {
                let child = format!("{path}.{key}");
                if sub
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                    && key != "metadata"
                    && key != "apiVersion"
                    && key != "kind"
                {
                    missing.push(child.clone());
                }
                walk(sub, &child, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let mut missing = Vec::new();
    for kind in ["VideoFoundry", "ApprovedNodeList", "RenderJob"] {
        walk(&schema_of(kind), kind, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn every_example_deserializes_and_validates_against_its_crd() {
    let mut custom = 0;
    for (path, doc) in examples() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let where_ = format!("{} ({kind} {})", path.display(), doc["metadata"]["name"]);
        match kind.as_str() {
            "VideoFoundry" => drop(serde_json::from_value::<VideoFoundry>(doc.clone()).unwrap()),
            "ApprovedNodeList" => {
                drop(serde_json::from_value::<ApprovedNodeList>(doc.clone()).unwrap())
            }
            "RenderJob" => drop(serde_json::from_value::<RenderJob>(doc.clone()).unwrap()),
            "ConfigMap" => {
                drop(
                    serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(doc.clone())
                        .unwrap(),
                );
                continue;
            }
            other => panic!("{where_}: unexpected kind {other}"),
        }
        let schema = schema_of(&kind);
        let problems = common::structural::validate(&schema, &doc);
        assert!(problems.is_empty(), "{where_}: {problems:#?}");
        let cel = Validator::new().validate(&schema, &doc, None);
        assert!(cel.is_ok(), "{where_}: CEL rules refuse it: {cel:?}");
        custom += 1;
    }
    assert!(
        custom >= 5,
        "expected the five documented examples, found {custom}"
    );
}

#[test]
fn unknown_fields_and_bad_values_in_a_manifest_are_refused() {
    let (_, mut foundry) = examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "VideoFoundry")
        .unwrap();
    foundry["spec"]["workers"]["imagePullPolicyy"] = json!("Always");
    foundry["spec"]["executionMode"] = json!("yolo");
    foundry["spec"]["storage"]["bucket"] = json!("Not_A_Bucket");
    let problems = common::structural::validate(&schema_of("VideoFoundry"), &foundry).join("\n");
    assert!(
        problems.contains(".spec.workers.imagePullPolicyy: unknown field"),
        "{problems}"
    );
    assert!(
        problems.contains(".spec.executionMode: \"yolo\" is not one of"),
        "{problems}"
    );
    assert!(problems.contains(".spec.storage.bucket"), "{problems}");

    let (_, mut render) = examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "RenderJob")
        .unwrap();
    render["spec"]["userId"] = json!("7F1C0E1A-3B2D-4C5E-8F90-A1B2C3D4E5F6");
    render["spec"]["timeout"] = json!("1 day");
    let problems = common::structural::validate(&schema_of("RenderJob"), &render).join("\n");
    assert!(
        problems.contains(".spec.userId"),
        "upper-case UUIDs must be refused: {problems}"
    );
    assert!(problems.contains(".spec.timeout"), "{problems}");
}

fn render_job() -> Value {
    examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "RenderJob")
        .unwrap()
        .1
}

#[test]
fn render_job_spec_is_immutable_and_user_and_foundry_can_never_change() {
    let schema = schema_of("RenderJob");
    let old = render_job();
    assert!(
        Validator::new().validate(&schema, &old, Some(&old)).is_ok(),
        "an unchanged update must pass"
    );

    let mut new_user = old.clone();
    new_user["spec"]["userId"] = json!("00000000-0000-4000-8000-000000000000");
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &new_user, Some(&old))
    );
    assert!(errors.contains("userId is immutable"), "{errors}");

    let mut new_foundry = old.clone();
    new_foundry["spec"]["foundryRef"]["name"] = json!("other");
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &new_foundry, Some(&old))
    );
    assert!(errors.contains("foundryRef is immutable"), "{errors}");

    let mut new_timeout = old.clone();
    new_timeout["spec"]["timeout"] = json!("5h");
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &new_timeout, Some(&old))
    );
    assert!(errors.contains("RenderJob spec is immutable"), "{errors}");

    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"team": "trailers"});
    assert!(
        Validator::new()
            .validate(&schema, &labelled, Some(&old))
            .is_ok(),
        "metadata may change"
    );
}

#[test]
fn a_workflow_comes_from_exactly_one_source() {
    let schema = schema_of("RenderJob");
    let mut both = render_job();
    both["spec"]["workflow"] =
        json!({"inline": "{}", "configMapRef": {"name": "wf", "key": "workflow.json"}});
    let errors = format!("{:?}", Validator::new().validate(&schema, &both, None));
    assert!(
        errors.contains("exactly one of inline and configMapRef"),
        "{errors}"
    );
    let mut neither = render_job();
    neither["spec"]["workflow"] = json!({});
    assert!(Validator::new().validate(&schema, &neither, None).is_err());
}

#[test]
fn production_foundries_need_vault_a_sandbox_and_encryption() {
    let schema = schema_of("VideoFoundry");
    let (_, production) = examples()
        .into_iter()
        .find(|(_, d)| d["metadata"]["name"] == "studio")
        .unwrap();

    let mut no_vault = production.clone();
    no_vault["spec"].as_object_mut().unwrap().remove("vault");
    let errors = format!("{:?}", Validator::new().validate(&schema, &no_vault, None));
    assert!(
        errors.contains("vault is required unless executionMode is developer"),
        "{errors}"
    );

    let mut defaulted_mode = no_vault.clone();
    defaulted_mode["spec"]
        .as_object_mut()
        .unwrap()
        .remove("executionMode");
    defaulted_mode["spec"]["executionMode"] = json!("production"); // the schema default
    assert!(
        Validator::new()
            .validate(&schema, &defaulted_mode, None)
            .is_err()
    );

    let mut unsandboxed = production.clone();
    unsandboxed["spec"]["sandbox"]["type"] = json!("none");
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &unsandboxed, None)
    );
    assert!(
        errors.contains("sandbox.type none is only allowed in developer mode"),
        "{errors}"
    );

    let mut unencrypted = production.clone();
    unencrypted["spec"]["storage"]["encryption"] = json!({"mode": "none"});
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &unencrypted, None)
    );
    assert!(
        errors.contains("storage.encryption.mode none is only allowed in developer mode"),
        "{errors}"
    );

    let mut developer = unsandboxed.clone();
    developer["spec"]["executionMode"] = json!("developer");
    developer["spec"]["storage"]["encryption"] = json!({"mode": "none"});
    developer["spec"].as_object_mut().unwrap().remove("vault");
    assert!(Validator::new().validate(&schema, &developer, None).is_ok());

    let mut kms_without_key = production;
    kms_without_key["spec"]["storage"]["encryption"] = json!({"mode": "aws:kms"});
    let errors = format!(
        "{:?}",
        Validator::new().validate(&schema, &kms_without_key, None)
    );
    assert!(errors.contains("kmsKeyId is required"), "{errors}");
}

#[test]
fn a_model_approval_names_exactly_one_of_pattern_and_identifier() {
    let schema = schema_of("ApprovedNodeList");
    let (_, mut list) = examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "ApprovedNodeList")
        .unwrap();
    list["spec"]["models"] = json!([{"pattern": "a/*", "identifier": "b.safetensors"}]);
    let errors = format!("{:?}", Validator::new().validate(&schema, &list, None));
    assert!(
        errors.contains("set exactly one of pattern and identifier"),
        "{errors}"
    );
}

#[test]
fn crds_validate_strictly_as_apiextensions_v1_objects() {
    let Some(validator) = common::required_tool("kubernetes-validate") else {
        return;
    };
    let files: Vec<String> = crd::all()
        .iter()
        .map(|c| {
            repo()
                .join("crds")
                .join(crd::file_name(c))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for version in ["1.28.0", "1.37.0"] {
        let output = std::process::Command::new(&validator)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "Kubernetes {version} refuses the CRDs: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
