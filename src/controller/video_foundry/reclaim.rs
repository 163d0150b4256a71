//! Deleting a foundry (its finalizer's arm). First the renders of the foundry that are still
//! queued or running are cancelled and awaited (their own cleanup runs while the database is
//! there); then the reclaim policy:
//!
//! - `Retain` (default): nothing outside Kubernetes is touched, and a `Retained` Event names
//!   what was kept (database schema and roles, Vault paths, policies and roles, bucket prefix
//!   and statements), so re-creating a foundry of the same name adopts it all (the names derive
//!   from namespace and name, not from the UID).
//! - `Delete`: in dependency order, each step idempotent and confined to the foundry's own
//!   names: Vault's dynamic database credentials revoked and its database role and connection
//!   deleted → sessions ended, schema and roles dropped → the Vault KV tree (every version and
//!   the metadata), policies and auth role deleted → the foundry's bucket policy statements and
//!   lifecycle rules removed (objects only with `storage.objectReclaimPolicy: Delete`) → worker
//!   ServiceAccount, NetworkPolicies, ResourceQuota, LimitRange and the developer Secret deleted.
//!
//! A failing step keeps the finalizer and says which step and why (`Reclaimed=False`, a Warning
//! `ReclaimBlocked` Event), with the way out: the `videofoundry.dev/skip-reclaim` annotation
//! lets the foundry go, and the Event then names what the failing steps left behind.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use secrecy::SecretString;

use super::backends::{self, backend_auth_mount};
use super::credentials::SecretReader;
use super::{ACTION, Context, Error};
use crate::controller::events::{PlannedEvent, publish};
use crate::controller::finalizers;
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, types};
use crate::crd::render_job::{CANCEL_ANNOTATION, RenderPhase};
use crate::crd::video_foundry::{FINALIZER, ReclaimPolicy, SKIP_RECLAIM_ANNOTATION};
use crate::crd::{RenderJob, VideoFoundry};
use crate::postgres::FoundryDatabase;
use crate::provisioning::StepOutcome;
use crate::resources::labels;
use crate::secrets::plan::{SecretsPlan, plan};
use crate::secrets::{FoundryLayout, VaultSession, access, reclaim as vault_reclaim};
use crate::storage::S3Storage;

/// Reason of `Ready=False` and of the Warning Event while a reclaim step fails.
pub const REASON_BLOCKED: &str = "ReclaimBlocked";
/// Reason of `Reclaimed=False` while renders are being cancelled.
pub const REASON_CANCELLING: &str = "CancellingRenders";
/// Reason of the Event that names what `Retain` kept.
pub const REASON_RETAINED: &str = "Retained";
/// Reason of the Event that names what `Delete` removed.
pub const REASON_RECLAIMED: &str = "Reclaimed";
/// Reason of the Warning Event that names what the skip annotation left behind.
pub const REASON_SKIPPED: &str = "ReclaimSkipped";

/// One reclaim step that failed: its name, a PascalCase reason and the message.
#[derive(Debug)]
struct Failure {
    step: &'static str,
    reason: String,
    message: String,
}

impl Failure {
    fn new(step: &'static str, outcome: StepOutcome) -> Self {
        Self {
            step,
            reason: outcome.reason,
            message: outcome.message,
        }
    }

    fn of(step: &'static str, reason: &str, error: impl std::fmt::Display) -> Self {
        Self {
            step,
            reason: reason.to_owned(),
            message: error.to_string(),
        }
    }
}

