//! Admission of an approved render, in this order (each step idempotent, so an interrupted
//! admission re-runs to the same end): the foundry is Ready → the render is recorded under the
//! user's identity → a concurrency slot is free → the workflow is the vetted one → presigned
//! URLs for the inputs and outputs → the foundry's NetworkPolicies exist → the render Secret →
//! the worker Job.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use super::RenderContext;
use super::access::FoundryAccess;
use super::ledger::{self, RenderRecord};
use super::slots::{self, Admission, REASON_CONCURRENCY_LIMIT};
use crate::crd::conditions::{is_true, types};
use crate::crd::render_job::{RenderPhase, VettingStatus, output_names};
use crate::crd::{FIELD_MANAGER, RenderJob, VideoFoundry, duration};
use crate::resources::render_secret::{
    EXPIRES_AT_ANNOTATION, PresignedObject, PresignedUrl, StorageGrant,
};
use crate::resources::worker_job::{ModelPin, WorkerPlan};
use crate::resources::{build_render_objects, egress_gateway, labels, names};
use crate::storage::{PresignedRequest, TenantScope, presign};

/// How long presigned URLs outlive the render's deadline (queueing for a node, uploads).
const URL_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Why a render has no Job yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// `Pending` before the render is recorded, `Queued` after.
    pub phase: RenderPhase,
    /// PascalCase reason.
    pub reason: String,
    /// What is missing and what to do.
    pub message: String,
    /// Whether the database holds the render now (`None`: not attempted).
    pub recorded: Option<Result<(), (String, String)>>,
    /// Retried with backoff (otherwise it waits for a change that triggers a reconcile).
    pub retry: bool,
}

/// What admission did.
pub enum Admitted {
    /// The Job exists (created now or by an interrupted run); its current state is inside.
    Job(Box<Job>),
    /// Not yet.
    Blocked(Blocked),
}

fn blocked(phase: RenderPhase, reason: &str, message: impl Into<String>, retry: bool) -> Admitted {
    Admitted::Blocked(Blocked {
        phase,
        reason: reason.to_owned(),
        message: message.into(),
        recorded: None,
        retry,
    })
}

/// The render's database record.
pub fn record_of<'a>(
    render: &'a RenderJob,
    access: &'a FoundryAccess,
    vetting: &'a VettingStatus,
    mode: &'a str,
) -> RenderRecord<'a> {
    RenderRecord {
        schema: &access.database.schema,
        key: &access.tenant_key,
        uid: render.metadata.uid.as_deref().unwrap_or_default(),
        user_id: &render.spec.user_id,
        project_id: render.spec.project_id.as_deref(),
        foundry: &render.spec.foundry_ref.name,
        namespace: render.metadata.namespace.as_deref().unwrap_or_default(),
        name: render.metadata.name.as_deref().unwrap_or_default(),
        workflow_sha256: &vetting.workflow_sha256,
        execution_mode: mode,
    }
}

/// The foundry's execution mode as the audit trail spells it.
pub fn execution_mode(foundry: &VideoFoundry) -> &'static str {
    use crate::crd::video_foundry::ExecutionMode;
    match foundry.spec.execution_mode {
        ExecutionMode::Production => "production",
        ExecutionMode::SelfHostedProduction => "selfHostedProduction",
        ExecutionMode::Developer => "developer",
        _ => "unknown",
    }
}

/// `users/<userId>/renders/<name>/`, relative to the foundry prefix.
pub fn output_prefix(render: &RenderJob) -> String {
    format!(
        "users/{}/renders/{}/",
        render.spec.user_id,
        render.name_any()
    )
}

