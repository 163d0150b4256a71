//! The UI (workflow) format: `nodes[]` with `type`, `widgets_values` and `properties`, `links[]`,
//! and subgraphs under `definitions.subgraphs`, whose instance nodes are typed by the
//! subgraph's id and which can nest. Every definition is vetted once, under the id path of the
//! first instance that uses it (or its own id when no instance does).

use std::collections::{HashMap, VecDeque};

use super::check::{Checker, Provenance, looks_like_uuid, shown};
use super::graph::{canonical_id, nodes_in_cycles};
use super::json::{Json, Number};
use super::policy::NodeStanding;
use super::report::{Format, rules};

/// Id of the virtual input node inside a subgraph.
const SUBGRAPH_INPUT_NODE: i64 = -10;

/// Frontend-only node types whose widgets hold free text that never reaches the backend.
const COMMENT_NODES: &[&str] = &["Note", "MarkdownNote"];

/// Widget positions that hold a model name, for ComfyUI's core loaders. Values with a model
/// file extension are model references wherever they are; this catches names without one.
const MODEL_WIDGETS: &[(&str, &[usize])] = &[
    ("CheckpointLoaderSimple", &[0]),
    ("CheckpointLoader", &[0, 1]),
    ("ImageOnlyCheckpointLoader", &[0]),
    ("unCLIPCheckpointLoader", &[0]),
    ("DiffusersLoader", &[0]),
    ("VAELoader", &[0]),
    ("LoraLoader", &[0]),
    ("LoraLoaderModelOnly", &[0]),
    ("UNETLoader", &[0]),
    ("CLIPLoader", &[0]),
    ("DualCLIPLoader", &[0, 1]),
    ("TripleCLIPLoader", &[0, 1, 2]),
    ("QuadrupleCLIPLoader", &[0, 1, 2, 3]),
    ("ControlNetLoader", &[0]),
    ("DiffControlNetLoader", &[0]),
    ("CLIPVisionLoader", &[0]),
    ("StyleModelLoader", &[0]),
    ("UpscaleModelLoader", &[0]),
    ("GLIGENLoader", &[0]),
    ("HypernetworkLoader", &[0]),
    ("PhotoMakerLoader", &[0]),
    ("AudioEncoderLoader", &[0]),
];

/// A node id as written: a number and a string with the same digits are different ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum NodeKey {
    Number(i64),
    Text(String),
}

impl NodeKey {
    fn read(value: &Json) -> Option<NodeKey> {
        match value {
            Json::Number(Number::Unsigned(n)) => i64::try_from(*n).ok().map(NodeKey::Number),
            Json::Number(Number::Signed(n)) => Some(NodeKey::Number(*n)),
            Json::String(s) => Some(NodeKey::Text(s.to_string())),
            _ => None,
        }
    }

    fn display(&self) -> String {
        match self {
            NodeKey::Number(n) => n.to_string(),
            NodeKey::Text(s) => s.clone(),
        }
    }
}

struct NodeInfo {
    outputs: Option<usize>,
    inputs: Option<usize>,
}

struct Walk<'d, 'c, 'p> {
    checker: &'c mut Checker<'p>,
    definitions: HashMap<&'d str, usize>,
    definition_nodes: Vec<&'d Json<'d>>,
    scheduled: Vec<bool>,
    queue: VecDeque<(usize, String)>,
    /// `(definition, definition it instantiates)`, for subgraph cycles.
    nesting: Vec<(usize, usize)>,
    /// Legacy group nodes (`extra.groupNodes`), by name, and whether each was vetted.
    group_nodes: Vec<(&'d str, &'d Json<'d>, bool)>,
    stopped: bool,
}

