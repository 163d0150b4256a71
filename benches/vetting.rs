//! Vetting throughput: nodes/s and p50/p99 per graph for API-format graphs of 10, 1k and 10k
//! nodes, the largest one that fits in 1.5 MiB, and a UI-format graph of 1k nodes.
//!
//! Run with `cargo bench --bench vetting` (or `--profile bench-vetting` for a faster build
//! that optimises only the crates vetting uses). Prints one line per graph.

use std::time::{Duration, Instant};

use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, vet};

const LIMIT: usize = 1_572_864;

fn policy() -> Policy {
    let spec: ApprovedNodeListSpec = serde_json::from_value(serde_json::json!({
        "models": [{"identifier": "sd_xl_base_1.0.safetensors"}, {"pattern": "loras/*.safetensors"}],
        "nodes": [{"classType": "VHS_VideoCombine", "repository": "github.com/Kosinkadink/ComfyUI-VideoHelperSuite"}]
    }))
    .unwrap_or_default();
    match Policy::new(
        &[("bench".into(), spec)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    ) {
        Ok(policy) => policy,
        Err(error) => panic!("bench policy: {error}"),
    }
}

/// A realistic API-format graph: a chain of sampler-like nodes, each with constants, a model
/// reference every few nodes, and links to the previous nodes.
fn api_graph(nodes: usize) -> String {
    let mut out = String::with_capacity(nodes * 200);
    out.push('{');
    for id in 0..nodes {
        if id > 0 {
            out.push(',');
        }
        match id % 4 {
            0 => out.push_str(&format!(
                r#""{id}":{{"class_type":"CheckpointLoaderSimple","inputs":{{"ckpt_name":"sd_xl_base_1.0.safetensors"}},"_meta":{{"title":"Load"}}}}"#
            )),
            1 => out.push_str(&format!(
                r#""{id}":{{"class_type":"CLIPTextEncode","inputs":{{"text":"a castle on a hill at dawn, detailed","clip":["{}",1]}}}}"#,
                id - 1
            )),
            2 => out.push_str(&format!(
                r#""{id}":{{"class_type":"LoraLoader","inputs":{{"lora_name":"loras/detail.safetensors","strength_model":1.0,"strength_clip":1.0,"model":["{}",0],"clip":["{}",1]}}}}"#,
                id - 2,
                id - 2
            )),
            _ => out.push_str(&format!(
                r#""{id}":{{"class_type":"KSampler","inputs":{{"seed":42,"steps":20,"cfg":7.0,"sampler_name":"euler","scheduler":"normal","denoise":1.0,"model":["{}",0],"positive":["{}",0],"negative":["{}",0],"latent_image":["{}",0]}}}}"#,
                id - 1,
                id - 2,
                id - 2,
                id - 3
            )),
        }
    }
    out.push('}');
    out
}

/// A UI-format graph of `nodes` nodes in a chain.
fn ui_graph(nodes: usize) -> String {
    let mut node_list = Vec::with_capacity(nodes);
    let mut links = Vec::with_capacity(nodes);
    for id in 1..=nodes {
        let input_link = if id > 1 {
            format!("{}", id - 1)
        } else {
            "null".into()
        };
        node_list.push(format!(
            r#"{{"id":{id},"type":"LoraLoaderModelOnly","pos":[{id},0],"size":[300,100],"flags":{{}},"order":{id},"mode":0,"inputs":[{{"name":"model","type":"MODEL","link":{input_link}}}],"outputs":[{{"name":"MODEL","type":"MODEL","links":[{id}]}}],"properties":{{"cnr_id":"comfy-core","ver":"0.3.64"}},"widgets_values":["loras/detail.safetensors",1.0]}}"#
        ));
        if id < nodes {
            links.push(format!(r#"[{id},{id},0,{},0,"MODEL"]"#, id + 1));
        }
    }
    format!(
        r#"{{"last_node_id":{nodes},"nodes":[{}],"links":[{}],"groups":[],"version":0.4}}"#,
        node_list.join(","),
        links.join(",")
    )
}

/// The largest API-format graph of this shape under the 1.5 MiB limit.
fn largest_api_graph() -> (usize, String) {
    let (mut low, mut high): (usize, usize) = (1, 100_000);
    while low < high {
        let mid = (low + high).div_ceil(2);
        if api_graph(mid).len() <= LIMIT {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    (low, api_graph(low))
}

fn measure(name: &str, nodes: usize, workflow: &str, policy: &Policy) {
    let first = vet(workflow.as_bytes(), policy);
    assert!(
        first.violations.is_empty(),
        "{name}: the bench graph must be benign: {:?}",
        first.violations.first()
    );
    assert_eq!(first.checked_nodes as usize, nodes);
    // Enough iterations for a stable p99 without running for long.
    let budget = Duration::from_secs(3);
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < 20 || (started.elapsed() < budget && samples.len() < 20_000) {
        let t = Instant::now();
        let report = vet(workflow.as_bytes(), policy);
        samples.push(t.elapsed());
        std::hint::black_box(report);
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    let nodes_per_second = nodes as f64 / p50.as_secs_f64();
    println!(
        "{name:<28} nodes={nodes:>6} bytes={:>8} runs={:>6} p50={:>10.3?} p99={:>10.3?} nodes/s(p50)={:>12.0}",
        workflow.len(),
        samples.len(),
        p50,
        p99,
        nodes_per_second
    );
}

/// p50 of `f` over a few runs, to show where the time of the largest graph goes.
fn stage(name: &str, mut f: impl FnMut()) {
    let mut samples: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "  stage {name:<22} p50={:>10.3?}",
        samples[samples.len() / 2]
    );
}

fn main() {
    let policy = policy();
    for nodes in [10, 1_000, 10_000] {
        measure(&format!("api {nodes}"), nodes, &api_graph(nodes), &policy);
    }
    let (nodes, largest) = largest_api_graph();
    measure("api largest under 1.5 MiB", nodes, &largest, &policy);
    stage("sha256", || {
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(largest.as_bytes()));
    });
    stage("strict JSON parse", || {
        let limits = videofoundry::vetting::json::JsonLimits::default();
        let parsed = videofoundry::vetting::json::parse(largest.as_bytes(), &limits);
        std::hint::black_box(parsed.is_ok());
    });
    stage("serde_json::Value parse", || {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(largest.as_bytes());
        std::hint::black_box(parsed.is_ok());
    });
    measure("ui 1000", 1_000, &ui_graph(1_000), &policy);
}
