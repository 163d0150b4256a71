#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Vetting rules, one test (or more) per rule, with hostile cases; benign workflows pass.

use serde_json::json;
use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::crd::render_job::{VettingPolicyRef, VettingVerdict};
use videofoundry::crd::video_foundry::VettingMode;
use videofoundry::vetting::status::vetting_status;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, Report, rules, vet};

const VHS_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn spec() -> ApprovedNodeListSpec {
    serde_yaml::from_str(&format!(
        r#"
reviewedBy: security-team
nodes:
  - classType: VHS_VideoCombine
    repository: github.com/Kosinkadink/ComfyUI-VideoHelperSuite
    registryId: comfyui-videohelpersuite
    commit: {VHS_COMMIT}
repositories:
  - url: https://github.com/your-org/custom-nodes
models:
  - identifier: sd_xl_base_1.0.safetensors
    sha256: 31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b
  - pattern: "loras/*.safetensors"
  - pattern: "https://huggingface.co/your-org/**"
blockedNodes: [known-vulnerable-node, SaveImage]
"#
    ))
    .unwrap()
}

fn policy_with(spec: ApprovedNodeListSpec, mode: Mode, egress: Egress) -> Policy {
    Policy::new(
        &[("studio".into(), spec)],
        CoreNodes::builtin(),
        mode,
        egress,
    )
    .unwrap()
}

fn policy() -> Policy {
    policy_with(spec(), Mode::Strict, Egress::Blocked)
}

fn vet_json(value: &serde_json::Value) -> Report {
    vet(value.to_string().as_bytes(), &policy())
}

fn rules_of(report: &Report) -> Vec<&str> {
    report.violations.iter().map(|v| v.rule.as_str()).collect()
}

fn assert_rejected_for(report: &Report, rule: &str) {
    assert_eq!(report.verdict, VettingVerdict::Rejected, "{report:#?}");
    assert!(
        rules_of(report).contains(&rule),
        "expected {rule} in {:#?}",
        report.violations
    );
}

fn benign_api() -> serde_json::Value {
    json!({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle at dawn, (masterpiece:1.2)", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "loras/detail.safetensors", "strength_model": 1.0, "strength_clip": 1.0, "model": ["4", 0], "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}, "_meta": {"title": "KSampler"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["8", 0], "frame_rate": 8, "filename_prefix": "renders/out"}}
    })
}

