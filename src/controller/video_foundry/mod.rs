//! The VideoFoundry controller: resolves the effective security profile, applies the namespace's
//! worker isolation, checks the sandbox, and publishes one condition per guarantee plus `Ready`.
//! Every step is idempotent, so an interrupted reconcile converges when it runs again; a periodic
//! re-check finds and repairs drift made behind the operator's back.

pub mod backends;
pub mod cluster;
pub mod credentials;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::{
    Context, Error, identify, object_key, observed, retry_after_error, run_controller, write_status,
};
use crate::crd::VideoFoundry;
use crate::security_profile;

const CONTROLLER: &str = "videofoundry";
/// The Event action of this controller.
const ACTION: &str = "Provision";
/// How often a healthy foundry is re-checked for drift (policies deleted by hand, and so on).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(300);

/// Runs the controller until `stop` flips to true.
pub async fn run(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    run_controller::<VideoFoundry, _>(ctx, stop, CONTROLLER, reconcile, error_policy).await;
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

    let security = security_profile::resolve(&foundry.spec);
    let mut steps = Vec::new();
    if security.is_ok() {
        // Isolation first: no later step may leave workers running unisolated.
        steps.push(cluster::apply_network_isolation(&ctx.client, foundry).await);
        steps.push(cluster::check_sandbox(&ctx.client, foundry).await);
    }
    let mut rotation = None;
    if security.is_ok() {
        let reader = credentials::SecretReader::new(&ctx.client, &namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        let backends =
            backends::secrets_and_database_steps(&ctx.client, &reader, foundry, now).await;
        steps.push(backends.secrets);
        steps.push(backends.database);
        steps.push(backends::storage_step(&reader, foundry).await);
        rotation = Some((backends.last_rotation, backends.next_rotation));
    }

    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let current = foundry.status.as_ref();
    let mut desired =
        status::desired_status(current, foundry.meta().generation, &security, &steps, now);
    if let Some((last, next)) = rotation {
        desired.last_rotation = last;
        desired.next_rotation = next;
    }
    if current != Some(&desired) {
        let events = status::events_for_change(current, &desired);
        write_status(ctx, foundry, &desired, events, ACTION).await?;
    }

    if steps.iter().any(|step| step.transient) {
        return Ok(Action::requeue(ctx.backoff.next_delay(&key)));
    }
    ctx.backoff.reset(&key);
    if security.is_err() {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(RECHECK_INTERVAL))
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<VideoFoundry>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    retry_after_error(CONTROLLER, &guard, error, &ctx)
}
