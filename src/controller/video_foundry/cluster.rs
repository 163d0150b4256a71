//! The Kubernetes side of a foundry: the worker ServiceAccount and NetworkPolicies applied to its
//! namespace (server-side apply when they differ from what is stored, so re-running writes
//! nothing and a hand edit is reverted), and
//! the check of the sandbox RuntimeClasses that the cluster admin installs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, Resource, ResourceExt};

use super::status::StepOutcome;
use crate::controller::apply::{ChildChange, ensure_applied};
use crate::crd::VideoFoundry;
use crate::crd::conditions::types;
use crate::crd::video_foundry::SandboxType;
use crate::resources::cilium_policy::{self, CiliumNetworkPolicy};
use crate::resources::egress_gateway::GatewayObjects;
use crate::resources::quota::QuotaOptions;
use crate::resources::{self, BuildError, names, runtime_class};

/// Reason of `NetworkIsolated=True`.
pub const REASON_APPLIED: &str = "PoliciesApplied";
/// Reason of `SandboxReady=True`.
pub const REASON_SANDBOX_FOUND: &str = "RuntimeClassFound";
/// Reason of `SandboxReady=True` when the foundry runs workers without a sandbox (developer).
pub const REASON_SANDBOX_DISABLED: &str = "SandboxDisabled";

/// Applies the worker ServiceAccount, then the default-deny and egress NetworkPolicies, each
/// only when it is missing or differs from what is stored; what had to be put back is listed in
/// the outcome's repairs.
pub async fn apply_network_isolation(
    client: &Client,
    foundry: &VideoFoundry,
    gateway_image: &str,
) -> StepOutcome {
    let condition = types::NETWORK_ISOLATED;
    let quota = QuotaOptions::of(foundry);
    let objects = match resources::build_foundry_objects(foundry, quota.as_ref()) {
        Ok(objects) => objects,
        Err(error) => return build_failure(condition, &error),
    };
    let namespace = foundry.namespace().unwrap_or_default();
    let mut repairs = Vec::new();
    let accounts = Api::namespaced(client.clone(), &namespace);
    match ensure_applied(&accounts, &objects.service_account).await {
        Ok(change) => note(
            &mut repairs,
            "ServiceAccount",
            &objects.service_account,
            change,
        ),
        Err(error) => return api_failure(condition, &namespace, "ServiceAccount", &error),
    }
    let policies = Api::namespaced(client.clone(), &namespace);
    for policy in &objects.network_policies {
        match ensure_applied(&policies, policy).await {
            Ok(change) => note(&mut repairs, "NetworkPolicy", policy, change),
            Err(error) => return api_failure(condition, &namespace, "NetworkPolicy", &error),
        }
    }
    let gateway = match resources::egress_gateway::build_gateway_objects(foundry, gateway_image) {
        Ok(gateway) => gateway,
        Err(error) => return build_failure(condition, &error),
    };
    let gateway_note = match ensure_gateway(client, &namespace, foundry, gateway.as_ref()).await {
        Ok(gateway_repairs) => {
            repairs.extend(gateway_repairs);
            gateway_message(foundry, gateway.as_ref())
        }
        Err((kind, error)) => return api_failure(condition, &namespace, kind, &error),
    };
    let cilium = match cilium_policy::build_cilium_policy(foundry) {
        Ok(cilium) => cilium,
        Err(error) => return build_failure(condition, &error),
    };
    let cilium_note = match ensure_cilium(client, &namespace, foundry, cilium.as_ref()).await {
        Ok(CiliumState::Applied(change)) => {
            if let Some(policy) = &cilium {
                note(&mut repairs, "CiliumNetworkPolicy", policy, change);
            }
            cilium
                .as_ref()
                .map(|policy| format!("; approved hosts {CILIUM_RUNNING} {}", policy.name_any()))
                .unwrap_or_default()
        }
        Ok(CiliumState::NotInstalled) => {
            return StepOutcome::failed(
                condition,
                "CiliumNotInstalled",
                format!(
                    "network.hostEnforcement is cilium but the cluster does not serve {} (CRD {}); install Cilium or set hostEnforcement: gateway",
                    "CiliumNetworkPolicy",
                    cilium_policy::CILIUM_POLICY_CRD
                ),
                true,
            );
        }
        Err(("CustomResourceDefinition", kube::Error::Api(status))) if status.is_forbidden() => {
            return StepOutcome::failed(
                condition,
                "Forbidden",
                format!(
                    "network.hostEnforcement is cilium but the operator may not read CRD {}: {}; install the chart with cilium.enabled: true",
                    cilium_policy::CILIUM_POLICY_CRD,
                    status.message
                ),
                false,
            );
        }
        Err((kind, error)) => return api_failure(condition, &namespace, kind, &error),
    };
    // The namespace quota after the policies: a quota never gates isolation.
    let quota_note = match apply_quota(client, foundry, &objects, &mut repairs).await {
        Ok(note) => note,
        Err((kind, error)) => return api_failure(condition, &namespace, kind, &error),
    };
    let names: Vec<String> = objects
        .network_policies
        .iter()
        .map(|policy| policy.name_any())
        .collect();
    StepOutcome::ready(
        condition,
        REASON_APPLIED,
        format!(
            "worker ingress denied and egress limited by NetworkPolicies {}{gateway_note}{cilium_note}{quota_note}",
            names.join(", ")
        ),
    )
    .with_repairs(repairs)
}

