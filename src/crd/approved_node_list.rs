//! `ApprovedNodeList`: the security team's allowlist of ComfyUI nodes, custom-node repositories
//! and models, plus a blocklist. Block always wins over allow.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::conditions_schema;

/// The security team's allowlist of ComfyUI nodes, repositories and models, and a blocklist.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "videofoundry.dev",
    version = "v1alpha1",
    kind = "ApprovedNodeList",
    plural = "approvednodelists",
    shortname = "anl",
    category = "videofoundry",
    namespaced,
    status = "ApprovedNodeListStatus",
    doc = "An allowlist of ComfyUI nodes, custom-node repositories and models that RenderJobs may use, plus a blocklist that always wins.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.counts.nodes"}"#,
    printcolumn = r#"{"name":"Blocked","type":"integer","jsonPath":".status.counts.blocked"}"#,
    printcolumn = r#"{"name":"Reviewed-By","type":"string","jsonPath":".spec.reviewedBy","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedNodeListSpec {
    /// Who reviewed this list (a team or a person); recorded in audit entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub reviewed_by: Option<String>,

    /// When the list was last reviewed, as an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub last_updated: Option<String>,

    /// Whether ComfyUI's built-in node types (the list shipped with the operator) are allowed.
    /// Set to false to allow only the node types listed under `nodes`.
    #[serde(default = "default_true")]
    pub include_core_nodes: bool,

    /// Node types that are allowed, and where each custom one must come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2000))]
    pub nodes: Vec<NodeApproval>,

    /// Custom-node repositories that are allowed. In the UI format a node whose `aux_id` names
    /// an approved repository is allowed; in the API format only the class types listed for the
    /// repository under `nodes` are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub repositories: Vec<RepositoryApproval>,

    /// Models that workflows may load, by exact identifier or by glob pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2000))]
    pub models: Vec<ModelApproval>,

    /// Node types that are never allowed, whatever else allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2000))]
    pub blocked_nodes: Vec<String>,

    /// Free-form notes about this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub notes: Option<String>,
}

fn default_true() -> bool {
    true
}

/// One allowed node type and, for custom nodes, the source it must come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeApproval {
    /// The node's `class_type` (API format) or `type` (UI format), exactly as ComfyUI spells it.
    #[schemars(length(min = 1, max = 256))]
    pub class_type: String,

    /// Repository the node comes from, as `host/owner/repo` (e.g.
    /// `github.com/Kosinkadink/ComfyUI-VideoHelperSuite`). Required for custom nodes. In the UI
    /// format a node's `aux_id` (owner/repo) must match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub repository: Option<String>,

    /// Comfy registry id of the node pack. In the UI format a node's `cnr_id` must match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub registry_id: Option<String>,

    /// Pinned git commit (40 lowercase hex digits). In the UI format a node's `ver` must match it
    /// when present; in the API format it is passed to the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub commit: Option<String>,

    /// Pinned registry version (e.g. `1.6.1`); a node's `ver` must match it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub version: Option<String>,

    /// Branch the approval was made against (informational; imported from legacy lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub branch: Option<String>,

    /// Who approved this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub approved_by: Option<String>,

    /// When this entry was approved, as an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approved_at: Option<String>,

    /// Free-form notes about this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub notes: Option<String>,
}

/// One allowed custom-node repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryApproval {
    /// Repository as `host/owner/repo`; a leading `https://` and a trailing `.git` are ignored.
    #[schemars(length(min = 1, max = 512))]
    pub url: String,

    /// Branches or tags the repository may be used at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub allowed_refs: Vec<String>,

    /// Pinned git commit (40 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub commit: Option<String>,

    /// Who approved this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub approved_by: Option<String>,

    /// When this entry was approved, as an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approved_at: Option<String>,

    /// Free-form notes about this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub notes: Option<String>,
}

/// One allowed model: an exact identifier or a glob pattern (one of the two).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.pattern) != has(self.identifier)").message("set exactly one of pattern and identifier"))]
#[serde(rename_all = "camelCase")]
pub struct ModelApproval {
    /// Glob over model references (`*` within a path segment, `**` across segments), e.g.
    /// `huggingface.co/your-org/*`. A glob never matches a value that climbs out with `..`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub pattern: Option<String>,

    /// Exact model reference, e.g. `sd_xl_base_1.0.safetensors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub identifier: Option<String>,

    /// Expected SHA-256 of the model file (64 hex digits); the worker verifies it before loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub sha256: Option<String>,

    /// Where the model comes from (informational; imported from legacy lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub source: Option<String>,

    /// Who approved this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub approved_by: Option<String>,

    /// When this entry was approved, as an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub approved_at: Option<String>,

    /// Free-form notes about this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub notes: Option<String>,
}

/// Observed state of an ApprovedNodeList.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedNodeListStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` is True when every entry is well-formed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,

    /// How many entries of each kind the list holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ApprovedNodeListCounts>,

    /// Entries that are both allowed and blocked (blocking wins), by node type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden_by_block: Vec<String>,
}

/// Entry counts of an ApprovedNodeList.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedNodeListCounts {
    /// Allowed node types.
    pub nodes: u32,
    /// Allowed repositories.
    pub repositories: u32,
    /// Allowed models.
    pub models: u32,
    /// Blocked node types.
    pub blocked: u32,
}
