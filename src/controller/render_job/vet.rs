//! The vetting stage: the workflow (inline, read from the API server because the cache keeps no
//! bodies, or from its ConfigMap) against the foundry's ApprovedNodeLists, failing closed.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, Resource, ResourceExt};

use super::status::VettingOutcome;
use crate::crd::render_job::VettingStatus;
use crate::crd::{ApprovedNodeList, RenderJob, VideoFoundry};
use crate::security_profile;
use crate::vetting::{self, CoreNodes, Policy};

/// What vetting produced, with what the next stages need.
pub struct Vetted {
    /// The outcome for the status.
    pub outcome: VettingOutcome,
    /// The foundry, when it was read.
    pub foundry: Option<VideoFoundry>,
    /// The exact bytes that were vetted.
    pub workflow: Option<Vec<u8>>,
}

fn waiting(reason: &'static str, message: String) -> Vetted {
    Vetted {
        outcome: VettingOutcome::Waiting { reason, message },
        foundry: None,
        workflow: None,
    }
}

/// Gathers the workflow and the policy, then vets. Anything missing means no verdict.
pub async fn vet_render(client: &Client, namespace: &str, render: &RenderJob) -> Vetted {
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
    let vetted = vet_found(client, namespace, render, &foundry).await;
    match vetted {
        Ok((status, workflow)) => Vetted {
            outcome: VettingOutcome::Vetted(Box::new(status)),
            foundry: Some(foundry),
            workflow: Some(workflow),
        },
        // The foundry is kept: the caller checks which installation owns it before it writes.
        Err((reason, message)) => Vetted {
            foundry: Some(foundry),
            ..waiting(reason, message)
        },
    }
}

/// Reads the workflow and the foundry's ApprovedNodeLists, then vets.
async fn vet_found(
    client: &Client,
    namespace: &str,
    render: &RenderJob,
    foundry: &VideoFoundry,
) -> Result<(VettingStatus, Vec<u8>), (&'static str, String)> {
    let workflow = workflow_bytes(client, namespace, render).await?;
    let mut lists = Vec::new();
    let api: Api<ApprovedNodeList> = Api::namespaced(client.clone(), namespace);
    for reference in &foundry.spec.approved_node_lists {
        match api.get_opt(&reference.name).await {
            Ok(Some(list)) => lists.push(list),
            Ok(None) => {
                return Err((
                    "ApprovedNodeListNotFound",
                    format!(
                        "ApprovedNodeList {namespace}/{} named by the foundry does not exist; nothing is vetted without it",
                        reference.name
                    ),
                ));
            }
            Err(error) => {
                return Err((
                    "KubernetesApiError",
                    format!("reading ApprovedNodeLists: {error}"),
                ));
            }
        }
    }
    let status = vet_with(foundry, &lists, &workflow)?;
    Ok((status, workflow))
}

/// Vets `workflow` against `foundry`'s policy made of `lists` (the ApprovedNodeLists it names,
/// all found): the pure part of vetting, also used offline by `plan`. An error is a reason
/// and message for `Vetted=Unknown` (no verdict).
pub fn vet_with(
    foundry: &VideoFoundry,
    lists: &[ApprovedNodeList],
    workflow: &[u8],
) -> Result<VettingStatus, (&'static str, String)> {
    let foundry_name = foundry.name_any();
    let security = security_profile::resolve(&foundry.spec).map_err(|error| {
        (
            "FoundryInvalid",
            format!("VideoFoundry {foundry_name}: {error}"),
        )
    })?;
    let named: Vec<(String, crate::crd::approved_node_list::ApprovedNodeListSpec)> = lists
        .iter()
        .map(|list| (list.name_any(), list.spec.clone()))
        .collect();
    let policy = Policy::new(
        &named,
        CoreNodes::builtin(),
        security.vetting.into(),
        security.egress.into(),
    )
    .map_err(|error| ("PolicyInvalid", error.to_string()))?
    .with_approved_hosts(hosts_in_force(foundry).map_err(|message| ("PolicyInvalid", message))?);
    let report = vetting::vet(workflow, &policy);
    let policy_ref = vetting::status::policy_ref(
        &foundry_name,
        foundry.meta().generation,
        security.vetting,
        lists,
    );
    Ok(vetting::status::vetting_status(&report, policy_ref))
}

/// The hosts workers can reach by name: the foundry's `network.allowedHosts` while they are
/// enforced (egress gateway or Cilium), none otherwise (vetting then refuses API nodes and URL
/// sources by host).
fn hosts_in_force(foundry: &VideoFoundry) -> Result<crate::egress::Policy, String> {
    let enforced = crate::resources::egress_gateway::named_egress(foundry)
        .map_err(|e| e.to_string())?
        .is_some();
    let hosts = match (&foundry.spec.network, enforced) {
        (Some(network), true) => network.allowed_hosts.clone(),
        _ => Vec::new(),
    };
    crate::egress::Policy::new(&hosts).map_err(|e| {
        format!(
            "spec.network.allowedHosts of foundry {}: {e}",
            foundry.name_any()
        )
    })
}

/// The workflow exactly as it will be vetted and run: the inline text (read from the API
/// server when the cache stripped it) or the ConfigMap key's bytes.
pub async fn workflow_bytes(
    client: &Client,
    namespace: &str,
    render: &RenderJob,
) -> Result<Vec<u8>, (&'static str, String)> {
    if let Some(inline) = &render.spec.workflow.inline {
        if !super::cache::workflow_stripped(render) {
            return Ok(inline.as_bytes().to_vec());
        }
        let full = Api::<RenderJob>::namespaced(client.clone(), namespace)
            .get(&render.name_any())
            .await
            .map_err(|error| {
                (
                    "KubernetesApiError",
                    format!("reading the RenderJob's workflow: {error}"),
                )
            })?;
        if full.uid() != render.uid() {
            return Err((
                "WorkflowNotFound",
                "the RenderJob was replaced while it was read".to_owned(),
            ));
        }
        return Ok(full.spec.workflow.inline.unwrap_or_default().into_bytes());
    }
    let Some(reference) = &render.spec.workflow.config_map_ref else {
        return Err((
            "WorkflowMissing",
            "spec.workflow sets neither inline nor configMapRef".to_owned(),
        ));
    };
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|error| {
            (
                "KubernetesApiError",
                format!("reading ConfigMap {}: {error}", reference.name),
            )
        })?
        .ok_or_else(|| {
            (
                "WorkflowNotFound",
                format!("ConfigMap {namespace}/{} does not exist", reference.name),
            )
        })?;
    workflow_from_config_map(&config_map, namespace, reference)
}

/// The workflow in `config_map` under `reference.key` (text or binary data).
pub fn workflow_from_config_map(
    config_map: &ConfigMap,
    namespace: &str,
    reference: &crate::crd::ConfigMapKeyRef,
) -> Result<Vec<u8>, (&'static str, String)> {
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
        (
            "WorkflowNotFound",
            format!(
                "ConfigMap {namespace}/{} has no key {:?}",
                reference.name, reference.key
            ),
        )
    })
}
