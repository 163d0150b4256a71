#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The second hostile set (issue 17): one test per class of bypass, each refused with the rule
//! that names its problem, and the benign twin of each approved. Rules are written as strings
//! so that the file also builds against older versions of the vetter (where these tests fail).

use serde_json::{Value, json};
use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::crd::render_job::VettingVerdict;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, Report, vet};

fn policy() -> Policy {
    let spec: ApprovedNodeListSpec = serde_yaml::from_str(
        r#"
nodes:
  - classType: VHS_LoadVideoPath
    repository: github.com/Kosinkadink/ComfyUI-VideoHelperSuite
models:
  - identifier: sd_xl_base_1.0.safetensors
  - pattern: "loras/*.safetensors"
  - identifier: EasyNegative.safetensors
"#,
    )
    .unwrap();
    Policy::new(
        &[("studio".into(), spec)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap()
}

/// Vets `value`; with `VF_FUZZ_SEEDS_DIR` set, also keeps it there as a seed for the fuzzer
/// (docs/vetting.md, "Fuzzing"), so that fuzzing starts from every hostile shape here.
fn vet_json(value: &Value) -> Report {
    let bytes = value.to_string();
    if let Some(dir) = std::env::var_os("VF_FUZZ_SEEDS_DIR") {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let path = std::path::Path::new(&dir).join(format!("attack-{:016x}.json", hasher.finish()));
        std::fs::write(path, &bytes).unwrap();
    }
    vet(bytes.as_bytes(), &policy())
}

fn rules_of(report: &Report) -> Vec<&str> {
    report.violations.iter().map(|v| v.rule.as_str()).collect()
}

#[track_caller]
fn refused_for(value: &Value, rule: &str) -> Report {
    let report = vet_json(value);
    assert_eq!(report.verdict, VettingVerdict::Rejected, "{report:#?}");
    assert!(
        rules_of(&report).contains(&rule),
        "expected {rule} in {:#?}",
        report.violations
    );
    report
}

#[track_caller]
fn approved(value: &Value) {
    let report = vet_json(value);
    assert_eq!(
        report.verdict,
        VettingVerdict::Approved,
        "{:#?}",
        report.violations
    );
}

const SUB_A: &str = "a0000000-0000-4000-8000-00000000000a";
const SUB_B: &str = "b0000000-0000-4000-8000-00000000000b";

fn ui(nodes: Value, links: Value) -> Value {
    json!({"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "version": 0.4})
}

fn loader(id: u64, widgets: Value) -> Value {
    json!({"id": id, "type": "CheckpointLoaderSimple", "inputs": [],
           "outputs": [{"name": "MODEL", "links": []}, {"name": "CLIP", "links": []}, {"name": "VAE", "links": []}],
           "widgets_values": widgets})
}

// 1. Nested subgraph definitions are read, wherever the frontend reads them.
#[test]
fn class1_nested_subgraph_definitions_are_vetted() {
    let nested = |inner_type: &str, inner_id: &str| {
        let mut workflow = ui(
            json!([{"id": 1, "type": SUB_A, "inputs": [], "outputs": [], "widgets_values": []}]),
            json!([]),
        );
        workflow["definitions"] = json!({"subgraphs": [{
            "id": SUB_A,
            "nodes": [{"id": 5, "type": "KSamplerSelect", "widgets_values": ["euler"]}],
            "links": [],
            "definitions": {"subgraphs": [{
                "id": inner_id,
                "nodes": [{"id": 7, "type": inner_type, "widgets_values": ["import os"]}],
                "links": []
            }]}
        }]});
        workflow
    };
    // Never instantiated, still registered and so still vetted.
    refused_for(&nested("ExecutePythonCode", SUB_B), "node-not-approved");
    // Shadowing the definition that holds it.
    refused_for(&nested("KSamplerSelect", SUB_A), "duplicate-id");
    approved(&nested("KSamplerSelect", SUB_B));
}

// 2a. Model inputs come from ComfyUI's definitions, not from input names.
#[test]
fn class2_model_inputs_and_extensions_come_from_comfyui() {
    let diffusers = |path: &str| json!({"1": {"class_type": "DiffusersLoader", "inputs": {"model_path": path}}});
    refused_for(&diffusers("stolen-diffusers-model"), "model-not-approved");
    let upscale =
        json!({"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "evil"}}});
    refused_for(&upscale, "model-not-approved");
    // `.pt2` is an extension ComfyUI loads weights from: a model wherever it appears.
    let custom = |file: &str| json!({"1": {"class_type": "VHS_LoadVideoPath", "inputs": {"video": "clip.mp4", "extra": file}}});
    refused_for(&custom("exported.pt2"), "model-not-approved");
    approved(&custom("notes.txt"));
}

// 2b. A PrimitiveNode's value reaches the loader through reroutes.
#[test]
fn class2_values_through_primitive_and_reroute_are_checked_where_they_land() {
    let workflow = |value: &str| {
        ui(
            json!([
                {"id": 1, "type": "PrimitiveNode", "outputs": [{"name": "COMBO", "type": "COMBO", "links": [1], "widget": {"name": "ckpt_name"}}],
                 "widgets_values": [value]},
                {"id": 2, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1}], "outputs": [{"name": "", "links": [2]}]},
                {"id": 3, "type": "CheckpointLoaderSimple",
                 "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": 2}],
                 "outputs": [{"name": "MODEL", "links": []}, {"name": "CLIP", "links": []}, {"name": "VAE", "links": []}],
                 "widgets_values": ["sd_xl_base_1.0.safetensors"]}
            ]),
            json!([[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "COMBO"]]),
        )
    };
    let report = refused_for(&workflow("stolen-model"), "model-not-approved");
    assert!(report.violations.iter().any(|v| v.node_id == "3"));
    refused_for(&workflow("other.pt2"), "model-not-approved");
    approved(&workflow("sd_xl_base_1.0.safetensors"));
}

// 2c. A subgraph's promoted widget supplies the loader inside.
#[test]
fn class2_promoted_subgraph_widgets_are_checked_at_each_instance() {
    let workflow = |first: &str, second: &str| {
        let instance = |id: u64, value: &str| {
            json!({"id": id, "type": SUB_A,
                   "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": null}],
                   "outputs": [], "widgets_values": [value]})
        };
        let mut workflow = ui(json!([instance(1, first), instance(2, second)]), json!([]));
        workflow["definitions"] = json!({"subgraphs": [{
            "id": SUB_A,
            "inputs": [{"name": "ckpt_name", "type": "COMBO"}],
            "nodes": [{"id": 10, "type": "CheckpointLoaderSimple",
                       "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": 1}],
                       "outputs": [{"name": "MODEL", "links": []}, {"name": "CLIP", "links": []}, {"name": "VAE", "links": []}],
                       "widgets_values": ["sd_xl_base_1.0.safetensors"]}],
            "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 10, "target_slot": 0, "type": "COMBO"}]
        }]});
        workflow
    };
    let report = refused_for(
        &workflow("sd_xl_base_1.0.safetensors", "stolen-model"),
        "model-not-approved",
    );
    assert!(
        report.violations.iter().any(|v| v.node_id == "2"),
        "{report:#?}"
    );
    approved(&workflow(
        "sd_xl_base_1.0.safetensors",
        "sd_xl_base_1.0.safetensors",
    ));
}

