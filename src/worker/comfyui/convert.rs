//! UI-format workflows (what the ComfyUI editor saves) into the API format that `/prompt` takes,
//! with the running server's `/object_info` as the source of each node's inputs, the way the
//! editor itself does it: widget values are assigned in the definition's input order (a seed's
//! "control after generate" value and an upload button's value are skipped), links become
//! `[node id, output slot]`, reroutes are followed, notes and muted nodes are dropped, and a
//! primitive's value is already in its target's widgets. What cannot be converted faithfully
//! (bypassed nodes, subgraphs, nodes this server does not know, widget counts that do not match
//! its definitions) is refused with the node named, rather than guessed.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::error::WorkerError;
use super::Ordered;

/// Node types that exist only in the editor.
const FRONTEND_ONLY: &[&str] = &["Note", "MarkdownNote", "Reroute", "PrimitiveNode"];
/// Values of the editor's "control after generate" widget.
const CONTROL_VALUES: &[&str] = &["fixed", "increment", "decrement", "randomize"];
/// Input types that the editor shows as widgets (anything else is a socket).
const WIDGET_TYPES: &[&str] = &["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"];
/// Node modes: 0 always, 2 never (muted), 4 bypass.
const MODE_MUTED: u64 = 2;
const MODE_BYPASSED: u64 = 4;

/// `/object_info`, parsed only as far as conversion needs.
#[derive(Debug, Default, Deserialize)]
pub struct ObjectInfo(BTreeMap<String, NodeDefinition>);

#[derive(Debug, Default, Deserialize)]
struct NodeDefinition {
    #[serde(default)]
    input: InputSections,
    #[serde(default)]
    input_order: Option<InputOrder>,
}

