//! Over generated foundry and render specs: every worker pod the builders produce passes the
//! Pod Security Standards `restricted` profile and DESIGN.md §4.2, is selected (both directions)
//! by its foundry's NetworkPolicies, and the builders refuse only what they must.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;
use videofoundry::crd::video_foundry::{EgressMode, ExecutionMode, SandboxType};
use videofoundry::crd::{RenderJob, VideoFoundry};
use videofoundry::resources::names::is_dns_label;
use videofoundry::resources::{BuildError, build_foundry_objects, build_render_objects};

use crate::netpol_evaluator::{Labels, PodIdentity, is_isolated};
use crate::{fixtures, pss};

fn quantity(options: &'static [&'static str]) -> impl Strategy<Value = Option<Quantity>> {
    proptest::option::of(proptest::sample::select(options).prop_map(|q| Quantity(q.to_owned())))
}

fn resource_map() -> impl Strategy<Value = Option<BTreeMap<String, Quantity>>> {
    (
        quantity(&["250m", "2", "4"]),
        quantity(&["1Gi", "8Gi", "16Gi"]),
    )
        .prop_map(|(cpu, memory)| {
            let map: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect();
            (!map.is_empty()).then_some(map)
        })
}

prop_compose! {
    fn foundries()(
        mode in proptest::sample::select(vec![
            ExecutionMode::Production, ExecutionMode::SelfHostedProduction, ExecutionMode::Developer,
        ]),
        sandbox in proptest::option::of(proptest::sample::select(vec![
            SandboxType::Gvisor, SandboxType::Firecracker, SandboxType::None,
        ])),
        runtime_class in proptest::option::of("[a-z][a-z0-9-]{0,30}"),
        gpu_class in proptest::option::of("[a-z][a-z0-9-]{0,30}"),
        egress in proptest::option::of(proptest::sample::select(vec![
            EgressMode::Blocked, EgressMode::Restricted, EgressMode::Open,
        ])),
        allow_dns in proptest::option::of(any::<bool>()),
        requests in resource_map(),
        limits in resource_map(),
        models in proptest::option::of(proptest::option::of(any::<bool>())),
        scratch in quantity(&["1Gi", "50Gi"]),
        pool in proptest::option::of("[a-z]{1,10}"),
        tolerate in any::<bool>(),
        timeout in proptest::sample::select(vec!["1s", "10m", "1h", "24h"]),
        name in "[a-z0-9]([a-z0-9.-]{0,100}[a-z0-9])?",
    ) -> VideoFoundry {
        let mut foundry = fixtures::foundry_variant(mode, egress, allow_dns, sandbox);
        foundry.metadata.name = Some(name.clone());
        let sandbox = foundry.spec.sandbox.as_mut().unwrap();
        sandbox.runtime_class_name = runtime_class;
        sandbox.gpu_runtime_class_name = gpu_class;
        let workers = &mut foundry.spec.workers;
        workers.resources = Some(ResourceRequirements { requests, limits, claims: None });
        match models {
            None => workers.models_volume = None,
            Some(read_only) => workers.models_volume.as_mut().unwrap().persistent_volume_claim.read_only = read_only,
        }
        workers.scratch_size = scratch;
        workers.node_selector = pool.map(|p| BTreeMap::from([("pool".to_owned(), p)])).unwrap_or_default();
        workers.tolerations = if tolerate {
            vec![Toleration { key: Some("dedicated".to_owned()), operator: Some("Exists".to_owned()), ..Toleration::default() }]
        } else {
            Vec::new()
        };
        workers.default_timeout = timeout.to_owned();
        foundry
    }
}

