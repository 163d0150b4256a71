//! The RenderJob controller: a render's whole life.
//!
//! 1. **Vet** the workflow against the foundry's ApprovedNodeLists (fail closed). A rejection is
//!    final once it is in the audit log.
//! 2. **Admit** an approved render while its foundry is Ready: record it in Postgres under the
//!    user's identity, take a concurrency slot, presign its storage, create its Secret, then its
//!    gVisor Job ([`admit`]).
//! 3. **Follow** the Job: `Queued` → `Running` → `Succeeded` / `Failed`, each transition recorded
//!    in the database (with an audit row) before it shows in status; outputs listed on success.
//! 4. **Cancel** on the `videofoundry.dev/cancel` annotation; on deletion a finalizer records it.
//!
//! A final render costs no request. Every write is idempotent (deterministic names, server-side
//! apply, guarded SQL), so a reconcile interrupted anywhere converges when it runs again.

pub mod access;
pub mod admit;
pub mod cache;
mod finalizer;
pub mod follow;
pub mod ledger;
pub mod slots;
pub mod status;
pub mod vet;

use std::sync::Arc;

use futures::StreamExt as _;
use futures::channel::mpsc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;

use self::admit::Admitted;
use self::follow::Observation;
use self::ledger::Transition;
use self::status::{StatusChange, VettingOutcome};
use super::{Context, Error, identify, object_key, observed, retry_after_error, write_status};
use crate::crd::render_job::{
    CANCEL_ANNOTATION, RenderJobStatus, RenderPhase, SKIP_RECORD_ANNOTATION, VettingStatus,
    VettingVerdict,
};
use crate::crd::{RenderJob, VideoFoundry};
use crate::resources::labels;

const CONTROLLER: &str = "renderjob";
/// The Event action of this controller.
const ACTION: &str = "Render";
/// How long running reconciles may take to finish after a shutdown request.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// Most output keys listed in status (the schema's bound).
const MAX_OUTPUTS: usize = 1000;

/// What every render reconcile gets: the shared context, the caches of renders (without
/// workflow bodies) and of worker Jobs (metadata only), the per-foundry backends, the slot
/// ledger, and a way to wake renders that wait for a slot.
pub struct RenderContext {
    /// Client, recorder, metrics, configuration, backoff.
    pub base: Arc<Context>,
    /// Every watched RenderJob, stripped of its workflow.
    pub renders: Store<DeserializeGuard<RenderJob>>,
    /// Worker Jobs, metadata only.
    pub jobs: Store<PartialObjectMeta<Job>>,
    /// Per-foundry database pool and S3 client.
    pub access: access::AccessCache,
    /// Concurrency slots.
    pub slots: slots::SlotLedger,
    wake: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<RenderJob>>>,
}

impl RenderContext {
    /// Reconciles the renders of `foundry` (in `namespace`) that wait for a slot.
    fn wake_waiting(&self, namespace: &str, foundry: &str) {
        for guard in self.renders.state() {
            let Ok(render) = &guard.0 else { continue };
            if render.namespace().as_deref() == Some(namespace)
                && render.spec.foundry_ref.name == foundry
                && slots::waits_for_slot(render)
            {
                let _ = self
                    .wake
                    .unbounded_send(ObjectRef::from_obj(guard.as_ref()));
            }
        }
    }
}

/// Runs the controller until `stop` flips to true.
pub async fn run(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let (renders_api, jobs_api): (
        Api<DeserializeGuard<RenderJob>>,
        Api<PartialObjectMeta<Job>>,
    ) = match &ctx.config.watch_namespace {
        Some(namespace) => (
            Api::namespaced(ctx.client.clone(), namespace),
            Api::namespaced(ctx.client.clone(), namespace),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let (renders, renders_writer) = reflector::store();
    let render_stream = reflector::reflector(
        renders_writer,
        watcher(renders_api, watcher::Config::default().any_semantic())
            .map(|event| event.map(|event| event.modify(cache::strip_for_cache))),
    )
    .default_backoff()
    .touched_objects();
    let (jobs, jobs_writer) = reflector::store();
    let worker_jobs = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/component={}",
        labels::WORKER_COMPONENT
    ));
    let job_stream = reflector::reflector(jobs_writer, watcher(jobs_api, worker_jobs))
        .default_backoff()
        .touched_objects();
    let (wake, woken) = mpsc::unbounded();
    let rctx = Arc::new(RenderContext {
        base: ctx,
        renders: renders.clone(),
        jobs,
        access: access::AccessCache::default(),
        slots: slots::SlotLedger::default(),
        wake,
    });
    let mut stopping = stop.clone();
    let controller = kube::runtime::Controller::for_stream(render_stream, renders)
        .owns_stream(job_stream)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, rctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(controller = CONTROLLER, %error, "reconcile loop");
            }
        });
    // Running reconciles get a bounded time to finish once a shutdown is requested: a runner
    // still waiting for its first list (an API server that never answers) must not hold the
    // process.
    let bounded = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = controller => {}
        () = bounded => tracing::warn!(controller = CONTROLLER, "stopped without waiting further for running reconciles"),
    }
}