pub fn vet<'d>(document: &'d Json<'d>, checker: &mut Checker<'_>) {
    let mut walk = Walk {
        checker,
        definitions: HashMap::new(),
        definition_nodes: Vec::new(),
        scheduled: Vec::new(),
        queue: VecDeque::new(),
        nesting: Vec::new(),
        group_nodes: Vec::new(),
        stopped: false,
    };
    walk.read_definitions(document);
    walk.read_group_nodes(document);
    walk.graph(document, "", None);
    loop {
        while let Some((definition, prefix)) = walk.queue.pop_front() {
            if walk.stopped {
                return;
            }
            let graph = walk.definition_nodes[definition];
            walk.graph(graph, &prefix, Some(definition));
        }
        // Definitions no instance uses are vetted too: a later edit could use them.
        match walk.scheduled.iter().position(|done| !done) {
            Some(unused) => {
                walk.scheduled[unused] = true;
                let id = walk.definition_nodes[unused]
                    .get("id")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned();
                walk.queue.push_back((unused, id));
            }
            None => break,
        }
    }
    for group in 0..walk.group_nodes.len() {
        if !walk.group_nodes[group].2 {
            let name = walk.group_nodes[group].0;
            walk.group(group, &format!("workflow>{name}"));
        }
    }
    let count = walk.definition_nodes.len();
    for definition in nodes_in_cycles(count, &walk.nesting) {
        let id = walk.definition_nodes[definition]
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default();
        walk.checker.violation(
            id,
            "",
            rules::SUBGRAPH_CYCLE,
            "the subgraph contains itself, directly or through other subgraphs".into(),
        );
    }
}

impl<'d> Walk<'d, '_, '_> {
    fn read_definitions(&mut self, document: &'d Json<'d>) {
        let Some(definitions) = document.get("definitions") else {
            return;
        };
        let subgraphs = match definitions.get("subgraphs") {
            None if definitions.as_object().is_some() => return,
            Some(Json::Array(subgraphs)) => subgraphs,
            _ => {
                self.checker.workflow_violation(
                    rules::UNEXPECTED_SHAPE,
                    "definitions.subgraphs is not a list of subgraphs".into(),
                );
                return;
            }
        };
        for subgraph in subgraphs {
            let Some(id) = subgraph.get("id").and_then(Json::as_str) else {
                self.checker.workflow_violation(
                    rules::UNEXPECTED_SHAPE,
                    "a subgraph definition has no string id".into(),
                );
                continue;
            };
            if !looks_like_uuid(id) {
                // Instances are matched by type; an id like "KSampler" would let a subgraph
                // pose as a node type.
                self.checker.violation(
                    id,
                    "",
                    rules::UNEXPECTED_SHAPE,
                    "a subgraph definition id must be a UUID".into(),
                );
                continue;
            }
            if !matches!(subgraph.get("nodes"), Some(Json::Array(_))) {
                self.checker.violation(
                    id,
                    "",
                    rules::UNEXPECTED_SHAPE,
                    "the subgraph definition has no nodes list".into(),
                );
                continue;
            }
            let index = self.definition_nodes.len();
            if self.definitions.insert(id, index).is_some() {
                self.checker.violation(
                    id,
                    "",
                    rules::DUPLICATE_ID,
                    "two subgraph definitions have this id".into(),
                );
            }
            self.definition_nodes.push(subgraph);
            self.scheduled.push(false);
        }
    }

    fn read_group_nodes(&mut self, document: &'d Json<'d>) {
        let Some(groups) = document
            .get("extra")
            .and_then(|extra| extra.get("groupNodes"))
        else {
            return;
        };
        let Some(groups) = groups.as_object() else {
            self.checker.workflow_violation(
                rules::UNEXPECTED_SHAPE,
                "extra.groupNodes is not an object of group node definitions".into(),
            );
            return;
        };
        for (name, group) in groups {
            self.group_nodes.push((name, group, false));
        }
    }

    /// Vets the nodes of a legacy group node definition under `prefix`.
    fn group(&mut self, group: usize, prefix: &str) {
        let (name, definition, _) = self.group_nodes[group];
        self.group_nodes[group].2 = true;
        let Some(nodes) = definition.get("nodes").and_then(Json::as_array) else {
            self.checker.violation(
                prefix,
                name,
                rules::UNEXPECTED_SHAPE,
                "the group node definition has no nodes list".into(),
            );
            return;
        };
        for (position, node) in nodes.iter().enumerate() {
            if !self.checker.count_node() {
                self.stopped = true;
                return;
            }
            let index = node
                .get("index")
                .and_then(Json::as_index)
                .map_or_else(|| position.to_string(), |i| i.to_string());
            let path = format!("{prefix}/{index}");
            match node.get("type").and_then(Json::as_str) {
                Some(class_type) => self.node(node, &path, class_type, None),
                None => self.checker.violation(
                    &path,
                    "",
                    rules::UNEXPECTED_SHAPE,
                    "a node of the group node definition has no string type".into(),
                ),
            }
        }
    }

