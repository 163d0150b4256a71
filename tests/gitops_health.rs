//! Argo CD and Flux read the operator's objects right: the Lua health checks shipped for Argo CD
//! (`examples/gitops/argocd/argocd-cm-health.yaml`, run by a real Lua 5.1) and kstatus's rules
//! (which Flux's `wait: true` applies) give the expected verdict on objects the operator wrote
//! on the real control plane: a Ready foundry and list, a rejected render, queued, running,
//! succeeded and cancelled renders, a malformed list, and objects whose latest generation the
//! operator has not observed yet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "render_run/harness.rs"]
mod harness;

use std::path::PathBuf;

use common::gitops::{KStatus, argo_health, argo_scripts, kstatus, lua_literal};
use common::kubelet_stand_in::KubeletStandIn;
use harness::{APPROVED_WORKFLOW, FOUNDRY, HOSTILE_WORKFLOW, Harness};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use videofoundry::crd::render_job::{CANCEL_ANNOTATION, RenderPhase};
use videofoundry::crd::{ApprovedNodeList, RenderJob, VideoFoundry};

fn lua() -> Option<PathBuf> {
    common::required_tool("lua5.1")
}

/// What both tools say about one live object.
struct Verdict {
    argo: (String, String),
    flux: (KStatus, String),
}

fn verdict(lua: &std::path::Path, kind: &str, object: &impl serde::Serialize) -> Verdict {
    let obj = serde_json::to_value(object).unwrap();
    let scripts = argo_scripts();
    Verdict {
        argo: argo_health(lua, &scripts[kind], &obj),
        flux: kstatus(&obj),
    }
}

#[track_caller]
fn expect(v: &Verdict, argo: &str, flux: KStatus, what: &str) {
    assert_eq!(v.argo.0, argo, "{what}: Argo CD says {:?}", v.argo);
    assert_eq!(v.flux.0, flux, "{what}: kstatus says {:?}", v.flux);
    assert!(
        !v.argo.1.is_empty(),
        "{what}: Argo CD health without a message"
    );
}

#[test]
fn json_becomes_the_same_lua_table() {
    let Some(lua) = lua() else { return };
    // Round trip through Lua: every kind of value, and strings that need escaping.
    let value = json!({"a": [1, -2.5, true, false, null, "x"], "quote\"d": "line\nbreak\\ \u{e9}\u{1}",
                       "nested": {"empty": {}, "list": []}});
    let script = r#"local hs = {}
      local ok = obj.a[1] == 1 and obj.a[2] == -2.5 and obj.a[3] == true and obj.a[4] == false
        and obj.a[5] == nil and obj.a[6] == "x" and obj['quote"d'] == "line\nbreak\\ \195\169\001"
        and type(obj.nested.empty) == "table" and next(obj.nested.list) == nil
      if ok then hs.status = "Healthy" else hs.status = "Degraded" end
      hs.message = "checked"
      return hs"#;
    assert_eq!(
        argo_health(&lua, script, &value).0,
        "Healthy",
        "{}",
        lua_literal(&value)
    );
}

#[test]
fn the_health_checks_cover_the_three_kinds_and_an_object_without_status() {
    let Some(lua) = lua() else { return };
    let scripts = argo_scripts();
    assert_eq!(
        scripts.keys().collect::<Vec<_>>(),
        ["ApprovedNodeList", "RenderJob", "VideoFoundry"]
    );
    // Freshly applied, before the operator's first status: Progressing, never Healthy.
    for (kind, script) in &scripts {
        let fresh = json!({"apiVersion": "videofoundry.dev/v1alpha1", "kind": kind,
                           "metadata": {"name": "x", "namespace": "y", "generation": 1}, "spec": {}});
        assert_eq!(argo_health(&lua, script, &fresh).0, "Progressing", "{kind}");
    }
}