/// The finalizer's arm: see the module documentation.
pub async fn finalize(foundry: &VideoFoundry, key: &str, ctx: &Context) -> Result<Action, Error> {
    if !foundry.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = foundry.namespace().unwrap_or_default();
    let api: Api<VideoFoundry> = Api::namespaced(ctx.client.clone(), &namespace);
    let skip = foundry.annotations().contains_key(SKIP_RECLAIM_ANNOTATION);

    let active = cancel_renders(ctx, foundry).await?;
    if !active.is_empty() && !skip {
        let message = format!(
            "waiting for {} render(s) of the foundry to be cancelled or deleted: {}",
            active.len(),
            active.join(", ")
        );
        set_conditions(ctx, foundry, REASON_CANCELLING, &message, None).await?;
        return Ok(Action::requeue(std::time::Duration::from_secs(2)));
    }

    let reference = foundry.object_ref(&());
    match foundry.spec.database.reclaim_policy {
        ReclaimPolicy::Delete => {
            let (done, failures) = delete_everything(ctx, foundry, skip).await;
            if let Some(failure) = failures.first().filter(|_| !skip) {
                let message = format!(
                    "step {} failed ({}): {}; retried. To let the VideoFoundry go and leave what this step removes: kubectl annotate videofoundry {} {SKIP_RECLAIM_ANNOTATION}=true",
                    failure.step,
                    failure.reason,
                    failure.message,
                    foundry.name_any()
                );
                let reason = format!("{}Failed", failure.step);
                set_conditions(ctx, foundry, &reason, &message, Some(REASON_BLOCKED)).await?;
                return Ok(Action::requeue(ctx.backoff.next_delay(key)));
            }
            let note = format!(
                "reclaimPolicy Delete: {}",
                if done.is_empty() {
                    "nothing was left to remove".to_owned()
                } else {
                    done.join("; ")
                }
            );
            publish(
                ctx,
                &reference,
                ACTION,
                event(false, REASON_RECLAIMED, note),
            )
            .await;
            if !failures.is_empty() {
                let left: Vec<String> = failures
                    .iter()
                    .map(|f| format!("{} ({}: {})", f.step, f.reason, f.message))
                    .collect();
                let note = format!(
                    "{SKIP_RECLAIM_ANNOTATION} is set: left behind what these steps remove: {}",
                    left.join("; ")
                );
                publish(ctx, &reference, ACTION, event(true, REASON_SKIPPED, note)).await;
            }
        }
        ReclaimPolicy::Retain | ReclaimPolicy::Unknown => {
            let note = retained_inventory(foundry);
            publish(ctx, &reference, ACTION, event(false, REASON_RETAINED, note)).await;
        }
    }
    ctx.backoff.reset(key);
    finalizers::remove(&api, foundry, FINALIZER).await?;
    Ok(Action::await_change())
}

fn event(warning: bool, reason: &str, note: String) -> PlannedEvent {
    PlannedEvent {
        warning,
        reason: reason.to_owned(),
        note,
    }
}

/// Sets `Reclaimed=False` (and `Ready=False`) with `reason` and `message`; publishes a Warning
/// Event with `event_reason` when the status changed.
async fn set_conditions(
    ctx: &Context,
    foundry: &VideoFoundry,
    reason: &str,
    message: &str,
    event_reason: Option<&str>,
) -> Result<(), Error> {
    let mut status = foundry.status.clone().unwrap_or_default();
    let mut update = ConditionUpdate {
        conditions: &mut status.conditions,
        generation: foundry.meta().generation,
        now: super::to_seconds(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        )),
    };
    update.set(types::RECLAIMED, ConditionStatus::False, reason, message);
    update.set(
        types::READY,
        ConditionStatus::False,
        event_reason.unwrap_or(REASON_CANCELLING),
        message,
    );
    if Some(&status) == foundry.status.as_ref() {
        return Ok(());
    }
    let events = event_reason
        .map(|r| vec![event(true, r, message.to_owned())])
        .unwrap_or_default();
    crate::controller::write_status(ctx, foundry, &status, events, ACTION).await
}

/// Asks every render of the foundry that has not finished to cancel (the render controller
/// deletes its Job and records it), and returns the names of those not done yet: unfinished
/// or being deleted (their cleanup records in the foundry's database, which must still exist).
async fn cancel_renders(ctx: &Context, foundry: &VideoFoundry) -> Result<Vec<String>, Error> {
    let namespace = foundry.namespace().unwrap_or_default();
    let renders: Api<RenderJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = foundry.name_any();
    let mut active = Vec::new();
    for render in renders.list(&ListParams::default()).await?.items {
        if render.spec.foundry_ref.name != name {
            continue;
        }
        let phase = render.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let finished = matches!(
            phase,
            RenderPhase::Succeeded
                | RenderPhase::Failed
                | RenderPhase::Cancelled
                | RenderPhase::Rejected
        );
        if render.meta().deletion_timestamp.is_some() {
            active.push(render.name_any());
            continue;
        }
        if finished {
            continue;
        }
        if !render.annotations().contains_key(CANCEL_ANNOTATION) {
            let patch = serde_json::json!({"metadata": {"annotations": {
                CANCEL_ANNOTATION: format!("VideoFoundry {name} is being deleted"),
            }}});
            match renders
                .patch(
                    &render.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => continue,
                Err(error) => return Err(error.into()),
            }
        }
        active.push(render.name_any());
    }
    Ok(active)
}

