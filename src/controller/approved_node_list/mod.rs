//! The ApprovedNodeList controller: validates each list and publishes `Ready`, counts and
//! `observedGeneration`. Nothing outside the object depends on it, so a valid, unchanged list
//! costs no API write.

pub mod status;

use std::sync::Arc;

use kube::Resource;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::events::{PlannedEvent, publish};
use super::{
    Context, Error, identify, object_key, observed, retry_after_error, run_controller, write_status,
};
use crate::crd::ApprovedNodeList;

const CONTROLLER: &str = "approvednodelist";
/// The Event action of this controller.
const ACTION: &str = "Validate";

/// Runs the controller until `stop` flips to true.
pub async fn run(ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    run_controller::<ApprovedNodeList, _>(ctx, stop, CONTROLLER, reconcile, error_policy).await;
}

/// Validates one list and writes its status when it changed.
#[tracing::instrument(skip(guard, ctx), fields(ns, name))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<ApprovedNodeList>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    observed(&ctx, CONTROLLER, reconcile_inner(&guard, &ctx)).await
}

async fn reconcile_inner(
    guard: &DeserializeGuard<ApprovedNodeList>,
    ctx: &Context,
) -> Result<Action, Error> {
    let list = match &guard.0 {
        Ok(list) => list,
        Err(invalid) => {
            // Schema validation normally prevents this; report once and wait for an edit.
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(ApprovedNodeList::api_version(&()).into_owned()),
                kind: Some(ApprovedNodeList::kind(&()).into_owned()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..Default::default()
            };
            let event = PlannedEvent {
                warning: true,
                reason: status::REASON_INVALID.to_owned(),
                note: format!("cannot read the object: {invalid}"),
            };
            publish(ctx, &reference, ACTION, event).await;
            return Ok(Action::await_change());
        }
    };
    identify(list)?;

    let report = crate::vetting::approved_list::validate(&list.spec);
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let current = list.status.as_ref();
    let desired = status::desired_status(current, list.meta().generation, &report, now);
    if current != Some(&desired) {
        let events = status::events_for_change(current, &desired, &report);
        write_status(ctx, list, &desired, events, ACTION).await?;
    }
    ctx.backoff.reset(&object_key(CONTROLLER, guard));
    Ok(Action::await_change())
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<ApprovedNodeList>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    retry_after_error(CONTROLLER, &guard, error, &ctx)
}
