//! The RenderJob finalizer, by JSON patches that test the list they change (so another
//! controller's finalizer is never lost). Written out rather than through kube's `finalizer()`
//! because the controller works on `DeserializeGuard`-wrapped, stripped objects.

use kube::{Api, Resource, ResourceExt};

use super::{ACTION, Next, RenderContext};
use crate::controller::events::{PlannedEvent, publish};
use crate::controller::{Error, finalizers};
use crate::crd::RenderJob;
use crate::crd::conditions::{ConditionStatus, ConditionUpdate, types};
use crate::crd::render_job::{FINALIZER, SKIP_RECORD_ANNOTATION};

/// Reason of `Ready=False` while a deletion cannot be recorded.
pub const REASON_DELETION_BLOCKED: &str = "DeletionBlocked";

fn api(rctx: &RenderContext, render: &RenderJob) -> Api<RenderJob> {
    Api::namespaced(
        rctx.base.client.clone(),
        &render.namespace().unwrap_or_default(),
    )
}

/// Adds the finalizer when it is missing (one write in a render's life).
pub async fn ensure(rctx: &RenderContext, render: &RenderJob) -> Result<(), Error> {
    finalizers::ensure(&api(rctx, render), render, FINALIZER).await
}

/// Whether the render still carries this controller's finalizer.
pub fn is_pending(render: &RenderJob) -> bool {
    render.finalizers().iter().any(|f| f == FINALIZER)
}

/// After the cleanup of a render being deleted: removes the finalizer, or, when `cleaned`
/// failed, keeps it and says why (condition and Event), with the way out.
pub async fn finish(
    rctx: &RenderContext,
    render: &RenderJob,
    cleaned: Result<(), (String, String)>,
) -> Result<Next, Error> {
    if !is_pending(render) {
        return Ok(Next::Wait);
    }
    if let Err((reason, message)) = cleaned {
        let note = format!(
            "cannot record the deletion in the foundry's database ({reason}: {message}); it is retried. To let the RenderJob go without a record: kubectl annotate renderjob {} {SKIP_RECORD_ANNOTATION}=true",
            render.name_any()
        );
        let mut status = render.status.clone().unwrap_or_default();
        ConditionUpdate {
            conditions: &mut status.conditions,
            generation: render.metadata.generation,
            now: super::now(),
        }
        .set(
            types::READY,
            ConditionStatus::False,
            REASON_DELETION_BLOCKED,
            note.clone(),
        );
        if Some(&status) != render.status.as_ref() {
            let event = PlannedEvent {
                warning: true,
                reason: REASON_DELETION_BLOCKED.to_owned(),
                note,
            };
            crate::controller::write_status(&rctx.base, render, &status, vec![event], ACTION)
                .await?;
        }
        return Ok(Next::Retry);
    }
    if render.annotations().contains_key(SKIP_RECORD_ANNOTATION) {
        let event = PlannedEvent {
            warning: true,
            reason: "DeletionNotRecorded".to_owned(),
            note: format!(
                "{SKIP_RECORD_ANNOTATION} is set: the render's database record was left as it was"
            ),
        };
        publish(&rctx.base, &render.object_ref(&()), ACTION, event).await;
    }
    finalizers::remove(&api(rctx, render), render, FINALIZER).await?;
    Ok(Next::Wait)
}
