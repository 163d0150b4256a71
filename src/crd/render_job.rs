//! `RenderJob`: one render of one tenant's workflow, vetted, recorded and sandboxed.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::conditions_schema;
use super::{ConfigMapKeyRef, LocalObjectRef};

/// One render: a ComfyUI workflow run for one tenant user in a gVisor sandbox with no internet
/// egress. The spec is immutable after creation; delete and re-create to change it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "videofoundry.dev",
    version = "v1alpha1",
    kind = "RenderJob",
    plural = "renderjobs",
    shortname = "rj",
    category = "videofoundry",
    namespaced,
    status = "RenderJobStatus",
    doc = "One render of a ComfyUI workflow for one tenant user: vetted against the foundry's ApprovedNodeLists, recorded in Postgres under the user's identity and run as a sandboxed batch Job.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"Foundry","type":"string","jsonPath":".spec.foundryRef.name"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.userId","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("RenderJob spec is immutable; delete and re-create the RenderJob to change it"))]
#[serde(rename_all = "camelCase")]
pub struct RenderJobSpec {
    /// The VideoFoundry (same namespace) that runs this render. Never changes.
    #[x_kube(validation = Rule::new("self == oldSelf").message("foundryRef is immutable"))]
    pub foundry_ref: LocalObjectRef,

    /// The tenant user (a lowercase UUID). All storage and database access of the render is
    /// scoped to this user. Never changes.
    #[x_kube(validation = Rule::new("self == oldSelf").message("userId is immutable"))]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub user_id: String,

    /// The project (a lowercase UUID) the render belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub project_id: Option<String>,

    /// The ComfyUI workflow, in the API or the UI format: inline, or from a ConfigMap.
    pub workflow: WorkflowSource,

    /// Storage keys of the render's inputs; each must lie under `users/<userId>/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 1024)))]
    pub inputs: Vec<String>,

    /// File names (relative paths such as `video.mp4` or `frames/0001.png`) the worker may
    /// upload under the render's output prefix (each segment starts with a letter, digit or `_`,
    /// so `.` and `..` cannot appear), one presigned upload URL each. When unset the
    /// render gets the 16 generic slots `output-01` … `output-16`
    /// ([`DEFAULT_OUTPUT_SLOTS`]); the worker fills them in the order ComfyUI reports its files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 255),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
        )
    )]
    pub outputs: Vec<String>,

    /// Compute the render asks for. Defaults come from the foundry's `workers.resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<RenderResources>,

    /// Wall-clock limit of the render (`30m`, `2h`); the foundry's `workers.defaultTimeout` when
    /// unset. Becomes the Job's `activeDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]{1,6}(h|m|s|ms))+$"))]
    pub timeout: Option<String>,

    /// How many times a failed render is retried (the Job's `backoffLimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<i32>,

    /// How long the finished Job is kept before Kubernetes deletes it (`24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]{1,6}(h|m|s|ms))+$"))]
    pub ttl_after_finished: Option<String>,
}

/// Number of generic output slots a render that declares no `spec.outputs` gets.
pub const DEFAULT_OUTPUT_SLOTS: usize = 16;

/// The output names of a render: its declared `spec.outputs`, else `output-01` … `output-16`.
pub fn output_names(spec: &RenderJobSpec) -> Vec<String> {
    if spec.outputs.is_empty() {
        (1..=DEFAULT_OUTPUT_SLOTS)
            .map(|slot| format!("output-{slot:02}"))
            .collect()
    } else {
        spec.outputs.clone()
    }
}

/// Annotation that cancels a queued or running render (any value; the spec is immutable, so
/// cancelling is an annotation): `kubectl annotate rj NAME videofoundry.dev/cancel=true`.
pub const CANCEL_ANNOTATION: &str = "videofoundry.dev/cancel";

/// Annotation that lets a RenderJob being deleted go without recording its deletion in the
/// foundry's database (for an admin who accepts that the record stays stale when the database
/// is gone for good).
pub const SKIP_RECORD_ANNOTATION: &str = "videofoundry.dev/skip-database-record";

