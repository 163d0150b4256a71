//! The VideoFoundry controller: resolves the effective security profile, applies the namespace's
//! worker isolation, checks the sandbox, and publishes one condition per guarantee plus `Ready`.
//! Every step is idempotent and writes only what differs, so an interrupted reconcile converges
//! when it runs again and a foundry at rest causes no write; a watch on the owned objects and a
//! periodic re-check find and repair drift made behind the operator's back.

pub mod backends;
pub mod cluster;
pub mod credentials;
pub mod reclaim;
pub mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt as _};
use tokio::sync::watch;

use super::events::PlannedEvent;
use super::{
    Context, Error, identify, object_key, observed, ownership, retry_after_error,
    run_controller_with, watched_api, write_status_if_unchanged,
};
use crate::crd::VideoFoundry;
use crate::crd::video_foundry::VideoFoundryStatus;
use crate::metrics::Backend;
use crate::resources::labels;
use crate::security_profile;

const CONTROLLER: &str = "videofoundry";
/// The Event action of this controller.
const ACTION: &str = "Provision";
/// Reason of the Event that tells drift found and repaired.
pub const REASON_DRIFT_REPAIRED: &str = "DriftRepaired";

/// Runs the controller until `stop` flips to true. Besides the foundries it watches the
/// NetworkPolicies and worker ServiceAccounts they own, so a deleted or edited one is repaired
/// at once; backend drift that cannot be watched (Postgres, Vault, the bucket) is re-checked
/// every `reconcile.requeueSeconds`.
pub async fn run(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let children = watcher::Config::default()
        .labels(&format!(
            "app.kubernetes.io/managed-by={},app.kubernetes.io/component={}",
            labels::MANAGED_BY,
            labels::FOUNDRY_COMPONENT
        ))
        .any_semantic();
    let policies = watched_api::<NetworkPolicy>(&ctx);
    let accounts = watched_api::<ServiceAccount>(&ctx);
    run_controller_with::<VideoFoundry, _>(
        ctx,
        stop,
        CONTROLLER,
        reconcile,
        error_policy,
        move |controller| {
            controller
                .owns(policies, children.clone())
                .owns(accounts, children)
        },
    )
    .await;
}

/// Provisions one foundry and writes its status when it changed.
#[tracing::instrument(skip(guard, ctx), fields(ns, name))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<VideoFoundry>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let work = async {
        match &guard.0 {
            Ok(foundry) => reconcile_foundry(foundry, object_key(CONTROLLER, &guard), &ctx).await,
            // Schema validation normally prevents this; nothing can be provisioned from it.
            Err(invalid) => Err(Error::Unreadable(invalid.to_string())),
        }
    };
    observed(&ctx, CONTROLLER, work).await
}

