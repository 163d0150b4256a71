//! `plan`: everything the operator would create or check for a set of manifests, computed
//! offline by the operator's own builders (no cluster, no backend): the Kubernetes objects, the
//! database roles, grants and row-level-security policies, the bucket policy, the Vault
//! policies and auth roles, and each render's vetting verdict. Secret values never appear: the
//! render Secret's data and the application password are redacted, and presigned URLs are
//! placeholders (they are signed at admission).

pub mod input;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use serde::Serialize;
use serde_json::Value;

use self::input::{Invalid, Manifests, Skipped, Sourced};
use crate::controller::render_job::{admit, vet};
use crate::controller::video_foundry::backends::{BACKEND_TOKEN_TTL, backend_auth_mount};
use crate::crd::render_job::{VettingStatus, VettingVerdict, output_names};
use crate::crd::video_foundry::EffectiveSecurity;
use crate::crd::{ApprovedNodeList, RenderJob, VideoFoundry};
use crate::resources::render_secret::StorageGrant;
use crate::resources::runtime_class::expected_runtime_classes;
use crate::resources::{build_foundry_objects, build_render_objects};
use crate::secrets::access::{BackendIdentity, build_backend_auth_role, build_provisioner_policy};
use crate::secrets::plan::SecretsPlan;
use crate::secrets::{SecretKey, plan as secrets_plan};
use crate::storage::keys::TenantScope;
use crate::storage::{FoundryStorage, policy, presign};
use crate::vetting::approved_list as validate;

/// UID given to objects that have none yet (the API server assigns it), so the builders can
/// write owner references.
const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The whole plan.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Counts, and whether a CI check passes.
    pub summary: Summary,
    /// One entry per VideoFoundry.
    pub foundries: Vec<FoundryPlan>,
    /// One entry per ApprovedNodeList.
    pub approved_node_lists: Vec<ListPlan>,
    /// One entry per RenderJob.
    pub renders: Vec<RenderPlan>,
    /// Documents of a known kind that do not match its schema.
    pub invalid: Vec<Invalid>,
    /// Files and documents not planned, and why.
    pub skipped: Vec<Skipped>,
}

/// Counts.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Files read.
    pub files: usize,
    /// VideoFoundries planned.
    pub foundries: usize,
    /// ApprovedNodeLists planned.
    pub approved_node_lists: usize,
    /// RenderJobs planned.
    pub renders: usize,
    /// Renders that would run.
    pub approved: usize,
    /// Renders whose workflow would be rejected.
    pub rejected: usize,
    /// Renders without a verdict offline (foundry, list or ConfigMap not in the input).
    pub unresolved: usize,
    /// Objects that are invalid (schema, or refused by the operator's checks).
    pub invalid: usize,
    /// Documents and files skipped.
    pub skipped: usize,
    /// Every render approved, every object valid.
    pub ok: bool,
}

/// A foundry: what the operator would create and check.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundryPlan {
    /// `file#document`.
    pub source: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What makes the foundry unusable (empty when valid).
    pub problems: Vec<String>,
    /// The resolved security settings (`status.effectiveSecurity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_security: Option<EffectiveSecurity>,
    /// Kubernetes objects applied (server-side apply), in order.
    pub kubernetes_objects: Vec<Value>,
    /// What is checked on the cluster and never created.
    pub checks: Vec<String>,
    /// PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabasePlan>,
    /// Vault, or the developer Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsPlanView>,
    /// The bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StoragePlan>,
    /// ApprovedNodeLists it names that are not in the input.
    pub missing_approved_node_lists: Vec<String>,
}

/// The database side.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabasePlan {
    /// The database (`spec.database.databaseName`).
    pub database: String,
    /// The foundry's schema.
    pub schema: String,
    /// Owner, application, admin and auditor roles.
    pub roles: Vec<String>,
    /// What provisioning runs on a new database (password redacted).
    pub statements: Vec<String>,
}

/// Where the foundry's secrets live.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "store")]
pub enum SecretsPlanView {
    /// Vault / OpenBao.
    Vault {
        /// Server.
        address: String,
        /// KV v2 paths of the generated secrets (values generated by the operator).
        kv_paths: Vec<String>,
        /// ACL policies by name (HCL).
        policies: BTreeMap<String, String>,
        /// The platform-level policy of whoever writes these (not written by the operator).
        provisioner_policy: String,
        /// The backend's Kubernetes auth role, when `spec.vault.backendServiceAccount` is set.
        #[serde(skip_serializing_if = "Option::is_none")]
        backend_auth_role: Option<Value>,
        /// Database secrets engine connection and role names.
        database_engine: BTreeMap<String, String>,
    },
    /// Developer mode: a Kubernetes Secret.
    KubernetesSecret {
        /// The Secret's name.
        secret_name: String,
    },
}