#[derive(Debug, Default, Deserialize)]
struct InputSections {
    #[serde(default)]
    required: Option<Ordered<Value>>,
    #[serde(default)]
    optional: Option<Ordered<Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct InputOrder {
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
}

impl ObjectInfo {
    /// Parses a `/object_info` body.
    pub fn parse(body: &[u8]) -> Result<Self, WorkerError> {
        serde_json::from_slice(body).map_err(|e| {
            WorkerError::Render(format!("ComfyUI /object_info: unexpected body ({e})"))
        })
    }
}

impl NodeDefinition {
    /// Widget inputs in the editor's order: `(name, required, spec)`.
    fn widgets(&self) -> Vec<(&str, bool, &Value)> {
        let mut widgets = Vec::new();
        for (required, section, order) in [
            (
                true,
                &self.input.required,
                self.input_order.as_ref().map(|o| &o.required),
            ),
            (
                false,
                &self.input.optional,
                self.input_order.as_ref().map(|o| &o.optional),
            ),
        ] {
            let Some(section) = section else { continue };
            let lookup: HashMap<&str, &Value> =
                section.0.iter().map(|(n, s)| (n.as_str(), s)).collect();
            let names: Vec<&str> = match order {
                Some(order) => order.iter().map(String::as_str).collect(),
                None => section.0.iter().map(|(n, _)| n.as_str()).collect(),
            };
            for name in names {
                if let Some(spec) = lookup.get(name).filter(|spec| is_widget(spec)) {
                    widgets.push((name, required, *spec));
                }
            }
        }
        widgets
    }
}

fn is_widget(spec: &Value) -> bool {
    let options = &spec[1];
    if options["forceInput"] == json!(true) || options["defaultInput"] == json!(true) {
        return false;
    }
    match &spec[0] {
        Value::Array(_) => true,
        Value::String(kind) => WIDGET_TYPES.contains(&kind.as_str()),
        _ => false,
    }
}

/// Whether the editor adds a "control after generate" widget after this one.
fn has_control_widget(name: &str, spec: &Value) -> bool {
    spec[1]["control_after_generate"] == json!(true)
        || (matches!(name, "seed" | "noise_seed") && spec[0] == json!("INT"))
}

/// Whether the editor adds an upload button (whose value is saved) after this one.
fn has_upload_widget(spec: &Value) -> bool {
    spec[1].as_object().is_some_and(|options| {
        options
            .iter()
            .any(|(key, value)| key.ends_with("_upload") && value == &json!(true))
    })
}

/// Whether a workflow is in the UI format (`nodes` and `links`), as opposed to the API format.
pub fn is_ui_format(workflow: &Value) -> bool {
    workflow.get("nodes").is_some_and(Value::is_array)
}

struct Link {
    origin: String,
    slot: Value,
}

/// Converts a UI-format workflow to the API format.
pub fn ui_to_api(workflow: &Value, info: &ObjectInfo) -> Result<Value, WorkerError> {
    let fail = |message: String| Err(WorkerError::Conversion(message));
    let has_subgraphs = workflow["definitions"]["subgraphs"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if has_subgraphs {
        return fail("subgraphs are not supported; convert the workflow in the editor".to_owned());
    }
    let Some(nodes) = workflow["nodes"].as_array() else {
        return fail("no nodes".to_owned());
    };
    let by_id: HashMap<String, &Value> = nodes.iter().map(|n| (id_of(&n["id"]), n)).collect();
    let links = read_links(&workflow["links"])?;

    let mut api = Map::new();
    for node in nodes {
        let id = id_of(&node["id"]);
        let class_type = node["type"].as_str().unwrap_or_default();
        let mode = node["mode"].as_u64().unwrap_or(0);
        if FRONTEND_ONLY.contains(&class_type) || mode == MODE_MUTED {
            continue;
        }
        if mode == MODE_BYPASSED {
            return fail(format!(
                "node {id} ({class_type}) is bypassed; remove it or turn the bypass off"
            ));
        }
        let Some(definition) = info.0.get(class_type) else {
            return fail(format!(
                "node {id}: type {class_type:?} is not a node of this ComfyUI"
            ));
        };
        let mut inputs = widget_inputs(&id, class_type, &node["widgets_values"], definition)?;
        for input in node["inputs"].as_array().into_iter().flatten() {
            let Some(link_id) = input["link"].as_u64() else {
                continue;
            };
            let name = input["widget"]["name"]
                .as_str()
                .or_else(|| input["name"].as_str())
                .unwrap_or_default();
            let Some(source) = resolve(link_id, &links, &by_id, &id)? else {
                // A primitive's value is already in this node's widgets.
                continue;
            };
            inputs.insert(name.to_owned(), json!([source.origin, source.slot]));
        }
        let mut entry = json!({"class_type": class_type, "inputs": inputs});
        if let Some(title) = node["title"].as_str() {
            entry["_meta"] = json!({"title": title});
        }
        api.insert(id, entry);
    }
    if api.is_empty() {
        return fail("no node to run".to_owned());
    }
    Ok(Value::Object(api))
}

fn id_of(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn read_links(links: &Value) -> Result<HashMap<u64, (String, Value)>, WorkerError> {
    let mut read = HashMap::new();
    for link in links.as_array().into_iter().flatten() {
        let (id, origin, slot) = match link {
            // [id, origin_id, origin_slot, target_id, target_slot, type]
            Value::Array(fields) => (fields.first(), fields.get(1), fields.get(2)),
            Value::Object(_) => (
                link.get("id"),
                link.get("origin_id"),
                link.get("origin_slot"),
            ),
            _ => (None, None, None),
        };
        match (id.and_then(Value::as_u64), origin, slot) {
            (Some(id), Some(origin), Some(slot)) => {
                read.insert(id, (id_of(origin), slot.clone()));
            }
            _ => {
                return Err(WorkerError::Conversion(format!(
                    "a link is malformed: {}",
                    clip_json(link)
                )));
            }
        }
    }
    Ok(read)
}

fn clip_json(value: &Value) -> String {
    value.to_string().chars().take(120).collect()
}

/// The node and slot feeding `link_id`, through reroutes; `None` for a primitive.
fn resolve(
    link_id: u64,
    links: &HashMap<u64, (String, Value)>,
    nodes: &HashMap<String, &Value>,
    target: &str,
) -> Result<Option<Link>, WorkerError> {
    let mut link_id = link_id;
    // Bounded: a reroute loop cannot spin.
    for _ in 0..=nodes.len() {
        let Some((origin, slot)) = links.get(&link_id) else {
            return Err(WorkerError::Conversion(format!(
                "node {target}: link {link_id} does not exist"
            )));
        };
        let Some(node) = nodes.get(origin) else {
            return Err(WorkerError::Conversion(format!(
                "node {target}: link {link_id} comes from missing node {origin}"
            )));
        };
        let mode = node["mode"].as_u64().unwrap_or(0);
        match node["type"].as_str().unwrap_or_default() {
            "PrimitiveNode" => return Ok(None),
            "Reroute" => match node["inputs"][0]["link"].as_u64() {
                Some(next) => link_id = next,
                None => {
                    return Err(WorkerError::Conversion(format!(
                        "node {target}: reroute {origin} has no input"
                    )));
                }
            },
            class_type if mode == MODE_MUTED || mode == MODE_BYPASSED => {
                return Err(WorkerError::Conversion(format!(
                    "node {target} takes an input from node {origin} ({class_type}), which is muted or bypassed"
                )));
            }
            _ => {
                return Ok(Some(Link {
                    origin: origin.clone(),
                    slot: slot.clone(),
                }));
            }
        }
    }
    Err(WorkerError::Conversion(format!(
        "node {target}: reroutes form a loop"
    )))
}

fn widget_inputs(
    id: &str,
    class_type: &str,
    values: &Value,
    definition: &NodeDefinition,
) -> Result<Map<String, Value>, WorkerError> {
    let widgets = definition.widgets();
    let mut inputs = Map::new();
    match values {
        Value::Null => {}
        // Some custom nodes save their widgets by name.
        Value::Object(named) => {
            for (name, _, _) in &widgets {
                if let Some(value) = named.get(*name) {
                    inputs.insert((*name).to_owned(), value.clone());
                }
            }
        }
        Value::Array(values) => {
            let mut next = 0;
            for (name, required, spec) in &widgets {
                let Some(value) = values.get(next) else {
                    if *required {
                        return Err(WorkerError::Conversion(format!(
                            "node {id} ({class_type}) has {} widget values, but this ComfyUI's definition needs a value for {name}",
                            values.len()
                        )));
                    }
                    break;
                };
                inputs.insert((*name).to_owned(), value.clone());
                next += 1;
                let skip_control = has_control_widget(name, spec)
                    && values
                        .get(next)
                        .and_then(Value::as_str)
                        .is_some_and(|v| CONTROL_VALUES.contains(&v));
                let skip_upload =
                    has_upload_widget(spec) && values.get(next).is_some_and(Value::is_string);
                if skip_control || skip_upload {
                    next += 1;
                }
            }
            if next < values.len() {
                return Err(WorkerError::Conversion(format!(
                    "node {id} ({class_type}) has {} widget values, but this ComfyUI's definition takes {next}",
                    values.len()
                )));
            }
        }
        _ => {
            return Err(WorkerError::Conversion(format!(
                "node {id} ({class_type}): widgets_values is neither a list nor an object"
            )));
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ObjectInfo {
        ObjectInfo::parse(
            br#"{
            "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["m.safetensors"], {}]}}},
            "KSampler": {"input": {"required": {
                "model": ["MODEL"], "seed": ["INT", {"control_after_generate": true}],
                "steps": ["INT", {}], "cfg": ["FLOAT", {}], "sampler_name": [["euler"], {}],
                "scheduler": [["normal"], {}], "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
                "denoise": ["FLOAT", {}]}},
              "input_order": {"required": ["model", "seed", "steps", "cfg", "sampler_name",
                "scheduler", "positive", "negative", "latent_image", "denoise"]}},
            "LoadImage": {"input": {"required": {"image": [["a.png"], {"image_upload": true}]}}},
            "SaveImage": {"input": {"required": {"images": ["IMAGE"],
                "filename_prefix": ["STRING", {}]}}}
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn widgets_links_reroutes_and_notes_convert_like_the_editor() {
        let ui = json!({
            "nodes": [
                {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["m.safetensors"]},
                {"id": 3, "type": "KSampler", "mode": 0,
                 "inputs": [{"name": "model", "type": "MODEL", "link": 2},
                            {"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 3}],
                 "widgets_values": [42, "randomize", 20, 7.5, "euler", "normal", 1.0]},
                {"id": 7, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "link": 1}]},
                {"id": 8, "type": "PrimitiveNode", "mode": 0, "widgets_values": [20]},
                {"id": 9, "type": "LoadImage", "mode": 0, "widgets_values": ["ref.png", "image"]},
                {"id": 10, "type": "Note", "mode": 0, "widgets_values": ["free text"]},
                {"id": 11, "type": "SaveImage", "mode": 2, "widgets_values": ["muted"]}
            ],
            "links": [[1, 4, 0, 7, 0, "MODEL"], [2, 7, 0, 3, 0, "MODEL"],
                      {"id": 3, "origin_id": 8, "origin_slot": 0, "target_id": 3, "target_slot": 1}]
        });
        let api = ui_to_api(&ui, &info()).unwrap();
        assert_eq!(
            api["3"]["inputs"],
            json!({"model": ["4", 0], "seed": 42, "steps": 20, "cfg": 7.5,
                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0})
        );
        assert_eq!(api["9"]["inputs"], json!({"image": "ref.png"}));
        assert_eq!(api["4"]["class_type"], "CheckpointLoaderSimple");
        let ids: Vec<_> = api.as_object().unwrap().keys().cloned().collect();
        assert_eq!(ids, ["3", "4", "9"]);
    }

    #[test]
    fn what_cannot_be_converted_is_refused_with_the_node_named() {
        let cases = [
            (
                json!({"nodes": [{"id": 1, "type": "Mystery", "widgets_values": []}], "links": []}),
                "node 1: type \"Mystery\" is not a node of this ComfyUI",
            ),
            (
                json!({"nodes": [{"id": 2, "type": "SaveImage", "mode": 4, "widgets_values": ["x"]}], "links": []}),
                "node 2 (SaveImage) is bypassed",
            ),
            (
                json!({"nodes": [{"id": 3, "type": "SaveImage", "widgets_values": ["x", "extra"]}], "links": []}),
                "node 3 (SaveImage) has 2 widget values, but this ComfyUI's definition takes 1",
            ),
            (
                json!({"nodes": [{"id": 4, "type": "SaveImage", "widgets_values": []}], "links": []}),
                "needs a value for filename_prefix",
            ),
            (
                json!({"nodes": [{"id": 5, "type": "SaveImage", "inputs": [{"name": "images", "link": 9}],
                    "widgets_values": ["x"]}], "links": []}),
                "node 5: link 9 does not exist",
            ),
            (
                json!({"nodes": [], "links": [], "definitions": {"subgraphs": [{"id": "x"}]}}),
                "subgraphs are not supported",
            ),
        ];
        for (ui, expected) in cases {
            let error = ui_to_api(&ui, &info()).unwrap_err();
            assert_eq!(error.exit_code(), 43);
            assert!(error.to_string().contains(expected), "{error} / {expected}");
        }
    }

    #[test]
    fn formats_are_told_apart() {
        assert!(is_ui_format(&json!({"nodes": [], "links": []})));
        assert!(!is_ui_format(
            &json!({"1": {"class_type": "SaveImage", "inputs": {}}})
        ));
    }
}