async fn reconcile_foundry(
    foundry: &VideoFoundry,
    key: String,
    ctx: &Context,
) -> Result<Action, Error> {
    let (namespace, _) = identify(foundry)?;
    if !ownership::claims(foundry, &ctx.config) {
        // Another installation's foundry: not a single write, so two installations never fight.
        tracing::debug!(
            why = ownership::not_claimed_reason(foundry, &ctx.config),
            "left to another installation"
        );
        return Ok(Action::await_change());
    }

    if foundry.meta().deletion_timestamp.is_some() {
        return reclaim::finalize(foundry, &key, ctx).await;
    }
    // Before anything is provisioned, so nothing made for the foundry outlives it unrecorded.
    let api: kube::Api<VideoFoundry> = kube::Api::namespaced(ctx.client.clone(), &namespace);
    super::finalizers::ensure(&api, foundry, crate::crd::video_foundry::FINALIZER).await?;

    let security = security_profile::resolve(&foundry.spec);
    let mut steps = Vec::new();
    if security.is_ok() {
        // Isolation first: no later step may leave workers running unisolated.
        steps.push(
            cluster::apply_network_isolation(&ctx.client, foundry, &ctx.config.worker.binary_image)
                .await,
        );
        steps.push(cluster::check_sandbox(&ctx.client, foundry).await);
    }
    let mut rotation = None;
    if security.is_ok() {
        let reader = credentials::SecretReader::new(&ctx.client, &namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        let backends = backends::secrets_and_database_steps(
            &ctx.client,
            &ctx.vault_jwt,
            &reader,
            foundry,
            now,
        )
        .await;
        for (secret, result) in &backends.rotations {
            ctx.metrics.observe_rotation(*secret, *result);
        }
        steps.push(backends.secrets);
        steps.push(backends.database);
        steps.push(backends::storage_step(&reader, foundry).await);
        rotation = Some((backends.last_rotation, backends.next_rotation));
    }

    let current = foundry.status.as_ref();
    let mut desired = status::desired_status(
        current,
        foundry.meta().generation,
        &security,
        &steps,
        to_seconds(Time(k8s_openapi::jiff::Timestamp::now())),
    );
    desired.claimed_by = Some(ctx.config.installation.class_name.clone());
    observe_foundry(ctx, foundry, &namespace, &desired, &steps);
    if let Some((last, next)) = rotation {
        desired.last_rotation = last.map(to_seconds);
        desired.next_rotation = next.map(to_seconds);
    }
    let mut events = drift_events(current, &steps);
    if current != Some(&desired) {
        events.extend(status::events_for_change(current, &desired));
        // Claiming (or taking over) is conditional on the foundry being unchanged since it was
        // read, so of two installations that both saw it unclaimed only the first one wins.
        let claiming = current.and_then(|s| s.claimed_by.as_ref()) != desired.claimed_by.as_ref();
        let precondition = claiming
            .then(|| foundry.meta().resource_version.as_deref())
            .flatten();
        match write_status_if_unchanged(ctx, foundry, &desired, events, ACTION, precondition).await
        {
            Err(Error::Kube(kube::Error::Api(status))) if claiming && status.is_conflict() => {
                tracing::debug!("another writer changed the foundry first; re-reading it");
                return Ok(Action::requeue(std::time::Duration::from_secs(1)));
            }
            written => written?,
        }
    } else if !events.is_empty() {
        let reference = foundry.object_ref(&());
        for event in events {
            super::events::publish(ctx, &reference, ACTION, event).await;
        }
    }

    if steps.iter().any(|step| step.transient) {
        return Ok(Action::requeue(ctx.backoff.next_delay(&key)));
    }
    ctx.backoff.reset(&key);
    if security.is_err() {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(ctx.config.requeue_after()))
}

/// A Warning `DriftRepaired` Event per step that put something back after its guarantee had
/// held (what a first provisioning creates is not drift).
/// Publishes whether the foundry is Ready and which backends its steps reached.
fn observe_foundry(
    ctx: &Context,
    foundry: &VideoFoundry,
    namespace: &str,
    desired: &VideoFoundryStatus,
    steps: &[status::StepOutcome],
) {
    let name = foundry.name_any();
    let ready = desired
        .conditions
        .iter()
        .any(|c| c.type_ == crate::crd::conditions::types::READY && c.status == "True");
    ctx.metrics.set_foundry_ready(namespace, &name, ready);
    for step in steps {
        if let Some((backend, up)) = backend_reached(step) {
            // Without spec.vault the secrets live in a Kubernetes Secret (developer mode).
            if backend == Backend::Vault && foundry.spec.vault.is_none() {
                continue;
            }
            ctx.metrics.set_backend_up(namespace, &name, backend, up);
        }
    }
}

/// Whether a step reached its backend: `None` when it never tried (its credentials are
/// missing, an earlier step failed, the spec is invalid, or it is not a backend step); `false`
/// when it failed in a way that may heal by itself (unreachable, timed out); `true` otherwise
/// (the backend answered, even with a refusal).
pub fn backend_reached(step: &status::StepOutcome) -> Option<(Backend, bool)> {
    use crate::crd::conditions::types::{DATABASE_READY, SECRETS_READY, STORAGE_READY};
    let backend = match step.condition {
        DATABASE_READY => Backend::Postgres,
        SECRETS_READY => Backend::Vault,
        STORAGE_READY => Backend::S3,
        _ => return None,
    };
    const NOT_TRIED: [&str; 5] = [
        "CredentialsMissing",
        "CredentialsUnreadable",
        "SecretsNotReady",
        "InvalidSpec",
        "TlsRequired",
    ];
    if NOT_TRIED.contains(&step.reason.as_str()) {
        return None;
    }
    Some((backend, step.ready || !step.transient))
}

fn drift_events(
    current: Option<&VideoFoundryStatus>,
    steps: &[status::StepOutcome],
) -> Vec<PlannedEvent> {
    let held = |type_: &str| {
        current.is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c: &Condition| c.type_ == type_ && c.status == "True")
        })
    };
    steps
        .iter()
        .filter(|step| !step.repairs.is_empty() && held(step.condition))
        .map(|step| PlannedEvent {
            warning: true,
            reason: REASON_DRIFT_REPAIRED.to_owned(),
            note: format!("{}: repaired {}", step.condition, step.repairs.join("; ")),
        })
        .collect()
}