/// The bucket side.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragePlan {
    /// Bucket.
    pub bucket: String,
    /// The foundry's prefix of it.
    pub prefix: String,
    /// Hardening applied.
    pub settings: BTreeMap<String, String>,
    /// The bucket policy (merged into an empty bucket's; other foundries' statements are kept).
    pub bucket_policy: Value,
}

/// An ApprovedNodeList.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPlan {
    /// `file#document`.
    pub source: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether it is usable.
    pub valid: bool,
    /// What is wrong.
    pub problems: Vec<String>,
    /// Node types allowed and blocked (blocking wins).
    pub overridden_by_block: Vec<String>,
    /// Entry counts.
    pub counts: Value,
}

/// What happens to a render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RenderOutcome {
    /// Vetted and would run.
    Approved,
    /// Vetted with warnings and would run.
    ApprovedWithWarnings,
    /// Would be rejected.
    Rejected,
    /// No verdict offline.
    Unresolved,
    /// The operator would refuse to build its objects.
    Invalid,
}

/// A render.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderPlan {
    /// `file#document`.
    pub source: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its foundry.
    pub foundry: String,
    /// The outcome.
    pub outcome: RenderOutcome,
    /// Why, when unresolved or invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The vetting result, as `status.vetting` would show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetting: Option<VettingStatus>,
    /// The render's Secret (values redacted) and Job, when it would run.
    pub kubernetes_objects: Vec<Value>,
}

/// Plans every object read. `worker_binary_image` is the operator configuration's
/// `worker.binaryImage`.
pub fn build(manifests: &Manifests, worker_binary_image: &str) -> Plan {
    let foundries: Vec<FoundryPlan> = manifests
        .foundries
        .iter()
        .map(|f| plan_foundry(f, manifests))
        .collect();
    let approved_node_lists: Vec<ListPlan> = manifests.lists.iter().map(plan_list).collect();
    let renders: Vec<RenderPlan> = manifests
        .renders
        .iter()
        .map(|r| plan_render(r, manifests, worker_binary_image))
        .collect();
    let count = |outcome: RenderOutcome| renders.iter().filter(|r| r.outcome == outcome).count();
    let invalid = manifests.invalid.len()
        + foundries.iter().filter(|f| !f.problems.is_empty()).count()
        + approved_node_lists.iter().filter(|l| !l.valid).count()
        + count(RenderOutcome::Invalid);
    let mut summary = Summary {
        files: manifests.files.len(),
        foundries: foundries.len(),
        approved_node_lists: approved_node_lists.len(),
        renders: renders.len(),
        approved: count(RenderOutcome::Approved) + count(RenderOutcome::ApprovedWithWarnings),
        rejected: count(RenderOutcome::Rejected),
        unresolved: count(RenderOutcome::Unresolved),
        invalid,
        skipped: manifests.skipped.len(),
        ok: false,
    };
    summary.ok = summary.rejected == 0 && summary.unresolved == 0 && summary.invalid == 0;
    Plan {
        summary,
        foundries,
        approved_node_lists,
        renders,
        invalid: manifests.invalid.clone(),
        skipped: manifests.skipped.clone(),
    }
}

/// The object with a UID, so the builders can reference it as an owner.
fn with_uid<K: kube::Resource + Clone>(object: &K) -> K {
    let mut object = object.clone();
    if object.meta().uid.is_none() {
        object.meta_mut().uid = Some(PLACEHOLDER_UID.to_owned());
    }
    object
}

