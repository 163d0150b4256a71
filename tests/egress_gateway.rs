//! `videofoundry-operator egress-gateway` as a process, in front of real TLS servers on
//! 127.0.0.1 under several names (certificates from a test CA). The names reach 127.0.0.1 only
//! through `--resolve`, which the gateway honours because the host's entry approves
//! 127.0.0.0/8 explicitly; a name without such an approval (`localhost`, resolved by the
//! system) is refused for its loopback address. Each test reads the gateway's JSON log events
//! and scrapes its metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The longest any awaited event may take; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// A CA and one server certificate for every test name.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki() -> Pki {
    videofoundry::install_crypto_provider();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let names = ["approved.test", "other.test", "localhost"].map(str::to_owned);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(names.to_vec())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// A TLS server on 127.0.0.1: after the handshake it reads one request head and answers
/// `hello`, or for `GET /huge` streams 8 MiB, or for `GET /trickle` sends a byte every 200 ms;
/// a client that sends nothing is waited for.
async fn tls_server(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                if head.starts_with(b"GET /trickle ") {
                    // A byte every 200 ms for up to a minute: never idle, never done.
                    for _ in 0..300 {
                        if tls.write_all(b".").await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                } else if head.starts_with(b"GET /huge ") {
                    let chunk = vec![b'x'; 64 * 1024];
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\n\r\n")
                        .await;
                    for _ in 0..128 {
                        if tls.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                } else {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
                        .await;
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// The gateway process, its addresses and its log events (one JSON object per line).
struct Gateway {
    child: Child,
    proxy: SocketAddr,
    metrics: SocketAddr,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway_command(hosts: &Value, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"));
    command
        .args(["egress-gateway", "--foundry", "studio", "--allowed-hosts"])
        .arg(hosts.to_string())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .args(extra)
        .env_remove("VF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

async fn start_gateway(hosts: Value, extra: &[&str]) -> Gateway {
    let mut child = gateway_command(&hosts, extra).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, mut events) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                let _ = sender.send(event);
            }
        }
    });
    let listening = tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events
                .recv()
                .await
                .expect("the gateway exited before listening");
            if event["message"] == "egress gateway listening" {
                return event;
            }
        }
    })
    .await
    .unwrap();
    Gateway {
        child,
        proxy: listening["proxy"].as_str().unwrap().parse().unwrap(),
        metrics: listening["metrics"].as_str().unwrap().parse().unwrap(),
        events,
    }
}

impl Gateway {
    /// The next connection event (allowed or refused).
    async fn next_connection(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = self.events.recv().await.expect("the gateway exited");
                eprintln!("gateway: {event}");
                if event.get("verdict").is_some() {
                    return event;
                }
            }
        })
        .await
        .expect("no connection event")
    }

    async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends `request` raw and returns the status line of the answer.
    async fn raw(&self, request: &str) -> (TcpStream, String) {
        let mut stream = TcpStream::connect(self.proxy).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0_u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let read = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            if read == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8(head).unwrap();
        let status = text.lines().next().unwrap_or_default().to_owned();
        (stream, status)
    }
}

fn hosts(port: u16) -> Value {
    serde_json::json!([
        {"host": "approved.test", "ports": [port], "internalCidrs": ["127.0.0.0/8"]},
        {"host": "other.test", "ports": [port], "internalCidrs": ["127.0.0.0/8"]},
        {"host": "localhost", "ports": [port]},
    ])
}

fn resolve_flags() -> Vec<&'static str> {
    vec![
        "--resolve",
        "approved.test=127.0.0.1",
        "--resolve",
        "other.test=127.0.0.1",
    ]
}