/// Moves one render along its life and writes its status when it changed.
#[tracing::instrument(skip(guard, rctx), fields(ns, name))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<RenderJob>>,
    rctx: Arc<RenderContext>,
) -> Result<Action, Error> {
    let work = async {
        match &guard.0 {
            Ok(render) => {
                let key = object_key(CONTROLLER, &guard);
                let action = if render.meta().deletion_timestamp.is_some() {
                    if finalizer::is_pending(render) && !owned_elsewhere(&rctx, render).await? {
                        let cleaned = delete_render(&rctx, render).await;
                        finalizer::finish(&rctx, render, cleaned).await?
                    } else {
                        Next::Wait
                    }
                } else if !finalizer::is_pending(render) && owned_elsewhere(&rctx, render).await? {
                    // Not ours: no finalizer either, so nothing here can hold its deletion.
                    Next::Wait
                } else {
                    finalizer::ensure(&rctx, render).await?;
                    reconcile_render(render, &rctx).await?
                };
                if matches!(action, Next::Retry) {
                    return Ok(Action::requeue(rctx.base.backoff.next_delay(&key)));
                }
                rctx.base.backoff.reset(&key);
                Ok(Action::await_change())
            }
            Err(invalid) => Err(Error::Unreadable(invalid.to_string())),
        }
    };
    observed(&rctx.base, CONTROLLER, work).await
}

/// Whether the render's foundry exists and another installation owns it: that installation
/// records and releases the render (the finalizer has one name for every installation).
async fn owned_elsewhere(rctx: &RenderContext, render: &RenderJob) -> Result<bool, Error> {
    let foundry = Api::<VideoFoundry>::namespaced(
        rctx.base.client.clone(),
        &render.namespace().unwrap_or_default(),
    )
    .get_opt(&render.spec.foundry_ref.name)
    .await?;
    Ok(foundry.is_some_and(|f| !super::ownership::claims(&f, &rctx.base.config)))
}

/// What the reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until something changes (a watched object, a freed slot).
    Wait,
    /// Again after the per-object backoff (something may heal by itself).
    Retry,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn reconcile_render(render: &RenderJob, rctx: &RenderContext) -> Result<Next, Error> {
    let (namespace, _) = identify(render)?;
    let generation = render.meta().generation;
    let current = render.status.clone().unwrap_or_default();
    if status::is_final(&current, generation) {
        // A render that ended under a version without kstatus's conditions gets them once;
        // otherwise nothing is written.
        publish(rctx, render, &current, &current).await?;
        return Ok(Next::Wait);
    }
    let mut next = current.clone();
    let mut change = StatusChange {
        status: &mut next,
        generation,
        now: now(),
    };

    // 1. Vet once: the spec is immutable, and a later policy change never re-judges a render.
    let mut foundry = None;
    let mut workflow = None;
    let vetting = match current
        .vetting
        .clone()
        .filter(|_| current.observed_generation == generation)
    {
        Some(vetting) => vetting,
        None => {
            let vetted = vet::vet_render(&rctx.base.client, &namespace, render).await;
            // A foundry another installation owns: its renders are that installation's to vet.
            if vetted
                .foundry
                .as_ref()
                .is_some_and(|f| !super::ownership::claims(f, &rctx.base.config))
            {
                return Ok(Next::Wait);
            }
            change.vetting(&vetted.outcome);
            match vetted.outcome {
                VettingOutcome::Waiting { .. } => {
                    publish(rctx, render, &current, &next).await?;
                    return Ok(Next::Retry);
                }
                VettingOutcome::Vetted(vetting) => {
                    rctx.base.metrics.observe_vetting(
                        &vetting.verdict,
                        vetting.violations.iter().map(|v| v.rule.as_str()),
                    );
                    foundry = vetted.foundry;
                    workflow = vetted.workflow;
                    *vetting
                }
            }
        }
    };
    let foundry = match foundry {
        Some(found) => Some(found),
        None => {
            Api::<VideoFoundry>::namespaced(rctx.base.client.clone(), &namespace)
                .get_opt(&render.spec.foundry_ref.name)
                .await?
        }
    };

    // A foundry another installation owns: its renders are that installation's to run.
    if foundry
        .as_ref()
        .is_some_and(|f| !super::ownership::claims(f, &rctx.base.config))
    {
        return Ok(Next::Wait);
    }
    let next_step = if vetting.verdict == VettingVerdict::Rejected {
        record_rejection(rctx, render, &vetting, foundry.as_ref(), &mut change).await
    } else if render.annotations().contains_key(CANCEL_ANNOTATION) {
        cancel(rctx, render, &vetting, foundry.as_ref(), &mut change).await?
    } else {
        run_stage(
            rctx,
            render,
            &vetting,
            foundry.as_ref(),
            workflow,
            &mut change,
        )
        .await?
    };
    publish(rctx, render, &current, &next).await?;
    if status::is_final(&next, generation) {
        observe_end(rctx, &next);
        rctx.slots
            .record(render.uid().as_deref().unwrap_or_default(), false);
        rctx.wake_waiting(&namespace, &render.spec.foundry_ref.name);
    }
    Ok(next_step)
}

