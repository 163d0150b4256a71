//! The render run stage end to end, on the real control plane (kube-apiserver and
//! kube-controller-manager from `../shared/k8s`) with the real PostgreSQL and Ceph RGW: renders
//! are vetted, recorded under their user's identity, given presigned storage and a gVisor Job,
//! followed to the end (pods finished by the kubelet stand-in; the real Job controller decides),
//! capped per foundry, cancelled, deleted, and silent at rest. The operator is also killed at
//! random points and restarted: nothing is lost or duplicated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster;
use common::kubelet_stand_in::KubeletStandIn;
use harness::{APPROVED_WORKFLOW, HOSTILE_WORKFLOW, Harness};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use videofoundry::crd::conditions::find;
use videofoundry::crd::render_job::{CANCEL_ANNOTATION, RenderPhase};

fn condition_reason(render: &videofoundry::crd::RenderJob, type_: &str) -> String {
    find(&render.status.as_ref().unwrap().conditions, type_)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

fn storage_grant(secret: &k8s_openapi::api::core::v1::Secret) -> Value {
    let data = secret.data.as_ref().unwrap();
    serde_json::from_slice(&data["storage.json"].0).unwrap()
}

#[tokio::test]
async fn an_approved_render_runs_is_recorded_and_lists_its_outputs() {
    let Some(h) = Harness::start("rj-life", 4, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let input = format!("users/{user}/uploads/ref.png");
    h.s3()
        .put_object()
        .bucket(&h.bucket)
        .key(&input)
        .body(b"reference image".to_vec().into())
        .send()
        .await
        .unwrap();
    let render = h
        .render(
            "trailer",
            &user,
            APPROVED_WORKFLOW,
            json!({"inputs": [input], "outputs": ["video.mp4"]}),
        )
        .await;
    let uid = render.uid().unwrap();

    // The Job: sandboxed, owned by the render, after the NetworkPolicies.
    let job = h.job("trailer").await;
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(job.owner_references()[0].uid, uid);
    let policies: Api<NetworkPolicy> = Api::namespaced(h.client.clone(), &h.namespace);
    let deny = policies.get("studio-worker-default-deny").await.unwrap();
    assert!(deny.creation_timestamp().unwrap() <= job.creation_timestamp().unwrap());

    // The Secret: immutable, owned, with URLs that work only for what they name.
    let secret = h.secrets().get("trailer-render-inputs").await.unwrap();
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(secret.owner_references()[0].uid, uid);
    let grant = storage_grant(&secret);
    let http = h.http();
    let get_url = grant["inputs"][0]["url"].as_str().unwrap();
    let body = http.get(get_url).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().as_ref(), b"reference image");
    let put_url = grant["outputs"][0]["url"].as_str().unwrap();
    assert_eq!(
        grant["outputs"][0]["key"],
        format!("users/{user}/renders/trailer/video.mp4")
    );
    let stolen = put_url.replace(&user, "00000000-0000-4000-8000-000000000001");
    let refused = http.put(&stolen).body("x").send().await.unwrap();
    assert_eq!(
        refused.status(),
        403,
        "a URL moved to another user's prefix"
    );
    let uploaded = http.put(put_url).body("frames").send().await.unwrap();
    assert_eq!(uploaded.status(), 200);

    // Recorded under the user's identity, as the application role sees it.
    let app = h.application().await;
    let queued = h.phase("trailer", RenderPhase::Queued).await;
    assert_eq!(condition_reason(&queued, "Scheduled"), "JobCreated");
    assert_eq!(
        h.record(&app, &user, &uid).await,
        (Some("Queued".into()), vec!["render.submitted".into()])
    );

    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);
    let worker = kubelet.pod_of(&job.name_any()).await;
    kubelet.start(&worker).await;
    let running = h.phase("trailer", RenderPhase::Running).await;
    assert!(running.status.as_ref().unwrap().started_at.is_some());
    kubelet.finish(&worker, 0, "{\"outputs\":1}").await;
    let done = h.phase("trailer", RenderPhase::Succeeded).await;
    let status = done.status.unwrap();
    assert_eq!(
        status.outputs,
        vec![format!("users/{user}/renders/trailer/video.mp4")]
    );
    assert!(status.finished_at.is_some());
    assert_eq!(find(&status.conditions, "Ready").unwrap().status, "True");
    assert_eq!(
        h.record(&app, &user, &uid).await,
        (
            Some("Succeeded".into()),
            vec![
                "render.submitted".into(),
                "render.started".into(),
                "render.finished".into()
            ]
        )
    );

    // Another user sees none of it.
    let other = h.create_user().await;
    assert_eq!(h.record(&app, &other, &uid).await, (None, vec![]));

    // The metrics tell the same story, by bounded labels only.
    let metrics = h
        .metric_reaches(
            r#"videofoundry_renders_finished_total{phase="succeeded"}"#,
            1.0,
        )
        .await;
    for expected in [
        r#"videofoundry_vetting_verdicts_total{verdict="approved"} 1"#,
        r#"videofoundry_render_duration_seconds_count{phase="succeeded"} 1"#,
        r#"videofoundry_renders_finished_total{phase="failed"} 0"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    let foundry = format!(r#"namespace="{}",foundry="studio""#, h.namespace);
    assert!(
        metrics.contains(&format!("videofoundry_foundry_ready{{{foundry}}} 1")),
        "{metrics}"
    );
    // A developer foundry keeping its secrets in a Kubernetes Secret has no Vault series.
    assert!(!metrics.contains(r#"backend="vault""#), "{metrics}");
    for backend in ["postgres", "s3"] {
        assert!(
            metrics.contains(&format!(
                r#"videofoundry_backend_up{{{foundry},backend="{backend}"}} 1"#
            )),
            "{backend} in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(&user) && !metrics.contains("trailer"),
        "{metrics}"
    );
}

#[tokio::test]
async fn hostile_and_unrunnable_renders_never_get_a_job() {
    let Some(h) = Harness::start("rj-refuse", 4, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let hostile = h
        .render("hostile", &user, HOSTILE_WORKFLOW, json!({}))
        .await;
    let rejected = h.reason("hostile", "Recorded", "Recorded").await;
    assert_eq!(
        rejected.status.as_ref().unwrap().phase,
        RenderPhase::Rejected
    );
    let app = h.application().await;
    assert_eq!(
        h.record(&app, &user, &hostile.uid().unwrap()).await,
        (None, vec!["render.rejected".into()])
    );
    let metrics = h
        .metric_reaches(
            r#"videofoundry_vetting_verdicts_total{verdict="rejected"}"#,
            1.0,
        )
        .await;
    let rules: Vec<&str> = rejected
        .status
        .as_ref()
        .unwrap()
        .vetting
        .as_ref()
        .unwrap()
        .violations
        .iter()
        .map(|v| v.rule.as_str())
        .collect();
    for rule in rules {
        assert!(
            metrics.contains(&format!(
                r#"videofoundry_vetting_violations_total{{rule="{rule}"}}"#
            )),
            "{rule} in\n{metrics}"
        );
    }
    h.metric_reaches(
        r#"videofoundry_renders_finished_total{phase="rejected"}"#,
        1.0,
    )
    .await;

    // A user the foundry's database does not know: a reason, no Job, no crash.
    let stranger = uuid::Uuid::new_v4().to_string();
    h.render("stranger", &stranger, APPROVED_WORKFLOW, json!({}))
        .await;
    let waiting = h.reason("stranger", "Scheduled", "UserUnknown").await;
    assert_eq!(waiting.status.as_ref().unwrap().phase, RenderPhase::Pending);
    // An input that does not exist: queued with a reason, until it appears.
    h.render(
        "missing-input",
        &user,
        APPROVED_WORKFLOW,
        json!({"inputs": [format!("users/{user}/uploads/nope.png")]}),
    )
    .await;
    h.reason("missing-input", "Scheduled", "InputNotFound")
        .await;

    let jobs = h.jobs().list(&Default::default()).await.unwrap();
    assert!(
        jobs.items.is_empty(),
        "{:?}",
        jobs.items.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_concurrency_cap_admits_first_come_first_served() {
    let Some(h) = Harness::start("rj-cap", 1, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);
    h.render("first", &user, APPROVED_WORKFLOW, json!({})).await;
    let first = h.job("first").await;
    h.render("second", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    h.reason("second", "Scheduled", "ConcurrencyLimit").await;
    h.render("third", &user, APPROVED_WORKFLOW, json!({})).await;
    let third = h.reason("third", "Scheduled", "ConcurrencyLimit").await;
    assert_eq!(third.status.unwrap().phase, RenderPhase::Queued);

    kubelet
        .finish(&kubelet.pod_of(&first.name_any()).await, 0, "")
        .await;
    h.phase("first", RenderPhase::Succeeded).await;
    let second = h.job("second").await;
    let still = h.renders().get("third").await.unwrap();
    assert_eq!(condition_reason(&still, "Scheduled"), "ConcurrencyLimit");

    kubelet
        .finish(&kubelet.pod_of(&second.name_any()).await, 0, "")
        .await;
    h.job("third").await;
}

#[tokio::test]
async fn failures_name_their_reason_and_cancel_and_delete_are_recorded() {
    let Some(h) = Harness::start("rj-fail", 4, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let app = h.application().await;
    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);

    // Exit 42: the worker refused its inputs; the Job fails at once (pod failure policy).
    let refused = h
        .render("refused", &user, APPROVED_WORKFLOW, json!({"retries": 3}))
        .await;
    let job = h.job("refused").await;
    kubelet
        .finish(
            &kubelet.pod_of(&job.name_any()).await,
            42,
            "model sd_xl_base_1.0.safetensors: sha256 mismatch",
        )
        .await;
    let failed = h.phase("refused", RenderPhase::Failed).await;
    let complete = find(&failed.status.as_ref().unwrap().conditions, "Complete")
        .unwrap()
        .clone();
    assert_eq!(complete.reason, "WorkerRejectedInputs");
    let metrics = h
        .metric_reaches(
            r#"videofoundry_worker_refused_inputs_total{exit_code="42"}"#,
            1.0,
        )
        .await;
    assert!(
        metrics.contains(r#"videofoundry_renders_finished_total{phase="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"videofoundry_worker_refused_inputs_total{exit_code="43"} 0"#),
        "{metrics}"
    );
    assert!(
        complete.message.contains("sha256 mismatch"),
        "{}",
        complete.message
    );
    assert_eq!(
        h.record(&app, &user, &refused.uid().unwrap()).await,
        (
            Some("Failed".into()),
            vec!["render.submitted".into(), "render.failed".into()]
        )
    );

    // Exit 1 without retries left.
    h.render("crashed", &user, APPROVED_WORKFLOW, json!({"retries": 0}))
        .await;
    let job = h.job("crashed").await;
    kubelet
        .finish(&kubelet.pod_of(&job.name_any()).await, 1, "out of memory")
        .await;
    let crashed = h.phase("crashed", RenderPhase::Failed).await;
    assert_eq!(condition_reason(&crashed, "Complete"), "RetriesExhausted");

    // Cancel a running render: the Job goes, the database says so.
    let running = h
        .render("cancel-me", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    let job = h.job("cancel-me").await;
    kubelet.start(&kubelet.pod_of(&job.name_any()).await).await;
    h.phase("cancel-me", RenderPhase::Running).await;
    h.renders()
        .patch(
            "cancel-me",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {CANCEL_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    h.phase("cancel-me", RenderPhase::Cancelled).await;
    h.metric_reaches(
        r#"videofoundry_renders_finished_total{phase="cancelled"}"#,
        1.0,
    )
    .await;
    assert!(
        h.jobs()
            .get_opt("cancel-me-render")
            .await
            .unwrap()
            .is_none_or(|j| j.metadata.deletion_timestamp.is_some())
    );
    assert_eq!(
        h.record(&app, &user, &running.uid().unwrap()).await,
        (
            Some("Cancelled".into()),
            vec![
                "render.submitted".into(),
                "render.started".into(),
                "render.cancelled".into()
            ]
        )
    );

    // Delete: the finalizer records it before the object goes.
    h.renders()
        .delete("refused", &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_gone(&h.renders(), "refused").await;
    let (_, actions) = h.record(&app, &user, &refused.uid().unwrap()).await;
    assert_eq!(actions.last().map(String::as_str), Some("render.deleted"));
}

#[tokio::test]
async fn at_rest_and_after_a_restart_the_operator_writes_nothing_for_renders() {
    let Some(mut h) = Harness::start("rj-quiet", 4, true).await else {
        return;
    };
    let Some(audit_log) = common::service_env("VF_TEST_K8S_AUDIT_LOG") else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);
    let names = ["done", "running", "rejected"];
    h.render("done", &user, APPROVED_WORKFLOW, json!({})).await;
    h.render("running", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    h.render("rejected", &user, HOSTILE_WORKFLOW, json!({}))
        .await;
    let done = h.job("done").await;
    kubelet
        .finish(&kubelet.pod_of(&done.name_any()).await, 0, "")
        .await;
    let running = h.job("running").await;
    kubelet
        .start(&kubelet.pod_of(&running.name_any()).await)
        .await;
    h.phase("done", RenderPhase::Succeeded).await;
    h.phase("running", RenderPhase::Running).await;
    h.reason("rejected", "Recorded", "Recorded").await;
    let rows_before = h.audit_rows().await;

    // Restart: every render is read again; none is written.
    h.stop_operator().await;
    let since = k8s_openapi::jiff::Timestamp::now();
    h.start_operator();
    h.reconciled_at_least("renderjob", names.len()).await;
    // Absence can only be watched for a while: a window after the re-sync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = cluster::writes_since(&audit_log, &h.namespace, since, &names);
    assert!(writes.is_empty(), "writes at rest: {writes:#?}");
    assert_eq!(h.audit_rows().await, rows_before, "database writes at rest");
}

#[tokio::test]
async fn killed_at_random_points_the_operator_converges_without_duplicates() {
    let Some(mut h) = Harness::start("rj-kill", 3, false).await else {
        return;
    };
    let mut operator = h.spawn_binary().await;
    h.foundry_ready().await;
    let users = [h.create_user().await, h.create_user().await];
    let names: Vec<String> = (0..6).map(|i| format!("kill-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        h.render(name, &users[i % 2], APPROVED_WORKFLOW, json!({}))
            .await;
    }
    let seed: u64 = rand::random();
    eprintln!("kill seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let kubelet = KubeletStandIn::new(&h.client, &h.namespace);
    let mut finished = BTreeMap::new();
    for round in 0..8 {
        let delay = rand::Rng::random_range(&mut rng, 20..1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        operator.kill().await.unwrap();
        eprintln!("round {round}: killed after {delay} ms");
        // While it is down, finish whatever Jobs exist (the Job controller carries on).
        for job in h.jobs().list(&Default::default()).await.unwrap() {
            if finished.insert(job.name_any(), ()).is_none() {
                kubelet
                    .finish(&kubelet.pod_of(&job.name_any()).await, 0, "")
                    .await;
            }
        }
        operator = h.spawn_binary().await;
    }
    // Let it finish: every render ends, taking slots as they free.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        for job in h.jobs().list(&Default::default()).await.unwrap() {
            if finished.insert(job.name_any(), ()).is_none() {
                kubelet
                    .finish(&kubelet.pod_of(&job.name_any()).await, 0, "")
                    .await;
            }
        }
        let renders = h.renders().list(&Default::default()).await.unwrap();
        let all_done = renders.items.iter().all(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RenderPhase::Succeeded)
        });
        if all_done && renders.items.len() == names.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "renders did not all finish: {:#?}",
            renders
                .items
                .iter()
                .map(|r| (r.name_any(), r.status.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    operator.kill().await.unwrap();

    let app = h.application().await;
    assert_eq!(
        h.jobs()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        names.len()
    );
    for (i, name) in names.iter().enumerate() {
        let render = h.renders().get(name).await.unwrap();
        let (phase, actions) = h.record(&app, &users[i % 2], &render.uid().unwrap()).await;
        assert_eq!(phase.as_deref(), Some("Succeeded"), "{name}");
        let mut unique = actions.clone();
        unique.dedup();
        assert_eq!(actions, unique, "{name}: duplicate audit rows");
        assert_eq!(
            actions.first().map(String::as_str),
            Some("render.submitted"),
            "{name}"
        );
        assert_eq!(
            actions.last().map(String::as_str),
            Some("render.finished"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_deletion_that_cannot_be_recorded_says_why_and_has_a_way_out() {
    let Some(h) = Harness::start("rj-stuck", 4, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    h.render("orphan", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    h.job("orphan").await;
    h.phase("orphan", RenderPhase::Queued).await;

    // The foundry (and with it the way to its database) goes; the render is then deleted.
    let foundries: Api<videofoundry::crd::VideoFoundry> =
        Api::namespaced(h.client.clone(), &h.namespace);
    foundries
        .delete(harness::FOUNDRY, &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_gone(&foundries, harness::FOUNDRY).await;
    h.renders()
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    let stuck = h.reason("orphan", "Ready", "DeletionBlocked").await;
    let message = find(&stuck.status.as_ref().unwrap().conditions, "Ready")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("videofoundry.dev/skip-database-record=true"),
        "{message}"
    );
    let event = cluster::wait_for_event(&h.client, &h.namespace, "DeletionBlocked").await;
    assert_eq!(
        event.type_.as_deref(),
        Some("Warning"),
        "a Warning Event says why"
    );

    // The documented way out.
    h.renders()
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                videofoundry::crd::render_job::SKIP_RECORD_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    cluster::wait_gone(&h.renders(), "orphan").await;
}

#[tokio::test]
async fn a_vetted_render_keeps_its_verdict_and_deleting_its_foundry_cancels_it_first() {
    let Some(h) = Harness::start("rj-life", 4, true).await else {
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    h.render("kept", &user, APPROVED_WORKFLOW, json!({})).await;
    h.job("kept").await;
    let vetted = cluster::wait_for(&h.renders(), "kept", "its Job recorded", |r| {
        r.status.as_ref().is_some_and(|s| s.job_name.is_some())
    })
    .await;
    let before = vetted.status.unwrap().vetting.unwrap();
    assert_eq!(
        before.verdict,
        videofoundry::crd::render_job::VettingVerdict::Approved
    );

    // The security team blocks every node the workflow uses: new renders are rejected, the one
    // already vetted keeps its verdict (the policy is judged once, at submission).
    let workflow: BTreeMap<String, Value> = serde_json::from_str(APPROVED_WORKFLOW).unwrap();
    let blocked: Vec<&str> = workflow
        .values()
        .map(|node| node["class_type"].as_str().unwrap())
        .collect();
    let lists: Api<videofoundry::crd::ApprovedNodeList> =
        Api::namespaced(h.client.clone(), &h.namespace);
    lists
        .patch(
            "studio-approved",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"blockedNodes": blocked}})),
        )
        .await
        .unwrap();
    h.render("after", &user, APPROVED_WORKFLOW, json!({})).await;
    h.phase("after", RenderPhase::Rejected).await;
    let kept = h.renders().get("kept").await.unwrap();
    assert_eq!(kept.status.unwrap().vetting.unwrap(), before);

    // Deleting the foundry cancels its unfinished render first (its Job goes), then retains.
    let foundries: Api<videofoundry::crd::VideoFoundry> =
        Api::namespaced(h.client.clone(), &h.namespace);
    let name = foundries.list(&Default::default()).await.unwrap().items[0].name_any();
    foundries
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let cancelled = h.phase("kept", RenderPhase::Cancelled).await;
    assert!(cancelled.annotations().contains_key(CANCEL_ANNOTATION));
    cluster::wait_gone(&foundries, &name).await;
    let retained = cluster::wait_for_event(&h.client, &h.namespace, "Retained").await;
    assert!(
        retained
            .note
            .unwrap_or_default()
            .contains(&h.database.schema),
        "the Event names the kept schema"
    );
    assert!(
        h.jobs()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn renders_of_a_foundry_another_installation_owns_are_left_alone() {
    let Some(mut h) = Harness::start("rj-other", 4, false).await else {
        return;
    };
    // The foundry names another installation's class before this operator starts.
    let foundries: Api<videofoundry::crd::VideoFoundry> =
        Api::namespaced(h.client.clone(), &h.namespace);
    foundries
        .patch(
            harness::FOUNDRY,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"className": "team-elsewhere"}})),
        )
        .await
        .unwrap();
    h.start_operator();
    let user = uuid::Uuid::new_v4().to_string();
    h.render("theirs", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    h.reconciled_at_least("renderjob", 1).await;

    // No status, no finalizer, no Job: nothing that could fight the owner or hold a deletion.
    let render = h.renders().get("theirs").await.unwrap();
    assert!(render.status.is_none(), "{:?}", render.status);
    assert!(render.finalizers().is_empty(), "{:?}", render.finalizers());
    assert!(
        h.jobs()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    h.renders()
        .delete("theirs", &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_gone(&h.renders(), "theirs").await;
}
