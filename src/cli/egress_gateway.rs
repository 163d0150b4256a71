//! `egress-gateway`: the foundry's egress gateway (docs/egress.md). The operator's Deployment
//! sets every flag through the environment.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::LogFormat;
use crate::crd::video_foundry::AllowedHost;
use crate::egress::metrics::{self, GatewayMetrics};
use crate::egress::policy::normalise_host;
use crate::egress::{Gateway, Limits, Policy};
use crate::telemetry;

/// Flags of `egress-gateway`.
#[derive(Clone, Debug, clap::Args)]
pub struct EgressGatewayArgs {
    /// The foundry this gateway serves (for the log).
    #[arg(long, env = "VF_FOUNDRY", value_name = "NAME")]
    pub foundry: String,

    /// The approved hosts: the foundry's `network.allowedHosts` as JSON.
    #[arg(long, env = "VF_EGRESS_ALLOWED_HOSTS", value_name = "JSON")]
    pub allowed_hosts: String,

    /// Address of the proxy.
    #[arg(long, env = "VF_EGRESS_LISTEN", default_value = "0.0.0.0:3128")]
    pub listen: SocketAddr,

    /// Address of `/metrics` and `/healthz`.
    #[arg(
        long,
        env = "VF_EGRESS_METRICS_ADDRESS",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_address: SocketAddr,

    /// A fixed answer `NAME=ADDRESS` instead of DNS, for hosts without a DNS record. Honoured
    /// only when an exact `allowedHosts` entry for NAME approves an internal range holding
    /// ADDRESS (refused at start otherwise), so it can never open a path policy would refuse.
    #[arg(
        long,
        env = "VF_EGRESS_RESOLVE",
        value_delimiter = ',',
        value_name = "NAME=ADDRESS"
    )]
    pub resolve: Vec<String>,

    /// Seconds for the request head, and again for the TLS ClientHello.
    #[arg(
        long,
        env = "VF_EGRESS_HANDSHAKE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub handshake_timeout: u64,

    /// Seconds to resolve and connect.
    #[arg(
        long,
        env = "VF_EGRESS_CONNECT_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub connect_timeout: u64,

    /// Seconds a tunnel may stay without a byte either way.
    #[arg(
        long,
        env = "VF_EGRESS_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 300
    )]
    pub idle_timeout: u64,

    /// Seconds a tunnel may stay open at most.
    #[arg(long, env = "VF_EGRESS_MAX_DURATION", value_name = "SECONDS", default_value_t = 6 * 3600)]
    pub max_duration: u64,

    /// Bytes (both directions) one tunnel may relay at most (default 64 GiB: model downloads).
    #[arg(long, env = "VF_EGRESS_MAX_BYTES", default_value_t = 64 * 1024 * 1024 * 1024)]
    pub max_bytes: u64,

    /// Connections handled at once; more are answered 503.
    #[arg(long, env = "VF_EGRESS_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,

    /// Log format.
    #[arg(long, env = "VF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax.
    #[arg(long, env = "VF_LOG", default_value = "info")]
    pub log_filter: String,
}

/// Runs the gateway until SIGTERM or Ctrl-C; exit 2 on a configuration error, 1 when a port
/// cannot be bound.
pub async fn execute(args: EgressGatewayArgs) -> ExitCode {
    if let Err(error) = telemetry::init(args.log_format, &args.log_filter) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let gateway = match gateway(&args) {
        Ok(gateway) => Arc::new(gateway),
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let (proxy, metrics_listener) = match (
        tokio::net::TcpListener::bind(args.listen).await,
        tokio::net::TcpListener::bind(args.metrics_address).await,
    ) {
        (Ok(proxy), Ok(metrics)) => (proxy, metrics),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot bind the gateway's addresses");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        proxy = %proxy.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        metrics = %metrics_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        foundry = %gateway.foundry,
        "egress gateway listening"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server = tokio::spawn(metrics::serve(
        metrics_listener,
        Arc::clone(&gateway.metrics),
        wait_for(stopped.clone()),
    ));
    let proxy_server = tokio::spawn(Arc::clone(&gateway).serve(proxy, wait_for(stopped)));
    crate::cli::run::wait_for_signal().await;
    tracing::info!("stopping the egress gateway");
    let _ = stop.send(true);
    let _ = proxy_server.await;
    let _ = metrics_server.await;
    ExitCode::SUCCESS
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The gateway the flags describe, or what is wrong with them.
fn gateway(args: &EgressGatewayArgs) -> Result<Gateway, String> {
    let hosts: Vec<AllowedHost> = serde_json::from_str(&args.allowed_hosts)
        .map_err(|e| format!("--allowed-hosts is not a JSON list of allowed hosts: {e}"))?;
    let policy = Policy::new(&hosts).map_err(|e| e.to_string())?;
    let mut resolve = BTreeMap::new();
    for entry in &args.resolve {
        let (name, address) = entry
            .split_once('=')
            .ok_or_else(|| format!("--resolve {entry:?} is not NAME=ADDRESS"))?;
        let name = normalise_host(name)
            .ok_or_else(|| format!("--resolve {entry:?}: {name:?} is not a DNS name"))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("--resolve {entry:?}: {address:?} is not an IP address"))?;
        if !policy.approves_internal(&name, address) {
            return Err(format!(
                "--resolve {entry:?}: no allowedHosts entry for {name} approves an internal range holding {address}"
            ));
        }
        resolve.insert(name, address);
    }
    let seconds = Duration::from_secs;
    Ok(Gateway {
        foundry: args.foundry.clone(),
        policy,
        resolve,
        limits: Limits {
            handshake: seconds(args.handshake_timeout.max(1)),
            connect: seconds(args.connect_timeout.max(1)),
            idle: seconds(args.idle_timeout.max(1)),
            max_duration: seconds(args.max_duration.max(1)),
            max_bytes: args.max_bytes,
            max_connections: args.max_connections.max(1),
        },
        metrics: Arc::new(GatewayMetrics::default()),
    })
}