/// Counts a render that just reached its final phase (bounded labels only: phase and exit code).
fn observe_end(rctx: &RenderContext, status: &RenderJobStatus) {
    let reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::crd::conditions::types::READY)
        .map_or("", |c| c.reason.as_str());
    let ran_for = match (&status.started_at, &status.finished_at) {
        (Some(start), Some(end)) => {
            std::time::Duration::try_from(end.0.duration_since(start.0)).ok()
        }
        _ => None,
    };
    rctx.base
        .metrics
        .observe_render_end(status.phase, reason, ran_for);
}

/// Writes the status (and its Events) when it differs from what the API server holds.
async fn publish(
    rctx: &RenderContext,
    render: &RenderJob,
    current: &RenderJobStatus,
    next: &RenderJobStatus,
) -> Result<(), Error> {
    let mut next = next.clone();
    status::mark_progress(&mut next, render.meta().generation, now());
    if *current == next {
        return Ok(());
    }
    let events = status::events_for_change(Some(current), &next);
    write_status(&rctx.base, render, &next, events, ACTION).await
}

/// A rejected render: in the audit log once, then final.
async fn record_rejection(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: Option<&VideoFoundry>,
    change: &mut StatusChange<'_>,
) -> Next {
    let written = async {
        let foundry = admit::ready_foundry(foundry)?;
        let access = rctx
            .access
            .get(&rctx.base, foundry)
            .await
            .map_err(|e| (e.reason, e.message))?;
        let record = admit::record_of(render, &access, vetting, admit::execution_mode(foundry));
        let details = serde_json::json!({
            "namespace": record.namespace, "name": record.name, "foundry": record.foundry,
            "workflowSha256": vetting.workflow_sha256, "violations": vetting.violation_count,
            "rules": vetting.violations.iter().map(|v| v.rule.as_str()).collect::<std::collections::BTreeSet<_>>(),
        });
        ledger::audit_once(
            &access.pool,
            &record,
            ledger::audit_action(RenderPhase::Rejected),
            details,
            false,
        )
        .await
        .map_err(|e| (e.category().to_owned(), e.to_string()))
    };
    match written.await {
        Ok(()) => {
            change.recorded(Ok(()));
            Next::Wait
        }
        Err((reason, message)) => {
            change.recorded(Err((&reason, message)));
            Next::Retry
        }
    }
}