/// What `Retain` keeps, by name, for the `Retained` Event.
fn retained_inventory(foundry: &VideoFoundry) -> String {
    let namespace = foundry.namespace().unwrap_or_default();
    let name = foundry.name_any();
    let mut kept = Vec::new();
    if let Ok(db) = FoundryDatabase::for_foundry(&namespace, &name) {
        kept.push(format!(
            "database {} schema {} and roles {}",
            foundry.spec.database.database_name,
            db.schema,
            db.roles.all().join(", ")
        ));
    }
    match plan(&namespace, &name, &foundry.spec) {
        Ok(SecretsPlan::Vault { layout, .. }) => kept.push(vault_inventory(foundry, &layout)),
        Ok(SecretsPlan::KubernetesSecret { secret_name }) => {
            kept.push(format!("Secret {namespace}/{secret_name}"));
        }
        Err(_) => {}
    }
    let storage = &foundry.spec.storage;
    kept.push(format!(
        "bucket {} prefix {:?} (objects, policy statements and lifecycle rules of foundry {})",
        storage.bucket,
        storage.prefix,
        crate::storage::foundry::foundry_id(&namespace, &name)
    ));
    format!(
        "reclaimPolicy Retain: kept {}. Re-create VideoFoundry {namespace}/{name} to adopt them",
        kept.join("; ")
    )
}

fn vault_inventory(foundry: &VideoFoundry, layout: &FoundryLayout) -> String {
    let mut text = format!(
        "Vault KV {}/{}/ (all versions), policies {} and {}, database engine role {}/roles/{} and connection {}",
        layout.kv_mount,
        layout.prefix,
        layout.backend_policy_name(),
        layout.operator_policy_name(),
        layout.database_mount,
        layout.database_role_name(),
        layout.database_connection_name()
    );
    if let Some(vault) = &foundry.spec.vault
        && vault.backend_service_account.is_some()
    {
        text.push_str(&format!(
            ", auth role auth/{}/role/{}",
            backend_auth_mount(vault),
            layout.backend_auth_role_name()
        ));
    }
    text
}

/// Runs the `Delete` steps in order. Without `skip` it stops at the first failure (later steps
/// may depend on it: dynamic users must be revoked before their role is dropped); with it,
/// every step runs and each failure is collected. Returns what was removed and the failures.
async fn delete_everything(
    ctx: &Context,
    foundry: &VideoFoundry,
    skip: bool,
) -> (Vec<String>, Vec<Failure>) {
    let namespace = foundry.namespace().unwrap_or_default();
    let name = foundry.name_any();
    let reader = SecretReader::new(&ctx.client, &namespace);
    let mut done = Vec::new();
    let mut failures = Vec::new();
    let secrets_plan = match plan(&namespace, &name, &foundry.spec) {
        Ok(found) => found,
        Err(error) => {
            failures.push(Failure::of("Secrets", "InvalidSpec", error));
            return (done, failures);
        }
    };
    let mut session: Option<Result<VaultSession, Failure>> = None;
    macro_rules! step {
        ($result:expr) => {
            match $result {
                Ok(lines) => done.extend(lines),
                Err(failure) => {
                    failures.push(failure);
                    if !skip {
                        return (done, failures);
                    }
                }
            }
        };
    }

    if let SecretsPlan::Vault {
        address,
        layout,
        login,
    } = &secrets_plan
        && let Some(vault) = &foundry.spec.vault
    {
        let login = backends::vault_session(&ctx.vault_jwt, &reader, address, login, vault)
            .await
            .map_err(|outcome| Failure::new("VaultLogin", outcome));
        session = Some(login);
        if let Some(Ok(session)) = &session {
            step!(
                vault_reclaim::delete_database_engine(session, layout)
                    .await
                    .map(|()| vec![format!(
                        "revoked the dynamic credentials of {}/creds/{} and deleted the role and its connection",
                        layout.database_mount,
                        layout.database_role_name()
                    )])
                    .map_err(|e| Failure::of("DynamicCredentials", e.reason(), e))
            );
        } else if let Some(Err(failure)) = session.take() {
            step!(Err::<Vec<String>, _>(failure));
        }
    }

    step!(drop_database(&reader, foundry).await);

    if let (SecretsPlan::Vault { layout, .. }, Some(Ok(session)), Some(vault)) =
        (&secrets_plan, &session, &foundry.spec.vault)
    {
        let removed = async {
            let secrets = vault_reclaim::delete_kv_tree(session, layout).await?;
            access::delete_access(session, backend_auth_mount(vault), layout).await?;
            Ok::<_, crate::secrets::SecretsError>(secrets)
        };
        step!(
            removed
                .await
                .map(|secrets| vec![format!(
                    "deleted {} Vault secrets under {}/{}/ (all versions and metadata), policies {} and {} and auth role {}",
                    secrets.len(),
                    layout.kv_mount,
                    layout.prefix,
                    layout.backend_policy_name(),
                    layout.operator_policy_name(),
                    layout.backend_auth_role_name()
                )])
                .map_err(|e| Failure::of("VaultSecrets", e.reason(), e))
        );
    }

    step!(remove_from_bucket(&reader, foundry).await);
    step!(delete_children(ctx, foundry, &secrets_plan).await);
    (done, failures)
}