fn benign_ui() -> serde_json::Value {
    json!({
        "last_node_id": 3, "last_link_id": 2,
        "nodes": [
            {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
             "outputs": [{"name": "MODEL", "links": [1]}, {"name": "CLIP", "links": []}, {"name": "VAE", "links": []}],
             "properties": {"cnr_id": "comfy-core", "ver": "0.3.64", "models": [{"name": "x", "url": "https://huggingface.co/x"}]},
             "widgets_values": ["sd_xl_base_1.0.safetensors"]},
            {"id": 2, "type": "VHS_VideoCombine", "mode": 0,
             "inputs": [{"name": "images", "link": 1}], "outputs": [],
             "properties": {"cnr_id": "comfyui-videohelpersuite", "ver": VHS_COMMIT},
             "widgets_values": {"frame_rate": 8, "filename_prefix": "renders/out"}},
            {"id": 3, "type": "Note", "mode": 0, "widgets_values": ["See https://example.com and /etc/passwd"]},
            {"id": 4, "type": "a1b2c3d4-0000-4000-8000-000000000001", "mode": 0, "inputs": [], "outputs": [],
             "properties": {"cnr_id": "comfy-core"}, "widgets_values": []}
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"]],
        "groups": [],
        "definitions": {"subgraphs": [{
            "id": "a1b2c3d4-0000-4000-8000-000000000001",
            "nodes": [
                {"id": 10, "type": "LoraLoaderModelOnly", "inputs": [{"name": "model", "link": 5}], "outputs": [{"name": "MODEL", "links": []}],
                 "widgets_values": ["loras/detail.safetensors", 1.0]}
            ],
            "links": [{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 10, "target_slot": 0, "type": "MODEL"}]
        }]},
        "extra": {"ds": {"scale": 1}},
        "models": [{"name": "m", "url": "https://example.com/m.safetensors"}],
        "version": 0.4
    })
}

#[test]
fn benign_api_workflow_passes_with_resources_and_sha() {
    let bytes = benign_api().to_string();
    let report = vet(bytes.as_bytes(), &policy());
    assert_eq!(
        report.verdict,
        VettingVerdict::Approved,
        "{:#?}",
        report.violations
    );
    assert_eq!(report.checked_nodes, 8);
    assert_eq!(report.workflow_sha256.len(), 64);
    assert!(report.resources.node_types.contains("KSampler"));
    let model = &report.resources.models["sd_xl_base_1.0.safetensors"];
    assert_eq!(
        model.sha256.as_deref(),
        Some("31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b")
    );
    let vhs = &report.resources.custom_nodes["VHS_VideoCombine"];
    assert_eq!(vhs.commit.as_deref(), Some(VHS_COMMIT));
    assert!(!report.resources.models.contains_key("euler"));
}

#[test]
fn benign_ui_workflow_with_subgraph_passes() {
    let report = vet_json(&benign_ui());
    assert_eq!(
        report.verdict,
        VettingVerdict::Approved,
        "{:#?}",
        report.violations
    );
    // 4 top-level nodes and 1 in the subgraph.
    assert_eq!(report.checked_nodes, 5);
    assert!(
        report
            .resources
            .models
            .contains_key("loras/detail.safetensors")
    );
}

#[test]
fn unknown_custom_nodes_are_rejected_in_both_formats() {
    let mut api = benign_api();
    api["11"] = json!({"class_type": "EvilNode", "inputs": {}});
    let report = vet_json(&api);
    assert_rejected_for(&report, rules::NODE_NOT_APPROVED);
    assert_eq!(report.violations[0].node_id, "11");
    assert!(report.violations[0].message.contains("spec.nodes"));

    let mut ui = benign_ui();
    ui["nodes"][0]["type"] = json!("EvilLoader");
    assert_rejected_for(&vet_json(&ui), rules::NODE_NOT_APPROVED);
}

#[test]
fn nodes_inside_nested_subgraphs_are_vetted_with_their_path() {
    let mut ui = benign_ui();
    let inner_id = "a1b2c3d4-0000-4000-8000-000000000002";
    ui["definitions"]["subgraphs"][0]["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 11, "type": inner_id, "widgets_values": []}));
    ui["definitions"]["subgraphs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": inner_id, "nodes": [{"id": 7, "type": "EvilNode", "widgets_values": ["x"]}], "links": []}));
    let report = vet_json(&ui);
    assert_rejected_for(&report, rules::NODE_NOT_APPROVED);
    let evil = report
        .violations
        .iter()
        .find(|v| v.class_type == "EvilNode")
        .unwrap();
    assert_eq!(evil.node_id, "4/11/7");
}

#[test]
fn unused_subgraph_definitions_are_vetted_too() {
    let mut ui = benign_ui();
    ui["definitions"]["subgraphs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "ffffffff-0000-4000-8000-000000000009", "nodes": [{"id": 1, "type": "EvilNode"}], "links": []}));
    assert_rejected_for(&vet_json(&ui), rules::NODE_NOT_APPROVED);
}

#[test]
fn subgraphs_that_contain_themselves_are_rejected_without_hanging() {
    let a = "aaaaaaaa-0000-4000-8000-000000000000";
    let b = "bbbbbbbb-0000-4000-8000-000000000000";
    let ui = json!({
        "nodes": [{"id": 1, "type": a}],
        "links": [],
        "definitions": {"subgraphs": [
            {"id": a, "nodes": [{"id": 1, "type": b}], "links": []},
            {"id": b, "nodes": [{"id": 1, "type": a}], "links": []}
        ]}
    });
    assert_rejected_for(&vet_json(&ui), rules::SUBGRAPH_CYCLE);
}

#[test]
fn a_subgraph_cannot_pose_as_a_node_type() {
    let ui = json!({
        "nodes": [{"id": 1, "type": "known-vulnerable-node"}],
        "links": [],
        "definitions": {"subgraphs": [{"id": "known-vulnerable-node", "nodes": [], "links": []}]}
    });
    let report = vet_json(&ui);
    assert_rejected_for(&report, rules::UNEXPECTED_SHAPE);
    assert_rejected_for(&report, rules::NODE_BLOCKED);
}

#[test]
fn legacy_group_nodes_are_vetted() {
    let ui = json!({
        "nodes": [{"id": 1, "type": "workflow>MyGroup", "widgets_values": []}],
        "links": [],
        "extra": {"groupNodes": {"MyGroup": {"nodes": [
            {"index": 0, "type": "KSamplerSelect", "widgets_values": ["euler"]},
            {"index": 1, "type": "EvilNode", "widgets_values": []}
        ], "links": []}}}
    });
    let report = vet_json(&ui);
    assert_rejected_for(&report, rules::NODE_NOT_APPROVED);
    assert_eq!(report.violations[0].node_id, "1/1");
}

#[test]
fn blocked_nodes_reject_even_core_ones_and_even_in_warn_mode() {
    let api = json!({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}});
    assert_rejected_for(&vet_json(&api), rules::NODE_BLOCKED);
    let warn = policy_with(spec(), Mode::Warn, Egress::Blocked);
    let report = vet(api.to_string().as_bytes(), &warn);
    assert_eq!(report.verdict, VettingVerdict::Rejected);

    let mut listed = spec();
    listed.nodes.push(
        serde_yaml::from_str("classType: known-vulnerable-node\nrepository: github.com/a/b")
            .unwrap(),
    );
    let policy = policy_with(listed, Mode::Strict, Egress::Open);
    let api = json!({"1": {"class_type": "known-vulnerable-node", "inputs": {}}});
    let report = vet(api.to_string().as_bytes(), &policy);
    assert_eq!(rules_of(&report), [rules::NODE_BLOCKED]);
}

