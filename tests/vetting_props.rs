#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: vetting never panics, is deterministic, does not depend on the order of the
//! nodes in the file, and no workflow with a disallowed node or value passes in strict mode.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use videofoundry::crd::approved_node_list::ApprovedNodeListSpec;
use videofoundry::crd::render_job::VettingVerdict;
use videofoundry::vetting::{CoreNodes, Egress, Mode, Policy, vet};

fn policy() -> Policy {
    let spec: ApprovedNodeListSpec = serde_yaml::from_str(
        r#"
nodes:
  - classType: VHS_VideoCombine
    repository: github.com/Kosinkadink/ComfyUI-VideoHelperSuite
models:
  - identifier: sd_xl_base_1.0.safetensors
  - pattern: "loras/*.safetensors"
blockedNodes: [SaveImage]
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

const ALLOWED_TYPES: &[&str] = &[
    "KSampler",
    "VAEDecode",
    "CLIPTextEncode",
    "VHS_VideoCombine",
    "CheckpointLoaderSimple",
];
const DISALLOWED_TYPES: &[&str] = &[
    "EvilNode",
    "SaveImage",
    "OpenAIDalle3",
    "ksampler",
    "KSampler ",
    "Reroute",
];
const ALLOWED_VALUES: &[&str] = &[
    "a cat",
    "",
    "sd_xl_base_1.0.safetensors",
    "loras/x.safetensors",
    "euler",
    "renders/out",
];
const DISALLOWED_VALUES: &[&str] = &[
    "https://evil.example/x.safetensors",
    "/etc/passwd",
    "../../x",
    "loras/../../x.safetensors",
    "other.ckpt",
    "C:\\x",
    "file:/x",
    "a\0b",
    "loras\\x.safetensors",
];

/// A random API-format graph: `(class type index, inputs)` per node; inputs are constants or
/// links to other nodes (possibly dangling or cyclic).
fn api_graph(
    types: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Vec<(usize, Vec<(String, Value)>)>> {
    let input = prop_oneof![
        (0..values.len()).prop_map(move |i| Value::String(values[i].to_owned())),
        (0u32..12, 0u32..3).prop_map(|(node, slot)| json!([node.to_string(), slot])),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    let name = prop_oneof![
        Just("text"),
        Just("ckpt_name"),
        Just("model"),
        Just("image"),
        Just("seed"),
        Just("lora_name")
    ];
    prop::collection::vec(
        (
            0..types.len(),
            prop::collection::vec((name.prop_map(str::to_owned), input), 0..5),
        ),
        1..12,
    )
}

fn to_workflow(types: &[&str], graph: &[(usize, Vec<(String, Value)>)], order: &[usize]) -> String {
    let mut workflow = Map::new();
    for &position in order {
        let (class, inputs) = &graph[position];
        let inputs: Map<String, Value> = inputs.iter().cloned().collect();
        workflow.insert(
            position.to_string(),
            json!({"class_type": types[*class], "inputs": inputs}),
        );
    }
    // serde_json's Map keeps insertion order only with preserve_order; build the text by hand
    // so that the order really changes.
    let mut text = String::from("{");
    for (index, &position) in order.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        let key = position.to_string();
        text.push_str(&format!(
            "{}:{}",
            Value::String(key.clone()),
            workflow[&key]
        ));
    }
    text.push('}');
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_rejected_or_deterministic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let policy = policy();
        let first = vet(&bytes, &policy);
        let second = vet(&bytes, &policy);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(first.workflow_sha256.len(), 64);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let text = value.to_string();
        let policy = policy();
        let first = vet(text.as_bytes(), &policy);
        prop_assert_eq!(first, vet(text.as_bytes(), &policy));
    }

    #[test]
    fn the_report_does_not_depend_on_node_order(graph in api_graph(ALLOWED_TYPES, ALLOWED_VALUES), seed in any::<u64>()) {
        let forward: Vec<usize> = (0..graph.len()).collect();
        let mut shuffled = forward.clone();
        // A cheap deterministic shuffle.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            let j = (state % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let policy = policy();
        let a = vet(to_workflow(ALLOWED_TYPES, &graph, &forward).as_bytes(), &policy);
        let b = vet(to_workflow(ALLOWED_TYPES, &graph, &shuffled).as_bytes(), &policy);
        prop_assert_eq!(a.verdict, b.verdict);
        prop_assert_eq!(a.violations, b.violations);
        prop_assert_eq!(a.resources, b.resources);
    }

    #[test]
    fn a_disallowed_node_never_passes(graph in api_graph(ALLOWED_TYPES, ALLOWED_VALUES), bad in 0..DISALLOWED_TYPES.len(), at in any::<prop::sample::Index>()) {
        let mut graph = graph;
        let victim = at.index(graph.len());
        let mut types: Vec<&str> = ALLOWED_TYPES.to_vec();
        types.push(DISALLOWED_TYPES[bad]);
        graph[victim].0 = types.len() - 1;
        let order: Vec<usize> = (0..graph.len()).collect();
        let report = vet(to_workflow(&types, &graph, &order).as_bytes(), &policy());
        prop_assert_eq!(report.verdict, VettingVerdict::Rejected);
        prop_assert!(report.violations.iter().any(|v| v.node_id == victim.to_string()));
    }

    #[test]
    fn a_disallowed_value_never_passes(graph in api_graph(ALLOWED_TYPES, ALLOWED_VALUES), bad in 0..DISALLOWED_VALUES.len(), at in any::<prop::sample::Index>(), nested in any::<bool>()) {
        let mut graph = graph;
        let victim = at.index(graph.len());
        let value = Value::String(DISALLOWED_VALUES[bad].to_owned());
        let value = if nested { json!({"deep": [value]}) } else { value };
        graph[victim].1.retain(|(name, _)| name != "ckpt_name");
        graph[victim].1.push(("ckpt_name".into(), value));
        let order: Vec<usize> = (0..graph.len()).collect();
        let report = vet(to_workflow(ALLOWED_TYPES, &graph, &order).as_bytes(), &policy());
        prop_assert_eq!(report.verdict, VettingVerdict::Rejected);
    }

    #[test]
    fn random_ui_graphs_never_panic(nodes in prop::collection::vec((0u8..20, 0..ALLOWED_TYPES.len(), prop::collection::vec(0..ALLOWED_VALUES.len(), 0..3)), 0..15),
                                    links in prop::collection::vec((0u8..30, 0u8..20, 0u8..3, 0u8..20, 0u8..3), 0..20)) {
        let nodes: Vec<Value> = nodes.iter().map(|(id, t, w)| json!({
            "id": id, "type": ALLOWED_TYPES[*t],
            "inputs": [{"link": null}, {"link": 1}], "outputs": [{"links": []}],
            "widgets_values": w.iter().map(|i| ALLOWED_VALUES[*i]).collect::<Vec<_>>()
        })).collect();
        let links: Vec<Value> = links.iter().map(|(id, o, os, t, ts)| json!([id, o, os, t, ts, "X"])).collect();
        let text = json!({"nodes": nodes, "links": links}).to_string();
        let policy = policy();
        let first = vet(text.as_bytes(), &policy);
        prop_assert_eq!(first, vet(text.as_bytes(), &policy));
    }
}

/// File names that must never reach a loader: unapproved, with an extension ComfyUI accepts
/// that an older list lacked, empty (the frontend picks a file), padded or climbing.
const DISALLOWED_MODELS: &[&str] = &[
    "stolen",
    "stolen.pt2",
    "",
    " /etc/passwd",
    "\"/x.safetensors\"",
    "loras/../x.safetensors",
];
const APPROVED_MODEL: &str = "sd_xl_base_1.0.safetensors";

/// A UI workflow whose `CheckpointLoaderSimple` receives `value` by `route`: 0 its own widget,
/// 1 a PrimitiveNode through `depth` reroutes, 2 the promoted widget of `depth` nested subgraph
/// instances, 3 a PrimitiveNode feeding the outermost of `depth` nested subgraphs, 4 a legacy
/// group node's widget.
fn loader_route(route: u8, depth: usize, value: &str) -> Value {
    let uuid = |i: usize| format!("00000000-0000-4000-8000-{i:012x}");
    let loader = |id: usize, link: Option<usize>, own: &str| {
        json!({"id": id, "type": "CheckpointLoaderSimple",
               "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": link}],
               "outputs": [], "widgets_values": [own]})
    };
    match route {
        0 => json!({"nodes": [loader(1, None, value)], "links": []}),
        1 => {
            let mut nodes = vec![
                json!({"id": 100, "type": "PrimitiveNode", "outputs": [{"links": [1]}], "widgets_values": [value, "fixed"]}),
            ];
            let mut links = Vec::new();
            for r in 0..depth {
                nodes.push(json!({"id": 200 + r, "type": "Reroute", "inputs": [{"name": "", "link": r + 1}], "outputs": [{"links": [r + 2]}]}));
                let origin = if r == 0 { 100 } else { 200 + r - 1 };
                links.push(json!([r + 1, origin, 0, 200 + r, 0, "*"]));
            }
            let origin = if depth == 0 { 100 } else { 200 + depth - 1 };
            links.push(json!([depth + 1, origin, 0, 1, 0, "COMBO"]));
            nodes.push(loader(1, Some(depth + 1), APPROVED_MODEL));
            json!({"nodes": nodes, "links": links})
        }
        2 | 3 => {
            // Definition i holds an instance of definition i + 1; the last holds the loader.
            let depth = depth.max(1);
            let input = |link: Option<usize>| json!([{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": link}]);
            let definitions: Vec<Value> = (0..depth).map(|i| {
                let inner = if i + 1 == depth {
                    loader(1, Some(1), APPROVED_MODEL)
                } else {
                    json!({"id": 1, "type": uuid(i + 1), "inputs": input(Some(1)), "outputs": [], "widgets_values": []})
                };
                json!({"id": uuid(i), "inputs": [{"name": "ckpt_name", "type": "COMBO"}], "nodes": [inner],
                       "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "COMBO"}]})
            }).collect();
            let (nodes, links) = if route == 2 {
                (
                    vec![
                        json!({"id": 1, "type": uuid(0), "inputs": input(None), "outputs": [], "widgets_values": [value]}),
                    ],
                    vec![],
                )
            } else {
                (
                    vec![
                        json!({"id": 2, "type": "PrimitiveNode", "outputs": [{"links": [7]}], "widgets_values": [value]}),
                        json!({"id": 1, "type": uuid(0), "inputs": input(Some(7)), "outputs": [], "widgets_values": []}),
                    ],
                    vec![json!([7, 2, 0, 1, 0, "COMBO"])],
                )
            };
            json!({"nodes": nodes, "links": links, "definitions": {"subgraphs": definitions}})
        }
        _ => {
            json!({"nodes": [{"id": 1, "type": "workflow>G", "widgets_values": ["euler", value]}], "links": [],
                    "extra": {"groupNodes": {"G": {"nodes": [
                        {"index": 0, "type": "KSamplerSelect", "widgets_values": ["euler"]},
                        {"index": 1, "type": "CheckpointLoaderSimple", "widgets_values": [APPROVED_MODEL]}
                    ], "links": []}}}})
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However a file name reaches a loader, it is judged there: a bad one never passes and the
    /// approved one always does.
    #[test]
    fn a_loader_value_is_judged_however_it_arrives(route in 0u8..5, depth in 0usize..6, bad in 0..DISALLOWED_MODELS.len()) {
        let policy = policy();
        let good = vet(loader_route(route, depth, APPROVED_MODEL).to_string().as_bytes(), &policy);
        prop_assert_eq!(good.verdict, VettingVerdict::Approved, "{:#?}", good.violations);
        let hostile = vet(loader_route(route, depth, DISALLOWED_MODELS[bad]).to_string().as_bytes(), &policy);
        prop_assert_eq!(hostile.verdict, VettingVerdict::Rejected);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_ ./:\\\\-]{0,12}".prop_map(Value::from),
        Just(json!("class_type")),
        Just(json!("KSampler")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("class_type".to_owned()),
                    Just("inputs".to_owned()),
                    Just("nodes".to_owned()),
                    Just("links".to_owned()),
                    Just("1".to_owned()),
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    "[a-z0-9]{1,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
