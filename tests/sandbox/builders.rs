//! Behaviour of the builders that users and the controller rely on (DESIGN.md §4.2, §4.4).

use videofoundry::crd::video_foundry::{EgressRule, ExecutionMode, SandboxType};
use videofoundry::resources::render_secret::{PLAN_FILE, STORAGE_FILE, WORKFLOW_FILE};
use videofoundry::resources::worker_job::{
    GPU_RESOURCE, INSTALL_CONTAINER, OPERATOR_BINARY, RENDER_DIR, WORKER_BIN_DIR, WORKER_BINARY,
    build_worker_job,
};
use videofoundry::resources::{
    BuildError, PresignedObject, PresignedUrl, build_foundry_objects, build_render_objects,
};

use crate::fixtures;

#[test]
fn a_gpu_render_without_a_gpu_runtime_class_is_refused_not_run_unsandboxed() {
    let mut foundry = fixtures::foundry();
    foundry
        .spec
        .sandbox
        .as_mut()
        .unwrap()
        .gpu_runtime_class_name = None;
    let render = fixtures::gpu_render();
    let error = build_worker_job(
        &foundry,
        &render,
        &fixtures::plan_for(&render),
        fixtures::WORKER_BINARY_IMAGE,
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::GpuWithoutRuntimeClass { gpus: 1, .. }),
        "{error:?}"
    );
    assert_eq!(error.category(), "GpuRuntimeClassMissing");
    let message = error.to_string();
    assert!(
        message.contains("sandbox.gpuRuntimeClassName") && message.contains("hero-shot"),
        "{message}"
    );
}

#[test]
fn gpu_renders_use_the_gpu_class_a_gpu_limit_and_tolerate_gpu_nodes() {
    let job = fixtures::render_objects(&fixtures::foundry(), &fixtures::gpu_render()).job;
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor-nvproxy"));
    let resources = pod.containers[0].resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()[GPU_RESOURCE].0, "1");
    assert!(!resources.requests.unwrap().contains_key(GPU_RESOURCE));
    let tolerations = pod.tolerations.unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(GPU_RESOURCE))
    );
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("videofoundry.dev/render-only"))
    );
    assert_eq!(
        pod.node_selector.unwrap()["videofoundry.dev/pool"],
        "render"
    );
}

#[test]
fn cpu_renders_run_in_the_sandbox_class_of_the_foundry() {
    let render = fixtures::cpu_render();
    let class = |sandbox, name: Option<&str>| {
        let mut foundry = fixtures::foundry_variant(ExecutionMode::Production, None, None, sandbox);
        foundry
            .spec
            .sandbox
            .as_mut()
            .unwrap()
            .firecracker_runtime_class_name = name.map(str::to_owned);
        let job = build_worker_job(
            &foundry,
            &render,
            &fixtures::plan_for(&render),
            fixtures::WORKER_BINARY_IMAGE,
        )
        .unwrap();
        job.spec.unwrap().template.spec.unwrap().runtime_class_name
    };
    assert_eq!(class(None, None).as_deref(), Some("gvisor"));
    assert_eq!(
        class(Some(SandboxType::Gvisor), None).as_deref(),
        Some("gvisor")
    );
    assert_eq!(
        class(Some(SandboxType::Firecracker), None).as_deref(),
        Some("kata-fc")
    );
    assert_eq!(
        class(Some(SandboxType::Firecracker), Some("fc-prod")).as_deref(),
        Some("fc-prod")
    );
}

#[test]
fn no_sandbox_only_in_developer_mode() {
    let render = fixtures::cpu_render();
    let plan = fixtures::plan_for(&render);
    for mode in [
        ExecutionMode::Production,
        ExecutionMode::SelfHostedProduction,
    ] {
        let foundry = fixtures::foundry_variant(mode, None, None, Some(SandboxType::None));
        let error =
            build_worker_job(&foundry, &render, &plan, fixtures::WORKER_BINARY_IMAGE).unwrap_err();
        assert!(
            matches!(error, BuildError::UnsandboxedOutsideDeveloperMode { .. }),
            "{error:?}"
        );
    }
    let developer = fixtures::foundry_variant(
        ExecutionMode::Developer,
        None,
        None,
        Some(SandboxType::None),
    );
    let job = build_worker_job(&developer, &render, &plan, fixtures::WORKER_BINARY_IMAGE).unwrap();
    assert_eq!(
        job.spec.unwrap().template.spec.unwrap().runtime_class_name,
        None
    );
}

