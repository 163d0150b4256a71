//! ApprovedNodeList controller against a scripted API server: status, Events, and no write at
//! all for a list that is unchanged and already Ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock_api::{MockApiServer, mock_context};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;
use videofoundry::controller::{Context, approved_node_list};
use videofoundry::crd::ApprovedNodeList;
use videofoundry::metrics::Metrics;

fn list(spec: serde_json::Value, status: Option<serde_json::Value>) -> ApprovedNodeList {
    let mut object = json!({
        "apiVersion": "videofoundry.dev/v1alpha1",
        "kind": "ApprovedNodeList",
        "metadata": {"name": "studio-approved", "namespace": "render", "uid": "5b1c7e52-0000-4000-8000-000000000001", "generation": 3},
        "spec": spec,
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    serde_json::from_value(object).unwrap()
}

fn context() -> (Arc<Context>, MockApiServer, Arc<Metrics>) {
    mock_context()
}

async fn reconcile(ctx: &Arc<Context>, object: ApprovedNodeList) -> Action {
    let guard = Arc::new(DeserializeGuard(Ok(object)));
    tokio::time::timeout(
        Duration::from_secs(5),
        approved_node_list::reconcile(guard, ctx.clone()),
    )
    .await
    .expect("reconcile waited on an API request nobody answered")
    .unwrap()
}

const STATUS_URI: &str = "/apis/videofoundry.dev/v1alpha1/namespaces/render/approvednodelists/studio-approved/status?&force=true&fieldManager=videofoundry-operator";
const EVENTS_URI: &str = "/apis/events.k8s.io/v1/namespaces/render/events?";

#[tokio::test]
async fn an_invalid_list_gets_ready_false_a_reason_and_a_warning_event() {
    let (ctx, mut server, metrics) = context();
    let object = list(
        json!({"models": [{"pattern": "models/[oops", "sha256": "abc123def456..."}], "nodes": [{"classType": "X", "commit": "main"}]}),
        None,
    );
    let echo = serde_json::to_value(&object).unwrap();
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move { reconcile(&ctx, object).await }
    });

    let patch = server.expect(echo.clone()).await;
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(patch.uri, STATUS_URI);
    let ready = &patch.body["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("models[0]: pattern \"models/[oops\" does not compile"),
        "{message}"
    );
    assert!(
        message.contains("models[0]: sha256 must be 64 lowercase hex digits"),
        "{message}"
    );
    assert!(
        message.contains("nodes[0] (X): commit must be a full 40-digit"),
        "{message}"
    );
    assert_eq!(patch.body["status"]["observedGeneration"], 3);
    assert_eq!(
        patch.body["status"]["counts"],
        json!({"nodes": 1, "repositories": 0, "models": 1, "blocked": 0})
    );

    let event = server.expect(json!({})).await;
    assert_eq!(event.method, http::Method::POST);
    assert_eq!(event.uri, EVENTS_URI);
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidSpec");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap()
            .contains("does not compile")
    );
    assert_eq!(event.body["regarding"]["name"], "studio-approved");

    assert_eq!(task.await.unwrap(), Action::await_change());
    server.assert_idle();
    assert!(
        metrics
            .encode()
            .unwrap()
            .contains(r#"reconcile_runs_total{controller="approvednodelist"} 1"#)
    );
}

#[tokio::test]
async fn a_new_valid_list_becomes_ready_and_reports_blocked_overrides() {
    let (ctx, mut server, _) = context();
    let object = list(
        json!({"nodes": [{"classType": "EvilNode", "repository": "github.com/x/y"}], "blockedNodes": ["EvilNode", "Other"]}),
        None,
    );
    let echo = serde_json::to_value(&object).unwrap();
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move { reconcile(&ctx, object).await }
    });
    let patch = server.expect(echo).await;
    assert_eq!(patch.uri, STATUS_URI);
    assert_eq!(patch.body["status"]["conditions"][0]["status"], "True");
    assert_eq!(patch.body["status"]["conditions"][0]["reason"], "Valid");
    assert_eq!(
        patch.body["status"]["overriddenByBlock"],
        json!(["EvilNode"])
    );
    assert_eq!(patch.body["status"]["counts"]["blocked"], 2);

    let ready_event = server.expect(json!({})).await;
    assert_eq!(
        (
            ready_event.body["type"].as_str(),
            ready_event.body["reason"].as_str()
        ),
        (Some("Normal"), Some("Valid"))
    );
    let override_event = server.expect(json!({})).await;
    assert_eq!(override_event.body["type"], "Warning");
    assert_eq!(override_event.body["reason"], "BlockOverridesAllow");
    assert!(
        override_event.body["note"]
            .as_str()
            .unwrap()
            .contains("EvilNode")
    );
    task.await.unwrap();
    server.assert_idle();
}

#[tokio::test]
async fn reconciling_an_unchanged_ready_list_issues_no_api_write() {
    let (ctx, mut server, _) = context();
    // First reconcile of a fresh list: capture the status the controller writes.
    let spec = json!({"nodes": [{"classType": "VHS_VideoCombine", "repository": "github.com/Kosinkadink/ComfyUI-VideoHelperSuite"}], "models": [{"identifier": "sd_xl_base_1.0.safetensors"}]});
    let fresh = list(spec.clone(), None);
    let echo = serde_json::to_value(&fresh).unwrap();
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move { reconcile(&ctx, fresh).await }
    });
    let written = server.expect(echo).await.body["status"].clone();
    server.expect(json!({})).await; // the Normal "Valid" event
    task.await.unwrap();

    // The stored object now carries that status; reconciling it again must not call the API.
    let stored = list(spec, Some(written));
    let action = reconcile(&ctx, stored).await;
    assert_eq!(action, Action::await_change());
    server.assert_idle();
}

#[tokio::test]
async fn a_failed_status_write_is_retried_with_backoff() {
    let (ctx, mut server, metrics) = context();
    let object = list(json!({"blockedNodes": ["x"]}), None);
    let guard = Arc::new(DeserializeGuard(Ok(object)));
    let task = tokio::spawn({
        let (ctx, guard) = (ctx.clone(), guard.clone());
        async move { approved_node_list::reconcile(guard, ctx).await }
    });
    let (request, send) = server.0.next_request().await.unwrap();
    assert_eq!(request.method(), http::Method::PATCH);
    send.send_response(
        http::Response::builder()
            .status(500)
            .body(kube::client::Body::from(serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd timeout", "reason": "InternalError", "code": 500})).unwrap()))
            .unwrap(),
    );
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(error.category(), "KubernetesApiError");
    assert!(!error.is_permanent());
    let first = approved_node_list::error_policy(guard.clone(), &error, ctx.clone());
    let second = approved_node_list::error_policy(guard, &error, ctx);
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
    assert!(
        metrics
            .encode()
            .unwrap()
            .contains(r#"category="KubernetesApiError"} 1"#)
    );
}
