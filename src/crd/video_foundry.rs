//! `VideoFoundry`: one render platform installation (a tenant environment).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimVolumeSource, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::conditions_schema;
use super::{LocalObjectRef, SecretKeyRef};

/// The finalizer that runs the foundry's reclaim policy before it goes.
pub const FINALIZER: &str = "videofoundries.videofoundry.dev/cleanup";
/// Annotation by which an admin who accepts the loss lets a foundry go although a reclaim step
/// fails: the failing steps are skipped and what they left behind is named in an Event.
pub const SKIP_RECLAIM_ANNOTATION: &str = "videofoundry.dev/skip-reclaim";

/// One render platform installation: Postgres tenancy, Vault secrets, a hardened bucket,
/// default-deny worker networking and a gVisor sandbox, secure by default.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "videofoundry.dev",
    version = "v1alpha1",
    kind = "VideoFoundry",
    plural = "videofoundries",
    shortname = "vf",
    category = "videofoundry",
    namespaced,
    status = "VideoFoundryStatus",
    doc = "One render platform installation: the operator provisions Postgres roles and row-level security, Vault secrets and policies, a hardened S3 bucket with per-user prefixes, default-deny NetworkPolicies and a gVisor sandbox for workers.",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.executionMode"}"#,
    printcolumn = r#"{"name":"Installation","type":"string","jsonPath":".status.claimedBy"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"Relaxed","type":"string","jsonPath":".status.conditions[?(@.type=='SecurityRelaxed')].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.executionMode == 'developer' || has(self.vault)").message("vault is required unless executionMode is developer"))]
#[x_kube(validation = Rule::new("self.executionMode == 'developer' || !has(self.sandbox) || !has(self.sandbox.type) || self.sandbox.type != 'none'").message("sandbox.type none is only allowed in developer mode"))]
#[x_kube(validation = Rule::new("self.executionMode == 'developer' || !has(self.storage.encryption) || self.storage.encryption.mode != 'none'").message("storage.encryption.mode none is only allowed in developer mode"))]
#[x_kube(validation = Rule::new("!has(self.network) || !has(self.network.allowedHosts) || self.network.allowedHosts.all(h, self.network.allowedHosts.exists_one(o, o.host == h.host))").message("network.allowedHosts lists a host more than once"))]
#[x_kube(validation = Rule::new("!has(self.network) || !has(self.network.allowedHosts) || self.network.allowedHosts.all(h, !h.host.startsWith('*.') || !has(h.internalCidrs))").message("network.allowedHosts: internal address ranges can only be approved for an exact host name, not a wildcard"))]
// Fields that name where tenant data lives are immutable: changing one would orphan the data
// (schema, objects, secrets) under the old name and start empty under the new one.
#[x_kube(validation = Rule::new("self.database.databaseName == oldSelf.database.databaseName").message("database.databaseName is immutable: the foundry's schema and roles live in that database; to move, create a new VideoFoundry and migrate the data"))]
#[x_kube(validation = Rule::new("self.storage.bucket == oldSelf.storage.bucket && (has(self.storage.prefix) ? self.storage.prefix : '') == (has(oldSelf.storage.prefix) ? oldSelf.storage.prefix : '')").message("storage.bucket and storage.prefix are immutable: tenants' objects live under them; to move, copy the objects and create a new VideoFoundry"))]
#[x_kube(validation = Rule::new("!has(self.vault) || !has(oldSelf.vault) || (self.vault.kvMount == oldSelf.vault.kvMount && (has(self.vault.pathPrefix) ? self.vault.pathPrefix : '') == (has(oldSelf.vault.pathPrefix) ? oldSelf.vault.pathPrefix : ''))").message("vault.kvMount and vault.pathPrefix are immutable: the foundry's secrets live there; to move, copy the secrets and create a new VideoFoundry"))]
#[serde(rename_all = "camelCase")]
pub struct VideoFoundrySpec {
    /// The operator installation that reconciles this foundry (its `installation.className`),
    /// like `ingressClassName`. Unset: the installation configured as the default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub class_name: Option<String>,

    /// Security profile: `production` (default), `selfHostedProduction` or `developer`. The mode
    /// sets every default below; each weaker override is reported in `SecurityRelaxed`.
    #[serde(default)]
    pub execution_mode: ExecutionMode,