#[test]
fn warn_mode_approves_policy_violations_with_warnings() {
    let warn = policy_with(spec(), Mode::Warn, Egress::Blocked);
    let api = json!({"1": {"class_type": "EvilNode", "inputs": {"ckpt_name": "other.ckpt"}}});
    let report = vet(api.to_string().as_bytes(), &warn);
    assert_eq!(report.verdict, VettingVerdict::ApprovedWithWarnings);
    assert_eq!(report.violations.len(), 2);
}

#[test]
fn provenance_must_match_the_pin_in_the_ui_format() {
    for (key, value) in [
        ("ver", json!("ffffffffffffffffffffffffffffffffffffffff")),
        ("cnr_id", json!("comfyui-videohelpersuite-fork")),
        ("aux_id", json!("attacker/ComfyUI-VideoHelperSuite")),
        ("cnr_id", json!("comfy-core")),
    ] {
        let mut ui = benign_ui();
        ui["nodes"][1]["properties"][key] = value.clone();
        let report = vet_json(&ui);
        assert_rejected_for(&report, rules::PROVENANCE_MISMATCH);
        let _ = (key, value);
    }
    // An abbreviated commit and the correct aux_id match.
    let mut ui = benign_ui();
    ui["nodes"][1]["properties"]["ver"] = json!(&VHS_COMMIT[..8]);
    ui["nodes"][1]["properties"]["aux_id"] = json!("Kosinkadink/ComfyUI-VideoHelperSuite");
    assert_eq!(vet_json(&ui).verdict, VettingVerdict::Approved);
}

#[test]
fn a_core_node_claiming_a_custom_pack_is_a_mismatch() {
    let mut ui = benign_ui();
    ui["nodes"][0]["properties"]["cnr_id"] = json!("evil-pack");
    assert_rejected_for(&vet_json(&ui), rules::PROVENANCE_MISMATCH);
}

#[test]
fn an_approved_repository_approves_ui_nodes_that_name_it_but_not_api_nodes() {
    let ui = json!({"nodes": [{"id": 1, "type": "OrgNode", "properties": {"aux_id": "your-org/custom-nodes"}}], "links": []});
    assert_eq!(vet_json(&ui).verdict, VettingVerdict::Approved);
    let api = json!({"1": {"class_type": "OrgNode", "inputs": {}}});
    assert_rejected_for(&vet_json(&api), rules::NODE_NOT_APPROVED);
}

#[test]
fn api_nodes_are_rejected_when_egress_is_blocked() {
    let api = json!({"1": {"class_type": "OpenAIDalle3", "inputs": {"prompt": "a cat"}}});
    assert_rejected_for(&vet_json(&api), rules::API_NODE_EGRESS);
    let open = policy_with(spec(), Mode::Strict, Egress::Open);
    assert_eq!(
        vet(api.to_string().as_bytes(), &open).verdict,
        VettingVerdict::Approved
    );
    let restricted = policy_with(spec(), Mode::Strict, Egress::Restricted);
    assert_eq!(
        vet(api.to_string().as_bytes(), &restricted).verdict,
        VettingVerdict::Rejected
    );
}