/// Admission, or following the Job once it exists.
async fn run_stage(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: Option<&VideoFoundry>,
    workflow: Option<Vec<u8>>,
    change: &mut StatusChange<'_>,
) -> Result<Next, Error> {
    let namespace = render.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(rctx.base.client.clone(), &namespace);
    let job_name = crate::resources::names::worker_job(&render.name_any());
    // The cache may lag behind this controller's own status writes: a Job it knows of is
    // followed, never admitted again.
    let known = rctx
        .jobs
        .get(&ObjectRef::new(&job_name).within(&namespace))
        .is_some();
    let existing = if change.status.job_name.is_some() || known {
        jobs.get_opt(&job_name).await?
    } else {
        None
    };
    let job = match existing {
        Some(job) => job,
        None if change.status.job_name.is_some() => {
            // The Job went away before the render ended (deleted by hand).
            let seen = Observation {
                phase: RenderPhase::Failed,
                reason: "JobDeleted",
                message: format!(
                    "the worker Job {job_name} was deleted before the render finished"
                ),
                finished_at: None,
            };
            return follow_job(rctx, render, vetting, foundry, &job_name, &seen, change).await;
        }
        None => {
            let ready = match admit::ready_foundry(foundry) {
                Ok(ready) => ready,
                Err((reason, message)) => {
                    let phase = if status::is_submitted(change.status) {
                        RenderPhase::Queued
                    } else {
                        RenderPhase::Pending
                    };
                    change.waiting(phase, &reason, message);
                    return Ok(Next::Retry);
                }
            };
            match admit::admit(rctx, render, vetting, ready, workflow).await {
                Admitted::Job(job) => *job,
                Admitted::Blocked(blocked) => {
                    match blocked.recorded {
                        Some(Ok(())) => change.recorded(Ok(())),
                        Some(Err((reason, message))) => change.recorded(Err((&reason, message))),
                        None => {}
                    }
                    change.waiting(blocked.phase, &blocked.reason, blocked.message);
                    return Ok(if blocked.retry {
                        Next::Retry
                    } else {
                        Next::Wait
                    });
                }
            }
        }
    };
    change.recorded(Ok(()));
    let pods = job_pods(rctx, &namespace, &job).await?;
    let seen = follow::observe(&job, &pods).after(change.status.phase);
    follow_job(rctx, render, vetting, foundry, &job_name, &seen, change).await
}

/// Records a phase change in the database, then shows it in status.
async fn follow_job(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: Option<&VideoFoundry>,
    job_name: &str,
    seen: &Observation,
    change: &mut StatusChange<'_>,
) -> Result<Next, Error> {
    let prefix = admit::output_prefix(render);
    if seen.phase != change.status.phase {
        let Some(foundry) = foundry else {
            change.recorded(Err((
                "FoundryNotFound",
                "the render's VideoFoundry does not exist; the transition cannot be recorded"
                    .to_owned(),
            )));
            return Ok(Next::Retry);
        };
        let access = match rctx.access.get(&rctx.base, foundry).await {
            Ok(access) => access,
            Err(error) => {
                change.recorded(Err((&error.reason, error.message)));
                return Ok(Next::Retry);
            }
        };
        let record = admit::record_of(render, &access, vetting, admit::execution_mode(foundry));
        let transition = Transition {
            phase: seen.phase,
            reason: seen.reason.to_owned(),
            message: (seen.phase == RenderPhase::Failed).then(|| seen.message.clone()),
            output_prefix: Some(prefix.clone()),
        };
        if let Err(error) = ledger::transition(&access.pool, &record, &transition).await {
            if error.is_authentication() {
                rctx.access.forget(foundry);
            }
            change.recorded(Err((error.category(), error.to_string())));
            return Ok(Next::Retry);
        }
        if seen.phase == RenderPhase::Succeeded {
            let full_prefix = format!("{}{prefix}", access.storage.prefix);
            match access
                .s3
                .list_keys(
                    &access.storage.bucket,
                    &full_prefix,
                    &access.storage.prefix,
                    MAX_OUTPUTS,
                )
                .await
            {
                Ok(keys) => change.status.outputs = keys,
                Err(error) => {
                    change.recorded(Err((
                        error.reason(),
                        format!("listing the outputs: {error}"),
                    )));
                    return Ok(Next::Retry);
                }
            }
        }
        change.recorded(Ok(()));
    }
    change.following(job_name, &prefix, seen);
    Ok(Next::Wait)
}

