#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bounded resources: vetting any document the API server can store (≤ 1.5 MiB) allocates at
//! most `CEILING` bytes beyond the input, and the report stays small, whatever the shape:
//! long ids, deep nesting, wide fan-out, floods of violations or of embeddings.
//!
//! Allocations are counted by a global allocator wrapper, so the tests in this file take a
//! lock and run one at a time. `VF_WRITE_WORST=<dir>` also writes the worst cases there, to
//! measure the CLI's peak RSS with `/usr/bin/time -v` (docs/vetting.md).

use std::fmt::Write as _;
use std::sync::Mutex;

use peak_alloc::PeakAlloc;
use proptest::prelude::*;
use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::crd::render_job::VettingVerdict;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, Report, vet};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Most bytes vetting may allocate beyond its input (and the policy, built before).
const CEILING: usize = 64 * 1024 * 1024;
/// Largest workflow the API server stores.
const MAX_BYTES: usize = 1_572_864;
/// Largest report, as JSON.
const MAX_REPORT: usize = 2 * 1024 * 1024;

fn policy() -> Policy {
    let spec: ApprovedNodeListSpec = serde_yaml::from_str(
        r#"
nodes:
  - classType: VHS_VideoCombine
    repository: github.com/Kosinkadink/ComfyUI-VideoHelperSuite
models:
  - identifier: sd_xl_base_1.0.safetensors
  - pattern: "loras/*.safetensors"
"#,
    )
    .unwrap();
    Policy::new(
        &[("p".into(), spec)],
        CoreNodes::builtin(),
        Mode::Strict,
        Egress::Blocked,
    )
    .unwrap()
}

/// Vets `bytes` and returns the report with the peak allocation beyond the baseline.
fn measure(bytes: &[u8], policy: &Policy) -> (Report, usize) {
    let baseline = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let report = vet(bytes, policy);
    let peak = ALLOCATOR.peak_usage().saturating_sub(baseline);
    (report, peak)
}

#[track_caller]
fn assert_bounded(name: &str, bytes: &[u8], policy: &Policy) -> usize {
    assert!(bytes.len() <= MAX_BYTES, "{name}: {} bytes", bytes.len());
    let (report, peak) = measure(bytes, policy);
    assert!(
        peak <= CEILING,
        "{name}: vetting {} bytes allocated {peak} bytes at peak",
        bytes.len()
    );
    let size = serde_json::to_vec(&report).unwrap().len();
    assert!(size <= MAX_REPORT, "{name}: report of {size} bytes");
    assert!(report.violation_count as usize >= report.violations.len());
    assert_ne!(report.verdict, VettingVerdict::Unknown);
    peak
}

const UUIDS: usize = 100_000;

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Appends items produced by `item(i)` to `out`, comma-separated, while `out` stays within
/// `budget` bytes (leaving room for the closing text).
fn fill(out: &mut String, budget: usize, mut item: impl FnMut(usize) -> String) {
    let mut i = 0;
    loop {
        let next = item(i);
        if out.len() + next.len() + 1 > budget {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&next);
        i += 1;
    }
}