fn hosts(names: &[&str]) -> videofoundry::egress::Policy {
    let hosts: Vec<videofoundry::crd::video_foundry::AllowedHost> = names
        .iter()
        .map(|name| serde_json::from_value(json!({"host": name})).unwrap())
        .collect();
    videofoundry::egress::Policy::new(&hosts).unwrap()
}

#[test]
fn a_listed_api_node_also_needs_its_host_approved_for_the_foundry() {
    let api = json!({"1": {"class_type": "OpenAIDalle3", "inputs": {"prompt": "a cat"}}});
    let mut listed = spec();
    listed
        .nodes
        .push(serde_json::from_value(json!({"classType": "OpenAIDalle3"})).unwrap());
    let restricted = || policy_with(listed.clone(), Mode::Strict, Egress::Restricted);
    // Offline (no foundry context): listing it is enough, as before.
    assert_eq!(
        vet(api.to_string().as_bytes(), &restricted()).verdict,
        VettingVerdict::Approved
    );
    let report = vet(
        api.to_string().as_bytes(),
        &restricted().with_approved_hosts(hosts(&["huggingface.co"])),
    );
    assert_rejected_for(&report, rules::API_NODE_EGRESS);
    assert!(
        report.violations[0].message.contains("api.comfy.org:443")
            && report.violations[0]
                .message
                .contains("spec.network.allowedHosts"),
        "{report:#?}"
    );
    let report = vet(
        api.to_string().as_bytes(),
        &restricted().with_approved_hosts(hosts(&["api.comfy.org"])),
    );
    assert_eq!(report.verdict, VettingVerdict::Approved, "{report:#?}");
    // Approving the host does not approve an unlisted node.
    let report = vet(
        api.to_string().as_bytes(),
        &policy_with(spec(), Mode::Strict, Egress::Restricted)
            .with_approved_hosts(hosts(&["api.comfy.org"])),
    );
    assert_rejected_for(&report, rules::API_NODE_EGRESS);
}

#[test]
fn a_url_model_source_needs_its_host_approved_for_the_foundry() {
    let api = json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {
        "ckpt_name": "https://huggingface.co/your-org/model/resolve/main/model.safetensors"}}});
    // Offline: the approved source pattern is enough, as before.
    assert_eq!(vet_json(&api).verdict, VettingVerdict::Approved);
    for (policy, approved) in [
        (
            policy_with(spec(), Mode::Strict, Egress::Restricted)
                .with_approved_hosts(hosts(&["huggingface.co"])),
            true,
        ),
        (
            policy_with(spec(), Mode::Strict, Egress::Restricted)
                .with_approved_hosts(hosts(&["*.huggingface.co"])),
            false,
        ),
        // Blocked egress: the gateway does not run, no host is reachable by name.
        (
            policy_with(spec(), Mode::Strict, Egress::Blocked).with_approved_hosts(hosts(&[])),
            false,
        ),
        (
            policy_with(spec(), Mode::Strict, Egress::Open).with_approved_hosts(hosts(&[])),
            true,
        ),
    ] {
        let report = vet(api.to_string().as_bytes(), &policy);
        if approved {
            assert_eq!(report.verdict, VettingVerdict::Approved, "{report:#?}");
        } else {
            assert_rejected_for(&report, rules::URL_HOST_NOT_APPROVED);
            assert!(
                report.violations[0].message.contains("huggingface.co:443"),
                "{report:#?}"
            );
        }
    }
    // A URL no model approval matches stays a plain URL violation.
    let other = json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {
        "ckpt_name": "https://evil.example/model.safetensors"}}});
    let report = vet(
        other.to_string().as_bytes(),
        &policy_with(spec(), Mode::Strict, Egress::Restricted)
            .with_approved_hosts(hosts(&["evil.example"])),
    );
    assert_rejected_for(&report, rules::URL_INPUT);
}