    /// The Postgres database the foundry's tenancy lives in.
    pub database: DatabaseSpec,

    /// Vault (or OpenBao) holding the foundry's secrets. Required unless the mode is `developer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultSpec>,

    /// In `developer` mode without Vault: a Kubernetes Secret that holds the foundry's secrets
    /// (reported as a relaxation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub developer_secret_ref: Option<LocalObjectRef>,

    /// The S3 bucket (or prefix of a shared bucket) for tenants' inputs and outputs.
    pub storage: StorageSpec,

    /// The sandbox every worker runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,

    /// Worker network isolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// Worker pods: image, resources, concurrency, placement.
    pub workers: WorkersSpec,

    /// Workflow vetting; the mode's default (`strict`, or `warn` in developer mode) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetting: Option<VettingSpec>,

    /// Audit log detail; `full` by default, `basic` in developer mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<AuditLogLevel>,

    /// Which custom nodes may run: `pinned` (only those pinned in an ApprovedNodeList; default)
    /// or `any` (developer mode default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_nodes: Option<CustomNodePolicy>,

    /// ApprovedNodeLists (same namespace) merged into the foundry's vetting policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub approved_node_lists: Vec<LocalObjectRef>,

    /// How long renders, audit entries and temporary files are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,

    /// A ResourceQuota (pods, GPUs) and LimitRange for the foundry's namespace, so the namespace
    /// is capped independently of the operator. None when unset (and removed when unset again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<NamespaceQuotaSpec>,
}

/// The namespace quota of a foundry (fits a namespace dedicated to one foundry).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceQuotaSpec {
    /// Running pods allowed besides the foundry's `workers.maxConcurrentRenders` workers (e.g.
    /// the platform backend); the quota's `pods` is their sum.
    #[serde(default)]
    #[schemars(range(max = 10000))]
    pub other_pods: u32,
    /// Most GPUs the namespace's pods may request at once (`requests.nvidia.com/gpu`); no GPU
    /// cap when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10000))]
    pub gpus: Option<u32>,
}

/// Security profile of a foundry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionMode {
    /// Managed production: every layer locked down.
    #[default]
    Production,
    /// Self-hosted production: like production, plus an admin egress allowlist.
    SelfHostedProduction,
    /// Local development: relaxed defaults, each one reported.
    Developer,
    /// A mode this version of the operator does not know; treated as invalid.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Where the database is and what happens to it when the foundry is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding the admin connection URL used to provision (never given to workers).
    pub connection_secret_ref: SecretKeyRef,
    /// Name of the foundry's database.
    #[serde(default = "default_database_name")]
    #[schemars(regex(pattern = "^[a-z_][a-z0-9_]{0,62}$"))]
    pub database_name: String,
    /// What happens to everything the operator made for the foundry when it is deleted:
    /// `Retain` (default) keeps roles, schema, Vault secrets, policies and auth roles and the
    /// bucket statements (re-creating a foundry of the same name adopts them); `Delete` revokes
    /// dynamic credentials and removes them (objects in the bucket: `storage.objectReclaimPolicy`).
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

fn default_database_name() -> String {
    "videofoundry".to_owned()
}

/// What happens to external state when its foundry is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep it.
    #[default]
    Retain,
    /// Drop it.
    Delete,
    /// A policy this version of the operator does not know; treated as `Retain`.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// The Vault (or OpenBao) server and the foundry's place in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSpec {
    /// Server address, e.g. `https://vault.vault.svc:8200`.
    #[schemars(regex(pattern = "^https?://[^\\s]+$"), length(max = 512))]
    pub address: String,
    /// How the operator logs in.
    pub auth: VaultAuth,
    /// Mount of the KV version 2 engine.
    #[serde(default = "default_kv_mount")]
    #[schemars(length(min = 1, max = 128))]
    pub kv_mount: String,
    /// Path under the KV mount; `videofoundry/<namespace>/<name>` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"),
        length(max = 512)
    )]
    pub path_prefix: Option<String>,
    /// How often generated secrets are rotated (`2160h` = 90 days).
    #[serde(default = "default_rotation_period")]
    #[schemars(regex(pattern = "^([0-9]{1,6}(h|m|s|ms))+$"))]
    pub rotation_period: String,
    /// Secret key holding the PEM CA bundle that signs the Vault server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Service account of the platform backend in this namespace: a Kubernetes auth role binds
    /// it to the foundry's read-only backend policy (tokens valid 1 h). No role when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    pub backend_service_account: Option<String>,
    /// Kubernetes auth mount that the backend's role is written to; the operator's own
    /// `auth.kubernetes.mountPath` (or `kubernetes` when it logs in with a token) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub backend_auth_mount_path: Option<String>,
}