/// The foundry, when it is Ready to run renders.
pub fn ready_foundry(foundry: Option<&VideoFoundry>) -> Result<&VideoFoundry, (String, String)> {
    let Some(foundry) = foundry else {
        return Err((
            "FoundryNotFound".to_owned(),
            "the render's VideoFoundry does not exist".to_owned(),
        ));
    };
    if foundry.metadata.deletion_timestamp.is_some() {
        return Err((
            "FoundryDeleting".to_owned(),
            format!(
                "VideoFoundry {} is being deleted; no new render starts for it (re-create the foundry, then the render)",
                foundry.name_any()
            ),
        ));
    }
    // Ready for the spec as it is now: after an edit (egress tightened, say) no Job starts until
    // the foundry controller has applied it (NetworkPolicies first) and recorded the generation.
    let current = foundry
        .status
        .as_ref()
        .is_some_and(|status| status.observed_generation == foundry.metadata.generation);
    if !current {
        return Err((
            "FoundryChanging".to_owned(),
            format!(
                "VideoFoundry {} changed (generation {}) and is not applied yet; renders start once it is",
                foundry.name_any(),
                foundry.metadata.generation.unwrap_or_default()
            ),
        ));
    }
    let ready = foundry
        .status
        .as_ref()
        .is_some_and(|status| is_true(&status.conditions, types::READY));
    if ready {
        Ok(foundry)
    } else {
        Err((
            "FoundryNotReady".to_owned(),
            format!(
                "VideoFoundry {} is not Ready; renders start once it is (kubectl describe vf {})",
                foundry.name_any(),
                foundry.name_any()
            ),
        ))
    }
}

/// Admits the render: see the module documentation for the order.
pub async fn admit(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: &VideoFoundry,
    mut workflow: Option<Vec<u8>>,
) -> Admitted {
    let client = &rctx.base.client;
    let namespace = render.namespace().unwrap_or_default();
    let access = match rctx.access.get(&rctx.base, foundry).await {
        Ok(access) => access,
        Err(error) => return blocked(RenderPhase::Pending, &error.reason, error.message, true),
    };
    let mode = execution_mode(foundry);
    let record = record_of(render, &access, vetting, mode);
    let prefix = output_prefix(render);

    // Record first: a Queued render is one the database knows.
    if let Err(error) = ledger::submit(&access.pool, &record, &prefix).await {
        if error.is_authentication() {
            rctx.access.forget(foundry);
        }
        let message = error.to_string();
        return Admitted::Blocked(Blocked {
            phase: RenderPhase::Pending,
            reason: error.category().to_owned(),
            message: message.clone(),
            recorded: Some(Err((error.category().to_owned(), message))),
            retry: true,
        });
    }
    let recorded = || Some(Ok(()));
    let queued = |reason: &str, message: String, retry: bool| {
        Admitted::Blocked(Blocked {
            phase: RenderPhase::Queued,
            reason: reason.to_owned(),
            message,
            recorded: recorded(),
            retry,
        })
    };

    // A slot, first come first served; held from here until the render ends.
    let uid = render.uid().unwrap_or_default();
    let job_name = names::worker_job(&render.name_any());
    let job_exists = rctx
        .jobs
        .get(&kube::runtime::reflector::ObjectRef::new(&job_name).within(&namespace))
        .is_some();
    if !job_exists {
        let lock = rctx
            .slots
            .lock_for(&format!("{namespace}/{}", foundry.name_any()));
        let _held = lock.lock().await;
        let cap = usize::try_from(foundry.spec.workers.max_concurrent_renders).unwrap_or(1);
        let others: Vec<slots::SlotView> = rctx
            .renders
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|other| {
                other.namespace().as_deref() == Some(namespace.as_str())
                    && other.spec.foundry_ref.name == render.spec.foundry_ref.name
                    && other.uid() != render.uid()
            })
            .map(|other| rctx.slots.view(other))
            .collect();
        match slots::decide(&slots::order_of(render), &others, cap) {
            Admission::Admit => rctx.slots.record(&uid, true),
            Admission::Wait { active, ahead } => {
                return queued(
                    REASON_CONCURRENCY_LIMIT,
                    format!(
                        "{active} of the foundry's {cap} render slots are taken and {ahead} render(s) wait ahead of this one (workers.maxConcurrentRenders)"
                    ),
                    false,
                );
            }
        }
    }
    let release = |admitted: Admitted| {
        if matches!(admitted, Admitted::Blocked(_)) && !job_exists {
            rctx.slots.record(&uid, false);
        }
        admitted
    };

    // The exact bytes that were vetted, or nothing runs.
    if workflow.is_none() {
        match super::vet::workflow_bytes(client, &namespace, render).await {
            Ok(bytes) => workflow = Some(bytes),
            Err((reason, message)) => return release(queued(reason, message, true)),
        }
    }
    let workflow = String::from_utf8(workflow.unwrap_or_default()).unwrap_or_default();
    let egress_proxy = match egress_proxy(rctx, &namespace, foundry).await {
        Ok(proxy) => proxy,
        Err((reason, message)) => return release(queued(&reason, message, true)),
    };
    let plan = worker_plan(vetting, workflow, egress_proxy);

    // Presigned URLs for the render's life, then the objects.
    let grant = match presign(render, foundry, &access).await {
        Ok(grant) => grant,
        Err((reason, message)) => return release(queued(&reason, message, true)),
    };
    let binary_image = &rctx.base.config.worker.binary_image;
    let objects = match build_render_objects(foundry, render, &plan, &grant, binary_image) {
        Ok(objects) => objects,
        Err(error) => {
            return release(queued(
                "InvalidRender",
                format!("cannot build the worker objects: {error}"),
                false,
            ));
        }
    };
    if let Err((reason, message)) = network_policies_exist(rctx, &namespace, foundry).await {
        return release(queued(&reason, message, true));
    }
    if let Err(error) = ensure_secret(rctx, &namespace, &objects.secret).await {
        return release(queued("KubernetesApiError", error, true));
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    match jobs
        .patch(
            &job_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&objects.job),
        )
        .await
    {
        Ok(job) => Admitted::Job(Box::new(job)),
        Err(error) => release(queued(
            "KubernetesApiError",
            format!("cannot create the worker Job: {error}"),
            true,
        )),
    }
}