#[test]
fn models_must_be_approved_but_samplers_are_not_models() {
    for (class_type, input, value) in [
        ("CheckpointLoaderSimple", "ckpt_name", "other.safetensors"),
        ("VAELoader", "vae_name", "vae-without-extension"),
        ("UNETLoader", "unet_name", "flux1-dev.gguf"),
        ("DualCLIPLoader", "clip_name1", "t5.sft"),
        ("ControlNetLoader", "control_net_name", "canny.pth"),
        ("UpscaleModelLoader", "model_name", "4x-UltraSharp"),
        ("CLIPTextEncode", "text", "weights.ckpt"),
        (
            "LoraLoaderModelOnly",
            "lora_name",
            "loras/sub/deep.safetensors",
        ),
        // A custom node's input is a model slot by its name.
        ("VHS_VideoCombine", "vae_name", "vae-without-extension"),
    ] {
        let api = json!({"1": {"class_type": class_type, "inputs": {input: value}}});
        assert_rejected_for(&vet_json(&api), rules::MODEL_NOT_APPROVED);
    }
    // ComfyUI unwraps {"__value__": [...]} constants: the slot is still a model slot.
    let api = json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": {"__value__": ["unapproved-model"]}}}});
    assert_rejected_for(&vet_json(&api), rules::MODEL_NOT_APPROVED);
    let api = json!({"1": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}}});
    assert_eq!(vet_json(&api).verdict, VettingVerdict::Approved);
    // A literal choice that ComfyUI offers beside the files loads nothing; "None" is not one
    // for a core loader, so it names a file like any other value.
    let api = json!({"1": {"class_type": "TrainLoraNode", "inputs": {"existing_lora": "[None]"}}});
    assert!(!rules_of(&vet_json(&api)).contains(&rules::MODEL_NOT_APPROVED));
    let api = json!({"1": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "None"}}});
    assert_rejected_for(&vet_json(&api), rules::MODEL_NOT_APPROVED);
    // A custom node's "None" still means no model.
    let api = json!({"1": {"class_type": "VHS_VideoCombine", "inputs": {"lora_name": "None"}}});
    assert_eq!(vet_json(&api).verdict, VettingVerdict::Approved);
}

#[test]
fn model_names_in_ui_widgets_are_checked() {
    let mut ui = benign_ui();
    ui["nodes"][0]["widgets_values"] = json!(["unapproved_model"]);
    assert_rejected_for(&vet_json(&ui), rules::MODEL_NOT_APPROVED);
}

#[test]
fn globs_never_approve_values_that_climb() {
    for value in [
        "loras/../../../etc/passwd.safetensors",
        "loras/..\\..\\x.safetensors",
        "loras\\x.safetensors",
    ] {
        let api =
            json!({"1": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": value}}});
        let report = vet_json(&api);
        assert_eq!(report.verdict, VettingVerdict::Rejected, "{value}");
        assert!(
            rules_of(&report).contains(&rules::PATH_TRAVERSAL),
            "{value}: {:#?}",
            report.violations
        );
    }
}

#[test]
fn urls_are_rejected_unless_an_approved_source_matches() {
    for value in [
        "https://civitai.com/api/download/models/1",
        "HTTP://evil.example/x.png",
        "s3://bucket/key",
        "gs://bucket/key",
        "ftp://h/f",
        "git@github.com:o/r.git",
        "file:///etc/passwd",
        "  https://leading.space/x",
    ] {
        let api = json!({"1": {"class_type": "LoadImage", "inputs": {"image": value}}});
        assert_rejected_for(&vet_json(&api), rules::URL_INPUT);
    }
    let api = json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "https://huggingface.co/your-org/m/resolve/main/m.safetensors"}}});
    assert_eq!(vet_json(&api).verdict, VettingVerdict::Approved);
    // URLs nested in object-valued inputs are found too.
    let api = json!({"1": {"class_type": "LoadImage", "inputs": {"image": {"list": [{"url": "https://x"}]}}}});
    assert_rejected_for(&vet_json(&api), rules::URL_INPUT);
}

#[test]
fn escaping_paths_and_nul_are_rejected() {
    for (value, rule) in [
        ("/etc/passwd", rules::ABSOLUTE_PATH),
        ("C:\\Windows\\x", rules::ABSOLUTE_PATH),
        ("\\\\server\\share", rules::ABSOLUTE_PATH),
        ("~/.ssh/id_rsa", rules::ABSOLUTE_PATH),
        ("../../secrets", rules::PATH_TRAVERSAL),
        ("out/../../x", rules::PATH_TRAVERSAL),
        ("image.png\0.safetensors", rules::CONTROL_CHARACTER),
    ] {
        let api =
            json!({"1": {"class_type": "SaveAnimatedWEBP", "inputs": {"filename_prefix": value}}});
        assert_rejected_for(&vet_json(&api), rule);
    }
}