fn default_kv_mount() -> String {
    "secret".to_owned()
}

fn default_rotation_period() -> String {
    "2160h".to_owned()
}

/// Vault login: Kubernetes auth (the operator's service-account token), or a token from a Secret
/// (developer mode only, reported as a relaxation). Exactly one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.kubernetes) != has(self.tokenSecretRef)").message("set exactly one of kubernetes and tokenSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// Kubernetes auth method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// Secret key holding a Vault token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// Vault's Kubernetes auth method.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Vault role the operator logs in as.
    #[schemars(length(min = 1, max = 128))]
    pub role: String,
    /// Mount path of the auth method.
    #[serde(default = "default_kubernetes_mount")]
    #[schemars(length(min = 1, max = 128))]
    pub mount_path: String,
}

fn default_kubernetes_mount() -> String {
    "kubernetes".to_owned()
}

/// The foundry's object storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// S3 endpoint URL, e.g. `https://s3.us-east-1.amazonaws.com`.
    #[schemars(regex(pattern = "^https?://[^\\s]+$"), length(max = 512))]
    pub endpoint: String,
    /// Region of the bucket.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Bucket name.
    #[schemars(regex(pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    pub bucket: String,
    /// Key prefix of this foundry when several share one bucket (e.g. `studio-a/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = "^([a-z0-9][a-z0-9._-]*/)*$"), length(max = 256))]
    pub prefix: String,
    /// Path-style addressing (needed by most self-hosted gateways).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret with the operator's provisioning credentials (`accessKeyId`, `secretAccessKey`).
    pub credentials_secret_ref: LocalObjectRef,
    /// ARN of the platform backend's identity, confined by bucket policy to the foundry's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = "^arn:[a-z-]+:iam::[0-9]*:(user|role)/[A-Za-z0-9+=,.@_/-]+$"),
        length(max = 512)
    )]
    pub tenant_principal: Option<String>,
    /// Default encryption of stored objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// Deny requests that do not use TLS (`aws:SecureTransport`). Turning it off is a relaxation.
    #[serde(default = "default_true")]
    pub require_tls: bool,
    /// Keep object versions. Turning it off is a relaxation.
    #[serde(default = "default_true")]
    pub versioning: bool,
    /// Block every form of public access. Turning it off is a relaxation.
    #[serde(default = "default_true")]
    pub block_public_access: bool,
    /// Days after which objects under `temp/` expire.
    #[serde(default = "default_temp_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub temp_expiration_days: u32,
    /// Lifetime of the presigned URLs handed to the platform (`1h`); worker URLs expire with the
    /// render deadline.
    #[serde(default = "default_presign_ttl")]
    #[schemars(regex(pattern = "^([0-9]{1,6}(h|m|s|ms))+$"))]
    pub presign_ttl: String,
    /// Whether deleting the foundry with `database.reclaimPolicy: Delete` also deletes every
    /// object (all versions) under the foundry's prefix. `Retain` (default) keeps them: tenant
    /// files are never deleted as a side effect. Ignored under `reclaimPolicy: Retain`.
    #[serde(default, skip_serializing_if = "is_retain")]
    pub object_reclaim_policy: ReclaimPolicy,
}

fn is_retain(policy: &ReclaimPolicy) -> bool {
    *policy == ReclaimPolicy::Retain
}

fn default_true() -> bool {
    true
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_temp_days() -> u32 {
    7
}

fn default_presign_ttl() -> String {
    "1h".to_owned()
}

/// Server-side encryption of stored objects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.mode != 'aws:kms' || has(self.kmsKeyId)").message("kmsKeyId is required with mode aws:kms"))]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// `AES256`, `aws:kms` or (developer mode only) `none`.
    pub mode: EncryptionMode,
    /// KMS key id or ARN, for `aws:kms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub kms_key_id: Option<String>,
    /// Sign encryption headers into every upload URL, for providers without default bucket
    /// encryption.
    #[serde(default)]
    pub per_object: bool,
}

