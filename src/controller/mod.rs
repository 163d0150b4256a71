//! Controller runtime: the shared context, error reporting, backoff, start-up checks, leader
//! election and the controllers themselves.

pub mod apply;
pub mod approved_node_list;
mod backoff;
pub mod error;
pub mod events;
pub mod finalizers;
mod leader;
pub mod ownership;
pub mod render_job;
mod startup;
pub mod video_foundry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;

pub use backoff::Backoff;
pub use error::Error;
pub use startup::{CrdCheckError, check_crds_installed};

use crate::config::OperatorConfig;
use crate::crd::FIELD_MANAGER;
use crate::metrics::Metrics;

/// What every reconcile gets: the client, one shared Event recorder, metrics, configuration and
/// per-object backoff.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Shared Event recorder. [`events::publish`] does not use it: it merges Events by reason
    /// into a series that keeps the first note.
    pub recorder: Recorder,
    /// Who publishes Events (controller name and pod).
    pub reporter: Reporter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Operator configuration.
    pub config: OperatorConfig,
    /// Per-object exponential backoff for transient errors.
    pub backoff: Backoff,
    /// The service-account JWT the operator logs in to Vault with (Kubernetes auth).
    pub vault_jwt: crate::secrets::ServiceAccountJwt,
}

impl Context {
    /// A context for `client`, reporting as `instance` (the pod name).
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        config: OperatorConfig,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance,
        };
        let backoff = Backoff::new(
            Duration::from_secs(config.reconcile.backoff_min_seconds),
            Duration::from_secs(config.reconcile.backoff_max_seconds),
        );
        Self {
            vault_jwt: crate::secrets::ServiceAccountJwt::from_config(&config.vault, &client),
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            metrics,
            config,
            backoff,
        }
    }
}

/// Runs the controller `name` over every `K` (or those of the watched namespace) until `stop`
/// flips to true. Objects that do not deserialize reach `reconcile` as errors (through
/// `DeserializeGuard`) instead of stopping the watch.
pub(crate) async fn run_controller<K, ReconcileFuture>(
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    name: &'static str,
    reconcile: impl FnMut(Arc<DeserializeGuard<K>>, Arc<Context>) -> ReconcileFuture,
    error_policy: impl Fn(Arc<DeserializeGuard<K>>, &Error, Arc<Context>) -> Action,
) where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    ReconcileFuture: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    run_controller_with(ctx, stop, name, reconcile, error_policy, |controller| {
        controller
    })
    .await;
}

/// [`run_controller`] with extra watches: `configure` adds them to the controller (for example
/// `.owns(...)` of the children, so a deleted or edited child triggers its owner at once).
pub(crate) async fn run_controller_with<K, ReconcileFuture>(
    ctx: Arc<Context>,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
    reconcile: impl FnMut(Arc<DeserializeGuard<K>>, Arc<Context>) -> ReconcileFuture,
    error_policy: impl Fn(Arc<DeserializeGuard<K>>, &Error, Arc<Context>) -> Action,
    configure: impl FnOnce(
        kube::runtime::Controller<DeserializeGuard<K>>,
    ) -> kube::runtime::Controller<DeserializeGuard<K>>,
) where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    ReconcileFuture: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let api: kube::Api<DeserializeGuard<K>> = watched_api(&ctx);
    let controller = kube::runtime::Controller::new(
        api,
        kube::runtime::watcher::Config::default().any_semantic(),
    );
    let metrics = ctx.metrics.clone();
    configure(controller)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            // A deleted object is reported as not found: its per-object series go with it.
            if let Err(kube::runtime::controller::Error::ObjectNotFound(gone)) = &result {
                metrics.forget_object(
                    name,
                    gone.namespace.as_deref().unwrap_or_default(),
                    &gone.name,
                );
            }
            async move {
                if let Err(error) = result {
                    tracing::debug!(controller = name, %error, "reconcile loop");
                }
            }
        })
        .await;
}

/// The API of `K` in the watched namespace, or in every namespace when none is configured.
pub(crate) fn watched_api<K>(ctx: &Context) -> kube::Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &ctx.config.watch_namespace {
        Some(namespace) => kube::Api::namespaced(ctx.client.clone(), namespace),
        None => kube::Api::all(ctx.client.clone()),
    }
}

/// The namespace and name of an object read from the API server, recorded on the current
/// tracing span (the reconcile functions declare the `ns` and `name` fields).
pub(crate) fn identify<K: kube::Resource>(object: &K) -> Result<(String, String), Error> {
    let namespace = object
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = object
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    tracing::Span::current()
        .record("ns", namespace.as_str())
        .record("name", name.as_str());
    Ok((namespace, name))
}