#[test]
fn duplicate_keys_are_rejected_wherever_they_are() {
    let cases = [
        r#"{"1": {"class_type": "KSampler", "inputs": {}}, "1": {"class_type": "EvilNode", "inputs": {}}}"#,
        r#"{"1": {"class_type": "KSampler", "class_type": "EvilNode", "inputs": {}}}"#,
        r#"{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors", "ckpt_name": "evil.ckpt"}}}"#,
        r#"{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors", "ckpt\u005fname": "evil.ckpt"}}}"#,
        r#"{"nodes": [], "nodes": [{"id": 1, "type": "EvilNode"}]}"#,
    ];
    for case in cases {
        let report = vet(case.as_bytes(), &policy());
        assert_rejected_for(&report, rules::DUPLICATE_KEY);
        assert_eq!(report.violations.len(), 1);
    }
}

#[test]
fn ids_that_differ_only_in_type_or_case_are_rejected() {
    let api = json!({"1": {"class_type": "KSampler", "inputs": {}}, "01": {"class_type": "KSampler", "inputs": {}}});
    assert_rejected_for(&vet_json(&api), rules::AMBIGUOUS_ID);
    let api = json!({"a": {"class_type": "KSampler", "inputs": {}}, "A": {"class_type": "KSampler", "inputs": {}}});
    assert_rejected_for(&vet_json(&api), rules::AMBIGUOUS_ID);
    let api = json!({"1": {"class_type": "KSampler", "inputs": {}}, "2": {"class_type": "VAEDecode", "inputs": {"samples": [1, 0]}}});
    assert_rejected_for(&vet_json(&api), rules::AMBIGUOUS_ID);
    let ui = json!({"nodes": [{"id": 1, "type": "KSampler"}, {"id": "1", "type": "KSampler"}], "links": []});
    assert_rejected_for(&vet_json(&ui), rules::AMBIGUOUS_ID);
    let ui = json!({"nodes": [{"id": 1, "type": "KSampler"}, {"id": 1, "type": "EvilNode"}], "links": []});
    assert_rejected_for(&vet_json(&ui), rules::DUPLICATE_ID);
}

#[test]
fn unexpected_shapes_are_rejected_not_guessed() {
    for (case, rule) in [
        (json!([1, 2]), rules::UNKNOWN_FORMAT),
        (json!("workflow"), rules::UNKNOWN_FORMAT),
        (json!({}), rules::UNKNOWN_FORMAT),
        (
            json!({"prompt": {"1": {"class_type": "KSampler", "inputs": {}}}}),
            rules::UNKNOWN_FORMAT,
        ),
        (
            json!({"nodes": [{"id": 1, "type": "KSampler"}], "2": {"class_type": "EvilNode", "inputs": {}}}),
            rules::UNKNOWN_FORMAT,
        ),
        (
            json!({"1": {"class_type": "KSampler", "inputs": {}}, "2": "x"}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": 5, "inputs": {}}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": "KSampler", "inputs": []}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": "KSampler"}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": "KSampler", "inputs": {}, "extra_key": 1}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": "KSampler", "inputs": {"model": ["1", 0, 1]}}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"1": {"class_type": "KSampler", "inputs": {"model": ["2", -1]}}, "2": {"class_type": "KSampler", "inputs": {}}}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"nodes": [{"id": 1}], "links": []}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"nodes": [{"id": 1.5, "type": "KSampler"}], "links": []}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"nodes": [{"id": 1, "type": "KSampler", "widgets_values": "x"}], "links": []}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"nodes": [{"id": 1, "type": "KSampler", "properties": {"cnr_id": 5}}], "links": []}),
            rules::UNEXPECTED_SHAPE,
        ),
        (
            json!({"nodes": [], "links": [[1, 2]]}),
            rules::UNEXPECTED_SHAPE,
        ),
        (json!({"nodes": [], "links": {}}), rules::UNEXPECTED_SHAPE),
    ] {
        let report = vet_json(&case);
        assert_eq!(report.verdict, VettingVerdict::Rejected, "{case}");
        assert!(
            rules_of(&report).contains(&rule),
            "{case}: {:#?}",
            report.violations
        );
    }
    assert_eq!(
        vet(b"not json", &policy()).violations[0].rule,
        rules::INVALID_JSON
    );
    assert_eq!(vet(b"", &policy()).violations[0].rule, rules::INVALID_JSON);
}