/// Server-side encryption algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EncryptionMode {
    /// SSE-S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
    /// No encryption (developer mode only).
    #[serde(rename = "none")]
    None,
    /// A mode this version of the operator does not know; treated as invalid.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// The sandbox every worker pod runs in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// `gvisor` (default), `firecracker` (Kata Containers with Firecracker) or, in developer mode
    /// only, `none`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<SandboxType>,
    /// RuntimeClass of gVisor (handler `runsc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub runtime_class_name: Option<String>,
    /// RuntimeClass of gVisor with nvproxy, used when a RenderJob asks for GPUs. Without it GPU
    /// renders are refused (plain gVisor cannot see GPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub gpu_runtime_class_name: Option<String>,
    /// RuntimeClass of Kata Containers with Firecracker, for `type: firecracker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub firecracker_runtime_class_name: Option<String>,
}

/// Kind of sandbox.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SandboxType {
    /// gVisor (`runsc`).
    Gvisor,
    /// Kata Containers with Firecracker micro-VMs.
    Firecracker,
    /// No sandbox (developer mode only).
    None,
    /// A type this version of the operator does not know; treated as invalid.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Worker network isolation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// `blocked` (only storage and the artifact repository), `restricted` (plus `allowedEgress`)
    /// or `open`; the mode's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressMode>,
    /// Extra destinations workers may reach in `restricted` mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_egress: Vec<EgressRule>,
    /// The artifact repository (models, custom nodes) workers may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<EgressRule>,
    /// CIDRs of the storage endpoint; workers may reach them on `storageEndpointPorts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub storage_endpoint_cidrs: Vec<String>,
    /// Ports of the storage endpoint (443 when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub storage_endpoint_ports: Vec<u16>,
    /// Allow workers to query the cluster DNS (kube-dns in kube-system). Off by default in the
    /// production modes, where DNS could carry data out; turning it on there is a relaxation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_dns: Option<bool>,
    /// Hosts workers may reach by name in `restricted` egress, through the foundry's egress
    /// gateway (an HTTP CONNECT proxy that checks the name, the address it resolves to and the
    /// TLS SNI, and logs every connection; see docs/egress.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_hosts: Vec<AllowedHost>,
    /// How `allowedHosts` is enforced: `gateway` (default; the foundry's egress gateway, any
    /// CNI) or `cilium` (a `CiliumNetworkPolicy` with `toFQDNs` instead of the gateway; needs
    /// Cilium, whose CRD the operator checks for). Trade-offs in docs/egress.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_enforcement: Option<HostEnforcement>,
}

/// Who enforces `network.allowedHosts`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HostEnforcement {
    /// The operator's egress gateway (HTTP CONNECT proxy) per foundry.
    #[default]
    Gateway,
    /// Cilium's DNS proxy, through a `CiliumNetworkPolicy` with `toFQDNs`.
    Cilium,
}

/// A host workers may reach through the egress gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedHost {
    /// A DNS name (`huggingface.co`), or `*.` and a name for every subdomain of it
    /// (`*.hf.co` matches `cdn-lfs.hf.co`, not `hf.co`). Lowercase; no IP addresses.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
        )
    )]
    pub host: String,
    /// TCP ports (443 when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<u16>,
    /// Internal address ranges this host may resolve to (e.g. `10.50.0.0/16` for
    /// `models.internal`). Without them the gateway refuses every private, loopback, link-local,
    /// CGNAT, unique-local and cloud-metadata address the name resolves to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    pub internal_cidrs: Vec<String>,
}

impl AllowedHost {
    /// The ports in force: `ports`, or 443.
    pub fn effective_ports(&self) -> Vec<u16> {
        if self.ports.is_empty() {
            vec![443]
        } else {
            self.ports.clone()
        }
    }
}

/// Worker egress profile.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum EgressMode {
    /// Only the storage endpoint and the artifact repository.
    Blocked,
    /// Plus the admin's `allowedEgress`.
    Restricted,
    /// Anything (developer mode; reported).
    Open,
    /// A mode this version of the operator does not know; treated as invalid.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// A destination workers may reach: a CIDR and its ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// IPv4 or IPv6 CIDR, e.g. `10.20.0.0/16`.
    #[schemars(length(min = 1, max = 64))]
    pub cidr: String,
    /// TCP ports; every port when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<u16>,
}

