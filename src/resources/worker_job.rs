//! The worker Job of a render (DESIGN.md §4.2): one pod, in the foundry's sandbox RuntimeClass,
//! that passes the Pod Security Standards `restricted` profile, cannot reach the API server
//! (no token), reads its workflow and storage URLs from the per-render Secret mounted read-only,
//! reads models from a read-only volume, writes only to a size-limited `/tmp`, and is bounded in
//! time (`activeDeadlineSeconds`), retries (`backoffLimit` + a pod failure policy) and lifetime
//! (`ttlSecondsAfterFinished`). Only fields of Kubernetes 1.28 are used.
//!
//! The render entrypoint is this operator's own static binary (`videofoundry-operator worker`),
//! so that `workers.image` can be any ComfyUI image: an init container from the operator's image
//! copies the binary into an emptyDir, which the worker container mounts read-only and runs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::Serialize;

use super::runtime_class::{DEFAULT_FIRECRACKER_CLASS, DEFAULT_GVISOR_CLASS, effective_sandbox};
use super::{BuildError, controller_owner_ref, labels, names, shared_namespace};
use crate::crd::duration;
use crate::crd::video_foundry::SandboxType;
use crate::crd::{RenderJob, VideoFoundry};

/// User and group every worker runs as (distroless `nonroot`).
pub const WORKER_UID: i64 = 65532;
/// Name of the worker container (pod failure policy rules refer to it).
pub const WORKER_CONTAINER: &str = "worker";
/// Where the per-render Secret is mounted.
pub const RENDER_DIR: &str = "/var/run/videofoundry/render";
/// Where the init container puts the worker binary (read-only in the worker container).
pub const WORKER_BIN_DIR: &str = "/opt/videofoundry/bin";
/// The worker binary the worker container runs.
pub const WORKER_BINARY: &str = "/opt/videofoundry/bin/videofoundry-operator";
/// The operator binary inside the operator's image (the init container runs it).
pub const OPERATOR_BINARY: &str = "/usr/local/bin/videofoundry-operator";
/// Name of the init container that installs the worker binary.
pub const INSTALL_CONTAINER: &str = "install-worker";
/// Where the kubelet reads the termination message (the worker writes its reason there).
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// Where the models volume is mounted.
pub const MODELS_DIR: &str = "/models";
/// Extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Exit code of a worker that refuses its inputs (digest or model pin mismatch, a workflow it
/// will not run): retrying cannot help, so the Job fails at once.
pub const EXIT_REJECTED: i32 = 42;
/// Exit code of a worker whose inputs are unusable (missing or malformed input files).
pub const EXIT_INVALID_INPUT: i32 = 43;
/// Exit code of a worker whose ComfyUI did not become ready, refused the workflow or failed
/// while running it (retried per `backoffLimit`).
pub const EXIT_RENDER_FAILED: i32 = 44;
/// Exit code of a worker whose workflow produced files with no upload URL left, or no file at
/// all (retried per `backoffLimit`; nothing was uploaded).
pub const EXIT_OUTPUTS_UNPLACED: i32 = 45;
/// Retries of a render that sets none: a failed render is not retried unless asked (disruptions
/// such as evictions never count, see the pod failure policy).
pub const DEFAULT_RETRIES: i32 = 0;
/// TTL of a finished Job whose render sets none (24 hours).
pub const DEFAULT_TTL_SECONDS: i32 = 24 * 3600;
/// Size of `/tmp` when the foundry sets no `workers.scratchSize`.
pub const DEFAULT_SCRATCH_SIZE: &str = "10Gi";
/// CPU of a render when neither the render nor the foundry says.
pub const DEFAULT_CPU: &str = "1";
/// Memory of a render when neither the render nor the foundry says.
pub const DEFAULT_MEMORY: &str = "4Gi";

/// Annotation carrying the vetted workflow digest on the Job.
pub const WORKFLOW_SHA256_ANNOTATION: &str = "videofoundry.dev/workflow-sha256";