/// The plan the worker verifies: the vetted digest and model pins, and the workflow's bytes.
pub fn worker_plan(
    vetting: &VettingStatus,
    workflow: String,
    egress_proxy: Option<String>,
) -> WorkerPlan {
    WorkerPlan {
        egress_proxy,
        workflow_sha256: vetting.workflow_sha256.clone(),
        model_pins: vetting
            .model_pins
            .iter()
            .map(|pin| ModelPin {
                identifier: pin.identifier.clone(),
                sha256: pin.sha256.clone(),
            })
            .collect(),
        workflow,
    }
}

/// How long the render's URLs live: its timeout (or the foundry's default) plus a margin.
pub fn url_lifetime(
    render: &RenderJob,
    foundry: &VideoFoundry,
) -> Result<std::time::Duration, (String, String)> {
    let timeout = render
        .spec
        .timeout
        .as_deref()
        .unwrap_or(&foundry.spec.workers.default_timeout);
    let deadline = duration::parse(timeout)
        .map_err(|e| ("InvalidSpec".to_owned(), format!("timeout: {e}")))?;
    Ok(presign::worker_url_lifetime(deadline, URL_MARGIN))
}

/// One presigned request as the render's Secret lists it: the key relative to the foundry's
/// prefix.
pub fn grant_object(foundry_prefix: &str, request: PresignedRequest) -> PresignedObject {
    PresignedObject {
        key: request
            .key
            .as_str()
            .strip_prefix(foundry_prefix)
            .unwrap_or(request.key.as_str())
            .to_owned(),
        url: PresignedUrl::new(request.url),
        headers: request.headers.into_iter().collect(),
    }
}