// 2d. A legacy group node's widgets supply the loaders inside.
#[test]
fn class2_group_node_widgets_are_checked_as_the_loaders_values() {
    let workflow = |value: &str| {
        let mut workflow = ui(
            json!([{"id": 1, "type": "workflow>Loaders", "inputs": [], "outputs": [],
                    "widgets_values": [value, "a castle"]}]),
            json!([]),
        );
        workflow["extra"] = json!({"groupNodes": {"Loaders": {
            "nodes": [
                {"index": 0, "type": "CheckpointLoaderSimple", "widgets_values": ["sd_xl_base_1.0.safetensors"]},
                {"index": 1, "type": "CLIPTextEncode", "widgets_values": ["a castle"]}
            ],
            "links": []
        }}});
        workflow
    };
    refused_for(&workflow("stolen-model"), "model-not-approved");
    approved(&workflow("sd_xl_base_1.0.safetensors"));
}

// 3. A loader without a concrete value: the frontend would pick the folder's first file.
#[test]
fn class3_a_loader_without_a_concrete_value_is_refused() {
    for widgets in [
        json!([]),
        json!({}),
        json!({"ckpt_name": "x"}),
        json!([""]),
        json!([null]),
    ] {
        refused_for(
            &ui(json!([loader(1, widgets)]), json!([])),
            "model-unresolved",
        );
    }
    let mut missing = loader(1, json!([]));
    missing.as_object_mut().unwrap().remove("widgets_values");
    refused_for(&ui(json!([missing]), json!([])), "model-unresolved");
    let api = json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {}}});
    refused_for(&api, "model-unresolved");
    // Fed by a node that computes the name at run time.
    let api = json!({
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "stolen.safetensors"}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["1", 0]}}
    });
    refused_for(&api, "model-unresolved");
    approved(&ui(
        json!([loader(1, json!(["sd_xl_base_1.0.safetensors"]))]),
        json!([]),
    ));
}