const SCRATCH_VOLUME: &str = "scratch";
const RENDER_VOLUME: &str = "render-inputs";
const MODELS_VOLUME: &str = "models";
const BIN_VOLUME: &str = "worker-bin";
/// Room for the static binary (about 30 MB) in its emptyDir.
const BIN_VOLUME_SIZE: &str = "256Mi";

/// A model the worker must load, pinned by digest (from the vetting report).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPin {
    /// Model identifier as the workflow names it (e.g. `sd_xl_base_1.0.safetensors`).
    pub identifier: String,
    /// Expected lowercase hex SHA-256 of the model file.
    pub sha256: String,
}

/// What vetting decided about a render, as the controller hands it to the builders: the exact
/// workflow bytes that were vetted, their digest and the model pins.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// The workflow JSON, byte for byte as vetted (inline, or read from the ConfigMap).
    pub workflow: String,
    /// Lowercase hex SHA-256 of `workflow`, as the vetting report recorded it.
    pub workflow_sha256: String,
    /// Models the worker must verify before loading.
    pub model_pins: Vec<ModelPin>,
    /// `clusterIP:port` of the foundry's egress gateway when it has one (docs/egress.md): the
    /// worker gets it as `HTTPS_PROXY`/`HTTP_PROXY`. By address, so workers need no DNS.
    pub egress_proxy: Option<String>,
}

impl fmt::Debug for WorkerPlan {
    // Workflows hold users' prompts: show their size and digest, never their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPlan")
            .field("workflow_bytes", &self.workflow.len())
            .field("workflow_sha256", &self.workflow_sha256)
            .field("model_pins", &self.model_pins)
            .field("egress_proxy", &self.egress_proxy)
            .finish()
    }
}

