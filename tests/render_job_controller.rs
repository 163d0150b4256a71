//! RenderJob controller (vetting stage) against a scripted API server: a hostile workflow is
//! Rejected with its violations and a Warning Event and never goes further; an approved one is
//! recorded as vetted; a missing ApprovedNodeList fails closed; a final verdict costs no request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock_api::{MockApiServer, mock_context};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use videofoundry::controller::{Context, render_job};
use videofoundry::crd::RenderJob;

const FOUNDRY_URI: &str = "/apis/videofoundry.dev/v1alpha1/namespaces/render/videofoundries/studio";
const LIST_URI: &str =
    "/apis/videofoundry.dev/v1alpha1/namespaces/render/approvednodelists/studio-approved";
const STATUS_URI: &str = "/apis/videofoundry.dev/v1alpha1/namespaces/render/renderjobs/trailer-draft-1/status?&force=true&fieldManager=videofoundry-operator";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/render/events";

fn example(file: &str) -> Value {
    let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    // The ConfigMap example holds two documents; the examples used here hold one.
    serde_yaml::from_str(&text).unwrap()
}

fn with_server_fields(mut object: Value) -> Value {
    object["metadata"]["uid"] = json!("7d1c0e1a-0000-4000-8000-000000000042");
    object["metadata"]["generation"] = json!(1);
    object
}

fn render(workflow: Option<&str>, status: Option<Value>) -> RenderJob {
    let mut object = with_server_fields(example("renderjob-inline.yaml"));
    if let Some(workflow) = workflow {
        object["spec"]["workflow"]["inline"] = json!(workflow);
    }
    if let Some(status) = status {
        object["status"] = status;
    }
    serde_json::from_value(object).unwrap()
}

fn context() -> (Arc<Context>, MockApiServer) {
    let (ctx, server, _metrics) = mock_context();
    (ctx, server)
}

fn spawn_reconcile(ctx: &Arc<Context>, render: RenderJob) -> tokio::task::JoinHandle<Action> {
    common::mock_api::spawn_reconcile(ctx, render, render_job::reconcile)
}

/// Answers the foundry and ApprovedNodeList reads with the production examples.
async fn expect_policy_reads(server: &mut MockApiServer) {
    let foundry = server
        .expect(with_server_fields(example("videofoundry-production.yaml")))
        .await;
    assert_eq!(foundry.uri, FOUNDRY_URI);
    let list = server
        .expect(with_server_fields(example("approvednodelist.yaml")))
        .await;
    assert_eq!(list.uri, LIST_URI);
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_hostile_workflow_is_rejected_with_its_violations_and_a_warning() {
    let hostile = json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "../../etc/passwd"}},
        "2": {"class_type": "EvilRemoteShell", "inputs": {"url": "https://attacker.example/payload"}},
    })
    .to_string();
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, render(Some(&hostile), None));
    expect_policy_reads(&mut server).await;

    let patch = server
        .expect(serde_json::to_value(render(None, None)).unwrap())
        .await;
    assert_eq!(patch.uri, STATUS_URI);
    let status = &patch.body["status"];
    assert_eq!(status["phase"], "Rejected");
    assert_eq!(status["vetting"]["verdict"], "Rejected");
    assert!(status["vetting"]["violationCount"].as_u64().unwrap() >= 2);
    let nodes: Vec<&str> = status["vetting"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["nodeId"].as_str().unwrap())
        .collect();
    assert!(nodes.contains(&"1") && nodes.contains(&"2"), "{nodes:?}");
    assert_eq!(
        status["vetting"]["policy"]["approvedNodeLists"][0]["name"],
        "studio-approved"
    );
    let vetted = condition(status, "Vetted");
    assert_eq!(
        (vetted["status"].as_str(), vetted["reason"].as_str()),
        (Some("False"), Some("WorkflowRejected"))
    );
    assert!(
        status["jobName"].is_null(),
        "a rejected render never gets a Job"
    );

    let events = server.drain().await;
    assert!(events.iter().all(|e| e.uri.starts_with(EVENTS_PATH)));
    assert!(
        events
            .iter()
            .any(|e| e.body["type"] == "Warning" && e.body["reason"] == "WorkflowRejected")
    );
    assert_eq!(task.await.unwrap(), Action::await_change());

    // The verdict is final: reconciling the rejected render makes no request at all.
    let rejected = render(Some(&hostile), Some(status.clone()));
    let action = spawn_reconcile(&ctx, rejected).await.unwrap();
    assert_eq!(action, Action::await_change());
    server.assert_idle();
}

#[tokio::test]
async fn an_approved_workflow_is_recorded_as_vetted_and_said_not_to_run_yet() {
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, render(None, None));
    expect_policy_reads(&mut server).await;
    let patch = server
        .expect(serde_json::to_value(render(None, None)).unwrap())
        .await;
    let status = &patch.body["status"];
    assert_eq!(status["vetting"]["verdict"], "Approved");
    assert_eq!(status["vetting"]["violationCount"], 0);
    assert_eq!(
        status["vetting"]["workflowSha256"].as_str().unwrap().len(),
        64
    );
    assert_eq!(condition(status, "Vetted")["status"], "True");
    assert_eq!(status["phase"], "Pending");
    assert_eq!(
        condition(status, "Scheduled")["reason"],
        "RenderingUnavailable"
    );
    server.drain().await;
    assert_eq!(task.await.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_missing_approved_node_list_fails_closed_and_is_retried() {
    let (ctx, mut server) = context();
    let task = spawn_reconcile(&ctx, render(None, None));
    server
        .expect(with_server_fields(example("videofoundry-production.yaml")))
        .await;
    server
        .expect_status(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}))
        .await;
    let patch = server
        .expect(serde_json::to_value(render(None, None)).unwrap())
        .await;
    let status = &patch.body["status"];
    assert_eq!(status["phase"], "Pending");
    assert!(status["vetting"].is_null());
    let vetted = condition(status, "Vetted");
    assert_eq!(
        (vetted["status"].as_str(), vetted["reason"].as_str()),
        (Some("Unknown"), Some("ApprovedNodeListNotFound"))
    );
    server.drain().await;
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(5)));
}