prop_compose! {
    fn renders()(
        name in "[a-z0-9]([a-z0-9.-]{0,240}[a-z0-9])?",
        gpu in proptest::option::of(0u32..4),
        cpu in quantity(&["500m", "8"]),
        memory in quantity(&["2Gi", "64Gi"]),
        timeout in proptest::option::of(proptest::sample::select(vec!["1s", "1500ms", "30m", "1h30m", "48h"])),
        retries in proptest::option::of(0i32..=10),
        ttl in proptest::option::of(proptest::sample::select(vec!["1s", "1h", "720h"])),
    ) -> RenderJob {
        let mut render = fixtures::cpu_render();
        render.metadata.name = Some(name);
        let resources = render.spec.resources.get_or_insert_with(Default::default);
        resources.gpu = gpu;
        resources.cpu = cpu;
        resources.memory = memory;
        render.spec.timeout = timeout.map(str::to_owned);
        render.spec.retries = retries;
        render.spec.ttl_after_finished = ttl.map(str::to_owned);
        render
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_worker_pod_is_restricted_and_isolated(mut foundry in foundries(), mut render in renders()) {
        render.spec.foundry_ref.name = foundry.metadata.name.clone().unwrap();
        foundry.metadata.namespace = render.metadata.namespace.clone();
        let gpus = render.spec.resources.as_ref().and_then(|r| r.gpu).unwrap_or(0);
        let sandbox = foundry.spec.sandbox.as_ref().and_then(|s| s.type_);
        let unsandboxed = sandbox == Some(SandboxType::None);
        let developer = foundry.spec.execution_mode == ExecutionMode::Developer;
        let has_gpu_class = foundry.spec.sandbox.as_ref().unwrap().gpu_runtime_class_name.is_some();

        let built = build_render_objects(&foundry, &render, &fixtures::plan_for(&render), &fixtures::grant_for(&render), fixtures::WORKER_BINARY_IMAGE);
        let job = match built {
            Err(BuildError::UnsandboxedOutsideDeveloperMode { .. }) => {
                prop_assert!(unsandboxed && !developer);
                return Ok(());
            }
            Err(BuildError::GpuWithoutRuntimeClass { .. }) => {
                prop_assert!(gpus > 0 && !has_gpu_class && !unsandboxed);
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected refusal: {other}"))),
            Ok(objects) => {
                prop_assert!(!unsandboxed || developer, "unsandboxed worker outside developer mode");
                objects.job
            }
        };

        let name = job.metadata.name.clone().unwrap();
        prop_assert!(is_dns_label(&name), "job name {name}");
        let spec = job.spec.clone().unwrap();
        let template = serde_json::to_value(&spec.template).unwrap();
        let violations = pss::restricted_violations(&template);
        prop_assert!(violations.is_empty(), "{violations:?}");

        prop_assert!(spec.active_deadline_seconds.is_some_and(|s| s >= 1));
        prop_assert!(spec.ttl_seconds_after_finished.is_some_and(|s| s >= 1));
        prop_assert_eq!(spec.backoff_limit, Some(render.spec.retries.unwrap_or(0)));
        let pod = spec.template.spec.clone().unwrap();
        prop_assert_eq!(pod.automount_service_account_token, Some(false));
        prop_assert_eq!(pod.enable_service_links, Some(false));
        prop_assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        prop_assert_eq!(pod.runtime_class_name.is_none(), unsandboxed);
        if gpus > 0 && !unsandboxed {
            prop_assert_eq!(pod.runtime_class_name.clone(), foundry.spec.sandbox.as_ref().unwrap().gpu_runtime_class_name.clone());
        }
        let security = pod.security_context.clone().unwrap();
        prop_assert_eq!((security.run_as_user, security.run_as_group), (Some(65532), Some(65532)));
        for volume in pod.volumes.iter().flatten() {
            prop_assert!(volume.host_path.is_none());
            if let Some(claim) = &volume.persistent_volume_claim {
                prop_assert_eq!(claim.read_only, Some(true));
            }
        }
        let container = &pod.containers[0];
        let limits = container.resources.as_ref().unwrap().limits.clone().unwrap();
        prop_assert!(limits.contains_key("cpu") && limits.contains_key("memory"));
        prop_assert_eq!(limits.get("nvidia.com/gpu").map(|q| q.0.clone()), (gpus > 0).then(|| gpus.to_string()));
        prop_assert_eq!(container.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));

        // The foundry's policies select this pod in both directions.
        let policies = build_foundry_objects(&foundry, None).unwrap().network_policies;
        let pod_identity = PodIdentity {
            namespace: job.metadata.namespace.clone().unwrap(),
            namespace_labels: Labels::new(),
            labels: spec.template.metadata.unwrap().labels.unwrap(),
        };
        prop_assert!(is_isolated(&policies, &pod_identity, true));
        prop_assert!(is_isolated(&policies, &pod_identity, false));
    }
}