/// Applies the egress gateway's NetworkPolicy, Deployment and Service (in that order, so its
/// pods never run unconfined), or deletes them when the foundry no longer has a gateway.
async fn ensure_gateway(
    client: &Client,
    namespace: &str,
    foundry: &VideoFoundry,
    gateway: Option<&GatewayObjects>,
) -> Result<Vec<String>, (&'static str, kube::Error)> {
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut repairs = Vec::new();
    let Some(gateway) = gateway else {
        if !may_have_gateway(foundry) {
            // A foundry that never approved hosts costs no request here.
            return Ok(repairs);
        }
        let name = names::egress_gateway(&foundry.name_any());
        delete_if_present(&services, &name)
            .await
            .map_err(|e| ("Service", e))?;
        delete_if_present(&deployments, &name)
            .await
            .map_err(|e| ("Deployment", e))?;
        delete_if_present(&policies, &name)
            .await
            .map_err(|e| ("NetworkPolicy", e))?;
        return Ok(repairs);
    };
    let change = ensure_applied(&policies, &gateway.network_policy)
        .await
        .map_err(|e| ("NetworkPolicy", e))?;
    note(
        &mut repairs,
        "NetworkPolicy",
        &gateway.network_policy,
        change,
    );
    let change = ensure_applied(&deployments, &gateway.deployment)
        .await
        .map_err(|e| ("Deployment", e))?;
    note(&mut repairs, "Deployment", &gateway.deployment, change);
    let change = ensure_applied(&services, &gateway.service)
        .await
        .map_err(|e| ("Service", e))?;
    note(&mut repairs, "Service", &gateway.service, change);
    Ok(repairs)
}

/// Words of the NetworkIsolated message of a foundry whose hosts Cilium enforces.
const CILIUM_RUNNING: &str = "enforced by CiliumNetworkPolicy";

/// What became of the foundry's CiliumNetworkPolicy.
enum CiliumState {
    /// Applied (or removed, or never needed).
    Applied(ChildChange),
    /// The foundry asks for Cilium, and the cluster does not serve its policies.
    NotInstalled,
}