#[test]
fn dangling_links_and_cycles_are_rejected() {
    let api = json!({"1": {"class_type": "VAEDecode", "inputs": {"samples": ["99", 0]}}});
    assert_rejected_for(&vet_json(&api), rules::DANGLING_LINK);
    let api = json!({
        "1": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0]}},
        "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0]}}
    });
    assert_rejected_for(&vet_json(&api), rules::CYCLE);
    let api = json!({"1": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0]}}});
    assert_rejected_for(&vet_json(&api), rules::CYCLE);

    let ui = json!({"nodes": [
        {"id": 1, "type": "VAEDecode", "inputs": [{"link": 1}], "outputs": [{"links": [2]}]},
        {"id": 2, "type": "VAEEncode", "inputs": [{"link": 2}], "outputs": [{"links": [1]}]}
    ], "links": [[1, 2, 0, 1, 0, "LATENT"], [2, 1, 0, 2, 0, "IMAGE"]]});
    assert_rejected_for(&vet_json(&ui), rules::CYCLE);
    let ui = json!({"nodes": [{"id": 1, "type": "VAEDecode", "inputs": [{"link": 7}], "outputs": []}], "links": []});
    assert_rejected_for(&vet_json(&ui), rules::DANGLING_LINK);
    let ui = json!({"nodes": [
        {"id": 1, "type": "VAEDecode", "inputs": [{"link": 1}], "outputs": []},
        {"id": 2, "type": "VAEEncode", "inputs": [], "outputs": [{"links": [1]}]}
    ], "links": [[1, 2, 3, 1, 0, "LATENT"]]});
    assert_rejected_for(&vet_json(&ui), rules::DANGLING_LINK);
    let ui = json!({"nodes": [
        {"id": 1, "type": "VAEDecode", "inputs": [{"link": 1}], "outputs": []}
    ], "links": [[1, 9, 0, 1, 0, "LATENT"]]});
    assert_rejected_for(&vet_json(&ui), rules::DANGLING_LINK);
    let ui = json!({"nodes": [
        {"id": 1, "type": "VAEDecode", "inputs": [{"link": 1}], "outputs": []},
        {"id": 2, "type": "VAEEncode", "inputs": [], "outputs": [{"links": [1]}]}
    ], "links": [[1, 2, 0, 1, 0, "LATENT"], [1, 2, 0, 1, 0, "LATENT"]]});
    assert_rejected_for(&vet_json(&ui), rules::DUPLICATE_ID);
}

#[test]
fn nodes_and_the_links_list_must_tell_the_same_graph() {
    let ui = json!({"nodes": [
        {"id": 1, "type": "VAEDecode", "inputs": [{"link": 1}], "outputs": []},
        {"id": 2, "type": "VAEEncode", "inputs": [], "outputs": [{"links": [1]}]},
        {"id": 3, "type": "VAEDecode", "inputs": [], "outputs": []}
    ], "links": [[1, 2, 0, 3, 0, "LATENT"]]});
    assert_rejected_for(&vet_json(&ui), rules::UNEXPECTED_SHAPE);
}

#[test]
fn limits_reject_with_a_reason() {
    let big = format!(
        "{{\"1\": {{\"class_type\": \"KSampler\", \"inputs\": {{\"text\": \"{}\"}}}}}}",
        "a".repeat(1_600_000)
    );
    let report = vet(big.as_bytes(), &policy());
    assert_rejected_for(&report, rules::LIMIT_EXCEEDED);
    assert!(report.violations[0].message.contains("1572864"));
    let deep = format!(
        "{{\"1\": {{\"class_type\": \"KSampler\", \"inputs\": {{\"x\": {}{}}}}}}}",
        "{\"a\":".repeat(100),
        "1".to_owned() + &"}".repeat(100)
    );
    assert_rejected_for(&vet(deep.as_bytes(), &policy()), rules::LIMIT_EXCEEDED);
    let long = format!(
        "{{\"1\": {{\"class_type\": \"KSampler\", \"inputs\": {{\"text\": \"{}\"}}}}}}",
        "a".repeat(300_000)
    );
    assert_rejected_for(&vet(long.as_bytes(), &policy()), rules::LIMIT_EXCEEDED);
    let limits = videofoundry::vetting::Limits {
        max_nodes: 3,
        ..Default::default()
    };
    let many: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| {
            (
                i.to_string(),
                json!({"class_type": "KSampler", "inputs": {}}),
            )
        })
        .collect();
    let report = videofoundry::vetting::vet_with_limits(
        serde_json::Value::Object(many).to_string().as_bytes(),
        &policy(),
        &limits,
    );
    assert_rejected_for(&report, rules::LIMIT_EXCEEDED);
    assert_eq!(report.checked_nodes, 3);
}