    /// Vets one graph (the workflow or a subgraph definition).
    fn graph(&mut self, graph: &'d Json<'d>, prefix: &str, definition: Option<usize>) {
        let Some(nodes) = graph.get("nodes").and_then(Json::as_array) else {
            return;
        };
        let mut index: HashMap<NodeKey, usize> = HashMap::with_capacity(nodes.len());
        let mut canonical: HashMap<String, NodeKey> = HashMap::with_capacity(nodes.len());
        let mut infos: Vec<NodeInfo> = Vec::with_capacity(nodes.len());
        let mut paths: Vec<String> = Vec::with_capacity(nodes.len());
        let mut types: Vec<&str> = Vec::with_capacity(nodes.len());
        let mut input_links: Vec<(usize, u64)> = Vec::new();

        for node in nodes {
            if !self.checker.count_node() {
                self.stopped = true;
                return;
            }
            let position = infos.len();
            let key = node.get("id").and_then(NodeKey::read);
            let class_type = node.get("type").and_then(Json::as_str);
            let shown_id = key
                .as_ref()
                .map_or_else(|| "?".to_owned(), NodeKey::display);
            let path = if prefix.is_empty() {
                shown_id.clone()
            } else {
                format!("{prefix}/{shown_id}")
            };
            infos.push(NodeInfo {
                outputs: node
                    .get("outputs")
                    .and_then(Json::as_array)
                    .map(<[Json]>::len),
                inputs: node
                    .get("inputs")
                    .and_then(Json::as_array)
                    .map(<[Json]>::len),
            });
            types.push(class_type.unwrap_or_default());
            paths.push(path.clone());
            let (Some(key), Some(class_type)) = (key, class_type) else {
                self.checker.violation(
                    &path,
                    class_type.unwrap_or_default(),
                    rules::UNEXPECTED_SHAPE,
                    "a node needs an id (number or string) and a string type".into(),
                );
                continue;
            };
            if index.insert(key.clone(), position).is_some() {
                self.checker.violation(
                    &path,
                    class_type,
                    rules::DUPLICATE_ID,
                    format!("two nodes in this graph have id {}", shown(&shown_id)),
                );
            } else if let Some(previous) = canonical.insert(canonical_id(&shown_id), key.clone())
                && previous != key
            {
                self.checker.violation(
                    &path,
                    class_type,
                    rules::AMBIGUOUS_ID,
                    format!(
                        "node ids {} and {} differ only in type, case, whitespace or leading zeros",
                        describe_key(&previous),
                        describe_key(&key)
                    ),
                );
            }
            self.node(node, &path, class_type, definition);
            if let Some(inputs) = node.get("inputs").and_then(Json::as_array) {
                for input in inputs {
                    match input.get("link") {
                        None | Some(Json::Null) => {}
                        Some(link) => match link.as_index() {
                            Some(link) => input_links.push((position, link)),
                            None => self.checker.violation(
                                &path,
                                class_type,
                                rules::UNEXPECTED_SHAPE,
                                format!("an input's link is {}, not a link id", link.kind()),
                            ),
                        },
                    }
                }
            }
        }
        self.links(
            graph,
            &index,
            &infos,
            &paths,
            &types,
            &input_links,
            definition.is_some(),
        );
    }

