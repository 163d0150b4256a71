//! VideoFoundry controller against a scripted API server: worker isolation applied before
//! anything else, the sandbox RuntimeClass checked, one condition per guarantee, Events on change
//! and no status write when nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock_api::{MockApiServer, mock_context};
use kube::runtime::controller::Action;
use serde_json::json;
use videofoundry::controller::{Context, video_foundry};
use videofoundry::crd::VideoFoundry;
use videofoundry::crd::video_foundry::FINALIZER;

const NAMESPACE_URI: &str = "/api/v1/namespaces/render";
const POLICIES_URI: &str = "/apis/networking.k8s.io/v1/namespaces/render/networkpolicies/";
const RUNTIME_CLASS_URI: &str = "/apis/node.k8s.io/v1/runtimeclasses/gvisor";
const STATUS_URI: &str = "/apis/videofoundry.dev/v1alpha1/namespaces/render/videofoundries/studio/status?&force=true&fieldManager=videofoundry-operator";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/render/events";

/// The production example, as the API server would return it.
fn production_foundry(status: Option<serde_json::Value>) -> VideoFoundry {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/videofoundry-production.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut object: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    object["metadata"]["uid"] = json!("0b6e4f0e-0000-4000-8000-00000000f00d");
    object["metadata"]["generation"] = json!(4);
    // As the API server holds it after the first reconcile added the finalizer.
    object["metadata"]["finalizers"] = json!([FINALIZER]);
    if let Some(status) = status {
        object["status"] = status;
    }
    serde_json::from_value(object).unwrap()
}

/// A well-formed VideoFoundry to answer status writes with.
fn echo() -> serde_json::Value {
    serde_json::to_value(production_foundry(None)).unwrap()
}

fn context() -> (Arc<Context>, MockApiServer) {
    let (ctx, server, _metrics) = mock_context();
    (ctx, server)
}

fn spawn_reconcile(ctx: &Arc<Context>, foundry: VideoFoundry) -> tokio::task::JoinHandle<Action> {
    common::mock_api::spawn_reconcile(ctx, foundry, video_foundry::reconcile)
}

fn not_found() -> (u16, serde_json::Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "runtimeclasses.node.k8s.io \"gvisor\" not found"}),
    )
}

/// Answers the reads of the ServiceAccount and the two NetworkPolicies with 404 and then their
/// applies, checking order and shape; returns the applied bodies (what the API server would
/// then hold).
async fn expect_isolation_applied(server: &mut MockApiServer) -> Vec<serde_json::Value> {
    let mut applied = Vec::new();
    let missing = || json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});

    let read = server.expect_status(404, missing()).await;
    assert_eq!(read.method, http::Method::GET);
    assert!(
        read.uri
            .starts_with(&format!("{NAMESPACE_URI}/serviceaccounts/")),
        "{}",
        read.uri
    );
    let account = server
        .expect(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}))
        .await;
    assert_eq!(account.method, http::Method::PATCH);
    assert_eq!(account.uri.split('?').next(), read.uri.split('?').next());
    assert!(account.uri.contains("fieldManager=videofoundry-operator"));
    assert_eq!(account.body["automountServiceAccountToken"], false);
    applied.push(account.body);

    for _ in 0..2 {
        let read = server.expect_status(404, missing()).await;
        assert_eq!(read.method, http::Method::GET);
        assert!(read.uri.starts_with(POLICIES_URI), "{}", read.uri);
        let policy = server.expect(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}})).await;
        assert_eq!(policy.method, http::Method::PATCH);
        assert!(policy.uri.starts_with(POLICIES_URI), "{}", policy.uri);
        assert_eq!(
            policy.body["metadata"]["ownerReferences"][0]["kind"],
            "VideoFoundry"
        );
        applied.push(policy.body);
    }
    assert_eq!(
        applied[1]["spec"]["policyTypes"],
        json!(["Ingress", "Egress"]),
        "default deny first"
    );
    expect_no_quota(server).await;
    applied
}

/// Answers the reads of the namespace quota and LimitRange with 404: the foundry sets no
/// `spec.quota`, so the operator only checks that none of its own is left to remove.
async fn expect_no_quota(server: &mut MockApiServer) {
    for kind in ["resourcequotas", "limitranges"] {
        let read = server
            .expect_status(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}))
            .await;
        assert_eq!(read.method, http::Method::GET);
        assert_eq!(read.uri, format!("{NAMESPACE_URI}/{kind}/studio-workers"));
    }
}