/// The shapes: each takes a size knob (id length, fan-out...) and fills 1.5 MiB.
fn shape(kind: usize, knob: usize) -> String {
    let budget = MAX_BYTES - 4096;
    let id = "7".repeat(knob.clamp(1, 200_000));
    let mut out = String::new();
    match kind {
        // Many comment nodes inside a subgraph whose instance has a long id.
        0 => {
            let _ = write!(
                out,
                r#"{{"nodes":[{{"id":"{id}","type":"{}"}}],"links":[],"definitions":{{"subgraphs":[{{"id":"{}","links":[],"nodes":["#,
                uuid(0),
                uuid(0)
            );
            fill(&mut out, budget, |i| {
                format!(r#"{{"id":{i},"type":"Note","widgets_values":["x"]}}"#)
            });
            out.push_str("]}]}}");
        }
        // A chain of subgraphs, each instantiating the next under a long id, each with a bad
        // value and a loader fed from the subgraph's input.
        1 => {
            out.push_str(&format!(
                r#"{{"nodes":[{{"id":"{id}","type":"{}","inputs":[{{"name":"ckpt_name","widget":{{"name":"ckpt_name"}},"link":null}}],"widgets_values":["evil"]}}],"links":[],"definitions":{{"subgraphs":["#,
                uuid(0)
            ));
            fill(&mut out, budget, |i| {
                format!(
                    r#"{{"id":"{}","inputs":[{{"name":"ckpt_name"}}],"nodes":[{{"id":"{id}","type":"{}","inputs":[{{"name":"ckpt_name","widget":{{"name":"ckpt_name"}},"link":1}}]}},{{"id":2,"type":"CheckpointLoaderSimple","inputs":[{{"name":"ckpt_name","widget":{{"name":"ckpt_name"}},"link":2}}],"widgets_values":[""]}},{{"id":3,"type":"EvilNode","widgets_values":["/etc/passwd"]}}],"links":[{{"id":1,"origin_id":-10,"origin_slot":0,"target_id":"{id}","target_slot":0}},{{"id":2,"origin_id":-10,"origin_slot":0,"target_id":2,"target_slot":0}}]}}"#,
                    uuid(i),
                    uuid((i + 1) % UUIDS)
                )
            });
            out.push_str("]}}");
        }
        // Wide fan-out: each subgraph instantiates the next many times.
        2 => {
            let fan = knob.clamp(1, 2_000);
            out.push_str(&format!(
                r#"{{"nodes":[{{"id":1,"type":"{}"}}],"links":[],"definitions":{{"subgraphs":["#,
                uuid(0)
            ));
            fill(&mut out, budget, |i| {
                let mut nodes = String::new();
                for n in 0..fan {
                    if n > 0 {
                        nodes.push(',');
                    }
                    let _ = write!(nodes, r#"{{"id":{n},"type":"{}"}}"#, uuid(i + 1));
                }
                format!(r#"{{"id":"{}","nodes":[{nodes}],"links":[]}}"#, uuid(i))
            });
            out.push_str("]}}");
        }
        // A flood of distinct violations in the API format.
        3 => {
            out.push('{');
            fill(&mut out, budget, |i| {
                format!(
                    r#""{i}{id}":{{"class_type":"Evil{i}","inputs":{{"a":"/etc/{i}","b":"https://x/{i}","c":"../{i}","d":"m{i}.pt2"}}}}"#
                )
            });
            out.push('}');
        }
        // Prompt texts full of distinct embeddings.
        4 => {
            out.push('{');
            let mut i = 0;
            let mut n = 0;
            while out.len() < budget - 210_000 {
                if n > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    r#""{n}":{{"class_type":"CLIPTextEncode","inputs":{{"text":""#
                );
                let start = out.len();
                while out.len() - start < 200_000 {
                    let _ = write!(out, "embedding:e{i} ");
                    i += 1;
                }
                out.push_str(r#""}}"#);
                n += 1;
            }
            out.push('}');
        }
        // Legacy group nodes, each using the next.
        5 => {
            out.push_str(
                r#"{"nodes":[{"id":1,"type":"workflow>g0"}],"links":[],"extra":{"groupNodes":{"#,
            );
            fill(&mut out, budget, |i| {
                format!(
                    r#""g{i}":{{"nodes":[{{"index":0,"type":"workflow>g{}"}},{{"index":1,"type":"CheckpointLoaderSimple","widgets_values":["evil{i}"]}}],"links":[]}}"#,
                    i + 1
                )
            });
            out.push_str("}}}");
        }
        // Unresolved loaders and long ids, UI format.
        _ => {
            out.push_str(r#"{"nodes":["#);
            fill(&mut out, budget, |i| {
                format!(
                    r#"{{"id":"{i}{}","type":"CheckpointLoaderSimple","widgets_values":{{}}}}"#,
                    &id[..id.len().min(2_000)]
                )
            });
            out.push_str(r#"],"links":[]}"#);
        }
    }
    out
}

const SHAPES: &[&str] = &[
    "comment nodes under a long id",
    "subgraph chain",
    "subgraph fan-out",
    "violation flood",
    "embedding flood",
    "group node chain",
    "unresolved loaders",
];

#[test]
fn the_worst_shapes_stay_under_the_ceiling() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let policy = policy();
    let write_to = std::env::var_os("VF_WRITE_WORST").map(std::path::PathBuf::from);
    for (kind, name) in SHAPES.iter().enumerate() {
        for knob in [1, 64, 2_000, 100_000] {
            let document = shape(kind, knob);
            let peak = assert_bounded(name, document.as_bytes(), &policy);
            eprintln!(
                "{name} (knob {knob}): {} bytes, peak {:.1} MiB",
                document.len(),
                peak as f64 / 1048576.0
            );
            if let Some(dir) = &write_to {
                std::fs::write(dir.join(format!("worst-{kind}-{knob}.json")), &document).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_shape_and_size_stays_under_the_ceiling(kind in 0..SHAPES.len(), knob in 1usize..150_000, cut in 0.0f64..1.0) {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let policy = policy();
        let document = shape(kind, knob);
        // Cut short too: a truncated document is invalid JSON, or a smaller valid one.
        let end = ((document.len() as f64) * cut) as usize;
        let cut_document = &document.as_bytes()[..end.max(1)];
        assert_bounded(SHAPES[kind], document.as_bytes(), &policy);
        assert_bounded(SHAPES[kind], cut_document, &policy);
    }
}
