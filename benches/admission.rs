//! RenderJob admission on the real control plane (`scripts/services/kubernetes.sh`) with the
//! real PostgreSQL and Ceph RGW: how fast approved renders go from `create` to an existing Job
//! (recorded, presigned, Secret, Job), in bulk and at a steady 10/s, and how many API writes
//! the operator makes per render (from the API server's audit log). Prints figures; run with
//! the test servers started (`eval "$(bash scripts/services/<name>.sh start)"` for each):
//!
//! ```sh
//! cargo bench --bench admission                    # VF_BENCH_RENDERS=300 by default
//! VF_BENCH_RENDERS=1000 cargo bench --bench admission
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/render_run/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use harness::{APPROVED_WORKFLOW, Harness};
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Creates `names` (at most `in_flight` at once, or paced at `per_second`) and returns each
/// render's time from the start of its create request to its Job being seen.
async fn admit(
    h: &Harness,
    user: &str,
    names: Vec<String>,
    in_flight: usize,
    per_second: Option<u32>,
) -> (Vec<Duration>, Duration) {
    let jobs = h.jobs();
    let expected = names.len();
    let wanted: std::collections::BTreeSet<String> = names
        .iter()
        .map(|name| videofoundry::resources::names::worker_job(name))
        .collect();
    let seen = tokio::spawn(async move {
        let mut seen = BTreeMap::new();
        let mut stream = watcher(jobs, watcher::Config::default())
            .touched_objects()
            .boxed();
        while seen.len() < expected {
            match tokio::time::timeout(Duration::from_secs(300), stream.try_next()).await {
                Ok(Ok(Some(job))) if wanted.contains(&job.name_any()) => {
                    seen.entry(job.name_any()).or_insert_with(Instant::now);
                }
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        seen
    });
    let started = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(names.into_iter().enumerate())
        .map(|(index, name)| async move {
            if let Some(rate) = per_second {
                let due = started + Duration::from_secs_f64(index as f64 / f64::from(rate));
                tokio::time::sleep_until(due.into()).await;
            }
            let at = Instant::now();
            h.render(&name, user, APPROVED_WORKFLOW, json!({})).await;
            (name, at)
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let seen = seen.await.unwrap();
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, at)| {
            let job = videofoundry::resources::names::worker_job(name);
            seen.get(&job).map(|done| done.duration_since(*at))
        })
        .collect();
    latencies.sort();
    let last = seen.values().max().copied().unwrap_or(started);
    assert_eq!(latencies.len(), created.len(), "every render got its Job");
    (latencies, last.duration_since(started))
}

#[tokio::main]
async fn main() {
    let renders: usize = std::env::var("VF_BENCH_RENDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let steady: usize = 100;
    let cap = u32::try_from(renders + steady).unwrap();
    let Some(h) = Harness::start("bench-admit", cap, true).await else {
        eprintln!("admission bench skipped: start the test servers first");
        return;
    };
    h.foundry_ready().await;
    let user = h.create_user().await;
    let audit_log = std::env::var("VF_TEST_K8S_AUDIT_LOG").ok();
    let since = k8s_openapi::jiff::Timestamp::now();

    let names: Vec<String> = (0..renders).map(|i| format!("bulk-{i}")).collect();
    let (bulk, elapsed) = admit(&h, &user, names, 64, None).await;
    println!(
        "bulk: {renders} renders admitted (create -> Job) in {:.2} s = {:.1} renders/s; latency p50 {:.0} ms, p99 {:.0} ms",
        elapsed.as_secs_f64(),
        renders as f64 / elapsed.as_secs_f64(),
        percentile(&bulk, 0.5).as_secs_f64() * 1000.0,
        percentile(&bulk, 0.99).as_secs_f64() * 1000.0,
    );
    if let Some(log) = &audit_log {
        let prefixes = ["bulk-"];
        let writes = common::cluster::writes_since(log, &h.namespace, since, &prefixes);
        let operator_writes = writes
            .iter()
            .filter(|w| !w.starts_with("create renderjobs/"))
            .count();
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for write in &writes {
            let kind = write
                .split(['/', ' '])
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            *by_kind.entry(kind).or_default() += 1;
        }
        println!(
            "bulk: {:.2} operator API writes per render ({operator_writes} in all): {by_kind:?}",
            operator_writes as f64 / renders as f64
        );
    }

    let names: Vec<String> = (0..steady).map(|i| format!("steady-{i}")).collect();
    let (paced, _) = admit(&h, &user, names, 16, Some(10)).await;
    println!(
        "steady 10/s: {steady} renders; latency p50 {:.0} ms, p99 {:.0} ms",
        percentile(&paced, 0.5).as_secs_f64() * 1000.0,
        percentile(&paced, 0.99).as_secs_f64() * 1000.0,
    );
}