/// Runs one reconcile of `controller` and records its duration and any failure in the metrics.
pub(crate) async fn observed(
    ctx: &Context,
    controller: &'static str,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    ctx.metrics.observe_run(controller, started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.observe_failure(controller, error.category());
    }
    result
}

/// Writes `status` to `object`'s status subresource by server-side apply (the operator owns
/// every status field), then publishes `events` about the object with `action`.
pub(crate) async fn write_status<K>(
    ctx: &Context,
    object: &K,
    status: &impl serde::Serialize,
    events: Vec<events::PlannedEvent>,
    action: &str,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    write_status_if_unchanged(ctx, object, status, events, action, None).await
}

/// [`write_status`], refused by the API server (409 Conflict) when `resource_version` is given
/// and the object changed since it was read: for a write that must not overwrite another
/// writer's, such as claiming a foundry.
pub(crate) async fn write_status_if_unchanged<K>(
    ctx: &Context,
    object: &K,
    status: &impl serde::Serialize,
    events: Vec<events::PlannedEvent>,
    action: &str,
    resource_version: Option<&str>,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = object
        .meta()
        .namespace
        .as_deref()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = object
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata("name"))?;
    let api: kube::Api<K> = kube::Api::namespaced(ctx.client.clone(), namespace);
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    api.patch_status(
        name,
        &kube::api::PatchParams::apply(crate::crd::FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await?;
    let reference = object.object_ref(&());
    for event in events {
        events::publish(ctx, &reference, action, event).await;
    }
    Ok(())
}

/// The backoff key of a watched object, whether or not it deserialized.
pub(crate) fn object_key<K: kube::Resource>(
    controller: &str,
    guard: &DeserializeGuard<K>,
) -> String {
    let (namespace, name) = match &guard.0 {
        Ok(object) => (object.meta().namespace.clone(), object.meta().name.clone()),
        Err(invalid) => (
            invalid.metadata.namespace.clone(),
            invalid.metadata.name.clone(),
        ),
    };
    format!(
        "{controller}/{}/{}",
        namespace.unwrap_or_default(),
        name.unwrap_or_default()
    )
}

/// The shared error policy: transient errors retry with per-object exponential backoff;
/// permanent ones wait for an edit of the object.
pub(crate) fn retry_after_error<K: kube::Resource>(
    controller: &str,
    guard: &DeserializeGuard<K>,
    error: &Error,
    ctx: &Context,
) -> Action {
    tracing::warn!(controller, category = error.category(), %error, "reconcile failed");
    if error.is_permanent() {
        return Action::await_change();
    }
    Action::requeue(ctx.backoff.next_delay(&object_key(controller, guard)))
}

/// How long the controllers may take to stop after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// A reason the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A CRD is missing or the API server is unreachable.
    #[error(transparent)]
    Crds(#[from] CrdCheckError),
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Runs every controller until `shutdown` flips to true (SIGTERM) or this replica loses the
/// lease. `ready` is set once the CRD check passed.
pub async fn run_all(
    ctx: Arc<Context>,
    identity: String,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    check_crds_installed(&ctx.client).await?;
    ready.store(true, Ordering::Relaxed);

    let leadership = if ctx.config.leader_election.enabled {
        let lease = leader::acquire(&ctx.client, &ctx.config, identity, &mut shutdown).await?;
        match lease {
            Some(lease) => Some(lease),
            None => return Ok(()),
        }
    } else {
        None
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let controllers = futures::future::join3(
        approved_node_list::run(ctx.clone(), stop_rx.clone()),
        video_foundry::run(ctx.clone(), stop_rx.clone()),
        render_job::run(ctx.clone(), stop_rx.clone()),
    );
    tokio::pin!(controllers);

    let lost = async {
        match &leadership {
            Some(lease) => lease.lost().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = &mut controllers => Ok(()),
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
        error = lost => Err(RunError::Leader(error)),
    };
    // Stop the controllers before releasing the lease, so two replicas never reconcile at once.
    let _ = stop_tx.send(true);
    // Running reconciles get a bounded time: a controller whose watch never got its first
    // answer must not hold the process past SIGTERM.
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut controllers)
        .await
        .is_err()
    {
        tracing::warn!("controllers did not stop within the shutdown grace; stopping anyway");
    }
    if let Some(lease) = leadership {
        lease.release().await;
    }
    outcome
}