/// The presigned URLs of the render: GETs for its inputs (which must exist), PUTs for its
/// outputs, all scoped to the user's prefix and expiring with the deadline plus a margin.
async fn presign(
    render: &RenderJob,
    foundry: &VideoFoundry,
    access: &FoundryAccess,
) -> Result<StorageGrant, (String, String)> {
    let scope = TenantScope::new(&access.storage.prefix, &render.spec.user_id)
        .map_err(|e| ("InvalidInput".to_owned(), e.to_string()))?;
    let lifetime = url_lifetime(render, foundry)?;
    let outputs = output_names(&render.spec);
    let name = render.name_any();
    let request = presign::WorkerAccessRequest {
        bucket: &access.storage.bucket,
        scope: &scope,
        render_job: &name,
        inputs: &render.spec.inputs,
        outputs: &outputs,
        lifetime,
        encryption: access.upload_encryption(),
    };
    let granted = access.s3.worker_access(&request).await.map_err(|error| {
        let reason = match &error {
            crate::storage::StorageError::InputMissing { .. } => "InputNotFound",
            other => other.reason(),
        };
        (reason.to_owned(), error.to_string())
    })?;
    let strip = |request: PresignedRequest| grant_object(&access.storage.prefix, request);
    let expires_at = k8s_openapi::jiff::Timestamp::try_from(granted.expires_at)
        .map(|t| {
            t.round(k8s_openapi::jiff::Unit::Second)
                .unwrap_or(t)
                .to_string()
        })
        .unwrap_or_default();
    Ok(StorageGrant {
        inputs: granted.inputs.into_iter().map(strip).collect(),
        outputs: granted.outputs.into_iter().map(strip).collect(),
        output_prefix: output_prefix(render),
        expires_at,
    })
}

/// The foundry's worker NetworkPolicies must exist before any worker does (DESIGN.md §4.3).
async fn network_policies_exist(
    rctx: &RenderContext,
    namespace: &str,
    foundry: &VideoFoundry,
) -> Result<(), (String, String)> {
    let api: Api<NetworkPolicy> = Api::namespaced(rctx.base.client.clone(), namespace);
    let selector = format!(
        "{}={}",
        labels::FOUNDRY_LABEL,
        names::label_value(&foundry.name_any())
    );
    let found = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            (
                "KubernetesApiError".to_owned(),
                format!("listing NetworkPolicies: {e}"),
            )
        })?;
    let present: Vec<String> = found.items.iter().map(|p| p.name_any()).collect();
    let required = names::worker_default_deny_policy(&foundry.name_any());
    if present.contains(&required) {
        Ok(())
    } else {
        Err((
            "NetworkPoliciesMissing".to_owned(),
            format!(
                "NetworkPolicy {namespace}/{required} does not exist; no worker starts unisolated (the foundry controller creates it)"
            ),
        ))
    }
}

/// The address of the foundry's egress gateway Service when the foundry has one (workers reach
/// it by cluster IP: they may have no DNS); a render waits while the Service has no address.
async fn egress_proxy(
    rctx: &RenderContext,
    namespace: &str,
    foundry: &VideoFoundry,
) -> Result<Option<String>, (String, String)> {
    let invalid = |e: crate::resources::BuildError| ("InvalidFoundry".to_owned(), e.to_string());
    if !egress_gateway::gateway_enabled(foundry).map_err(invalid)? {
        return Ok(None);
    }
    let name = names::egress_gateway(&foundry.name_any());
    let api: Api<Service> = Api::namespaced(rctx.base.client.clone(), namespace);
    let service = api.get_opt(&name).await.map_err(|e| {
        (
            "KubernetesApiError".to_owned(),
            format!("reading Service {name}: {e}"),
        )
    })?;
    let cluster_ip = service
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None");
    match cluster_ip {
        Some(ip) => Ok(Some(egress_gateway::proxy_address(&ip))),
        None => Err((
            "EgressGatewayMissing".to_owned(),
            format!(
                "the foundry approves hosts by name but its egress gateway Service {namespace}/{name} does not exist yet (the foundry controller creates it)"
            ),
        )),
    }
}