/// Builds the render's worker Job. `worker_binary_image` is the operator's image (operator
/// configuration `worker.binaryImage`), whose binary the init container installs.
pub fn build_worker_job(
    foundry: &VideoFoundry,
    render: &RenderJob,
    plan: &WorkerPlan,
    worker_binary_image: &str,
) -> Result<Job, BuildError> {
    let namespace = shared_namespace(foundry, render)?;
    let foundry_name = foundry.name_any();
    let render_name = render.name_any();
    let gpus = render
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.gpu)
        .unwrap_or(0);
    let runtime_class_name = runtime_class_for(foundry, &render_name, gpus)?;
    let timeout = render
        .spec
        .timeout
        .as_deref()
        .map(|t| seconds("spec.timeout", t, i64::MAX))
        .unwrap_or_else(|| {
            seconds(
                "spec.workers.defaultTimeout",
                &foundry.spec.workers.default_timeout,
                i64::MAX,
            )
        })?;
    let ttl = match render.spec.ttl_after_finished.as_deref() {
        Some(ttl) => i32::try_from(seconds("spec.ttlAfterFinished", ttl, i64::from(i32::MAX))?)
            .unwrap_or(i32::MAX),
        None => DEFAULT_TTL_SECONDS,
    };
    let labels = labels::worker_labels(&foundry_name, &render_name);

    let pod = PodSpec {
        runtime_class_name,
        service_account_name: Some(names::worker_service_account(&foundry_name)),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        restart_policy: Some("Never".to_owned()),
        security_context: Some(pod_security_context()),
        init_containers: Some(vec![install_container(worker_binary_image)]),
        containers: vec![worker_container(foundry, render, plan, gpus)],
        volumes: Some(volumes(foundry, &render_name)),
        node_selector: (!foundry.spec.workers.node_selector.is_empty())
            .then(|| foundry.spec.workers.node_selector.clone()),
        tolerations: tolerations(foundry, gpus),
        ..PodSpec::default()
    };

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(names::worker_job(&render_name)),
            namespace: Some(namespace),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                WORKFLOW_SHA256_ANNOTATION.to_owned(),
                plan.workflow_sha256.to_ascii_lowercase(),
            )])),
            owner_references: Some(vec![controller_owner_ref(render, "RenderJob")?]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(render.spec.retries.unwrap_or(DEFAULT_RETRIES).max(0)),
            active_deadline_seconds: Some(timeout),
            ttl_seconds_after_finished: Some(ttl),
            completions: Some(1),
            parallelism: Some(1),
            pod_failure_policy: Some(pod_failure_policy()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// The RuntimeClass of a render: the GPU class for GPU renders (refused when unset), else the
/// sandbox's class; none only for `sandbox.type: none` in developer mode.
fn runtime_class_for(
    foundry: &VideoFoundry,
    render_name: &str,
    gpus: u32,
) -> Result<Option<String>, BuildError> {
    let sandbox = effective_sandbox(foundry)?;
    let spec = foundry.spec.sandbox.clone().unwrap_or_default();
    if sandbox == SandboxType::None {
        return Ok(None);
    }
    if gpus > 0 {
        return spec.gpu_runtime_class_name.map(Some).ok_or_else(|| {
            BuildError::GpuWithoutRuntimeClass {
                render: render_name.to_owned(),
                foundry: foundry.name_any(),
                gpus,
            }
        });
    }
    Ok(Some(match sandbox {
        SandboxType::Firecracker => spec
            .firecracker_runtime_class_name
            .unwrap_or_else(|| DEFAULT_FIRECRACKER_CLASS.to_owned()),
        _ => spec
            .runtime_class_name
            .unwrap_or_else(|| DEFAULT_GVISOR_CLASS.to_owned()),
    }))
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(WORKER_UID),
        run_as_group: Some(WORKER_UID),
        // Secret files are root-owned; fsGroup makes them group-readable by the worker (the
        // kubelet adds group read to defaultMode 0400). OnRootMismatch avoids a recursive chown
        // of large volumes on every start.
        fs_group: Some(WORKER_UID),
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

pub(crate) fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(WORKER_UID),
        run_as_group: Some(WORKER_UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

pub(crate) fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

fn worker_container(
    foundry: &VideoFoundry,
    render: &RenderJob,
    plan: &WorkerPlan,
    gpus: u32,
) -> Container {
    let mut env = vec![
        env_var("HOME", "/tmp"),
        env_var("TMPDIR", "/tmp"),
        env_var("VF_RENDER_DIR", RENDER_DIR),
    ];
    if let Some(command) = &foundry.spec.workers.comfyui_command {
        env.push(env_var("VF_COMFYUI_COMMAND", command));
    }
    if let Some(proxy) = &plan.egress_proxy {
        env.extend(super::egress_gateway::worker_proxy_env(
            foundry,
            &render.name_any(),
            proxy,
        ));
    }
    let mut mounts = vec![
        VolumeMount {
            name: BIN_VOLUME.to_owned(),
            mount_path: WORKER_BIN_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: SCRATCH_VOLUME.to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: RENDER_VOLUME.to_owned(),
            mount_path: RENDER_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    if foundry.spec.workers.models_volume.is_some() {
        env.push(env_var("VF_MODELS_DIR", MODELS_DIR));
        mounts.push(VolumeMount {
            name: MODELS_VOLUME.to_owned(),
            mount_path: MODELS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    Container {
        name: WORKER_CONTAINER.to_owned(),
        image: Some(foundry.spec.workers.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        // Replaces the image's entrypoint: the worker starts the image's ComfyUI itself.
        command: Some(vec![WORKER_BINARY.to_owned(), "worker".to_owned()]),
        termination_message_path: Some(TERMINATION_LOG.to_owned()),
        termination_message_policy: Some("File".to_owned()),
        env: Some(env),
        resources: Some(resources(foundry, render, gpus)),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// Copies the operator's static binary into the shared emptyDir; the only writable mount of
/// the pod besides scratch, and only in this container, which runs the operator's own image.
fn install_container(image: &str) -> Container {
    let quantity = |value: &str| Quantity(value.to_owned());
    Container {
        name: INSTALL_CONTAINER.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![
            OPERATOR_BINARY.to_owned(),
            "install-worker".to_owned(),
            WORKER_BIN_DIR.to_owned(),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m")),
                ("memory".to_owned(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("200m")),
                ("memory".to_owned(), quantity("128Mi")),
            ])),
            claims: None,
        }),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: BIN_VOLUME.to_owned(),
            mount_path: WORKER_BIN_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// Requests and limits: the render's cpu/memory (request = limit), else the foundry's
/// `workers.resources`, else the defaults; a missing limit takes the request, so every worker is
/// bounded. GPUs are limits of `nvidia.com/gpu` (Kubernetes sets the request equal).
fn resources(foundry: &VideoFoundry, render: &RenderJob, gpus: u32) -> ResourceRequirements {
    let defaults = foundry.spec.workers.resources.clone().unwrap_or_default();
    let mut requests = defaults.requests.unwrap_or_default();
    let mut limits = defaults.limits.unwrap_or_default();
    let asked = render.spec.resources.clone().unwrap_or_default();
    for (resource, value, fallback) in [
        ("cpu", asked.cpu, DEFAULT_CPU),
        ("memory", asked.memory, DEFAULT_MEMORY),
    ] {
        if let Some(value) = value {
            requests.insert(resource.to_owned(), value.clone());
            limits.insert(resource.to_owned(), value);
        }
        let request = requests
            .get(resource)
            .or_else(|| limits.get(resource))
            .cloned()
            .unwrap_or_else(|| Quantity(fallback.to_owned()));
        limits
            .entry(resource.to_owned())
            .or_insert_with(|| request.clone());
        requests.entry(resource.to_owned()).or_insert(request);
    }
    // GPUs come only from the render: a CPU render never holds one, whatever the defaults say.
    requests.remove(GPU_RESOURCE);
    limits.remove(GPU_RESOURCE);
    if gpus > 0 {
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(gpus.to_string()));
    }
    ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        claims: None,
    }
}

fn volumes(foundry: &VideoFoundry, render_name: &str) -> Vec<Volume> {
    let scratch_size = foundry
        .spec
        .workers
        .scratch_size
        .clone()
        .unwrap_or_else(|| Quantity(DEFAULT_SCRATCH_SIZE.to_owned()));
    let mut volumes = vec![
        Volume {
            name: BIN_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: Some(Quantity(BIN_VOLUME_SIZE.to_owned())),
            }),
            ..Volume::default()
        },
        Volume {
            name: SCRATCH_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: Some(scratch_size),
            }),
            ..Volume::default()
        },
        Volume {
            name: RENDER_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::render_secret(render_name)),
                default_mode: Some(0o400),
                optional: Some(false),
                items: None,
            }),
            ..Volume::default()
        },
    ];
    if let Some(models) = &foundry.spec.workers.models_volume {
        volumes.push(Volume {
            name: MODELS_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: models.persistent_volume_claim.claim_name.clone(),
                // Always read-only, whatever the spec says.
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    volumes
}

fn tolerations(foundry: &VideoFoundry, gpus: u32) -> Option<Vec<Toleration>> {
    let mut tolerations = foundry.spec.workers.tolerations.clone();
    let tolerates_gpu_taint = tolerations
        .iter()
        .any(|t| t.key.as_deref() == Some(GPU_RESOURCE));
    if gpus > 0 && !tolerates_gpu_taint {
        // GPU nodes are commonly tainted `nvidia.com/gpu:NoSchedule`.
        tolerations.push(Toleration {
            key: Some(GPU_RESOURCE.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoSchedule".to_owned()),
            ..Toleration::default()
        });
    }
    (!tolerations.is_empty()).then_some(tolerations)
}

/// A Job whose worker refused its inputs fails at once; evictions, preemptions and node drains
/// (`DisruptionTarget`) are retried without counting against `backoffLimit`.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "FailJob".to_owned(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(WORKER_CONTAINER.to_owned()),
                    operator: "In".to_owned(),
                    values: vec![EXIT_REJECTED, EXIT_INVALID_INPUT],
                }),
                // Kubernetes 1.28's schema marks the list as required; empty means "none".
                on_pod_conditions: Some(Vec::new()),
            },
            PodFailurePolicyRule {
                action: "Ignore".to_owned(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_owned(),
                    status: "True".to_owned(),
                }]),
            },
        ],
    }
}