#[tokio::test]
async fn live_objects_read_right_in_argo_cd_and_flux() {
    let Some(lua) = lua() else { return };
    let Some(mut h) = Harness::start("gitops", 1, true).await else {
        return;
    };
    let foundry = h.foundry_ready().await;
    expect(
        &verdict(&lua, "VideoFoundry", &foundry),
        "Healthy",
        KStatus::Current,
        "Ready foundry",
    );
    let lists: Api<ApprovedNodeList> = Api::namespaced(h.client.clone(), &h.namespace);
    let list = common::cluster::wait_for(
        &lists,
        "studio-approved",
        "list Ready",
        |l: &ApprovedNodeList| {
            l.status
                .as_ref()
                .is_some_and(|s| videofoundry::crd::conditions::is_true(&s.conditions, "Ready"))
        },
    )
    .await;
    expect(
        &verdict(&lua, "ApprovedNodeList", &list),
        "Healthy",
        KStatus::Current,
        "Ready list",
    );

    // A malformed list: Stalled, so a Flux wait fails fast instead of timing out.
    let broken: ApprovedNodeList = common::cluster::apply(
        &h.client,
        &h.namespace,
        json!({"apiVersion": "videofoundry.dev/v1alpha1", "kind": "ApprovedNodeList",
               "metadata": {"name": "broken"},
               "spec": {"models": [{"pattern": "models/[oops"}], "nodes": [{"classType": "X", "commit": "main"}]}}),
    )
    .await;
    let broken = common::cluster::wait_for(
        &lists,
        &broken.name_any(),
        "list Stalled",
        |l: &ApprovedNodeList| {
            l.status
                .as_ref()
                .is_some_and(|s| videofoundry::crd::conditions::is_true(&s.conditions, "Stalled"))
        },
    )
    .await;
    let v = verdict(&lua, "ApprovedNodeList", &broken);
    expect(&v, "Degraded", KStatus::Failed, "malformed list");
    assert!(v.flux.1.contains("does not compile"), "{:?}", v.flux);

    // A rejected render: Degraded and Failed, with the reason.
    let user = h.create_user().await;
    h.render("hostile", &user, HOSTILE_WORKFLOW, json!({}))
        .await;
    let rejected = h.phase("hostile", RenderPhase::Rejected).await;
    let v = verdict(&lua, "RenderJob", &rejected);
    expect(&v, "Degraded", KStatus::Failed, "rejected render");
    assert!(v.argo.1.contains("WorkflowRejected"), "{:?}", v.argo);

    // Queued with its Job, and queued behind the concurrency cap: both in progress.
    h.render("first", &user, APPROVED_WORKFLOW, json!({})).await;
    let job = h.job("first").await;
    let queued = h.phase("first", RenderPhase::Queued).await;
    expect(
        &verdict(&lua, "RenderJob", &queued),
        "Progressing",
        KStatus::InProgress,
        "queued render",
    );
    h.render("second", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    let capped = h.reason("second", "Scheduled", "ConcurrencyLimit").await;
    let v = verdict(&lua, "RenderJob", &capped);
    expect(
        &v,
        "Progressing",
        KStatus::InProgress,
        "render behind the cap",
    );
    assert!(
        v.flux.1.contains("maxConcurrentRenders") || v.argo.1.contains("ConcurrencyLimit"),
        "{:?} {:?}",
        v.flux,
        v.argo
    );

    // Running, then Succeeded.
    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);
    let pod = kubelet.pod_of(&job.name_any()).await;
    kubelet.start(&pod).await;
    let running = h.phase("first", RenderPhase::Running).await;
    expect(
        &verdict(&lua, "RenderJob", &running),
        "Progressing",
        KStatus::InProgress,
        "running render",
    );
    kubelet.finish(&pod, 0, "").await;
    let done = h.phase("first", RenderPhase::Succeeded).await;
    expect(
        &verdict(&lua, "RenderJob", &done),
        "Healthy",
        KStatus::Current,
        "succeeded render",
    );
    assert!(
        !done
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Reconciling" || c.type_ == "Stalled"),
        "a settled render carries neither abnormal-true condition"
    );

    // Cancelled: Suspended for Argo CD; for kstatus it will never become Ready, so Stalled.
    h.job("second").await;
    h.renders()
        .patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {CANCEL_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    let cancelled = h.phase("second", RenderPhase::Cancelled).await;
    expect(
        &verdict(&lua, "RenderJob", &cancelled),
        "Suspended",
        KStatus::Failed,
        "cancelled render",
    );

    // A new generation the operator has not observed (it is stopped): Progressing / InProgress,
    // even though the stored conditions still say Ready.
    h.stop_operator().await;
    let merge = |spec: Value| Patch::Merge(json!({"spec": spec}));
    let stale_list = lists
        .patch(
            "studio-approved",
            &PatchParams::default(),
            &merge(json!({"reviewedBy": "someone-else"})),
        )
        .await
        .unwrap();
    let v = verdict(&lua, "ApprovedNodeList", &stale_list);
    expect(
        &v,
        "Progressing",
        KStatus::InProgress,
        "list with an unobserved generation",
    );
    assert!(
        v.flux.1.starts_with("LatestGenerationNotObserved"),
        "{:?}",
        v.flux
    );
    let foundries: Api<VideoFoundry> = Api::namespaced(h.client.clone(), &h.namespace);
    let stale_foundry = foundries
        .patch(
            FOUNDRY,
            &PatchParams::default(),
            &merge(json!({"retention": {"renderDays": 30}})),
        )
        .await
        .unwrap();
    assert!(
        stale_foundry.metadata.generation
            > stale_foundry.status.as_ref().unwrap().observed_generation
    );
    expect(
        &verdict(&lua, "VideoFoundry", &stale_foundry),
        "Progressing",
        KStatus::InProgress,
        "foundry with an unobserved generation",
    );
    // A render applied while no operator runs has no status yet: Argo CD waits. (kstatus reads a
    // custom resource without status as Current: docs/gitops.md says how Flux users wait.)
    let fresh: RenderJob = h.render("fresh", &user, APPROVED_WORKFLOW, json!({})).await;
    assert!(fresh.status.is_none());
    assert_eq!(verdict(&lua, "RenderJob", &fresh).argo.0, "Progressing");

    // The operator back: everything observed again and settled.
    h.start_operator();
    let list = common::cluster::wait_for(
        &lists,
        "studio-approved",
        "list observed",
        |l: &ApprovedNodeList| {
            l.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == l.metadata.generation)
        },
    )
    .await;
    expect(
        &verdict(&lua, "ApprovedNodeList", &list),
        "Healthy",
        KStatus::Current,
        "list observed again",
    );
    let foundry = common::cluster::wait_for(
        &foundries,
        FOUNDRY,
        "foundry observed",
        |f: &VideoFoundry| {
            f.status.as_ref().is_some_and(|s| {
                s.observed_generation == f.metadata.generation
                    && videofoundry::crd::conditions::is_true(&s.conditions, "Ready")
            })
        },
    )
    .await;
    expect(
        &verdict(&lua, "VideoFoundry", &foundry),
        "Healthy",
        KStatus::Current,
        "foundry observed again",
    );
}