/// Creates the immutable render Secret. One left by an interrupted admission is reused while
/// its URLs outlive the render; a stale one is replaced (no Job uses it yet).
async fn ensure_secret(
    rctx: &RenderContext,
    namespace: &str,
    secret: &Secret,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(rctx.base.client.clone(), namespace);
    let name = secret.name_any();
    for _ in 0..2 {
        match api.create(&PostParams::default(), secret).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(error) => return Err(format!("cannot create Secret {name}: {error}")),
        }
        let existing = api
            .get_metadata_opt(&name)
            .await
            .map_err(|e| format!("cannot read Secret {name}: {e}"))?;
        let usable = existing.as_ref().is_some_and(|found| {
            have_covers(
                found.annotations().get(EXPIRES_AT_ANNOTATION),
                secret.annotations().get(EXPIRES_AT_ANNOTATION),
            )
        });
        if usable {
            return Ok(());
        }
        api.delete(&name, &Default::default())
            .await
            .map_err(|e| format!("cannot replace stale Secret {name}: {e}"))?;
    }
    Err(format!(
        "Secret {name} keeps being recreated by someone else"
    ))
}

/// Whether URLs expiring at `have` serve a render whose new URLs would expire at `wanted`:
/// they must last at least until the render's deadline (`wanted` less the margin).
fn have_covers(have: Option<&String>, wanted: Option<&String>) -> bool {
    let seconds = |text: Option<&String>| text.and_then(|t| t.parse::<i64>().ok());
    let margin = i64::try_from(URL_MARGIN.as_secs()).unwrap_or(0);
    match (seconds(have), seconds(wanted)) {
        (Some(have), Some(wanted)) => have + margin >= wanted,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foundry(generation: i64, observed: i64, ready: &str) -> VideoFoundry {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
            "metadata": {"name": "studio", "namespace": "media", "generation": generation},
            "spec": crate::crd::test_support::example_spec("videofoundry-developer.yaml"),
            "status": {"observedGeneration": observed, "conditions": [{
                "type": "Ready", "status": ready, "reason": "Provisioned", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn renders_start_only_on_a_ready_foundry_whose_latest_spec_is_applied() {
        assert!(ready_foundry(Some(&foundry(3, 3, "True"))).is_ok());
        let (reason, message) = ready_foundry(Some(&foundry(4, 3, "True"))).unwrap_err();
        assert_eq!(reason, "FoundryChanging");
        assert!(message.contains("generation 4"), "{message}");
        assert_eq!(
            ready_foundry(Some(&foundry(3, 3, "False"))).unwrap_err().0,
            "FoundryNotReady"
        );
        let mut deleting = foundry(3, 3, "True");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_767_225_600).unwrap(),
            ));
        let (reason, message) = ready_foundry(Some(&deleting)).unwrap_err();
        assert_eq!(reason, "FoundryDeleting");
        assert!(message.contains("is being deleted"), "{message}");
        assert_eq!(ready_foundry(None).unwrap_err().0, "FoundryNotFound");
    }

    #[test]
    fn a_left_over_secret_is_reused_only_while_its_urls_outlive_the_render() {
        let at = |t: &str| Some(t.to_owned());
        let wanted = at("1767230100"); // 2026-01-01T01:15:00Z
        assert!(have_covers(at("1767230040").as_ref(), wanted.as_ref()));
        assert!(have_covers(at("1767229200").as_ref(), wanted.as_ref()));
        assert!(!have_covers(at("1767229199").as_ref(), wanted.as_ref()));
        assert!(!have_covers(None, wanted.as_ref()));
        assert!(!have_covers(at("garbage").as_ref(), wanted.as_ref()));
    }
}
