//! The ApprovedNodeList controller: validates each list and publishes `Ready`, counts and
//! `observedGeneration`. Nothing outside the object depends on it, so a valid, unchanged list
//! costs no API write.

pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;

use super::{Context, Error};
use crate::crd::{ApprovedNodeList, FIELD_MANAGER};

const CONTROLLER: &str = "approvednodelist";

/// Runs the controller until `stop` flips to true.
pub async fn run(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let api: Api<DeserializeGuard<ApprovedNodeList>> = match &ctx.config.watch_namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "approvednodelist reconcile loop");
            }
        })
        .await;
}

/// Validates one list and writes its status when it changed.
#[tracing::instrument(skip(guard, ctx), fields(ns, name))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<ApprovedNodeList>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&guard, &ctx).await;
    ctx.metrics.observe_run(CONTROLLER, started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.observe_failure(CONTROLLER, error.category());
    }
    result
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
            publish(
                ctx,
                &reference,
                true,
                status::REASON_INVALID,
                format!("cannot read the object: {invalid}"),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let namespace = list
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = list
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    tracing::Span::current()
        .record("ns", namespace.as_str())
        .record("name", name.as_str());

    let report = validate::validate(&list.spec);
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let current = list.status.as_ref();
    let desired = status::desired_status(current, list.meta().generation, &report, now);
    if current != Some(&desired) {
        let api: Api<ApprovedNodeList> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": ApprovedNodeList::api_version(&()),
            "kind": ApprovedNodeList::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        let reference = list.object_ref(&());
        for event in status::events_for_change(current, &desired, &report) {
            publish(ctx, &reference, event.warning, event.reason, event.note).await;
        }
    }
    ctx.backoff.reset(&object_key(&namespace, &name));
    Ok(Action::await_change())
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<ApprovedNodeList>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(category = error.category(), %error, "approvednodelist reconcile failed");
    if error.is_permanent() {
        return Action::await_change();
    }
    let key = match &guard.0 {
        Ok(list) => object_key(&list.namespace().unwrap_or_default(), &list.name_any()),
        Err(invalid) => object_key(
            invalid.metadata.namespace.as_deref().unwrap_or_default(),
            invalid.metadata.name.as_deref().unwrap_or_default(),
        ),
    };
    Action::requeue(ctx.backoff.next_delay(&key))
}

fn object_key(namespace: &str, name: &str) -> String {
    format!("{CONTROLLER}/{namespace}/{name}")
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Validate".to_owned(),
        secondary: None,
    };
    // An Event that cannot be written must not fail the reconcile; status carries the same text.
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(%error, "cannot publish event");
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