/// Answers the reads of the ServiceAccount and NetworkPolicies with `stored` (as the API server
/// holds them, with fields it adds): nothing is applied.
async fn expect_isolation_unchanged(server: &mut MockApiServer, stored: &[serde_json::Value]) {
    for object in stored {
        let mut held = object.clone();
        held["metadata"]["resourceVersion"] = json!("42");
        held["metadata"]["uid"] = json!("0b6e4f0e-0000-4000-8000-000000000001");
        let read = server.expect(held).await;
        assert_eq!(read.method, http::Method::GET, "{}", read.uri);
    }
    expect_no_quota(server).await;
}

/// Answers the reads of the foundry's credential Secrets (database URL, Vault CA, S3 keys) with
/// 404: the backend steps report `CredentialsMissing` and are retried with backoff.
async fn expect_credentials_missing(server: &mut MockApiServer) {
    for secret in ["pg-admin", "vault-ca", "s3-admin"] {
        let read = server
            .expect_status(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}))
            .await;
        assert_eq!(read.method, http::Method::GET);
        assert_eq!(read.uri, format!("{NAMESPACE_URI}/secrets/{secret}"));
    }
}

fn condition<'a>(status: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_missing_runtime_class_leaves_the_foundry_not_ready_with_a_warning() {
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, production_foundry(None));

    expect_isolation_applied(&mut server).await;
    let (code, body) = not_found();
    let lookup = server.expect_status(code, body).await;
    assert_eq!(lookup.method, http::Method::GET);
    assert_eq!(lookup.uri, RUNTIME_CLASS_URI);
    expect_credentials_missing(&mut server).await;

    let patch = server.expect(echo()).await;
    assert_eq!(patch.uri, STATUS_URI);
    let status = &patch.body["status"];
    assert_eq!(status["observedGeneration"], 4);
    assert_eq!(condition(status, "NetworkIsolated")["status"], "True");
    let sandbox = condition(status, "SandboxReady");
    assert_eq!(sandbox["status"], "False");
    assert_eq!(sandbox["reason"], "RuntimeClassMissing");
    assert!(sandbox["message"].as_str().unwrap().contains("runsc"));
    let ready = condition(status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("RuntimeClassMissing"))
    );
    assert_eq!(condition(status, "SecurityRelaxed")["status"], "False");
    assert_eq!(status["effectiveSecurity"]["egress"], "blocked");

    let secrets = condition(status, "SecretsReady");
    assert_eq!(secrets["reason"], "CredentialsMissing");
    assert!(
        secrets["message"]
            .as_str()
            .unwrap()
            .contains("render/vault-ca")
    );
    assert_eq!(
        condition(status, "DatabaseReady")["reason"],
        "SecretsNotReady"
    );
    let storage = condition(status, "StorageReady");
    assert_eq!(storage["reason"], "CredentialsMissing");
    assert!(
        storage["message"]
            .as_str()
            .unwrap()
            .contains("render/s3-admin")
    );

    // A Warning named after each condition that does not hold, each with its own message.
    let warnings: std::collections::BTreeSet<String> = server
        .drain()
        .await
        .into_iter()
        .inspect(|event| assert!(event.uri.starts_with(EVENTS_PATH), "{}", event.uri))
        .filter(|event| event.body["type"] == "Warning")
        .map(|event| event.body["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        warnings,
        [
            "DatabaseReady",
            "Ready",
            "SandboxReady",
            "SecretsReady",
            "StorageReady"
        ]
        .map(String::from)
        .into()
    );
    // Missing credentials may appear any moment (GitOps applies in parallel): retried soon.
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(5)));
    server.assert_idle();
}