/// Applies the foundry's CiliumNetworkPolicy once the cluster is seen to serve the kind, or
/// deletes it when the foundry no longer uses Cilium.
async fn ensure_cilium(
    client: &Client,
    namespace: &str,
    foundry: &VideoFoundry,
    policy: Option<&CiliumNetworkPolicy>,
) -> Result<CiliumState, (&'static str, kube::Error)> {
    let ran = foundry.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == types::NETWORK_ISOLATED && c.message.contains(CILIUM_RUNNING))
    });
    if policy.is_none() && !ran {
        // A foundry that never used Cilium costs no request here.
        return Ok(CiliumState::Applied(ChildChange::Unchanged));
    }
    let served = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(cilium_policy::CILIUM_POLICY_CRD)
        .await
        .map_err(|e| ("CustomResourceDefinition", e))?
        .is_some();
    let policies: Api<CiliumNetworkPolicy> = Api::namespaced(client.clone(), namespace);
    match (policy, served) {
        (Some(_), false) => Ok(CiliumState::NotInstalled),
        (Some(policy), true) => ensure_applied(&policies, policy)
            .await
            .map(CiliumState::Applied)
            .map_err(|e| ("CiliumNetworkPolicy", e)),
        (None, false) => Ok(CiliumState::Applied(ChildChange::Unchanged)),
        (None, true) => {
            delete_if_present(&policies, &cilium_policy::policy_name(&foundry.name_any()))
                .await
                .map_err(|e| ("CiliumNetworkPolicy", e))?;
            Ok(CiliumState::Applied(ChildChange::Unchanged))
        }
    }
}

/// Deletes `name` when it exists (a gateway the foundry no longer wants); 404 is success.
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    // Read first: a foundry that never had a gateway costs a read, not a failed write.
    if api.get_opt(name).await?.is_none() {
        return Ok(());
    }
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Words of the NetworkIsolated message of a foundry that runs a gateway.
const GATEWAY_RUNNING: &str = "reached through egress gateway";

/// Whether gateway objects may exist: the foundry approves hosts, or its last status said a
/// gateway ran (the hosts were removed since). Deleting the foundry removes them by owner
/// reference either way.
fn may_have_gateway(foundry: &VideoFoundry) -> bool {
    let approves = foundry
        .spec
        .network
        .as_ref()
        .is_some_and(|n| !n.allowed_hosts.is_empty());
    let ran = foundry.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == types::NETWORK_ISOLATED && c.message.contains(GATEWAY_RUNNING))
    });
    approves || ran
}

/// What the NetworkIsolated message says about named hosts.
fn gateway_message(foundry: &VideoFoundry, gateway: Option<&GatewayObjects>) -> String {
    let hosts = foundry
        .spec
        .network
        .as_ref()
        .map_or(0, |n| n.allowed_hosts.len());
    match (gateway, hosts) {
        (Some(gateway), _) => format!(
            "; {hosts} approved host(s) {GATEWAY_RUNNING} {}",
            gateway.deployment.name_any()
        ),
        (None, 0) => String::new(),
        (None, _) => format!(
            "; network.allowedHosts ({hosts}) is not used: worker egress is not restricted (set network.egress: restricted to run the egress gateway)"
        ),
    }
}