fn gitops_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!(
        "{}/examples/gitops/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The chart renders with `values` (so they pass `values.schema.json`), the admission policy
/// included.
fn chart_accepts(helm: &std::path::Path, values: &Value, what: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(values).unwrap()).unwrap();
    let output = std::process::Command::new(helm)
        .args([
            "template",
            "vfo",
            concat!(env!("CARGO_MANIFEST_DIR"), "/charts/videofoundry-operator"),
        ])
        .args([
            "--api-versions",
            "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
            "-f",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_argo_cd_example_syncs_in_waves_crds_chart_foundries_renders() {
    let apps = gitops_documents("argocd/applications.yaml");
    let waves: Vec<(String, i64)> = apps
        .iter()
        .map(|app| {
            assert_eq!(app["kind"], "Application");
            let wave = app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                .as_str()
                .unwrap();
            (
                app["spec"]["source"]["path"].as_str().unwrap().to_owned(),
                wave.parse().unwrap(),
            )
        })
        .collect();
    let paths: Vec<&str> = waves.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "crds",
            "charts/videofoundry-operator",
            "foundries",
            "renders"
        ]
    );
    assert!(waves.windows(2).all(|w| w[0].1 < w[1].1), "{waves:?}");
    assert!(
        apps[0]["spec"]["syncPolicy"]["syncOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("ServerSideApply=true"))
    );
    assert_eq!(apps[1]["spec"]["source"]["helm"]["skipCrds"], true);
    if let Some(helm) = common::required_tool("helm") {
        chart_accepts(
            &helm,
            &apps[1]["spec"]["source"]["helm"]["valuesObject"],
            "Argo CD values",
        );
    }
}

#[test]
fn the_flux_example_waits_step_by_step_crds_chart_foundries_renders() {
    let docs = gitops_documents("flux/kustomizations.yaml");
    let kustomizations: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Kustomization")
        .collect();
    let names: Vec<&str> = kustomizations
        .iter()
        .map(|k| k["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "videofoundry-crds",
            "videofoundry-operator",
            "render-platform",
            "renders"
        ]
    );
    for (i, k) in kustomizations.iter().enumerate() {
        assert_eq!(k["spec"]["wait"], true, "{}", names[i]);
        let sources = docs
            .iter()
            .filter(|d| d["kind"] == "GitRepository")
            .map(|d| &d["metadata"]["name"]);
        assert!(
            sources
                .clone()
                .any(|s| *s == k["spec"]["sourceRef"]["name"]),
            "{}",
            names[i]
        );
        if i > 0 {
            assert_eq!(
                k["spec"]["dependsOn"],
                json!([{"name": names[i - 1]}]),
                "{}",
                names[i]
            );
        }
    }
    let operator_path = kustomizations[1]["spec"]["path"]
        .as_str()
        .unwrap()
        .trim_start_matches("./");
    let release = gitops_documents(&format!(
        "{}/helmrelease.yaml",
        operator_path.trim_start_matches("examples/gitops/")
    ));
    assert_eq!(release[0]["kind"], "HelmRelease");
    assert_eq!(release[0]["spec"]["install"]["crds"], "Skip");
    assert_eq!(release[0]["spec"]["upgrade"]["crds"], "Skip");
    if let Some(helm) = common::required_tool("helm") {
        chart_accepts(&helm, &release[0]["spec"]["values"], "Flux values");
    }
}