#[test]
fn the_job_is_owned_bounded_and_named_deterministically() {
    let foundry = fixtures::foundry();
    let render = fixtures::cpu_render();
    let job = fixtures::render_objects(&foundry, &render).job;
    assert_eq!(
        job,
        fixtures::render_objects(&foundry, &render).job,
        "deterministic"
    );
    assert_eq!(job.metadata.name.as_deref(), Some("trailer-render"));
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("RenderJob", "trailer")
    );
    assert_eq!(owner.uid, render.metadata.uid.clone().unwrap());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    let spec = job.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(1800));
    assert_eq!(spec.ttl_seconds_after_finished, Some(86400));
    assert_eq!(spec.backoff_limit, Some(2));
    let rules = spec.pod_failure_policy.unwrap().rules;
    assert_eq!(rules[0].action, "FailJob");
    assert_eq!(rules[1].action, "Ignore");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.enable_service_links, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("studio-worker"));
}

#[test]
fn timeout_defaults_to_the_foundrys_and_limits_always_exist() {
    let foundry = fixtures::foundry();
    let mut render = fixtures::cpu_render();
    render.spec.timeout = None;
    render.spec.resources = None;
    render.spec.ttl_after_finished = Some("90m".to_owned());
    let job = build_worker_job(
        &foundry,
        &render,
        &fixtures::plan_for(&render),
        fixtures::WORKER_BINARY_IMAGE,
    )
    .unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(3600));
    assert_eq!(spec.ttl_seconds_after_finished, Some(5400));
    let resources = spec.template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    let (requests, limits) = (resources.requests.unwrap(), resources.limits.unwrap());
    assert_eq!(requests["cpu"].0, "2");
    assert_eq!(limits["cpu"].0, "2", "missing cpu limit takes the request");
    assert_eq!(requests["memory"].0, "8Gi");
    assert_eq!(limits["memory"].0, "16Gi");
}

#[test]
fn inputs_come_only_from_read_only_files_never_env_or_args() {
    let objects = fixtures::render_objects(&fixtures::foundry(), &fixtures::cpu_render());
    let pod = objects.job.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert!(container.args.is_none());
    assert_eq!(
        container.command.as_deref(),
        Some(&[WORKER_BINARY.to_owned(), "worker".to_owned()][..])
    );
    let env = serde_json::to_string(&container.env).unwrap();
    assert!(
        !env.contains("X-Amz") && !env.contains("secretKeyRef"),
        "{env}"
    );
    assert!(container.env_from.is_none());
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == RENDER_DIR)
        .unwrap();
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.default_mode, Some(0o400));
    assert_eq!(secret.secret_name, objects.secret.metadata.name);
    let models = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .unwrap();
    assert_eq!(models.read_only, Some(true));
    let scratch_mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/tmp")
        .unwrap();
    let scratch = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == scratch_mount.name)
        .and_then(|v| v.empty_dir.as_ref())
        .unwrap();
    assert_eq!(scratch.size_limit.as_ref().unwrap().0, "20Gi");
}

#[test]
fn the_worker_binary_comes_from_the_operator_image_and_only_scratch_is_writable() {
    let objects = fixtures::render_objects(&fixtures::foundry(), &fixtures::cpu_render());
    let pod = objects.job.spec.unwrap().template.spec.unwrap();
    let init = pod.init_containers.as_ref().unwrap();
    assert_eq!(init.len(), 1);
    let install = &init[0];
    assert_eq!(install.name, INSTALL_CONTAINER);
    assert_eq!(
        install.image.as_deref(),
        Some(fixtures::WORKER_BINARY_IMAGE)
    );
    assert_eq!(
        install.command.as_deref(),
        Some(
            &[
                OPERATOR_BINARY.to_owned(),
                "install-worker".to_owned(),
                WORKER_BIN_DIR.to_owned()
            ][..]
        )
    );
    let worker = &pod.containers[0];
    assert_eq!(worker.image, Some(fixtures::foundry().spec.workers.image));
    assert_eq!(
        worker.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    for container in init.iter().chain(&pod.containers) {
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(
            security.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        assert!(
            container.resources.as_ref().unwrap().limits.is_some(),
            "{}",
            container.name
        );
    }
    // The worker writes only to /tmp; the binary's folder is read-only there and writable only
    // in the init container, which runs the operator's own image.
    let writable: Vec<&str> = worker
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.read_only != Some(true))
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(writable, ["/tmp"]);
    let bin_mount = worker
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == WORKER_BIN_DIR)
        .unwrap();
    assert_eq!(bin_mount.read_only, Some(true));
    let install_mounts = install.volume_mounts.as_ref().unwrap();
    assert_eq!(install_mounts.len(), 1);
    assert_eq!(install_mounts[0].name, bin_mount.name);
    assert!(WORKER_BINARY.starts_with(WORKER_BIN_DIR));
}