/// Ends the sessions of the foundry's roles, drops its schema and roles.
async fn drop_database(
    reader: &SecretReader,
    foundry: &VideoFoundry,
) -> Result<Vec<String>, Failure> {
    const STEP: &str = "Database";
    let namespace = foundry.namespace().unwrap_or_default();
    let db = FoundryDatabase::for_foundry(&namespace, &foundry.name_any())
        .map_err(|e| Failure::of(STEP, e.category(), e))?;
    let reference = &foundry.spec.database.connection_secret_ref;
    let url: SecretString = reader
        .value(&reference.name, &reference.key)
        .await
        .map_err(|e| Failure::new(STEP, e.outcome(types::DATABASE_READY)))?;
    let admin = backends::connect_database(&url, foundry)
        .await
        .map_err(|outcome| Failure::new(STEP, outcome))?;
    let removed = crate::postgres::deprovision(&admin.pool, &db).await;
    admin.pool.close().await;
    let report = removed.map_err(|e| Failure::of(STEP, e.category(), e))?;
    let mut lines = Vec::new();
    if report.schema_dropped {
        lines.push(format!(
            "dropped schema {} in database {}",
            db.schema, foundry.spec.database.database_name
        ));
    }
    if !report.roles_dropped.is_empty() {
        lines.push(format!(
            "ended {} session(s) and dropped roles {}",
            report.sessions_ended,
            report.roles_dropped.join(", ")
        ));
    }
    Ok(lines)
}

/// Removes the foundry's statements and lifecycle rules from its bucket (objects too when
/// `storage.objectReclaimPolicy` is `Delete`).
async fn remove_from_bucket(
    reader: &SecretReader,
    foundry: &VideoFoundry,
) -> Result<Vec<String>, Failure> {
    const STEP: &str = "Storage";
    let (connection, storage) = backends::storage_connection(reader, foundry)
        .await
        .map_err(|outcome| Failure::new(STEP, outcome))?;
    let delete_objects = foundry.spec.storage.object_reclaim_policy == ReclaimPolicy::Delete;
    let report = async {
        S3Storage::new(&connection)?
            .remove_foundry(&storage, delete_objects)
            .await
    }
    .await
    .map_err(|e| Failure::of(STEP, e.reason(), e))?;
    Ok(report
        .changes
        .into_iter()
        .map(|change| format!("bucket {}: {change}", storage.bucket))
        .collect())
}

/// Deletes the foundry's labelled objects in its namespace and its developer Secret.
async fn delete_children(
    ctx: &Context,
    foundry: &VideoFoundry,
    secrets_plan: &SecretsPlan,
) -> Result<Vec<String>, Failure> {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Secret, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    const STEP: &str = "Kubernetes";
    let namespace = foundry.namespace().unwrap_or_default();
    let selector = labels::foundry_labels(&foundry.name_any())
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut deleted = Vec::new();
    let client = &ctx.client;
    deleted.extend(
        delete_labelled::<NetworkPolicy>(client, &namespace, &selector)
            .await
            .map_err(|e| Failure::of(STEP, "KubernetesApiError", e))?,
    );
    deleted.extend(
        delete_labelled::<ServiceAccount>(client, &namespace, &selector)
            .await
            .map_err(|e| Failure::of(STEP, "KubernetesApiError", e))?,
    );
    deleted.extend(
        delete_labelled::<ResourceQuota>(client, &namespace, &selector)
            .await
            .map_err(|e| Failure::of(STEP, "KubernetesApiError", e))?,
    );
    deleted.extend(
        delete_labelled::<LimitRange>(client, &namespace, &selector)
            .await
            .map_err(|e| Failure::of(STEP, "KubernetesApiError", e))?,
    );
    if let SecretsPlan::KubernetesSecret { secret_name } = secrets_plan {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        match secrets.delete(secret_name, &DeleteParams::default()).await {
            Ok(_) => deleted.push(format!("Secret {secret_name}")),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(Failure::of(STEP, "KubernetesApiError", error)),
        }
    }
    Ok(if deleted.is_empty() {
        Vec::new()
    } else {
        vec![format!("deleted {}", deleted.join(", "))]
    })
}

/// Deletes the objects of kind `K` in `namespace` that match `selector`; returns `Kind name`.
async fn delete_labelled<K>(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<String>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut deleted = Vec::new();
    for object in api
        .list(&ListParams::default().labels(selector))
        .await?
        .items
    {
        match api
            .delete(&object.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => deleted.push(format!("{} {}", K::kind(&()), object.name_any())),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(deleted)
}
