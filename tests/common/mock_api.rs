//! A scripted stand-in for the Kubernetes API server (kube's tower-test mock, as in
//! kube-rs/controller-rs). No real API server installs here; the e2e suite covers a real one.

use http::{Request, Response};
use kube::Client;
use kube::client::Body;

/// The test's end of the mock: each expected request is checked and answered in order.
pub struct MockApiServer(pub tower_test::mock::Handle<Request<Body>, Response<Body>>);

/// A client wired to a fresh mock API server.
pub fn mock_client() -> (Client, MockApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), MockApiServer(handle))
}

/// One request as the mock received it.
pub struct Received {
    /// HTTP method.
    pub method: http::Method,
    /// Path and query.
    pub uri: String,
    /// JSON body (Null when empty).
    pub body: serde_json::Value,
}

impl MockApiServer {
    /// Waits for the next request (at most one second) and answers it with `response` (200).
    pub async fn expect(&mut self, response: serde_json::Value) -> Received {
        self.expect_status(200, response).await
    }

    /// Waits for the next request and answers it with an HTTP `code` (for a `Status` failure).
    pub async fn expect_status(&mut self, code: u16, response: serde_json::Value) -> Received {
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), self.0.next_request())
            .await
            .expect("the controller made no further API request within 1s")
            .expect("the client hung up");
        let (request, send) = next;
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&response).unwrap()))
                .unwrap(),
        );
        Received { method, uri, body }
    }

    /// Answers (with `{}`) every request that arrives within 200 ms of the previous one, and
    /// returns them: for Events, whose number the test does not pin.
    pub async fn drain(&mut self) -> Vec<Received> {
        let mut received = Vec::new();
        while let Ok(Some((request, send))) =
            tokio::time::timeout(std::time::Duration::from_millis(200), self.0.next_request()).await
        {
            let method = request.method().clone();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            send.send_response(
                Response::builder()
                    .body(Body::from(b"{}".to_vec()))
                    .unwrap(),
            );
            received.push(Received { method, uri, body });
        }
        received
    }

    /// Asserts that no request is waiting.
    pub fn assert_idle(&mut self) {
        let pending = futures::FutureExt::now_or_never(self.0.next_request());
        assert!(
            pending.is_none(),
            "the controller made an unexpected API request"
        );
    }
}

/// A controller context on a fresh mock API server, and the context's metrics.
pub fn mock_context() -> (
    std::sync::Arc<videofoundry::controller::Context>,
    MockApiServer,
    std::sync::Arc<videofoundry::metrics::Metrics>,
) {
    let (client, server) = mock_client();
    let metrics = std::sync::Arc::new(videofoundry::metrics::Metrics::default());
    let ctx = videofoundry::controller::Context::new(
        client,
        metrics.clone(),
        videofoundry::config::OperatorConfig::default(),
        Some("test".into()),
    );
    (std::sync::Arc::new(ctx), server, metrics)
}

/// Runs one `reconcile` of `object` in a task; a request nobody answers fails it after 5 s.
pub fn spawn_reconcile<K, Reconcile, Outcome>(
    ctx: &std::sync::Arc<videofoundry::controller::Context>,
    object: K,
    reconcile: Reconcile,
) -> tokio::task::JoinHandle<kube::runtime::controller::Action>
where
    K: Send + Sync + 'static,
    Reconcile: FnOnce(
            std::sync::Arc<kube::core::error_boundary::DeserializeGuard<K>>,
            std::sync::Arc<videofoundry::controller::Context>,
        ) -> Outcome
        + Send
        + 'static,
    Outcome: std::future::Future<
            Output = Result<kube::runtime::controller::Action, videofoundry::controller::Error>,
        > + Send,
{
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let guard = std::sync::Arc::new(kube::core::error_boundary::DeserializeGuard(Ok(object)));
        tokio::time::timeout(std::time::Duration::from_secs(5), reconcile(guard, ctx))
            .await
            .expect("reconcile waited on an API request nobody answered")
            .unwrap()
    })
}
