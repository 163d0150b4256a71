//! Pure builders of the Kubernetes objects the operator applies for a foundry and its renders:
//! the sandboxed worker Job, its per-render Secret and ServiceAccount, the namespace's
//! NetworkPolicies, the RuntimeClass expectation and an optional quota. No client, no I/O: each
//! builder maps validated inputs to objects, so the controllers can call them and tests can prove
//! what reaches the cluster.
//!
//! Apply order for a foundry namespace (see `docs/sandbox.md`): worker ServiceAccount →
//! NetworkPolicies (default deny, then egress allowances) → ResourceQuota/LimitRange → (check the
//! RuntimeClass) → per render: Secret → Job. The NetworkPolicies must exist before any Job, so a
//! worker never runs a moment without isolation (DESIGN.md §4.3).

pub mod cilium_policy;
pub mod egress_gateway;
pub mod labels;
pub mod names;
pub mod network_policy;
pub mod quota;
pub mod render_secret;
pub mod runtime_class;
pub mod service_account;
pub mod worker_job;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::{RenderJob, VideoFoundry};

pub use render_secret::{PresignedObject, PresignedUrl, StorageGrant};
pub use worker_job::{ModelPin, WorkerPlan};

/// Why a builder refused its inputs. Messages name the field to fix and never carry a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// The object has no `metadata.namespace`.
    #[error("{kind} {name} has no namespace; builders need objects read from the API server")]
    MissingNamespace {
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
    },
    /// The object has no `metadata.uid` (needed for owner references).
    #[error("{kind} {name} has no uid; builders need objects read from the API server")]
    MissingUid {
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
    },
    /// The RenderJob does not belong to the given foundry.
    #[error(
        "RenderJob {render} refers to foundry {referenced} in namespace {render_namespace}, not to {foundry} in {foundry_namespace}"
    )]
    ForeignFoundry {
        /// Name of the RenderJob.
        render: String,
        /// Namespace of the RenderJob.
        render_namespace: String,
        /// `spec.foundryRef.name` of the RenderJob.
        referenced: String,
        /// Name of the foundry given.
        foundry: String,
        /// Namespace of the foundry given.
        foundry_namespace: String,
    },
    /// A GPU render on a foundry without `sandbox.gpuRuntimeClassName`.
    #[error(
        "RenderJob {render} asks for {gpus} GPU(s) but foundry {foundry} sets no sandbox.gpuRuntimeClassName; plain gVisor cannot see GPUs, so the render is refused rather than run outside the sandbox (set sandbox.gpuRuntimeClassName to a gVisor class with nvproxy, or drop resources.gpu)"
    )]
    GpuWithoutRuntimeClass {
        /// Name of the RenderJob.
        render: String,
        /// Name of the foundry.
        foundry: String,
        /// GPUs asked for.
        gpus: u32,
    },
    /// `sandbox.type: none` outside developer mode.
    #[error(
        "foundry {foundry} sets sandbox.type none outside developer mode; workers must run in gVisor or Firecracker"
    )]
    UnsandboxedOutsideDeveloperMode {
        /// Name of the foundry.
        foundry: String,
    },
    /// An enum value this operator version does not know.
    #[error("foundry {foundry}: unknown value of {field}; upgrade the operator or fix the field")]
    UnknownSetting {
        /// Name of the foundry.
        foundry: String,
        /// Path of the field, e.g. `spec.sandbox.type`.
        field: &'static str,
    },
    /// A duration field that does not parse.
    #[error("{field}: {source}")]
    InvalidDuration {
        /// Path of the field.
        field: &'static str,
        /// The parse error (holds the rejected text, never a secret).
        #[source]
        source: crate::crd::duration::InvalidDuration,
    },
    /// A duration that is zero or too long for its Kubernetes field.
    #[error("{field}: {seconds}s is out of range (1s to {max}s)")]
    DurationOutOfRange {
        /// Path of the field.
        field: &'static str,
        /// The duration in seconds.
        seconds: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A CIDR of the network settings that does not parse.
    #[error("{field}: {cidr:?} is not an IPv4 or IPv6 CIDR such as 10.20.0.0/16")]
    InvalidCidr {
        /// Path of the field.
        field: String,
        /// The rejected text.
        cidr: String,
    },
    /// The workflow bytes given to the builder are not the bytes that were vetted.
    #[error(
        "the workflow to mount has sha256 {actual} but vetting approved {vetted}; refusing to run bytes that were not vetted"
    )]
    WorkflowDigestMismatch {
        /// Digest recorded by vetting.
        vetted: String,
        /// Digest of the bytes given.
        actual: String,
    },
    /// A presigned object key outside the render's user prefix.
    #[error(
        "storage key {key:?} is outside users/{user_id}/ (or escapes it); workers only get URLs for their own user's objects"
    )]
    KeyOutsideUserPrefix {
        /// The offending key (a key, never a URL).
        key: String,
        /// The render's user.
        user_id: String,
    },
    /// Serialising a Secret file failed.
    #[error("could not serialise {file}: {message}")]
    Serialize {
        /// The Secret file.
        file: &'static str,
        /// The serializer's message.
        message: String,
    },
}