fn to_value(object: &impl Serialize) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn plan_foundry(sourced: &Sourced<VideoFoundry>, manifests: &Manifests) -> FoundryPlan {
    let foundry = with_uid(&sourced.object);
    let namespace = foundry.namespace().unwrap_or_default();
    let name = foundry.name_any();
    let mut problems = Vec::new();
    let effective_security = crate::security_profile::resolve(&foundry.spec)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let mut kubernetes_objects = Vec::new();
    match build_foundry_objects(&foundry, None) {
        Ok(objects) => {
            kubernetes_objects.push(to_value(&objects.service_account));
            kubernetes_objects.extend(objects.network_policies.iter().map(to_value));
            kubernetes_objects.extend(objects.resource_quota.iter().map(to_value));
            kubernetes_objects.extend(objects.limit_range.iter().map(to_value));
        }
        Err(error) => problems.push(format!("Kubernetes objects: {error}")),
    }
    let mut checks = Vec::new();
    match expected_runtime_classes(&foundry) {
        Ok(expected) => checks.extend(expected.iter().map(|class| {
            format!(
                "RuntimeClass {} exists with a {:?} handler (e.g. {})",
                class.name, class.sandbox, class.handler
            )
        })),
        Err(error) => problems.push(format!("sandbox: {error}")),
    }
    let database = match crate::postgres::FoundryDatabase::for_foundry(&namespace, &name) {
        Ok(db) => Some(DatabasePlan {
            database: foundry.spec.database.database_name.clone(),
            schema: db.schema.clone(),
            roles: db.roles.all().map(str::to_owned).to_vec(),
            statements: crate::postgres::planned_statements(&db),
        }),
        Err(error) => {
            problems.push(format!("database: {error}"));
            None
        }
    };
    checks.push(format!(
        "Secret {namespace}/{} key {:?} holds the admin database URL (TLS required outside developer mode)",
        foundry.spec.database.connection_secret_ref.name, foundry.spec.database.connection_secret_ref.key
    ));
    let secrets = match secrets_plan::plan(&namespace, &name, &foundry.spec) {
        Ok(plan) => Some(secrets_view(&foundry, plan, &mut problems)),
        Err(error) => {
            problems.push(format!("secrets: {error}"));
            None
        }
    };
    let storage = match FoundryStorage::from_spec(&namespace, &name, &foundry.spec) {
        Ok(storage) => Some(storage_view(&storage)),
        Err(error) => {
            problems.push(format!("storage: {error}"));
            None
        }
    };
    checks.push(format!(
        "Secret {namespace}/{} holds the S3 provisioning credentials",
        foundry.spec.storage.credentials_secret_ref.name
    ));
    let missing_approved_node_lists = foundry
        .spec
        .approved_node_lists
        .iter()
        .filter(|r| find_list(manifests, &namespace, &r.name).is_none())
        .map(|r| r.name.clone())
        .collect();
    FoundryPlan {
        source: sourced.source.clone(),
        namespace,
        name,
        problems,
        effective_security,
        kubernetes_objects,
        checks,
        database,
        secrets,
        storage,
        missing_approved_node_lists,
    }
}

fn secrets_view(
    foundry: &VideoFoundry,
    plan: SecretsPlan,
    problems: &mut Vec<String>,
) -> SecretsPlanView {
    match plan {
        SecretsPlan::KubernetesSecret { secret_name } => {
            SecretsPlanView::KubernetesSecret { secret_name }
        }
        SecretsPlan::Vault {
            address, layout, ..
        } => {
            let kv_paths = [SecretKey::Jwt, SecretKey::Database]
                .iter()
                .filter_map(|key| match layout.path(key) {
                    Ok(path) => Some(format!("{}/{path}", layout.kv_mount)),
                    Err(error) => {
                        problems.push(format!("vault path: {error}"));
                        None
                    }
                })
                .collect();
            let policies = BTreeMap::from([
                (layout.backend_policy_name(), layout.build_backend_policy()),
                (
                    layout.operator_policy_name(),
                    layout.build_operator_policy(),
                ),
            ]);
            let vault = foundry.spec.vault.as_ref();
            let mount = vault.map_or("kubernetes", backend_auth_mount);
            let backend_auth_role =
                vault
                    .and_then(|v| v.backend_service_account.clone())
                    .map(|service_account| {
                        let role = build_backend_auth_role(
                            &layout,
                            &BackendIdentity {
                                namespace: foundry.namespace().unwrap_or_default(),
                                service_account,
                                token_ttl: BACKEND_TOKEN_TTL.to_owned(),
                            },
                        );
                        let mut value = to_value(&role);
                        if let Value::Object(map) = &mut value {
                            map.insert(
                                "path".to_owned(),
                                Value::from(format!("auth/{mount}/role/{}", role.name)),
                            );
                        }
                        value
                    });
            let database_engine = BTreeMap::from([
                (
                    "connection".to_owned(),
                    format!(
                        "{}/config/{}",
                        layout.database_mount,
                        layout.database_connection_name()
                    ),
                ),
                (
                    "role".to_owned(),
                    format!(
                        "{}/roles/{}",
                        layout.database_mount,
                        layout.database_role_name()
                    ),
                ),
            ]);
            SecretsPlanView::Vault {
                address,
                kv_paths,
                policies,
                provisioner_policy: build_provisioner_policy(mount),
                backend_auth_role,
                database_engine,
            }
        }
    }
}