    /// Vets one node: its type (or subgraph), provenance and widget values.
    fn node(
        &mut self,
        node: &'d Json<'d>,
        path: &str,
        class_type: &str,
        definition: Option<usize>,
    ) {
        let provenance = self.provenance(node, path, class_type);
        let core = self.checker.policy.core();
        if core.is_frontend_only(class_type) {
            if self.checker.policy.standing(class_type) == NodeStanding::Blocked {
                self.checker
                    .check_node_type(path, class_type, Format::Ui, Some(provenance));
            }
            if COMMENT_NODES.contains(&class_type) {
                return;
            }
        } else if let Some(group) = self.group_instance(class_type) {
            self.checker
                .check_instance_provenance(path, class_type, &provenance);
            if !self.group_nodes[group].2 {
                self.group(group, path);
            }
        } else if let Some(&instantiated) = self.definitions.get(class_type) {
            self.checker
                .check_instance_provenance(path, class_type, &provenance);
            if let Some(parent) = definition {
                self.nesting.push((parent, instantiated));
            }
            if !self.scheduled[instantiated] {
                self.scheduled[instantiated] = true;
                self.queue.push_back((instantiated, path.to_owned()));
            }
        } else {
            self.checker
                .check_node_type(path, class_type, Format::Ui, Some(provenance));
        }
        let model_widgets = MODEL_WIDGETS
            .iter()
            .find(|(name, _)| *name == class_type)
            .map_or(&[][..], |(_, slots)| *slots);
        match node.get("widgets_values") {
            None | Some(Json::Null) => {}
            Some(Json::Array(values)) => {
                for (slot, value) in values.iter().enumerate() {
                    let model_slot = model_widgets.contains(&slot);
                    self.checker
                        .check_value(path, class_type, None, value, model_slot);
                }
            }
            Some(values @ Json::Object(_)) => {
                self.checker
                    .check_value(path, class_type, None, values, false);
            }
            Some(other) => self.checker.violation(
                path,
                class_type,
                rules::UNEXPECTED_SHAPE,
                format!(
                    "widgets_values is {}, not a list or an object",
                    other.kind()
                ),
            ),
        }
    }

    /// The legacy group node that a `workflow>Name` (or `workflow/Name`) type instantiates.
    fn group_instance(&self, class_type: &str) -> Option<usize> {
        let name = class_type
            .strip_prefix("workflow>")
            .or_else(|| class_type.strip_prefix("workflow/"))?;
        self.group_nodes.iter().position(|(n, _, _)| *n == name)
    }

