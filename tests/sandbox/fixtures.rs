//! The sandbox fixtures (`tests/fixtures/sandbox/`) and the inputs a controller would add.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use videofoundry::crd::video_foundry::{EgressMode, ExecutionMode, SandboxType};
use videofoundry::crd::{RenderJob, VideoFoundry};
use videofoundry::resources::render_secret::workflow_sha256;
use videofoundry::resources::{
    ModelPin, PresignedObject, PresignedUrl, RenderObjects, StorageGrant, WorkerPlan,
    build_render_objects,
};

/// The operator image whose binary the worker Job's init container installs.
pub const WORKER_BINARY_IMAGE: &str = "ghcr.io/videofoundry/videofoundry-operator:0.1.0";

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox")
}

fn documents(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture_dir().join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

fn of_kind<T: DeserializeOwned>(file: &str, kind: &str) -> T {
    let doc = documents(file)
        .into_iter()
        .find(|doc| doc["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} has no {kind}"));
    serde_json::from_value(doc).unwrap()
}

/// The production foundry `renders/studio`.
pub fn foundry() -> VideoFoundry {
    of_kind("production.yaml", "VideoFoundry")
}

/// The CPU render with an inline workflow.
pub fn cpu_render() -> RenderJob {
    of_kind("production.yaml", "RenderJob")
}

/// The GPU render whose workflow comes from a ConfigMap.
pub fn gpu_render() -> RenderJob {
    of_kind("gpu-render.yaml", "RenderJob")
}

/// The workflow bytes of a render: inline, or the ConfigMap content of the GPU fixture.
pub fn workflow_of(render: &RenderJob) -> String {
    match &render.spec.workflow.inline {
        Some(inline) => inline.clone(),
        None => std::fs::read_to_string(fixture_dir().join("gpu-render-workflow.json")).unwrap(),
    }
}

/// What vetting would hand over for a render.
pub fn plan_for(render: &RenderJob) -> WorkerPlan {
    let workflow = workflow_of(render);
    WorkerPlan {
        workflow_sha256: workflow_sha256(&workflow),
        workflow,
        model_pins: vec![ModelPin {
            identifier: "sd_xl_base_1.0.safetensors".to_owned(),
            sha256: "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b".to_owned(),
        }],
        egress_proxy: None,
    }
}

/// Presigned URLs as the S3 backend would issue them (the signature is a fixture value).
pub fn grant_for(render: &RenderJob) -> StorageGrant {
    let name = render.metadata.name.clone().unwrap();
    let user = &render.spec.user_id;
    let url = |key: &str, method: &str| {
        PresignedUrl::new(format!(
            "https://rgw.storage.svc/videofoundry-prod/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=1800&X-Amz-Signature=fixture-{method}"
        ))
    };
    let output_prefix = format!("users/{user}/renders/{name}/");
    let output_key = format!("{output_prefix}output.mp4");
    StorageGrant {
        inputs: render
            .spec
            .inputs
            .iter()
            .map(|key| PresignedObject {
                key: key.clone(),
                url: url(key, "get"),
                headers: Default::default(),
            })
            .collect(),
        outputs: vec![PresignedObject {
            url: url(&output_key, "put"),
            key: output_key,
            headers: Default::default(),
        }],
        output_prefix,
        expires_at: "2025-01-13T01:00:00Z".to_owned(),
    }
}

/// The Secret and Job of a render of a foundry.
pub fn render_objects(foundry: &VideoFoundry, render: &RenderJob) -> RenderObjects {
    build_render_objects(
        foundry,
        render,
        &plan_for(render),
        &grant_for(render),
        WORKER_BINARY_IMAGE,
    )
    .unwrap()
}

/// The production foundry in another mode, egress and sandbox, for the variant checks.
pub fn foundry_variant(
    mode: ExecutionMode,
    egress: Option<EgressMode>,
    allow_dns: Option<bool>,
    sandbox: Option<SandboxType>,
) -> VideoFoundry {
    let mut foundry = foundry();
    foundry.spec.execution_mode = mode;
    let network = foundry.spec.network.get_or_insert_with(Default::default);
    network.egress = egress;
    network.allow_dns = allow_dns;
    foundry
        .spec
        .sandbox
        .get_or_insert_with(Default::default)
        .type_ = sandbox;
    foundry
}

/// Every combination of mode, egress, DNS and sandbox type that a foundry may legally have.
pub fn legal_foundry_variants() -> Vec<VideoFoundry> {
    let mut variants = Vec::new();
    for mode in [
        ExecutionMode::Production,
        ExecutionMode::SelfHostedProduction,
        ExecutionMode::Developer,
    ] {
        for egress in [
            None,
            Some(EgressMode::Blocked),
            Some(EgressMode::Restricted),
            Some(EgressMode::Open),
        ] {
            for allow_dns in [None, Some(true)] {
                for sandbox in [
                    None,
                    Some(SandboxType::Firecracker),
                    Some(SandboxType::None),
                ] {
                    if sandbox == Some(SandboxType::None) && mode != ExecutionMode::Developer {
                        continue;
                    }
                    variants.push(foundry_variant(mode, egress, allow_dns, sandbox));
                }
            }
        }
    }
    variants
}
