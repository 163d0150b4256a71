//! The RenderJob controller, vetting stage: reads the workflow (inline or from a ConfigMap) and
//! the foundry's ApprovedNodeLists, vets it (fail closed), and publishes `status.vetting`,
//! `Vetted` and the phase. A rejected render is final: it never becomes a Job. Running approved
//! renders (record, presign, Secret and Job) is not part of this version.

pub mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use self::status::VettingOutcome;
use super::{
    Context, Error, identify, object_key, observed, retry_after_error, run_controller, write_status,
};
use crate::crd::{ApprovedNodeList, RenderJob, VideoFoundry};
use crate::security_profile;
use crate::vetting::{self, CoreNodes, Policy};

const CONTROLLER: &str = "renderjob";
/// The Event action of this controller.
const ACTION: &str = "Vet";

/// Runs the controller until `stop` flips to true.
pub async fn run(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    run_controller::<RenderJob, _>(ctx, stop, CONTROLLER, reconcile, error_policy).await;
}

/// Vets one render and writes its status when it changed.
#[tracing::instrument(skip(guard, ctx), fields(ns, name))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<RenderJob>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let work = async {
        match &guard.0 {
            Ok(render) => reconcile_render(render, object_key(CONTROLLER, &guard), &ctx).await,
            Err(invalid) => Err(Error::Unreadable(invalid.to_string())),
        }
    };
    observed(&ctx, CONTROLLER, work).await
}

async fn reconcile_render(render: &RenderJob, key: String, ctx: &Context) -> Result<Action, Error> {
    let (namespace, _) = identify(render)?;
    let generation = render.meta().generation;
    let current = render.status.as_ref();
    if current.is_some_and(|s| status::is_final(s, generation)) {
        return Ok(Action::await_change());
    }

    let outcome = vet_render(&ctx.client, &namespace, render).await;
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let desired = status::desired_status(current, generation, &outcome, now);
    if current != Some(&desired) {
        let events = status::events_for_change(current, &desired);
        write_status(ctx, render, &desired, events, ACTION).await?;
    }
    match outcome {
        // What vetting needs may appear any moment (GitOps applies in parallel).
        VettingOutcome::Waiting { .. } => Ok(Action::requeue(ctx.backoff.next_delay(&key))),
        VettingOutcome::Vetted(_) => {
            ctx.backoff.reset(&key);
            Ok(Action::await_change())
        }
    }
}

/// Gathers the workflow and the policy, then vets. Anything missing means no verdict.
async fn vet_render(client: &Client, namespace: &str, render: &RenderJob) -> VettingOutcome {
    let waiting =
        |reason: &'static str, message: String| VettingOutcome::Waiting { reason, message };
    let foundry_name = &render.spec.foundry_ref.name;
    let foundry = match Api::<VideoFoundry>::namespaced(client.clone(), namespace)
        .get_opt(foundry_name)
        .await
    {
        Ok(Some(foundry)) => foundry,
        Ok(None) => {
            return waiting(
                "FoundryNotFound",
                format!("VideoFoundry {namespace}/{foundry_name} does not exist"),
            );
        }
        Err(error) => {
            return waiting(
                "KubernetesApiError",
                format!("reading the foundry: {error}"),
            );
        }
    };
    let security = match security_profile::resolve(&foundry.spec) {
        Ok(security) => security,
        Err(error) => {
            return waiting(
                "FoundryInvalid",
                format!("VideoFoundry {foundry_name}: {error}"),
            );
        }
    };
    let workflow = match workflow_bytes(client, namespace, render).await {
        Ok(workflow) => workflow,
        Err(outcome) => return outcome,
    };
    let mut lists = Vec::new();
    let api: Api<ApprovedNodeList> = Api::namespaced(client.clone(), namespace);
    for reference in &foundry.spec.approved_node_lists {
        match api.get_opt(&reference.name).await {
            Ok(Some(list)) => lists.push(list),
            Ok(None) => {
                return waiting(
                    "ApprovedNodeListNotFound",
                    format!(
                        "ApprovedNodeList {namespace}/{} named by the foundry does not exist; nothing is vetted without it",
                        reference.name
                    ),
                );
            }
            Err(error) => {
                return waiting(
                    "KubernetesApiError",
                    format!("reading ApprovedNodeLists: {error}"),
                );
            }
        }
    }
    let named: Vec<(String, crate::crd::approved_node_list::ApprovedNodeListSpec)> = lists
        .iter()
        .map(|list| (list.name_any(), list.spec.clone()))
        .collect();
    let policy = match Policy::new(
        &named,
        CoreNodes::builtin(),
        security.vetting.into(),
        security.egress.into(),
    ) {
        Ok(policy) => policy,
        Err(error) => return waiting("PolicyInvalid", error.to_string()),
    };
    let report = vetting::vet(&workflow, &policy);
    let policy_ref = vetting::status::policy_ref(
        foundry_name,
        foundry.meta().generation,
        security.vetting,
        &lists,
    );
    VettingOutcome::Vetted(Box::new(vetting::status::vetting_status(
        &report, policy_ref,
    )))
}

/// The workflow exactly as it will be vetted: inline, or the ConfigMap key's bytes.
async fn workflow_bytes(
    client: &Client,
    namespace: &str,
    render: &RenderJob,
) -> Result<Vec<u8>, VettingOutcome> {
    if let Some(inline) = &render.spec.workflow.inline {
        return Ok(inline.as_bytes().to_vec());
    }
    let Some(reference) = &render.spec.workflow.config_map_ref else {
        return Err(VettingOutcome::Waiting {
            reason: "WorkflowMissing",
            message: "spec.workflow sets neither inline nor configMapRef".to_owned(),
        });
    };
    let missing = |what: String| VettingOutcome::Waiting {
        reason: "WorkflowNotFound",
        message: what,
    };
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|error| VettingOutcome::Waiting {
            reason: "KubernetesApiError",
            message: format!("reading ConfigMap {}: {error}", reference.name),
        })?
        .ok_or_else(|| {
            missing(format!(
                "ConfigMap {namespace}/{} does not exist",
                reference.name
            ))
        })?;
    let text = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .map(|text| text.as_bytes().to_vec());
    let binary = || {
        config_map
            .binary_data
            .as_ref()
            .and_then(|data| data.get(&reference.key))
            .map(|bytes| bytes.0.clone())
    };
    text.or_else(binary).ok_or_else(|| {
        missing(format!(
            "ConfigMap {namespace}/{} has no key {:?}",
            reference.name, reference.key
        ))
    })
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<RenderJob>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    retry_after_error(CONTROLLER, &guard, error, &ctx)
}