fn storage_view(storage: &FoundryStorage) -> StoragePlan {
    let settings = BTreeMap::from([
        ("requireTls".to_owned(), storage.require_tls.to_string()),
        ("versioning".to_owned(), storage.versioning.to_string()),
        (
            "blockPublicAccess".to_owned(),
            storage.block_public_access.to_string(),
        ),
        ("encryption".to_owned(), format!("{:?}", storage.encryption)),
        (
            "perObjectEncryption".to_owned(),
            storage.per_object_encryption.to_string(),
        ),
        (
            "tempExpirationDays".to_owned(),
            storage.temp_expiration_days.to_string(),
        ),
        (
            "noncurrentVersionDays".to_owned(),
            storage.noncurrent_version_days.to_string(),
        ),
    ]);
    StoragePlan {
        bucket: storage.bucket.clone(),
        prefix: storage.prefix.clone(),
        settings,
        bucket_policy: policy::merged_policy(None, storage),
    }
}

fn plan_list(sourced: &Sourced<ApprovedNodeList>) -> ListPlan {
    let list = &sourced.object;
    let report = validate::validate(&list.spec);
    ListPlan {
        source: sourced.source.clone(),
        namespace: list.namespace().unwrap_or_default(),
        name: list.name_any(),
        valid: report.is_valid(),
        problems: report.problems,
        overridden_by_block: report.overridden_by_block,
        counts: to_value(&report.counts),
    }
}

fn find_list<'a>(
    manifests: &'a Manifests,
    namespace: &str,
    name: &str,
) -> Option<&'a ApprovedNodeList> {
    manifests
        .lists
        .iter()
        .map(|s| &s.object)
        .find(|l| l.namespace().as_deref() == Some(namespace) && l.name_any() == name)
}

fn plan_render(
    sourced: &Sourced<RenderJob>,
    manifests: &Manifests,
    worker_binary_image: &str,
) -> RenderPlan {
    let render = with_uid(&sourced.object);
    let namespace = render.namespace().unwrap_or_default();
    let mut plan = RenderPlan {
        source: sourced.source.clone(),
        namespace: namespace.clone(),
        name: render.name_any(),
        foundry: render.spec.foundry_ref.name.clone(),
        outcome: RenderOutcome::Unresolved,
        reason: None,
        vetting: None,
        kubernetes_objects: Vec::new(),
    };
    let unresolved = |mut plan: RenderPlan, why: String| {
        plan.reason = Some(format!("not resolvable offline: {why}"));
        plan
    };
    let Some(foundry) = manifests.foundries.iter().map(|s| &s.object).find(|f| {
        f.namespace().as_deref() == Some(namespace.as_str()) && f.name_any() == plan.foundry
    }) else {
        let why = format!(
            "VideoFoundry {namespace}/{} is not in the input",
            plan.foundry
        );
        return unresolved(plan, why);
    };
    let foundry = with_uid(foundry);
    let mut lists = Vec::new();
    for reference in &foundry.spec.approved_node_lists {
        match find_list(manifests, &namespace, &reference.name) {
            Some(list) => lists.push(list.clone()),
            None => {
                let why = format!(
                    "ApprovedNodeList {namespace}/{} is not in the input",
                    reference.name
                );
                return unresolved(plan, why);
            }
        }
    }
    let workflow = match workflow_of(&render, manifests, &namespace) {
        Ok(workflow) => workflow,
        Err(why) => return unresolved(plan, why),
    };
    let vetting = match vet::vet_with(&foundry, &lists, &workflow) {
        Ok(vetting) => vetting,
        Err((reason, message)) => return unresolved(plan, format!("{reason}: {message}")),
    };
    plan.outcome = match vetting.verdict {
        VettingVerdict::Approved => RenderOutcome::Approved,
        VettingVerdict::ApprovedWithWarnings => RenderOutcome::ApprovedWithWarnings,
        VettingVerdict::Rejected | VettingVerdict::Unknown => RenderOutcome::Rejected,
    };
    if plan.outcome != RenderOutcome::Rejected {
        match render_objects(&foundry, &render, &vetting, workflow, worker_binary_image) {
            Ok(objects) => plan.kubernetes_objects = objects,
            Err(why) => {
                plan.outcome = RenderOutcome::Invalid;
                plan.reason = Some(why);
            }
        }
    }
    plan.vetting = Some(vetting);
    plan
}