// 4. Absolute paths hidden behind quotes, whitespace or control characters.
#[test]
fn class4_padded_or_quoted_absolute_paths_are_refused() {
    for path in [
        "\"/home/tenant-b/secret.mp4\"",
        "'/etc/passwd'",
        " \t/etc/passwd",
        "\u{1}/etc/passwd",
        "\u{1f}\"/etc/passwd\"",
        "\u{a0}/etc/passwd",
        "\u{feff}/etc/passwd",
    ] {
        let api = json!({"1": {"class_type": "VHS_LoadVideoPath", "inputs": {"video": path}}});
        refused_for(&api, "absolute-path");
        let workflow = ui(
            json!([{"id": 1, "type": "VHS_LoadVideoPath", "widgets_values": {"video": path}}]),
            json!([]),
        );
        refused_for(&workflow, "absolute-path");
    }
    for climbing in ["\"../../other/x.mp4\"", " ..\u{1}/x"] {
        let api = json!({"1": {"class_type": "VHS_LoadVideoPath", "inputs": {"video": climbing}}});
        refused_for(&api, "path-traversal");
    }
    let api =
        json!({"1": {"class_type": "VHS_LoadVideoPath", "inputs": {"video": "input/clip.mp4"}}});
    approved(&api);
}

// 5. A document is exactly one format.
#[test]
fn class5_a_ui_document_carrying_a_prompt_is_refused() {
    let mut workflow = ui(json!([]), json!([]));
    workflow["prompt"] =
        json!({"1": {"class_type": "ExecutePythonCode", "inputs": {"code": "import os"}}});
    refused_for(&workflow, "unknown-format");
    let mut workflow = ui(json!([]), json!([]));
    workflow["extra_data"] = json!({"extra_pnginfo": {}});
    refused_for(&workflow, "unknown-format");
    approved(&ui(json!([]), json!([])));
}

// 6. `embedding:<name>` in prompt text loads a file: it must be approved like a model.
#[test]
fn class6_embeddings_in_prompt_text_are_model_references() {
    let prompt = |text: &str| {
        json!({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["2", 1]}},
               "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}})
    };
    refused_for(&prompt("a cat, embedding:stolen"), "model-not-approved");
    refused_for(
        &prompt("(embedding:stolen:1.2), blurry"),
        "model-not-approved",
    );
    refused_for(
        &prompt("a cat\nembedding:EasyNegative"),
        "model-not-approved",
    );
    refused_for(&prompt("embedding:../../other/x.pt"), "path-traversal");
    refused_for(&prompt("embedding:/etc/x.pt"), "absolute-path");
    approved(&prompt("a cat, embedding:EasyNegative.safetensors, blurry"));
    approved(&prompt("(embedding:loras/x.safetensors:0.8)"));
    // Ordinary prose, URLs in it included, stays allowed.
    approved(&prompt(
        "a cat in the style of https://example.com/gallery, vector embeddings",
    ));
}

// 7. Long ids and deep nesting cannot blow up the report: the instance's 100 KB id is not copied
// into every inner path and violation.
#[test]
fn class7_reports_stay_small_however_long_the_ids() {
    let long = "9".repeat(100_000);
    let nodes: Vec<Value> = (0..1_000)
        .map(|i| json!({"id": i, "type": "EvilNode", "widgets_values": ["/etc/passwd"]}))
        .collect();
    let mut workflow = ui(
        json!([{"id": long.clone(), "type": SUB_A, "inputs": [], "outputs": []}]),
        json!([]),
    );
    workflow["definitions"] = json!({"subgraphs": [{"id": SUB_A, "nodes": nodes, "links": []}]});
    let text = workflow.to_string();
    assert!(text.len() < 1_572_864);
    let report = vet(text.as_bytes(), &policy());
    assert_eq!(report.verdict, VettingVerdict::Rejected);
    assert!(rules_of(&report).contains(&"node-not-approved"));
    assert!(rules_of(&report).contains(&"absolute-path"));
    let size = serde_json::to_vec(&report).unwrap().len();
    assert!(size < 1_000_000, "report of {size} bytes");
    assert!(report.violations.iter().all(|v| v.node_id.len() <= 300));
}

// 8. A CheckpointLoader's config file is not a model.
#[test]
fn class8_a_checkpoint_loaders_config_file_is_not_a_model() {
    let workflow = ui(
        json!([{"id": 1, "type": "CheckpointLoader", "inputs": [],
                "outputs": [{"name": "MODEL", "links": []}, {"name": "CLIP", "links": []}, {"name": "VAE", "links": []}],
                "widgets_values": ["v1-inference.yaml", "sd_xl_base_1.0.safetensors"]}]),
        json!([]),
    );
    approved(&workflow);
    let api = json!({"1": {"class_type": "CheckpointLoader", "inputs": {"config_name": "v1-inference.yaml", "ckpt_name": "sd_xl_base_1.0.safetensors"}}});
    approved(&api);
    // The checkpoint beside it is still a model, and the config still a name inside its folder.
    let workflow = ui(
        json!([{"id": 1, "type": "CheckpointLoader", "inputs": [],
                "widgets_values": ["v1-inference.yaml", "stolen.ckpt"]}]),
        json!([]),
    );
    refused_for(&workflow, "model-not-approved");
    let api = json!({"1": {"class_type": "CheckpointLoader", "inputs": {"config_name": "/etc/x.yaml", "ckpt_name": "sd_xl_base_1.0.safetensors"}}});
    refused_for(&api, "absolute-path");
}
