//! The gateway's accept loop and the life of one connection (the steps are listed in the module
//! above). Every connection ends in exactly one log event and one verdict count.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::metrics::GatewayMetrics;
use super::policy::{Approved, Policy, Refusal};
use super::request::{self, ConnectRequest};
use super::sni::{self, HelloError};
use super::{CloseReason, Verdict};

/// Bounds on each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time for the request head, and again for the ClientHello after the 200.
    pub handshake: Duration,
    /// Time to resolve the name and connect.
    pub connect: Duration,
    /// A tunnel with no byte either way for this long is closed.
    pub idle: Duration,
    /// The longest a tunnel may stay open.
    pub max_duration: Duration,
    /// The most bytes (both directions together) one tunnel may relay.
    pub max_bytes: u64,
    /// Connections handled at once; more are answered 503.
    pub max_connections: usize,
}

/// A configured gateway.
pub struct Gateway {
    /// The foundry, for the log.
    pub foundry: String,
    /// What may be reached.
    pub policy: Policy,
    /// Fixed name-to-address answers (checked by the caller against approved internal ranges).
    pub resolve: BTreeMap<String, IpAddr>,
    /// Bounds.
    pub limits: Limits,
    /// Counters.
    pub metrics: Arc<GatewayMetrics>,
}

/// What one connection did, logged when it ends.
struct Record {
    peer: SocketAddr,
    render: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    address: Option<SocketAddr>,
    verdict: Verdict,
    reason: String,
    closed: Option<CloseReason>,
    up: u64,
    down: u64,
    started: Instant,
}

impl Gateway {
    /// Accepts connections until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            let gateway = Arc::clone(&self);
            let permit = Arc::clone(&slots).try_acquire_owned();
            tokio::spawn(async move {
                let mut stream = stream;
                let record = match permit {
                    Ok(_permit) => gateway.handle(&mut stream, peer).await,
                    Err(_) => {
                        respond(&mut stream, "503 Service Unavailable").await;
                        Record::new(peer, Verdict::Overloaded, "too many connections")
                    }
                };
                gateway.finish(record);
            });
        }
    }

    /// Counts and logs a finished connection.
    fn finish(&self, record: Record) {
        self.metrics.verdict(record.verdict);
        let render = record.render.as_deref().unwrap_or("");
        let host = record.host.as_deref().unwrap_or("");
        let port = record.port.unwrap_or(0);
        let address = record.address.map(|a| a.to_string()).unwrap_or_default();
        let closed = record.closed.map(CloseReason::label).unwrap_or("");
        let duration_ms = u64::try_from(record.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if record.verdict == Verdict::Allowed {
            tracing::info!(
                foundry = %self.foundry, render, client = %record.peer, host, port, address,
                verdict = record.verdict.label(), closed, bytes_up = record.up,
                bytes_down = record.down, duration_ms, "egress connection"
            );
        } else {
            tracing::warn!(
                foundry = %self.foundry, render, client = %record.peer, host, port, address,
                verdict = record.verdict.label(), reason = %record.reason,
                bytes_up = record.up, bytes_down = record.down, duration_ms, "egress connection refused"
            );
        }
    }

    async fn handle(&self, client: &mut TcpStream, peer: SocketAddr) -> Record {
        let limits = self.limits;
        let request =
            match tokio::time::timeout(limits.handshake, request::read_connect(client)).await {
                Ok(Ok(request)) => request,
                Ok(Err(error)) => {
                    respond(client, error.status_line()).await;
                    return Record::new(peer, Verdict::BadRequest, &error.to_string());
                }
                Err(_) => {
                    respond(client, "408 Request Timeout").await;
                    return Record::new(peer, Verdict::BadRequest, "no complete request in time");
                }
            };
        let mut record = Record::new(peer, Verdict::Allowed, "");
        record.render.clone_from(&request.render);
        record.host = Some(request.host.clone());
        record.port = Some(request.port);

        let target = match self.policy.check_target(&request.host, request.port) {
            Ok(target) => target,
            Err(refusal) => {
                respond(client, "403 Forbidden").await;
                let (verdict, reason) = match refusal {
                    Refusal::HostNotApproved => (Verdict::DeniedHost, "host not approved"),
                    Refusal::PortNotApproved => (Verdict::DeniedPort, "port not approved"),
                };
                return record.refused(verdict, reason);
            }
        };
        record.host = Some(target.host.clone());

        let upstream = match self.open_upstream(&target).await {
            Ok((upstream, address)) => {
                record.address = Some(address);
                upstream
            }
            Err((verdict, reason, status)) => {
                respond(client, status).await;
                return record.refused(verdict, &reason);
            }
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return record.refused(Verdict::BadRequest, "client went away");
        }
        self.tunnel(client, upstream, request, &target, record)
            .await
    }

    /// Resolves the target (or takes its fixed answer), checks every address, and connects to
    /// the first checked address that answers.
    async fn open_upstream(
        &self,
        target: &Approved,
    ) -> Result<(TcpStream, SocketAddr), (Verdict, String, &'static str)> {
        let connect = self.limits.connect;
        let addresses: Vec<SocketAddr> = match self.resolve.get(&target.host) {
            Some(address) => vec![SocketAddr::new(*address, target.port)],
            None => {
                let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
                match tokio::time::timeout(connect, lookup).await {
                    Ok(Ok(found)) => found.collect(),
                    Ok(Err(_)) | Err(_) => Vec::new(),
                }
            }
        };
        if addresses.is_empty() {
            return Err((
                Verdict::ResolveFailed,
                "the name did not resolve".to_owned(),
                "502 Bad Gateway",
            ));
        }
        // One forbidden answer refuses the name: a rebinding attacker mixes them.
        if let Some(bad) = addresses
            .iter()
            .find(|a| !self.policy.address_allowed(target, a.ip()))
        {
            return Err((
                Verdict::DeniedAddress,
                format!("the name resolves to {}, which is not allowed", bad.ip()),
                "403 Forbidden",
            ));
        }
        for address in addresses {
            if let Ok(Ok(stream)) = tokio::time::timeout(connect, TcpStream::connect(address)).await
            {
                return Ok((stream, address));
            }
        }
        Err((
            Verdict::ConnectFailed,
            "no address accepted the connection".to_owned(),
            "502 Bad Gateway",
        ))
    }

    /// Checks the ClientHello, forwards it, and relays within the limits.
    async fn tunnel(
        &self,
        client: &mut TcpStream,
        mut upstream: TcpStream,
        request: ConnectRequest,
        target: &Approved,
        mut record: Record,
    ) -> Record {
        let limits = self.limits;
        let hello = tokio::time::timeout(
            limits.handshake,
            sni::read_client_hello(client, request.rest, &target.host),
        )
        .await
        .unwrap_or(Err(HelloError::Closed));
        let hello = match hello {
            Ok(hello) => hello,
            Err(error) => return record.refused(Verdict::DeniedTls, &error.to_string()),
        };
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        self.metrics.tunnel_opened();
        let closed = async {
            upstream.write_all(&hello).await.ok()?;
            up.fetch_add(len_u64(&hello), Ordering::Relaxed);
            Some(relay(client, &mut upstream, limits, &up, &down).await)
        };
        let closed = match tokio::time::timeout(limits.max_duration, closed).await {
            Ok(Some(reason)) => reason,
            Ok(None) => CloseReason::Error,
            Err(_) => CloseReason::MaxDuration,
        };
        record.up = up.load(Ordering::Relaxed);
        record.down = down.load(Ordering::Relaxed);
        record.closed = Some(closed);
        self.metrics.tunnel_closed(closed, record.up, record.down);
        record
    }
}