fn workflow_of(
    render: &RenderJob,
    manifests: &Manifests,
    namespace: &str,
) -> Result<Vec<u8>, String> {
    if let Some(inline) = &render.spec.workflow.inline {
        return Ok(inline.as_bytes().to_vec());
    }
    let Some(reference) = &render.spec.workflow.config_map_ref else {
        return Err("spec.workflow sets neither inline nor configMapRef".to_owned());
    };
    let config_map = manifests
        .config_maps
        .iter()
        .map(|s| &s.object)
        .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == reference.name)
        .ok_or_else(|| {
            format!(
                "ConfigMap {namespace}/{} is not in the input",
                reference.name
            )
        })?;
    vet::workflow_from_config_map(config_map, namespace, reference).map_err(|(_, message)| message)
}

/// The render's Secret (data redacted) and Job, built as admission builds them, with
/// placeholder URLs for the presigned ones.
fn render_objects(
    foundry: &VideoFoundry,
    render: &RenderJob,
    vetting: &VettingStatus,
    workflow: Vec<u8>,
    worker_binary_image: &str,
) -> Result<Vec<Value>, String> {
    let storage = FoundryStorage::from_spec(
        &foundry.namespace().unwrap_or_default(),
        &foundry.name_any(),
        &foundry.spec,
    )
    .map_err(|e| format!("storage: {e}"))?;
    let scope =
        TenantScope::new(&storage.prefix, &render.spec.user_id).map_err(|e| e.to_string())?;
    let lifetime = admit::url_lifetime(render, foundry).map_err(|(_, message)| message)?;
    let outputs = output_names(&render.spec);
    let name = render.name_any();
    let request = presign::WorkerAccessRequest {
        bucket: &storage.bucket,
        scope: &scope,
        render_job: &name,
        inputs: &render.spec.inputs,
        outputs: &outputs,
        lifetime,
        encryption: None,
    };
    let keys = presign::worker_keys(&request).map_err(|e| e.to_string())?;
    let placeholder = |method: &str, key: crate::storage::keys::ObjectKey| {
        admit::grant_object(
            &storage.prefix,
            presign::PresignedRequest {
                method: method.to_owned(),
                url: format!("{}?<presigned at admission>", key.as_str()),
                headers: Vec::new(),
                key,
            },
        )
    };
    let grant = StorageGrant {
        inputs: keys
            .inputs
            .into_iter()
            .map(|k| placeholder("GET", k))
            .collect(),
        outputs: keys
            .outputs
            .into_iter()
            .map(|k| placeholder("PUT", k))
            .collect(),
        output_prefix: admit::output_prefix(render),
        expires_at: format!("admission time + {}s", lifetime.as_secs()),
    };
    let text =
        String::from_utf8(workflow).map_err(|_| "the workflow is not UTF-8 text".to_owned())?;
    // The gateway's cluster IP is known only in a cluster: a placeholder stands for it.
    let proxy = crate::resources::egress_gateway::gateway_enabled(foundry)
        .map_err(|e| format!("cannot build the worker objects: {e}"))?
        .then(|| crate::resources::egress_gateway::proxy_address("<egress-gateway-cluster-ip>"));
    let worker_plan = admit::worker_plan(vetting, text, proxy);
    let objects = build_render_objects(foundry, render, &worker_plan, &grant, worker_binary_image)
        .map_err(|e| format!("cannot build the worker objects: {e}"))?;
    Ok(vec![redacted(&objects.secret), to_value(&objects.job)])
}

/// The Secret with every value replaced by its size: the data holds the workflow and URLs.
fn redacted(secret: &Secret) -> Value {
    let sizes = |data: Option<&BTreeMap<String, usize>>| {
        data.map(|data| {
            data.iter()
                .map(|(key, size)| {
                    (
                        key.clone(),
                        Value::from(format!("<redacted: {size} bytes>")),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
        })
    };
    let data: Option<BTreeMap<String, usize>> = secret
        .data
        .as_ref()
        .map(|data| data.iter().map(|(k, v)| (k.clone(), v.0.len())).collect());
    let string_data: Option<BTreeMap<String, usize>> = secret
        .string_data
        .as_ref()
        .map(|data| data.iter().map(|(k, v)| (k.clone(), v.len())).collect());
    let mut shown = Secret {
        data: None,
        string_data: None,
        ..secret.clone()
    };
    shown.metadata.managed_fields = None;
    let mut value = to_value(&shown);
    if let Value::Object(map) = &mut value {
        if let Some(data) = sizes(data.as_ref()) {
            map.insert("data".to_owned(), Value::Object(data));
        }
        if let Some(data) = sizes(string_data.as_ref()) {
            map.insert("stringData".to_owned(), Value::Object(data));
        }
    }
    value
}
