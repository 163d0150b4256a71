//! The gateway's Prometheus metrics and its small HTTP server (`/metrics`, `/healthz`). Labels
//! are bounded verdicts, close reasons and directions, never host names (a worker could mint
//! unbounded names; they are in the log instead).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{CloseReason, Verdict};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// Counters of the gateway.
pub struct GatewayMetrics {
    registry: Registry,
    connections: Family<VerdictLabels, Counter>,
    closed: Family<ReasonLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    open: Gauge,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("videofoundry_egress");
        let connections = Family::<VerdictLabels, Counter>::default();
        let closed = Family::<ReasonLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let open = Gauge::default();
        registry.register(
            "connections",
            "Connections to the gateway by verdict (allowed, or why refused)",
            connections.clone(),
        );
        registry.register(
            "tunnels_closed",
            "Allowed tunnels by how they ended",
            closed.clone(),
        );
        registry.register(
            "tunnel_bytes",
            "Bytes relayed through tunnels, by direction (up: worker to host)",
            bytes.clone(),
        );
        registry.register("open_tunnels", "Tunnels open now", open.clone());
        // Every series from the start, at zero, so alerts on refusals see them before the first.
        for verdict in Verdict::ALL {
            let _ = connections.get_or_create(&VerdictLabels {
                verdict: verdict.label(),
            });
        }
        for reason in CloseReason::ALL {
            let _ = closed.get_or_create(&ReasonLabels {
                reason: reason.label(),
            });
        }
        for direction in ["up", "down"] {
            let _ = bytes.get_or_create(&DirectionLabels { direction });
        }
        Self {
            registry,
            connections,
            closed,
            bytes,
            open,
        }
    }
}

impl GatewayMetrics {
    /// Counts a connection's verdict.
    pub fn verdict(&self, verdict: Verdict) {
        self.connections
            .get_or_create(&VerdictLabels {
                verdict: verdict.label(),
            })
            .inc();
    }

    /// A tunnel opened.
    pub fn tunnel_opened(&self) {
        self.open.inc();
    }

    /// A tunnel closed after relaying `up` and `down` bytes.
    pub fn tunnel_closed(&self, reason: CloseReason, up: u64, down: u64) {
        self.open.dec();
        self.closed
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
        self.bytes
            .get_or_create(&DirectionLabels { direction: "up" })
            .inc_by(up);
        self.bytes
            .get_or_create(&DirectionLabels { direction: "down" })
            .inc_by(down);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `/metrics` and `/healthz`.
pub fn router(metrics: Arc<GatewayMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn exposition(State(metrics): State<Arc<GatewayMetrics>>) -> axum::response::Response {
    crate::http::openmetrics(metrics.encode())
}

/// Serves the metrics on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<GatewayMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