#[test]
fn a_flood_of_violations_is_listed_up_to_a_cap_and_counted_exactly() {
    let inputs: serde_json::Map<String, serde_json::Value> = (0..12_000)
        .map(|i| (format!("i{i}"), json!("/etc/passwd")))
        .collect();
    let api = json!({"1": {"class_type": "LoadImage", "inputs": inputs}});
    let report = vet_json(&api);
    assert_eq!(report.violations.len(), 1_000);
    assert_eq!(report.violation_count, 12_000);
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.rule == rules::ABSOLUTE_PATH)
    );
    assert_eq!(report.verdict, VettingVerdict::Rejected);
}

#[test]
fn a_blocked_frontend_only_node_is_still_blocked() {
    let mut blocked = spec();
    blocked.blocked_nodes.push("Note".into());
    let policy = policy_with(blocked, Mode::Warn, Egress::Blocked);
    let ui = json!({"nodes": [{"id": 1, "type": "Note", "widgets_values": ["hi"]}], "links": []});
    let report = vet(ui.to_string().as_bytes(), &policy);
    assert_eq!(rules_of(&report), [rules::NODE_BLOCKED]);
}

#[test]
fn violations_are_sorted_by_node_then_rule() {
    let api = json!({
        "10": {"class_type": "EvilNode", "inputs": {"image": "https://x"}},
        "9": {"class_type": "EvilNode", "inputs": {}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "/etc/passwd"}}
    });
    let report = vet_json(&api);
    let order: Vec<(&str, &str)> = report
        .violations
        .iter()
        .map(|v| (v.node_id.as_str(), v.rule.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("2", rules::ABSOLUTE_PATH),
            ("9", rules::NODE_NOT_APPROVED),
            ("10", rules::NODE_NOT_APPROVED),
            ("10", rules::URL_INPUT)
        ]
    );
}

#[test]
fn include_core_nodes_false_in_any_list_is_respected() {
    let mut strict_list = spec();
    strict_list.include_core_nodes = false;
    let policy = Policy::new(
        &[("a".into(), spec()), ("b".into(), strict_list)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap();
    let api = json!({"1": {"class_type": "KSampler", "inputs": {}}});
    let report = vet(api.to_string().as_bytes(), &policy);
    assert_eq!(rules_of(&report), [rules::NODE_NOT_APPROVED]);
}

#[test]
fn invalid_or_conflicting_lists_make_no_policy() {
    let mut broken = spec();
    broken
        .nodes
        .push(serde_yaml::from_str("classType: CustomThing").unwrap());
    let error = Policy::new(
        &[("x".into(), broken)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("must name its repository"),
        "{error}"
    );

    let mut other = spec();
    other.nodes[0].commit = Some("f".repeat(40));
    let error = Policy::new(
        &[("a".into(), spec()), ("b".into(), other)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap_err();
    assert!(error.to_string().contains("different pins"), "{error}");
}

#[test]
fn status_lists_at_most_100_violations_and_counts_all() {
    let many: serde_json::Map<String, serde_json::Value> = (0..150)
        .map(|i| {
            (
                i.to_string(),
                json!({"class_type": "EvilNode", "inputs": {}}),
            )
        })
        .collect();
    let report = vet_json(&serde_json::Value::Object(many));
    let status = vetting_status(
        &report,
        VettingPolicyRef {
            name: "studio".into(),
            generation: Some(3),
            mode: VettingMode::Strict,
            approved_node_lists: vec![],
        },
    );
    assert_eq!(status.violations.len(), 100);
    assert_eq!(status.violation_count, 150);
    assert_eq!(status.checked_nodes, 150);
    assert_eq!(status.verdict, VettingVerdict::Rejected);
    assert_eq!(status.workflow_sha256, report.workflow_sha256);
    assert_eq!(status.violations[0].node_id, "0");
    assert_eq!(status.violations[99].node_id, "99");
}

#[test]
fn the_policy_reference_names_every_list_at_its_generation() {
    let mut list = videofoundry::crd::ApprovedNodeList::new("studio-approved", spec());
    list.metadata.generation = Some(4);
    let reference =
        videofoundry::vetting::status::policy_ref("studio", Some(2), VettingMode::Strict, &[list]);
    assert_eq!(reference.name, "studio");
    assert_eq!(reference.generation, Some(2));
    assert_eq!(reference.approved_node_lists[0].name, "studio-approved");
    assert_eq!(reference.approved_node_lists[0].generation, Some(4));
}