/// Finalizer that records a render's deletion in the database before the object goes.
pub const FINALIZER: &str = "renderjobs.videofoundry.dev/cleanup";

/// Where the workflow comes from: exactly one of `inline` and `configMapRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.inline) != has(self.configMapRef)").message("set exactly one of inline and configMapRef"))]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSource {
    /// The workflow JSON as a string (API or UI format), at most 1.5 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1572864))]
    pub inline: Option<String>,

    /// A ConfigMap key holding the workflow JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// Compute resources of one render.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderResources {
    /// Number of GPUs (`nvidia.com/gpu`). A GPU render needs the foundry's
    /// `sandbox.gpuRuntimeClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub gpu: Option<u32>,

    /// CPU request and limit (e.g. `4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,

    /// Memory request and limit (e.g. `16Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// Lifecycle phase of a render.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RenderPhase {
    /// Accepted, not yet vetted.
    #[default]
    Pending,
    /// Vetting refused the workflow; no Job was or will be created.
    Rejected,
    /// Vetted and recorded; the Job is waiting to run.
    Queued,
    /// The worker pod runs.
    Running,
    /// The render finished and its outputs are listed.
    Succeeded,
    /// The render failed after its retries.
    Failed,
    /// The render was cancelled.
    Cancelled,
    /// A phase this version of the operator does not know.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Verdict of workflow vetting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VettingVerdict {
    /// Every node, repository and model is allowed.
    Approved,
    /// Violations were found in `warn` mode; the render is allowed and the violations recorded.
    ApprovedWithWarnings,
    /// Violations were found in `strict` mode; the render never reaches a Job.
    Rejected,
    /// A verdict this version of the operator does not know.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// The result of vetting the workflow, as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VettingStatus {
    /// The verdict.
    pub verdict: VettingVerdict,
    /// The policy the workflow was checked against.
    pub policy: VettingPolicyRef,
    /// Violations, in a stable order (at most 100 are listed; `violationCount` has the total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub violations: Vec<Violation>,
    /// Total number of violations found.
    #[serde(default)]
    pub violation_count: u32,
    /// Number of nodes checked, subgraph nodes included.
    pub checked_nodes: u32,
    /// SHA-256 of the workflow bytes that were vetted.
    pub workflow_sha256: String,
    /// Models the workflow uses that an ApprovedNodeList pins by SHA-256: the worker verifies
    /// each before ComfyUI may load it (at most 256 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub model_pins: Vec<ModelPinStatus>,
}

/// A model pinned by digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPinStatus {
    /// The model as the workflow names it.
    pub identifier: String,
    /// Its lowercase hex SHA-256.
    pub sha256: String,
}

/// The effective policy a workflow was checked against: the foundry and its lists, each at the
/// generation used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VettingPolicyRef {
    /// Name of the VideoFoundry whose policy applied.
    pub name: String,
    /// The foundry's `metadata.generation` when checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The vetting mode in force (`strict` or `warn`).
    pub mode: super::video_foundry::VettingMode,
    /// The ApprovedNodeLists merged into the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_node_lists: Vec<PolicyRef>,
}

/// An ApprovedNodeList at the generation the workflow was checked against.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Name of the ApprovedNodeList.
    pub name: String,
    /// Its `metadata.generation` when checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// One vetting violation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// The node's id in the workflow (subgraph nodes as `<instance>/<node>`); empty for
    /// workflow-wide violations.
    pub node_id: String,
    /// The node's type, when known.
    #[serde(default)]
    pub class_type: String,
    /// Stable rule id, e.g. `node-not-approved`, `url-input`, `cycle`.
    pub rule: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Observed state of a RenderJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderJobStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: RenderPhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Vetted`, `Scheduled`, `Complete` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The vetting report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetting: Option<VettingStatus>,
    /// Name of the worker Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the worker started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the render finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Storage prefix the outputs are written under (`users/<userId>/renders/<name>/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    /// Storage keys of the outputs, listed by the operator after the render.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub outputs: Vec<String>,
}