/// A reqwest client that tunnels through the gateway as render `render-1` and trusts the CA.
fn proxied_client(gateway: &Gateway, pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::https(format!("http://{}", gateway.proxy))
                .unwrap()
                .basic_auth("render-1", "unused"),
        )
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn an_approved_host_is_reached_through_a_full_tls_tunnel_and_everything_else_is_refused() {
    let pki = pki();
    let port = tls_server(pki.server.clone()).await;
    let mut gateway = start_gateway(hosts(port), &resolve_flags()).await;

    // Approved: a real TLS handshake end to end, the certificate checked by the client.
    let client = proxied_client(&gateway, &pki);
    let body = client
        .get(format!("https://approved.test:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello");
    drop(client);
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "allowed", "{event}");
    assert_eq!(event["foundry"], "studio");
    assert_eq!(event["render"], "render-1");
    assert_eq!(event["host"], "approved.test");
    assert_eq!(event["port"], port);
    assert_eq!(event["address"], format!("127.0.0.1:{port}"));
    assert_eq!(event["closed"], "closed");
    assert!(event["bytes_up"].as_u64().unwrap() > 0, "{event}");
    assert!(event["bytes_down"].as_u64().unwrap() > 500, "{event}");

    // Not approved: 403 before any connection is made.
    let (_, status) = gateway
        .raw(&format!("CONNECT unlisted.test:{port} HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "denied_host", "{event}");
    assert_eq!(event["host"], "unlisted.test");

    // An approved host on another port, and an IP literal.
    let (_, status) = gateway
        .raw("CONNECT approved.test:8443 HTTP/1.1\r\n\r\n")
        .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(gateway.next_connection().await["verdict"], "denied_port");
    let (_, status) = gateway
        .raw(&format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(gateway.next_connection().await["verdict"], "denied_host");

    // Approved by name, but the system resolves it to loopback, which its entry does not approve.
    let (_, status) = gateway
        .raw(&format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "denied_address", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("which is not allowed"),
        "{event}"
    );

    // Plain HTTP proxying is refused.
    let (_, status) = gateway
        .raw("GET http://approved.test/ HTTP/1.1\r\nHost: approved.test\r\n\r\n")
        .await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(gateway.next_connection().await["verdict"], "bad_request");

    let text = gateway.scrape().await;
    for (verdict, count) in [
        ("allowed", 1),
        ("denied_host", 2),
        ("denied_port", 1),
        ("denied_address", 1),
        ("bad_request", 1),
        ("denied_tls", 0),
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("videofoundry_egress_connections_total{{verdict=\"{verdict}\"}}")
            ),
            count,
            "{verdict}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "videofoundry_egress_tunnels_closed_total{reason=\"closed\"}"
        ),
        1
    );
    assert!(
        metric(
            &text,
            "videofoundry_egress_tunnel_bytes_total{direction=\"down\"}"
        ) > 500
    );
}

/// Opens a CONNECT tunnel to `target` and starts TLS inside it for `sni`.
async fn tls_through(
    gateway: &Gateway,
    pki: &Pki,
    target: &str,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let (stream, status) = gateway
        .raw(&format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
        ))
        .await;
    assert_eq!(status, "HTTP/1.1 200 Connection Established");
    let connector = tokio_rustls::TlsConnector::from(pki.client.clone());
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(PATIENCE, connector.connect(name, stream))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_hello_for_another_name_or_no_tls_at_all_is_refused() {
    let pki = pki();
    let port = tls_server(pki.server.clone()).await;
    let mut gateway = start_gateway(hosts(port), &resolve_flags()).await;
    let target = format!("approved.test:{port}");

    // other.test is approved too and its certificate is valid: only the SNI check stops it.
    let fronted = tls_through(&gateway, &pki, &target, "other.test").await;
    assert!(fronted.is_err(), "a mismatched SNI got through");
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "denied_tls", "{event}");
    assert!(
        event["reason"].as_str().unwrap().contains("other.test"),
        "{event}"
    );

    let (mut stream, status) = gateway
        .raw(&format!("CONNECT {target} HTTP/1.1\r\n\r\n"))
        .await;
    assert_eq!(status, "HTTP/1.1 200 Connection Established");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: approved.test\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "plain text reached the server");
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "denied_tls", "{event}");

    // The matching name still works through the same gateway.
    let mut tls = tls_through(&gateway, &pki, &target, "approved.test")
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: approved.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(answer.ends_with(b"hello"));
    drop(tls);
    assert_eq!(gateway.next_connection().await["verdict"], "allowed");
    assert_eq!(
        metric(
            &gateway.scrape().await,
            "videofoundry_egress_connections_total{verdict=\"denied_tls\"}"
        ),
        2
    );
}

