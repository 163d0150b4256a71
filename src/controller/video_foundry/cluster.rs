//! The Kubernetes side of a foundry: the worker ServiceAccount and NetworkPolicies applied to its
//! namespace (server-side apply when they differ from what is stored, so re-running writes
//! nothing and a hand edit is reverted), and
//! the check of the sandbox RuntimeClasses that the cluster admin installs.

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::{Api, Client, Resource, ResourceExt};

use super::status::StepOutcome;
use crate::controller::apply::{ChildChange, ensure_applied};
use crate::crd::VideoFoundry;
use crate::crd::conditions::types;
use crate::crd::video_foundry::SandboxType;
use crate::resources::quota::QuotaOptions;
use crate::resources::{self, BuildError, runtime_class};

/// Reason of `NetworkIsolated=True`.
pub const REASON_APPLIED: &str = "PoliciesApplied";
/// Reason of `SandboxReady=True`.
pub const REASON_SANDBOX_FOUND: &str = "RuntimeClassFound";
/// Reason of `SandboxReady=True` when the foundry runs workers without a sandbox (developer).
pub const REASON_SANDBOX_DISABLED: &str = "SandboxDisabled";

/// Applies the worker ServiceAccount, then the default-deny and egress NetworkPolicies, each
/// only when it is missing or differs from what is stored; what had to be put back is listed in
/// the outcome's repairs.
pub async fn apply_network_isolation(client: &Client, foundry: &VideoFoundry) -> StepOutcome {
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
            "worker ingress denied and egress limited by NetworkPolicies {}{quota_note}",
            names.join(", ")
        ),
    )
    .with_repairs(repairs)
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
