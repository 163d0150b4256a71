//! The API format: `{"<id>": {"class_type", "inputs", "_meta"}}`, links as `["<id>", <output>]`.
//! ComfyUI reads every list-valued input as a link, so a list that is not exactly
//! `[string id, output index]` is rejected rather than guessed at.

use std::collections::HashMap;

use super::check::{Checker, Slot, shown};
use super::graph::{self, canonical_id};
use super::json::{Json, Str};
use super::model_inputs::ModelInputs;
use super::report::{Format, rules};
use super::values;

/// Keys a node object may hold besides `class_type` and `inputs`.
const TOLERATED_NODE_KEYS: &[&str] = &["_meta", "is_changed"];

pub fn vet(members: &[(Str<'_>, Json<'_>)], checker: &mut Checker<'_>) {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(members.len());
    let mut canonical: HashMap<String, &str> = HashMap::with_capacity(members.len());
    for (position, (id, _)) in members.iter().enumerate() {
        if let Some(previous) = canonical.insert(canonical_id(id), id) {
            checker.violation(
                id,
                "",
                rules::AMBIGUOUS_ID,
                format!(
                    "node id {} and node id {} differ only in case, whitespace or leading zeros; rename one",
                    shown(previous),
                    shown(id)
                ),
            );
        }
        index.insert(id, position);
    }

    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (position, (id, node)) in members.iter().enumerate() {
        if !checker.count_node() {
            return;
        }
        let Some(fields) = node.as_object() else {
            checker.violation(
                id,
                "",
                rules::UNEXPECTED_SHAPE,
                format!(
                    "node {} is {}, not an object with class_type and inputs",
                    shown(id),
                    node.kind()
                ),
            );
            continue;
        };
        let Some(class_type) = node.get("class_type").and_then(Json::as_str) else {
            checker.violation(
                id,
                "",
                rules::UNEXPECTED_SHAPE,
                "the node has no string class_type".into(),
            );
            continue;
        };
        for (key, _) in fields {
            if key != "class_type"
                && key != "inputs"
                && !TOLERATED_NODE_KEYS.contains(&key.as_ref())
            {
                checker.violation(
                    id,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    format!("unexpected node field {}; an API-format node holds class_type, inputs and _meta", shown(key)),
                );
            }
        }
        checker.check_node_type(id, class_type, Format::Api, None);
        let inputs = match node.get("inputs") {
            Some(Json::Object(inputs)) => inputs.as_slice(),
            Some(other) => {
                checker.violation(
                    id,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    format!("inputs is {}, not an object", other.kind()),
                );
                continue;
            }
            None => {
                checker.violation(
                    id,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    "the node has no inputs object".into(),
                );
                continue;
            }
        };
        // Built-in nodes: the inputs ComfyUI resolves against a folder, from its own
        // definitions. Custom nodes: by input name and by extension.
        let loader_inputs = ModelInputs::builtin().inputs_of(class_type);
        let custom = loader_inputs.is_none() && !checker.policy.core().is_core(class_type);
        for (name, value) in inputs {
            let loader = loader_inputs.and_then(|loaders| {
                loaders
                    .iter()
                    .find(|l| l.input.as_deref().is_none_or(|input| input == name))
            });
            match value {
                Json::Array(items) => {
                    let source = link_source(id, class_type, name, items, &index, checker);
                    if let Some(source) = source {
                        edges.push((source, position));
                    }
                    if let (Some(loader), [Json::String(from), _]) = (loader, items.as_slice()) {
                        let source = format!("a link from node {}", shown(from));
                        checker.loader_input_computed(id, class_type, loader, &source);
                    }
                }
                other => match loader {
                    Some(loader) => {
                        checker.check_loader_input(id, class_type, loader, Some(other), "")
                    }
                    None => {
                        let slot = if custom && values::is_model_input(name) {
                            Slot::NamedModel
                        } else {
                            Slot::Text
                        };
                        checker.check_value(id, class_type, Some(name), other, slot);
                    }
                },
            }
        }
        for loader in loader_inputs.unwrap_or_default() {
            if let Some(name) = loader.input.as_deref()
                && !inputs.iter().any(|(input, _)| input == name)
            {
                checker.check_loader_input(id, class_type, loader, None, "");
            }
        }
    }
    for position in graph::nodes_in_cycles(members.len(), &edges) {
        let (id, node) = &members[position];
        let class_type = node
            .get("class_type")
            .and_then(Json::as_str)
            .unwrap_or_default();
        checker.violation(
            id,
            class_type,
            rules::CYCLE,
            "the node is on, or fed by, a cycle of links; ComfyUI cannot order it".into(),
        );
    }
}

/// Reads a link `["<id>", <output>]` and returns the index of its source node.
fn link_source(
    id: &str,
    class_type: &str,
    input: &str,
    items: &[Json<'_>],
    index: &HashMap<&str, usize>,
    checker: &mut Checker<'_>,
) -> Option<usize> {
    match items {
        [Json::String(source), output] => {
            if output.as_index().is_none() {
                checker.violation(
                    id,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    format!(
                        "input {} links to node {} with output {}, which is not a non-negative integer",
                        shown(input),
                        shown(source),
                        output.kind()
                    ),
                );
                return None;
            }
            match index.get(source.as_ref()) {
                Some(&source) => Some(source),
                None => {
                    checker.violation(
                        id,
                        class_type,
                        rules::DANGLING_LINK,
                        format!(
                            "input {} links to node {}, which does not exist",
                            shown(input),
                            shown(source)
                        ),
                    );
                    None
                }
            }
        }
        [Json::Number(_), _] => {
            checker.violation(
                id,
                class_type,
                rules::AMBIGUOUS_ID,
                format!(
                    "input {} links to a node id written as a number; API-format node ids are strings (\"1\", not 1)",
                    shown(input)
                ),
            );
            None
        }
        _ => {
            checker.violation(
                id,
                class_type,
                rules::UNEXPECTED_SHAPE,
                format!(
                    "input {} is a list of {} items; ComfyUI reads every list input as a link [\"<node id>\", <output>]",
                    shown(input),
                    items.len()
                ),
            );
            None
        }
    }
}