/// The pods of a Job (for the worker's exit code and message, and evictions).
async fn job_pods(rctx: &RenderContext, namespace: &str, job: &Job) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(rctx.base.client.clone(), namespace);
    let selector = format!("batch.kubernetes.io/job-name={}", job.name_any());
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Cancels a queued or running render: the Job goes, the database records it.
async fn cancel(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: Option<&VideoFoundry>,
    change: &mut StatusChange<'_>,
) -> Result<Next, Error> {
    let namespace = render.namespace().unwrap_or_default();
    let job_name = crate::resources::names::worker_job(&render.name_any());
    let jobs: Api<Job> = Api::namespaced(rctx.base.client.clone(), &namespace);
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match jobs.delete(&job_name, &background).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    if status::is_submitted(change.status) {
        if let Err((reason, message)) = record_end(
            rctx,
            render,
            vetting,
            foundry,
            RenderPhase::Cancelled,
            "Cancelled",
        )
        .await
        {
            change.recorded(Err((&reason, message)));
            return Ok(Next::Retry);
        }
        change.recorded(Ok(()));
    }
    change.cancelled(format!(
        "cancelled by the {CANCEL_ANNOTATION} annotation; the worker Job was deleted"
    ));
    Ok(Next::Wait)
}

/// Records that a submitted render ended without its Job finishing (cancelled, deleted).
async fn record_end(
    rctx: &RenderContext,
    render: &RenderJob,
    vetting: &VettingStatus,
    foundry: Option<&VideoFoundry>,
    phase: RenderPhase,
    reason: &str,
) -> Result<(), (String, String)> {
    let foundry = foundry.ok_or_else(|| {
        (
            "FoundryNotFound".to_owned(),
            "the render's VideoFoundry does not exist".to_owned(),
        )
    })?;
    let access = rctx
        .access
        .get(&rctx.base, foundry)
        .await
        .map_err(|e| (e.reason, e.message))?;
    let record = admit::record_of(render, &access, vetting, admit::execution_mode(foundry));
    let transition = Transition {
        phase,
        reason: reason.to_owned(),
        message: None,
        output_prefix: None,
    };
    ledger::transition(&access.pool, &record, &transition)
        .await
        .map_err(|e| {
            if e.is_authentication() {
                rctx.access.forget(foundry);
            }
            (e.category().to_owned(), e.to_string())
        })
}

/// The finalizer's work: a recorded render's deletion goes into the database first (a render
/// still running is recorded as cancelled); owner references then remove its Job and Secret.
async fn delete_render(rctx: &RenderContext, render: &RenderJob) -> Result<(), (String, String)> {
    let namespace = render.namespace().unwrap_or_default();
    let uid = render.uid().unwrap_or_default();
    let current = render.status.clone().unwrap_or_default();
    let recorded = status::is_submitted(&current) || current.phase == RenderPhase::Rejected;
    let skip = render.annotations().contains_key(SKIP_RECORD_ANNOTATION);
    if recorded && !skip {
        let vetting = current.vetting.clone().ok_or_else(|| {
            (
                "InvalidStatus".to_owned(),
                "status.vetting is missing".to_owned(),
            )
        })?;
        let foundry = Api::<VideoFoundry>::namespaced(rctx.base.client.clone(), &namespace)
            .get_opt(&render.spec.foundry_ref.name)
            .await
            .map_err(|e| ("KubernetesApiError".to_owned(), e.to_string()))?;
        let foundry = foundry.ok_or_else(|| {
            (
                "FoundryNotFound".to_owned(),
                format!(
                    "VideoFoundry {} is gone, so its database cannot be reached to record the deletion",
                    render.spec.foundry_ref.name
                ),
            )
        })?;
        if status::is_submitted(&current) {
            record_end(
                rctx,
                render,
                &vetting,
                Some(&foundry),
                RenderPhase::Cancelled,
                "Deleted",
            )
            .await?;
        }
        let access = rctx
            .access
            .get(&rctx.base, &foundry)
            .await
            .map_err(|e| (e.reason, e.message))?;
        let record = admit::record_of(render, &access, &vetting, admit::execution_mode(&foundry));
        let details = serde_json::json!({"namespace": record.namespace, "name": record.name, "phase": current.phase});
        ledger::audit_once(&access.pool, &record, "render.deleted", details, true)
            .await
            .map_err(|e| (e.category().to_owned(), e.to_string()))?;
    }
    rctx.slots.forget(&uid);
    rctx.wake_waiting(&namespace, &render.spec.foundry_ref.name);
    Ok(())
}

/// Transient errors retry with per-object exponential backoff; permanent ones wait for an edit.
pub fn error_policy(
    guard: Arc<DeserializeGuard<RenderJob>>,
    error: &Error,
    rctx: Arc<RenderContext>,
) -> Action {
    retry_after_error(CONTROLLER, &guard, error, &rctx.base)
}