/// A duration field as whole seconds (rounded up), between 1 and `max`.
fn seconds(field: &'static str, value: &str, max: i64) -> Result<i64, BuildError> {
    let parsed: Duration =
        duration::parse(value).map_err(|source| BuildError::InvalidDuration { field, source })?;
    let whole = parsed.as_secs() + u64::from(parsed.subsec_nanos() > 0);
    match i64::try_from(whole) {
        Ok(secs) if secs >= 1 && secs <= max => Ok(secs),
        _ => Err(BuildError::DurationOutOfRange {
            field,
            seconds: whole,
            max: u64::try_from(max).unwrap_or(u64::MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_and_refuse_zero() {
        assert_eq!(seconds("f", "30m", i64::MAX), Ok(1800));
        assert_eq!(seconds("f", "1500ms", i64::MAX), Ok(2));
        assert!(matches!(
            seconds("f", "0s", i64::MAX),
            Err(BuildError::DurationOutOfRange { .. })
        ));
        assert!(matches!(
            seconds("f", "999999h", i64::from(i32::MAX)),
            Err(BuildError::DurationOutOfRange { .. })
        ));
        assert!(matches!(
            seconds("f", "1d", i64::MAX),
            Err(BuildError::InvalidDuration { .. })
        ));
    }

    #[test]
    fn worker_plan_debug_hides_the_workflow() {
        let plan = WorkerPlan {
            workflow: r#"{"prompt":"a private prompt"}"#.to_owned(),
            workflow_sha256: "ab".repeat(32),
            model_pins: Vec::new(),
            egress_proxy: None,
        };
        assert!(!format!("{plan:?}").contains("private"));
    }
}

#[cfg(test)]
mod comfyui_command_tests {
    use super::*;

    #[test]
    fn the_foundrys_comfyui_command_reaches_the_worker_and_only_when_set() {
        let mut foundry: VideoFoundry = serde_json::from_value(serde_json::json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
            "metadata": {"name": "studio", "namespace": "render", "uid": "f-uid"},
            "spec": crate::crd::test_support::example_spec("videofoundry-production.yaml"),
        }))
        .unwrap();
        let render: RenderJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "r", "namespace": "render", "uid": "r-uid"},
            "spec": {"foundryRef": {"name": "studio"}, "userId": "7f1c0e1a-3b2d-4c5e-8f90-a1b2c3d4e5f6",
                     "workflow": {"inline": "{}"}}
        }))
        .unwrap();
        let plan = WorkerPlan {
            workflow: "{}".to_owned(),
            workflow_sha256: crate::vetting::workflow_sha256(b"{}"),
            model_pins: Vec::new(),
            egress_proxy: None,
        };
        let command = |foundry: &VideoFoundry| {
            let job = build_worker_job(foundry, &render, &plan, "operator:1").unwrap();
            let pod = job.spec.unwrap().template.spec.unwrap();
            pod.containers[0]
                .env
                .clone()
                .unwrap_or_default()
                .into_iter()
                .find(|e| e.name == "VF_COMFYUI_COMMAND")
                .and_then(|e| e.value)
        };
        assert_eq!(command(&foundry), None, "the image's own default applies");
        foundry.spec.workers.comfyui_command = Some("python3 /app/main.py --cpu".to_owned());
        assert_eq!(
            command(&foundry).as_deref(),
            Some("python3 /app/main.py --cpu")
        );
    }
}