impl BuildError {
    /// PascalCase reason for conditions, Events and metric labels (bounded set).
    pub fn category(&self) -> &'static str {
        match self {
            Self::MissingNamespace { .. } | Self::MissingUid { .. } => "ObjectIncomplete",
            Self::ForeignFoundry { .. } => "ForeignFoundry",
            Self::GpuWithoutRuntimeClass { .. } => "GpuRuntimeClassMissing",
            Self::UnsandboxedOutsideDeveloperMode { .. } => "SandboxRequired",
            Self::UnknownSetting { .. } => "UnknownSetting",
            Self::InvalidDuration { .. } | Self::DurationOutOfRange { .. } => "InvalidDuration",
            Self::InvalidCidr { .. } => "InvalidCidr",
            Self::WorkflowDigestMismatch { .. } => "WorkflowDigestMismatch",
            Self::KeyOutsideUserPrefix { .. } => "StorageKeyOutsideUserPrefix",
            Self::Serialize { .. } => "SerializeFailed",
        }
    }

    /// Whether retrying with the same inputs cannot help (every build error is a spec problem).
    pub fn is_permanent(&self) -> bool {
        true
    }
}

/// The namespace of a namespaced object, or a clear error.
pub(crate) fn namespace_of<K: Resource>(
    object: &K,
    kind: &'static str,
) -> Result<String, BuildError> {
    object
        .namespace()
        .ok_or_else(|| BuildError::MissingNamespace {
            kind,
            name: object.name_any(),
        })
}

/// Owner reference to `owner` with `controller` and `blockOwnerDeletion` set, so the garbage
/// collector deletes children with their parent and `kubectl` shows who manages them.
pub(crate) fn controller_owner_ref<K>(
    owner: &K,
    kind: &'static str,
) -> Result<OwnerReference, BuildError>
where
    K: Resource<DynamicType = ()>,
{
    let mut reference = owner
        .controller_owner_ref(&())
        .ok_or_else(|| BuildError::MissingUid {
            kind,
            name: owner.name_any(),
        })?;
    // kube leaves it unset; set it so the owner is not deleted before its children.
    reference.block_owner_deletion = Some(true);
    Ok(reference)
}

/// Checks that `render` belongs to `foundry` (same namespace, `foundryRef` names it) and returns
/// the namespace.
pub(crate) fn shared_namespace(
    foundry: &VideoFoundry,
    render: &RenderJob,
) -> Result<String, BuildError> {
    let foundry_namespace = namespace_of(foundry, "VideoFoundry")?;
    let render_namespace = namespace_of(render, "RenderJob")?;
    if foundry_namespace != render_namespace || render.spec.foundry_ref.name != foundry.name_any() {
        return Err(BuildError::ForeignFoundry {
            render: render.name_any(),
            render_namespace,
            referenced: render.spec.foundry_ref.name.clone(),
            foundry: foundry.name_any(),
            foundry_namespace,
        });
    }
    Ok(render_namespace)
}

/// Namespace-level objects of a foundry, in the order they must be applied.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundryObjects {
    /// The worker ServiceAccount (no token automount).
    pub service_account: k8s_openapi::api::core::v1::ServiceAccount,
    /// Default deny, then egress allowances: applied before any worker Job.
    pub network_policies: Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// The optional ResourceQuota (when quota options are given).
    pub resource_quota: Option<k8s_openapi::api::core::v1::ResourceQuota>,
    /// The optional LimitRange (when quota options are given and workers set resources).
    pub limit_range: Option<k8s_openapi::api::core::v1::LimitRange>,
}

/// Builds every namespace-level object of a foundry. `quota`: `Some` to also build the
/// ResourceQuota and LimitRange.
pub fn build_foundry_objects(
    foundry: &VideoFoundry,
    quota: Option<&quota::QuotaOptions>,
) -> Result<FoundryObjects, BuildError> {
    let (resource_quota, limit_range) = match quota {
        Some(options) => (
            Some(quota::build_resource_quota(foundry, options)?),
            quota::build_limit_range(foundry)?,
        ),
        None => (None, None),
    };
    Ok(FoundryObjects {
        service_account: service_account::build_worker_service_account(foundry)?,
        network_policies: network_policy::build_network_policies(foundry)?,
        resource_quota,
        limit_range,
    })
}

/// The objects of one render, in the order they must be applied (the Secret before the Job that
/// mounts it). `Debug` is deliberately not derived: the Secret holds live presigned URLs.
#[derive(Clone, PartialEq)]
pub struct RenderObjects {
    /// The per-render Secret.
    pub secret: k8s_openapi::api::core::v1::Secret,
    /// The worker Job.
    pub job: k8s_openapi::api::batch::v1::Job,
}

/// Builds the Secret and the Job of one render; `worker_binary_image` is the operator
/// configuration's `worker.binaryImage`.
pub fn build_render_objects(
    foundry: &VideoFoundry,
    render: &RenderJob,
    plan: &WorkerPlan,
    grant: &StorageGrant,
    worker_binary_image: &str,
) -> Result<RenderObjects, BuildError> {
    Ok(RenderObjects {
        secret: render_secret::build_render_secret(foundry, render, plan, grant)?,
        job: worker_job::build_worker_job(foundry, render, plan, worker_binary_image)?,
    })
}