#[tokio::test]
async fn slow_and_huge_tunnels_are_cut_by_their_limits() {
    let pki = pki();
    let port = tls_server(pki.server.clone()).await;
    let mut flags = resolve_flags();
    flags.extend([
        "--handshake-timeout",
        "1",
        "--idle-timeout",
        "1",
        "--max-bytes",
        "1048576",
    ]);
    let mut gateway = start_gateway(hosts(port), &flags).await;
    let target = format!("approved.test:{port}");

    // A client that never finishes its request head.
    let mut slowloris = TcpStream::connect(gateway.proxy).await.unwrap();
    slowloris.write_all(b"CONNECT approved").await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(PATIENCE, slowloris.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(gateway.next_connection().await["verdict"], "bad_request");

    // A tunnel where nothing moves after the handshake is closed for idleness.
    let mut idle = tls_through(&gateway, &pki, &target, "approved.test")
        .await
        .unwrap();
    let mut byte = [0_u8; 1];
    let read = tokio::time::timeout(PATIENCE, idle.read(&mut byte))
        .await
        .unwrap();
    assert!(!matches!(read, Ok(1)), "the idle tunnel stayed open");
    let event = gateway.next_connection().await;
    assert_eq!(event["verdict"], "allowed", "{event}");
    assert_eq!(event["closed"], "idle_timeout", "{event}");

    // 8 MiB asked for, 1 MiB allowed.
    let mut huge = tls_through(&gateway, &pki, &target, "approved.test")
        .await
        .unwrap();
    huge.write_all(b"GET /huge HTTP/1.1\r\nHost: approved.test\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, huge.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(received.len() < 1024 * 1024, "{} bytes", received.len());
    let event = gateway.next_connection().await;
    assert_eq!(event["closed"], "byte_limit", "{event}");
    let relayed = event["bytes_up"].as_u64().unwrap() + event["bytes_down"].as_u64().unwrap();
    assert_eq!(relayed, 1024 * 1024, "{event}");

    let text = gateway.scrape().await;
    assert_eq!(
        metric(
            &text,
            "videofoundry_egress_tunnels_closed_total{reason=\"idle_timeout\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "videofoundry_egress_tunnels_closed_total{reason=\"byte_limit\"}"
        ),
        1
    );
}

#[tokio::test]
async fn a_tunnel_that_never_idles_is_closed_at_its_maximum_lifetime() {
    let pki = pki();
    let port = tls_server(pki.server.clone()).await;
    let mut flags = resolve_flags();
    flags.extend(["--idle-timeout", "1", "--max-duration", "2"]);
    let mut gateway = start_gateway(hosts(port), &flags).await;
    let mut tls = tls_through(
        &gateway,
        &pki,
        &format!("approved.test:{port}"),
        "approved.test",
    )
    .await
    .unwrap();
    tls.write_all(b"GET /trickle HTTP/1.1\r\nHost: approved.test\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut received))
        .await
        .expect("the trickling tunnel was never closed");
    let event = gateway.next_connection().await;
    assert_eq!(event["closed"], "max_duration", "{event}");
    assert!(event["bytes_down"].as_u64().unwrap() > 0, "{event}");
}

#[test]
fn a_fixed_answer_outside_an_approved_internal_range_stops_the_gateway_at_start() {
    for (hosts, resolve) in [
        // The metadata address, for a name with no internal range.
        (
            serde_json::json!([{"host": "meta.test"}]),
            "meta.test=169.254.169.254",
        ),
        // Loopback, for a name approved only for another range.
        (
            serde_json::json!([{"host": "models.internal", "internalCidrs": ["10.50.0.0/16"]}]),
            "models.internal=127.0.0.1",
        ),
        // A name that is not approved at all.
        (
            serde_json::json!([{"host": "models.internal", "internalCidrs": ["10.50.0.0/16"]}]),
            "elsewhere.internal=10.50.0.1",
        ),
    ] {
        let output = gateway_command(&hosts, &["--resolve", resolve])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{resolve}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("approves an internal range"),
            "{resolve}: {stderr}"
        );
    }
    let output = gateway_command(&serde_json::json!([{"host": "10.0.0.1"}]), &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a lowercase DNS name"));
}