#[tokio::test]
async fn an_unchanged_foundry_writes_nothing() {
    // First pass, with the RuntimeClasses present, to learn the status the controller writes.
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, production_foundry(None));
    let applied = expect_isolation_applied(&mut server).await;
    server.expect(json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"})).await;
    let gpu = server.expect(json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor-nvproxy"}, "handler": "runsc"})).await;
    assert_eq!(
        gpu.uri,
        "/apis/node.k8s.io/v1/runtimeclasses/gvisor-nvproxy"
    );
    expect_credentials_missing(&mut server).await;
    let patch = server.expect(echo()).await;
    let written = patch.body["status"].clone();
    assert_eq!(condition(&written, "Ready")["status"], "False");
    assert_eq!(condition(&written, "SandboxReady")["status"], "True");
    for event in server.drain().await {
        assert!(event.uri.starts_with(EVENTS_PATH), "{}", event.uri);
    }
    task.await.unwrap();

    assert_eq!(
        written["claimedBy"], "videofoundry",
        "the installation records its claim"
    );

    // Second pass over the object carrying that status: reads only, no write, no Event.
    let task = spawn_reconcile(&ctx, production_foundry(Some(written)));
    expect_isolation_unchanged(&mut server, &applied).await;
    server.expect(json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"})).await;
    server.expect(json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor-nvproxy"}, "handler": "runsc"})).await;
    expect_credentials_missing(&mut server).await;
    // Still waiting for credentials: the backoff grows instead of hammering the API.
    assert_eq!(
        task.await.unwrap(),
        Action::requeue(Duration::from_secs(10))
    );
    server.assert_idle();
}

#[tokio::test]
async fn a_foundry_of_another_installation_gets_not_a_single_request() {
    let (ctx, mut server) = context();
    let mut named = production_foundry(None);
    named.spec.class_name = Some("other-team".into());
    let task = spawn_reconcile(&ctx, named);
    assert_eq!(task.await.unwrap(), Action::await_change());
    let claimed = production_foundry(Some(json!({"claimedBy": "other-team"})));
    let task = spawn_reconcile(&ctx, claimed);
    assert_eq!(task.await.unwrap(), Action::await_change());
    server.assert_idle();
}

#[tokio::test]
async fn the_finalizer_is_added_before_anything_is_provisioned() {
    let (ctx, mut server) = context();
    let mut foundry = production_foundry(None);
    foundry.metadata.finalizers = Some(vec!["example.com/keep".to_owned()]);
    let task = spawn_reconcile(&ctx, foundry);
    let patch = server.expect(echo()).await;
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(
        patch.uri,
        "/apis/videofoundry.dev/v1alpha1/namespaces/render/videofoundries/studio?"
    );
    // A JSON patch that tests the list it extends, so another controller's finalizer stays.
    assert_eq!(
        patch.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/keep"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    );
    task.abort();
}

#[tokio::test]
async fn a_spec_the_mode_forbids_is_reported_and_nothing_is_applied() {
    let (ctx, mut server) = context();
    let mut foundry = production_foundry(None);
    foundry.spec.vault = None; // production without Vault
    let task = spawn_reconcile(&ctx, foundry);

    let patch = server.expect(echo()).await;
    assert_eq!(
        patch.uri, STATUS_URI,
        "no object may be applied before the spec is valid"
    );
    let ready = condition(&patch.body["status"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(ready["message"].as_str().unwrap().contains("spec.vault"));
    let warnings: std::collections::BTreeSet<String> = server
        .drain()
        .await
        .into_iter()
        .filter(|event| event.body["type"] == "Warning")
        .map(|event| event.body["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        warnings,
        ["Ready", "SecurityRelaxed"].map(String::from).into()
    );
    assert_eq!(task.await.unwrap(), Action::await_change());
    server.assert_idle();
}

#[tokio::test]
async fn a_forbidden_namespace_names_the_helm_value_to_fix() {
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, production_foundry(None));
    server
        .expect_status(403, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "serviceaccounts is forbidden"}))
        .await;
    let (code, body) = not_found();
    server.expect_status(code, body).await; // the sandbox check still runs and reports
    expect_credentials_missing(&mut server).await;
    let patch = server.expect(echo()).await;
    let isolated = condition(&patch.body["status"], "NetworkIsolated");
    assert_eq!(isolated["status"], "False");
    assert_eq!(isolated["reason"], "Forbidden");
    assert!(
        isolated["message"]
            .as_str()
            .unwrap()
            .contains("foundryNamespaces")
    );
    let events = server.drain().await;
    assert!(events.iter().any(|e| {
        e.body["type"] == "Warning"
            && e.body["reason"] == "NetworkIsolated"
            && e.body["note"]
                .as_str()
                .unwrap()
                .starts_with("NetworkIsolated is False (Forbidden)")
    }));
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(5)));
}