/// Worker pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkersSpec {
    /// Worker image; production modes require a digest (`...@sha256:<64 hex>`).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Default requests and limits of a worker container; RenderJob resources override them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Renders of this foundry that may run at once.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_renders: u32,
    /// Timeout of a render that sets none (`1h`).
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = "^([0-9]{1,6}(h|m|s|ms))+$"))]
    pub default_timeout: String,
    /// Read-only volume holding the models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_volume: Option<ModelsVolume>,
    /// The command that starts ComfyUI inside `image`, split on whitespace (no shell); the
    /// worker adds the listen address, port, folders and model paths. Default
    /// `python3 /opt/comfyui/main.py` (the image's own `VF_COMFYUI_COMMAND` when it sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub comfyui_command: Option<String>,
    /// Size limit of the worker's scratch `/tmp` (`10Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_size: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Node labels worker pods must land on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of worker pods (e.g. for GPU nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,
}

fn default_max_concurrent() -> u32 {
    20
}

fn default_timeout() -> String {
    "1h".to_owned()
}

/// The read-only models volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsVolume {
    /// A PersistentVolumeClaim, always mounted read-only.
    pub persistent_volume_claim: PersistentVolumeClaimVolumeSource,
}

/// Workflow vetting settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VettingSpec {
    /// `strict` rejects any violation; `warn` records violations and allows the render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<VettingMode>,
}

/// How vetting violations are treated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VettingMode {
    /// Any violation rejects the render.
    Strict,
    /// Violations are recorded; the render is allowed.
    Warn,
    /// A mode this version of the operator does not know; treated as `strict`.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Audit log detail.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuditLogLevel {
    /// Every action with its details.
    Full,
    /// Actions without details.
    Basic,
    /// A level this version of the operator does not know; treated as `full`.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Which custom nodes may run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CustomNodePolicy {
    /// Only custom nodes listed in an ApprovedNodeList.
    Pinned,
    /// Any custom node (developer mode; reported).
    Any,
    /// A policy this version of the operator does not know; treated as `pinned`.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Retention of records and files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Days render records and non-current object versions are kept.
    #[serde(default = "default_render_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub render_days: u32,
    /// Days audit entries are kept.
    #[serde(default = "default_audit_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub audit_days: u32,
    /// Days temporary files are kept.
    #[serde(default = "default_temp_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub temp_days: u32,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            render_days: default_render_days(),
            audit_days: default_audit_days(),
            temp_days: default_temp_days(),
        }
    }
}

fn default_render_days() -> u32 {
    90
}

fn default_audit_days() -> u32 {
    365
}

/// Observed state of a VideoFoundry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoFoundryStatus {
    /// The class name of the installation that reconciles this foundry; other installations
    /// leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `DatabaseReady`, `SecretsReady`, `StorageReady`, `NetworkIsolated`,
    /// `SandboxReady` and `SecurityRelaxed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The security settings in force after the mode's defaults and the spec's overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_security: Option<EffectiveSecurity>,
    /// When generated secrets were last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<Time>,
    /// When the next rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<Time>,
}

/// The security settings in force, for auditors (`kubectl get vf -o yaml`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSecurity {
    /// The execution mode.
    pub execution_mode: ExecutionMode,
    /// Where secrets are kept: `vault` or `kubernetesSecret`.
    pub secrets_backend: SecretsBackend,
    /// Worker egress.
    pub egress: EgressMode,
    /// Whether workers may query cluster DNS.
    pub allow_dns: bool,
    /// Workflow vetting.
    pub vetting: VettingMode,
    /// Sandbox type.
    pub sandbox: SandboxType,
    /// Audit log detail.
    pub audit_log: AuditLogLevel,
    /// Custom node policy.
    pub custom_nodes: CustomNodePolicy,
    /// Storage requires TLS.
    pub storage_require_tls: bool,
    /// Storage keeps versions.
    pub storage_versioning: bool,
    /// Storage blocks public access.
    pub storage_block_public_access: bool,
    /// Every setting weaker than the mode's production default, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relaxations: Vec<String>,
}

/// Where a foundry's secrets are kept.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SecretsBackend {
    /// Vault or OpenBao.
    Vault,
    /// A Kubernetes Secret (developer mode only).
    KubernetesSecret,
    /// A backend this version of the operator does not know.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}