#[test]
fn the_models_volume_is_read_only_even_when_the_spec_says_otherwise() {
    let mut foundry = fixtures::foundry();
    let models = foundry.spec.workers.models_volume.as_mut().unwrap();
    models.persistent_volume_claim.read_only = Some(false);
    let render = fixtures::cpu_render();
    let pod = build_worker_job(
        &foundry,
        &render,
        &fixtures::plan_for(&render),
        fixtures::WORKER_BINARY_IMAGE,
    )
    .unwrap()
    .spec
    .unwrap()
    .template
    .spec
    .unwrap();
    let claim = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .unwrap();
    assert_eq!(claim.read_only, Some(true));
}

#[test]
fn the_secret_holds_exactly_the_vetted_workflow_plan_and_urls() {
    let render = fixtures::cpu_render();
    let objects = fixtures::render_objects(&fixtures::foundry(), &render);
    let data = objects.secret.data.unwrap();
    assert_eq!(
        data[WORKFLOW_FILE].0,
        render.spec.workflow.inline.unwrap().into_bytes()
    );
    let storage: serde_json::Value = serde_json::from_slice(&data[STORAGE_FILE].0).unwrap();
    assert!(
        storage["inputs"][0]["url"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Signature")
    );
    let plan: serde_json::Value = serde_json::from_slice(&data[PLAN_FILE].0).unwrap();
    assert_eq!(
        plan["workflowSha256"],
        fixtures::plan_for(&fixtures::cpu_render()).workflow_sha256
    );
    assert_eq!(objects.secret.immutable, Some(true));
    let annotations = objects.job.metadata.annotations.unwrap();
    assert_eq!(
        annotations["videofoundry.dev/workflow-sha256"],
        plan["workflowSha256"]
    );
}

#[test]
fn bytes_that_were_not_vetted_are_refused() {
    let foundry = fixtures::foundry();
    let render = fixtures::cpu_render();
    let mut plan = fixtures::plan_for(&render);
    plan.workflow.push(' ');
    let error = build_render_objects(
        &foundry,
        &render,
        &plan,
        &fixtures::grant_for(&render),
        fixtures::WORKER_BINARY_IMAGE,
    )
    .err()
    .unwrap();
    assert!(
        matches!(error, BuildError::WorkflowDigestMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn urls_for_another_users_objects_are_refused_without_printing_them() {
    let foundry = fixtures::foundry();
    let render = fixtures::cpu_render();
    let mut grant = fixtures::grant_for(&render);
    grant.inputs.push(PresignedObject {
        key: "users/00000000-0000-4000-8000-000000000000/secret.png".to_owned(),
        url: PresignedUrl::new("https://rgw/b/k?X-Amz-Signature=topsecret"),
        headers: Default::default(),
    });
    let error = build_render_objects(
        &foundry,
        &render,
        &fixtures::plan_for(&render),
        &grant,
        fixtures::WORKER_BINARY_IMAGE,
    )
    .err()
    .unwrap();
    assert!(
        matches!(error, BuildError::KeyOutsideUserPrefix { .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("topsecret"));
}

#[test]
fn a_render_of_another_foundry_is_refused() {
    let foundry = fixtures::foundry();
    let mut render = fixtures::cpu_render();
    render.spec.foundry_ref.name = "elsewhere".to_owned();
    let error = build_worker_job(
        &foundry,
        &render,
        &fixtures::plan_for(&render),
        fixtures::WORKER_BINARY_IMAGE,
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::ForeignFoundry { .. }),
        "{error:?}"
    );
}

#[test]
fn invalid_cidrs_name_the_field_to_fix() {
    let mut foundry =
        fixtures::foundry_variant(ExecutionMode::SelfHostedProduction, None, None, None);
    foundry
        .spec
        .network
        .as_mut()
        .unwrap()
        .allowed_egress
        .push(EgressRule {
            cidr: "10.0.0.300/8".to_owned(),
            ports: vec![],
        });
    let error = build_foundry_objects(&foundry, None).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.network.allowedEgress[1].cidr"),
        "{error}"
    );
}

#[test]
fn cidrs_are_written_in_canonical_form() {
    let mut foundry = fixtures::foundry();
    foundry
        .spec
        .network
        .as_mut()
        .unwrap()
        .storage_endpoint_cidrs = vec!["10.40.0.7/24".to_owned()];
    let policies = build_foundry_objects(&foundry, None)
        .unwrap()
        .network_policies;
    let yaml = serde_yaml::to_string(&policies).unwrap();
    assert!(yaml.contains("cidr: 10.40.0.0/24"), "{yaml}");
}

#[test]
fn the_worker_service_account_mounts_no_token() {
    let objects = build_foundry_objects(&fixtures::foundry(), None).unwrap();
    assert_eq!(
        objects.service_account.automount_service_account_token,
        Some(false)
    );
}