/// Applies the ResourceQuota and LimitRange of `spec.quota`, or deletes the ones the operator
/// made when the foundry no longer asks for them. Returns a note for the condition message.
async fn apply_quota(
    client: &Client,
    foundry: &VideoFoundry,
    objects: &resources::FoundryObjects,
    repairs: &mut Vec<String>,
) -> Result<String, (&'static str, kube::Error)> {
    let namespace = foundry.namespace().unwrap_or_default();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &namespace);
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), &namespace);
    let name = resources::names::worker_quota(&foundry.name_any());
    match &objects.resource_quota {
        Some(quota) => {
            let change = ensure_applied(&quotas, quota)
                .await
                .map_err(|e| ("ResourceQuota", e))?;
            note(repairs, "ResourceQuota", quota, change);
        }
        None => delete_ours(&quotas, &name, foundry)
            .await
            .map_err(|e| ("ResourceQuota", e))?,
    }
    match &objects.limit_range {
        Some(range) => {
            let change = ensure_applied(&ranges, range)
                .await
                .map_err(|e| ("LimitRange", e))?;
            note(repairs, "LimitRange", range, change);
        }
        None => delete_ours(&ranges, &name, foundry)
            .await
            .map_err(|e| ("LimitRange", e))?,
    }
    Ok(match &objects.resource_quota {
        Some(quota) => {
            let hard = quota
                .spec
                .as_ref()
                .and_then(|spec| spec.hard.as_ref())
                .map(|hard| {
                    hard.iter()
                        .map(|(k, v)| format!("{k}={}", v.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("; namespace capped by ResourceQuota {name} ({hard})")
        }
        None => String::new(),
    })
}

/// Deletes `name` when it exists and carries the foundry's labels (never an admin's object of
/// the same name).
async fn delete_ours<K>(api: &Api<K>, name: &str, foundry: &VideoFoundry) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(existing) = api.get_opt(name).await? else {
        return Ok(());
    };
    let ours = resources::labels::foundry_labels(&foundry.name_any())
        .iter()
        .all(|(k, v)| existing.labels().get(k) == Some(v));
    if ours {
        match api.delete(name, &kube::api::DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn note(repairs: &mut Vec<String>, kind: &str, object: &impl Resource, change: ChildChange) {
    let name = object.meta().name.as_deref().unwrap_or_default();
    match change {
        ChildChange::Unchanged => {}
        ChildChange::Created => repairs.push(format!("{kind} {name} created")),
        ChildChange::Updated => repairs.push(format!("{kind} {name} restored")),
    }
}

/// Checks that every RuntimeClass the workers use exists with a sandboxing handler.
pub async fn check_sandbox(client: &Client, foundry: &VideoFoundry) -> StepOutcome {
    let condition = types::SANDBOX_READY;
    let sandbox = match runtime_class::effective_sandbox(foundry) {
        Ok(sandbox) => sandbox,
        Err(error) => return build_failure(condition, &error),
    };
    if sandbox == SandboxType::None {
        return StepOutcome::ready(
            condition,
            REASON_SANDBOX_DISABLED,
            "sandbox.type is none: workers run without a sandbox (developer mode only)",
        );
    }
    let expected = match runtime_class::expected_runtime_classes(foundry) {
        Ok(expected) => expected,
        Err(error) => return build_failure(condition, &error),
    };
    let api: Api<RuntimeClass> = Api::all(client.clone());
    let mut found = Vec::new();
    for expectation in &expected {
        let observed = match api.get_opt(&expectation.name).await {
            Ok(observed) => observed,
            Err(error) => return api_failure(condition, "", "RuntimeClass", &error),
        };
        if let Err(mismatch) = runtime_class::check_runtime_class(expectation, observed.as_ref()) {
            let reason = match mismatch {
                runtime_class::RuntimeClassMismatch::Missing { .. } => "RuntimeClassMissing",
                runtime_class::RuntimeClassMismatch::WrongHandler { .. } => {
                    "RuntimeClassWrongHandler"
                }
            };
            return StepOutcome::failed(condition, reason, mismatch.to_string(), false);
        }
        found.push(expectation.name.clone());
    }
    StepOutcome::ready(
        condition,
        REASON_SANDBOX_FOUND,
        format!("RuntimeClass {} provides the sandbox", found.join(", ")),
    )
}

fn build_failure(condition: &'static str, error: &BuildError) -> StepOutcome {
    StepOutcome::failed(condition, error.category(), error.to_string(), false)
}

/// A failed API request: RBAC refusals name the fix; everything else is retried.
fn api_failure(
    condition: &'static str,
    namespace: &str,
    kind: &str,
    error: &kube::Error,
) -> StepOutcome {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => StepOutcome::failed(
            condition,
            "Forbidden",
            format!(
                "the operator may not write {kind} objects in namespace {namespace:?}: {}; list the namespace in the chart's foundryNamespaces value",
                status.message
            ),
            false,
        ),
        other => StepOutcome::failed(
            condition,
            "KubernetesApiError",
            format!("{kind}: {other}"),
            true,
        ),
    }
}
