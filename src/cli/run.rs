//! `run`: start the operator against the cluster in `KUBECONFIG` (or in-cluster config).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use crate::config::{OperatorConfig, RunArgs};
use crate::controller::{self, Context};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::telemetry;

/// Starts logging, the HTTP endpoints, the CRD check, leader election and the controllers.
/// Exits 0 after SIGTERM or Ctrl-C, 1 on any start-up or runtime failure (with the reason).
pub async fn execute(args: RunArgs) -> ExitCode {
    if let Err(error) = telemetry::init(args.log_format, &args.log_filter) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let config = OperatorConfig::load(&args).map_err(|e| e.to_string())?;
    let client = client().await?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("videofoundry-operator-{}", std::process::id()));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = shutdown_tx.send(true);
    });

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let mut http_shutdown = shutdown_rx.clone();
    let address = config.http_address;
    let server = tokio::spawn(http::serve(address, http_state, async move {
        let _ = http_shutdown.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");

    let ctx = Arc::new(Context::new(
        client,
        metrics,
        config,
        Some(identity.clone()),
    ));
    let outcome = controller::run_all(ctx, identity, ready, shutdown_rx).await;
    server.abort();
    outcome.map_err(|e| e.to_string())
}

/// What the operator calls itself on every API request, so audit logs and API priority and
/// fairness can tell it apart from other clients.
pub const USER_AGENT: &str = concat!("videofoundry-operator/", env!("CARGO_PKG_VERSION"));

/// A client for the cluster in `KUBECONFIG` (or the pod's), sending [`USER_AGENT`].
pub async fn client() -> Result<kube::Client, String> {
    let unconfigured = |e: &dyn std::fmt::Display| {
        format!(
            "cannot configure a Kubernetes client ({e}); set KUBECONFIG or run inside a cluster"
        )
    };
    let mut config = kube::Config::infer().await.map_err(|e| unconfigured(&e))?;
    config.headers.push((
        reqwest::header::USER_AGENT,
        reqwest::header::HeaderValue::from_static(USER_AGENT),
    ));
    kube::Client::try_from(config).map_err(|e| unconfigured(&e))
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