/// `time` cut to whole seconds: the API server stores `metav1.Time` at second precision, so a
/// status with sub-second times would never equal the stored one and be rewritten every time.
pub fn to_seconds(time: Time) -> Time {
    k8s_openapi::jiff::Timestamp::from_second(time.0.as_second())
        .map(Time)
        .unwrap_or(time)
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<VideoFoundry>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    retry_after_error(CONTROLLER, &guard, error, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::conditions::types::{DATABASE_READY, SECRETS_READY, STORAGE_READY};

    #[test]
    fn a_backend_is_down_only_when_a_step_that_reached_for_it_failed_transiently() {
        use status::StepOutcome;
        let cases = [
            (
                StepOutcome::ready(DATABASE_READY, "Provisioned", "ok"),
                Some((Backend::Postgres, true)),
            ),
            (
                StepOutcome::failed(SECRETS_READY, "VaultUnreachable", "timed out", true),
                Some((Backend::Vault, false)),
            ),
            // The backend answered with a refusal: it is up, the foundry is not Ready.
            (
                StepOutcome::failed(STORAGE_READY, "AccessDenied", "403", false),
                Some((Backend::S3, true)),
            ),
            // Never tried: no claim either way.
            (
                StepOutcome::failed(DATABASE_READY, "CredentialsMissing", "no Secret", true),
                None,
            ),
            (
                StepOutcome::failed(DATABASE_READY, "SecretsNotReady", "waiting", false),
                None,
            ),
            (
                StepOutcome::ready("NetworkIsolated", "PoliciesApplied", "ok"),
                None,
            ),
        ];
        for (step, expected) in cases {
            assert_eq!(backend_reached(&step), expected, "{step:?}");
        }
    }

    #[test]
    fn status_times_are_cut_to_the_seconds_the_api_server_keeps() {
        let precise = Time(k8s_openapi::jiff::Timestamp::new(1_700_000_000, 123_456_789).unwrap());
        assert_eq!(
            to_seconds(precise).0,
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap()
        );
    }

    #[test]
    fn repairs_become_drift_events_only_once_the_guarantee_had_held() {
        let step = status::StepOutcome::ready("NetworkIsolated", "PoliciesApplied", "ok")
            .with_repairs(vec!["NetworkPolicy deny created".to_owned()]);
        assert!(drift_events(None, std::slice::from_ref(&step)).is_empty());
        let held = status::desired_status(
            None,
            Some(1),
            &security_profile::resolve(&crate::crd::test_support::example_spec(
                "videofoundry-developer.yaml",
            )),
            std::slice::from_ref(&step),
            to_seconds(Time(k8s_openapi::jiff::Timestamp::now())),
        );
        let events = drift_events(Some(&held), &[step]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, REASON_DRIFT_REPAIRED);
        assert!(events[0].warning);
        assert_eq!(
            events[0].note,
            "NetworkIsolated: repaired NetworkPolicy deny created"
        );
    }
}
