//! `videofoundry-operator run` as a process, against a scripted HTTP stand-in for the API server
//! (`FakeApiServer`; no real API server installs here, the e2e suite covers one): it names a
//! missing CRD and exits non-zero; with the CRDs it becomes ready, serves metrics, and exits 0
//! on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// Serves just enough of the Kubernetes API for start-up: list of our three resources (or 404
/// for the plurals in `missing`) and watches that stay open.
struct FakeApiServer {
    address: SocketAddr,
}

impl FakeApiServer {
    async fn start(missing: &'static [&'static str]) -> Self {
        let handler =
            move |Path(plural): Path<String>,
                  Query(query): Query<std::collections::BTreeMap<String, String>>| async move {
                if missing.contains(&plural.as_str()) {
                    return (StatusCode::NOT_FOUND, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}))).into_response();
                }
                if query.get("watch").is_some_and(|w| w == "true") {
                    // A watch that never sends anything; the operator must still shut down.
                    return std::future::pending::<Response>().await;
                }
                axum::Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})).into_response()
            };
        let app = Router::new()
            .route("/apis/videofoundry.dev/v1alpha1/{plural}", get(handler))
            .route(
                "/apis/videofoundry.dev/v1alpha1/namespaces/{ns}/{plural}",
                get(move |Path((_ns, plural)): Path<(String, String)>, query| {
                    handler(Path(plural), query)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address }
    }

    fn kubeconfig(&self, dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: fake, user: {{token: test}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\ncurrent-context: fake\n",
                self.address
            ),
        )
        .unwrap();
        path
    }
}

fn operator(kubeconfig: &std::path::Path, http: SocketAddr) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"));
    command
        .args(["run", "--http-address", &http.to_string()])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "VF_CONFIG",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/operator-single-namespace.yaml"),
        )
        .kill_on_drop(true)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    Some((status, response))
}

#[tokio::test]
async fn a_missing_crd_is_named_with_the_install_command_and_the_exit_is_non_zero() {
    let server = FakeApiServer::start(&["renderjobs"]).await;
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        operator(&server.kubeconfig(&dir), free_port()).output(),
    )
    .await
    .expect("the operator did not exit")
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("renderjobs.videofoundry.dev is not installed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kubectl apply --server-side -f crds/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn with_the_crds_it_becomes_ready_serves_metrics_and_stops_on_sigterm() {
    let server = FakeApiServer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let mut child = operator(&server.kubeconfig(&dir), http).spawn().unwrap();
    // Read the operator's log as it comes: an unread pipe fills up and blocks its writes.
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .unwrap();
        text
    });

    // Poll /readyz until the CRD check passed (bounded; each probe is a real request).
    let mut ready = false;
    for _ in 0..300 {
        if let Some((200, _)) = http_get(http, "/readyz").await {
            ready = true;
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the operator exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz never answered 200");
    assert_eq!(http_get(http, "/healthz").await.unwrap().0, 200);
    let (status, metrics) = http_get(http, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE videofoundry_reconcile_runs counter"),
        "{metrics}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let waited = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    let Ok(status) = waited else {
        child.start_kill().unwrap();
        let log = log.await.unwrap();
        panic!("the operator did not stop within 60s of SIGTERM; its log:\n{log}");
    };
    let status = status.unwrap();
    let log = log.await.unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
}