    fn provenance(&mut self, node: &'d Json<'d>, path: &str, class_type: &str) -> Provenance<'d> {
        let mut provenance = Provenance::default();
        let Some(properties) = node.get("properties") else {
            return provenance;
        };
        if properties.as_object().is_none() {
            if !matches!(properties, Json::Null) {
                self.checker.violation(
                    path,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    format!("properties is {}, not an object", properties.kind()),
                );
            }
            return provenance;
        }
        for (key, slot) in [
            ("cnr_id", &mut provenance.cnr_id),
            ("aux_id", &mut provenance.aux_id),
            ("ver", &mut provenance.ver),
        ] {
            match properties.get(key) {
                None | Some(Json::Null) => {}
                Some(Json::String(value)) => *slot = Some(value.as_ref()),
                Some(other) => self.checker.violation(
                    path,
                    class_type,
                    rules::UNEXPECTED_SHAPE,
                    format!("properties.{key} is {}, not a string", other.kind()),
                ),
            }
        }
        provenance
    }

    /// Checks the links of one graph: well-formed, unique, pointing at existing nodes and
    /// slots, referenced consistently by the nodes' inputs, and acyclic.
    #[allow(clippy::too_many_arguments)]
    fn links(
        &mut self,
        graph: &Json,
        index: &HashMap<NodeKey, usize>,
        infos: &[NodeInfo],
        paths: &[String],
        types: &[&str],
        input_links: &[(usize, u64)],
        in_subgraph: bool,
    ) {
        let links = match graph.get("links") {
            None | Some(Json::Null) => &[][..],
            Some(Json::Array(links)) => links.as_slice(),
            Some(other) => {
                self.checker.workflow_violation(
                    rules::UNEXPECTED_SHAPE,
                    format!("links is {}, not a list", other.kind()),
                );
                return;
            }
        };
        let where_ = |position: Option<usize>| -> (String, String) {
            position.map_or_else(
                || (String::new(), String::new()),
                |p| (paths[p].clone(), types[p].to_owned()),
            )
        };
        let mut link_ids: HashMap<u64, usize> = HashMap::with_capacity(links.len());
        let mut edges: Vec<(usize, usize)> = Vec::with_capacity(links.len());
        for link in links {
            let Some(parts) = link_parts(link) else {
                self.checker.workflow_violation(
                    rules::UNEXPECTED_SHAPE,
                    "a link is neither [id, origin_id, origin_slot, target_id, target_slot, type] nor an object with those fields".into(),
                );
                continue;
            };
            let LinkParts {
                id,
                origin,
                origin_slot,
                target,
                target_slot,
            } = parts;
            let (Some(id), Some(origin), Some(origin_slot), Some(target), Some(target_slot)) = (
                id.as_index(),
                NodeKey::read(origin),
                origin_slot.as_index(),
                NodeKey::read(target),
                target_slot.as_index(),
            ) else {
                self.checker.workflow_violation(
                    rules::UNEXPECTED_SHAPE,
                    "a link has an id, node id or slot of the wrong type".into(),
                );
                continue;
            };
            let origin_at = index.get(&origin).copied();
            let target_at = index.get(&target).copied();
            if link_ids
                .insert(id, target_at.unwrap_or(usize::MAX))
                .is_some()
            {
                let (path, class_type) = where_(target_at);
                self.checker.violation(
                    &path,
                    &class_type,
                    rules::DUPLICATE_ID,
                    format!("link id {id} is used twice"),
                );
            }
            let virtual_origin = in_subgraph && origin == NodeKey::Number(SUBGRAPH_INPUT_NODE);
            if origin_at.is_none() && !virtual_origin && target_at.is_some() {
                let (path, class_type) = where_(target_at);
                self.checker.violation(
                    &path,
                    &class_type,
                    rules::DANGLING_LINK,
                    format!(
                        "link {id} starts at node {}, which does not exist",
                        describe_key(&origin)
                    ),
                );
            }
            // A link whose target does not exist feeds nothing ComfyUI runs (real workflows
            // keep such stale entries); only the edges into existing nodes matter.
            if let Some(origin_at) = origin_at
                && infos[origin_at]
                    .outputs
                    .is_some_and(|outputs| origin_slot >= outputs as u64)
            {
                self.checker.violation(
                    &paths[origin_at],
                    types[origin_at],
                    rules::DANGLING_LINK,
                    format!("link {id} leaves output {origin_slot}, which the node does not have"),
                );
            }
            if let Some(target_at) = target_at
                && infos[target_at]
                    .inputs
                    .is_some_and(|inputs| target_slot >= inputs as u64)
            {
                self.checker.violation(
                    &paths[target_at],
                    types[target_at],
                    rules::DANGLING_LINK,
                    format!("link {id} enters input {target_slot}, which the node does not have"),
                );
            }
            if let (Some(from), Some(to)) = (origin_at, target_at) {
                edges.push((from, to));
            }
        }
        for &(position, link) in input_links {
            match link_ids.get(&link) {
                None => self.checker.violation(
                    &paths[position],
                    types[position],
                    rules::DANGLING_LINK,
                    format!("an input uses link {link}, which is not in the links list"),
                ),
                // The node and the links list would tell different graphs.
                Some(&target) if target != position => self.checker.violation(
                    &paths[position],
                    types[position],
                    rules::UNEXPECTED_SHAPE,
                    format!(
                        "an input uses link {link}, which the links list says ends at another node"
                    ),
                ),
                Some(_) => {}
            }
        }
        for position in nodes_in_cycles(infos.len(), &edges) {
            self.checker.violation(
                &paths[position],
                types[position],
                rules::CYCLE,
                "the node is on, or fed by, a cycle of links; ComfyUI cannot order it".into(),
            );
        }
    }
}

struct LinkParts<'a> {
    id: &'a Json<'a>,
    origin: &'a Json<'a>,
    origin_slot: &'a Json<'a>,
    target: &'a Json<'a>,
    target_slot: &'a Json<'a>,
}

/// The fields of a link in list form (top level) or object form (subgraphs).
fn link_parts<'a>(link: &'a Json<'a>) -> Option<LinkParts<'a>> {
    match link {
        Json::Array(items) if items.len() >= 5 => Some(LinkParts {
            id: &items[0],
            origin: &items[1],
            origin_slot: &items[2],
            target: &items[3],
            target_slot: &items[4],
        }),
        Json::Object(_) => Some(LinkParts {
            id: link.get("id")?,
            origin: link.get("origin_id")?,
            origin_slot: link.get("origin_slot")?,
            target: link.get("target_id")?,
            target_slot: link.get("target_slot")?,
        }),
        _ => None,
    }
}

fn describe_key(key: &NodeKey) -> String {
    match key {
        NodeKey::Number(n) => format!("{n} (a number)"),
        NodeKey::Text(s) => format!("{} (a string)", shown(s)),
    }
}