impl Record {
    fn new(peer: SocketAddr, verdict: Verdict, reason: &str) -> Self {
        Self {
            peer,
            render: None,
            host: None,
            port: None,
            address: None,
            verdict,
            reason: reason.to_owned(),
            closed: None,
            up: 0,
            down: 0,
            started: Instant::now(),
        }
    }

    fn refused(mut self, verdict: Verdict, reason: &str) -> Self {
        self.verdict = verdict;
        reason.clone_into(&mut self.reason);
        self
    }
}

/// Relays both ways until both sides close, nothing moves for `limits.idle`, or the tunnel's
/// bytes reach `limits.max_bytes`.
async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    limits: Limits,
    up: &AtomicU64,
    down: &AtomicU64,
) -> CloseReason {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let total = || up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed);
    let upward = pump(&mut client_read, &mut upstream_write, up, &total, limits);
    let downward = pump(&mut upstream_read, &mut client_write, down, &total, limits);
    tokio::pin!(upward, downward);
    let mut upward_done = false;
    let mut downward_done = false;
    let mut last_total = total();
    let mut idle = tokio::time::interval(limits.idle);
    idle.reset();
    loop {
        tokio::select! {
            end = &mut upward, if !upward_done => match end {
                CloseReason::Closed => upward_done = true,
                other => return other,
            },
            end = &mut downward, if !downward_done => match end {
                CloseReason::Closed => downward_done = true,
                other => return other,
            },
            _ = idle.tick() => {
                let now = total();
                if now == last_total {
                    return CloseReason::IdleTimeout;
                }
                last_total = now;
            }
        }
        if upward_done && downward_done {
            return CloseReason::Closed;
        }
    }
}

/// Copies `from` to `to`, counting into `count`, until `from` closes (then closes `to`'s write
/// side) or the tunnel's total (`total`) passes the byte limit.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    count: &AtomicU64,
    total: &impl Fn() -> u64,
    limits: Limits,
) -> CloseReason
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let room = limits.max_bytes.saturating_sub(total());
        if room == 0 {
            return CloseReason::ByteLimit;
        }
        let want = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let read = match from.read(&mut buffer[..want]).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return CloseReason::Closed;
            }
            Ok(read) => read,
            Err(_) => return CloseReason::Error,
        };
        if to.write_all(&buffer[..read]).await.is_err() {
            return CloseReason::Error;
        }
        count.fetch_add(len_u64(&buffer[..read]), Ordering::Relaxed);
    }
}

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Writes a bodyless HTTP answer and closes; a client that went away is not an error.
async fn respond<W: AsyncWrite + Unpin>(client: &mut W, status: &str) {
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}
