//! The UI (workflow) format: `nodes[]` with `type`, `widgets_values` and `properties`, `links[]`,
//! and subgraphs under `definitions.subgraphs` (read recursively: a definition can carry its
//! own `definitions.subgraphs`, which the frontend registers too), whose instance nodes are typed
//! by the subgraph's id. Every definition is vetted once, under the id path of the first
//! instance that uses it (or its own id when no instance does); the values that each instance
//! supplies to loaders inside (promoted widgets, links) are checked at the instance.

use std::collections::{HashMap, HashSet, VecDeque};

use super::check::{Checker, Provenance, Slot, child_path, looks_like_uuid, shown};
use super::graph::{canonical_id, nodes_in_cycles};
use super::json::Json;
use super::model_inputs::{ModelInput, ModelInputs};
use super::policy::NodeStanding;
use super::report::{Format, rules};
use super::ui_flow::{Graph, LinkParts, NodeKey, SUBGRAPH_INPUT_NODE, Source, input_link};

/// Frontend-only node types whose widgets hold free text that never reaches the backend.
const COMMENT_NODES: &[&str] = &["Note", "MarkdownNote"];

struct NodeInfo {
    outputs: Option<usize>,
    inputs: Option<usize>,
}

/// A loader input inside a subgraph definition that is fed from the subgraph's input `slot`:
/// each instance must supply a concrete, approved value there.
#[derive(Clone, Copy)]
struct Demand<'d> {
    slot: u64,
    input: &'static ModelInput,
    loader: &'d str,
    /// The loader's own widget holds a value, which lands when the instance supplies none
    /// (and which is checked with the definition).
    fallback: bool,
}

struct Walk<'d, 'c, 'p> {
    checker: &'c mut Checker<'p>,
    definitions: HashMap<&'d str, usize>,
    definition_nodes: Vec<&'d Json<'d>>,
    scheduled: Vec<bool>,
    /// Every definition before this one has been scheduled.
    next_unscheduled: usize,
    queue: VecDeque<(usize, String)>,
    /// `(definition, definition it instantiates)`, for subgraph cycles.
    nesting: Vec<(usize, usize)>,
    /// Per definition, once computed: the loader inputs its instances feed.
    demands: Vec<Option<Vec<Demand<'d>>>>,
    demanding: Vec<bool>,
    /// Legacy group nodes (`extra.groupNodes`), by name, and whether each was vetted.
    group_nodes: Vec<(&'d str, &'d Json<'d>, bool)>,
    group_names: HashMap<&'d str, usize>,
    group_queue: VecDeque<(usize, String)>,
    stopped: bool,
}

pub fn vet<'d>(document: &'d Json<'d>, checker: &mut Checker<'_>) {
    let mut walk = Walk {
        checker,
        definitions: HashMap::new(),
        definition_nodes: Vec::new(),
        scheduled: Vec::new(),
        next_unscheduled: 0,
        queue: VecDeque::new(),
        nesting: Vec::new(),
        demands: Vec::new(),
        demanding: Vec::new(),
        group_nodes: Vec::new(),
        group_names: HashMap::new(),
        group_queue: VecDeque::new(),
        stopped: false,
    };
    walk.read_definitions(document);
    walk.demands = vec![None; walk.definition_nodes.len()];
    walk.demanding = vec![false; walk.definition_nodes.len()];
    walk.read_group_nodes(document);
    walk.graph(document, "", None);
    loop {
        if walk.stopped {
            return;
        }
        if let Some((definition, prefix)) = walk.queue.pop_front() {
            let graph = walk.definition_nodes[definition];
            walk.graph(graph, &prefix, Some(definition));
            continue;
        }
        if let Some((group, prefix)) = walk.group_queue.pop_front() {
            walk.group(group, &prefix);
            continue;
        }
        // Definitions no instance uses are vetted too: a later edit could use them.
        while walk.next_unscheduled < walk.scheduled.len() && walk.scheduled[walk.next_unscheduled]
        {
            walk.next_unscheduled += 1;
        }
        if let Some(&id) = walk
            .definition_nodes
            .get(walk.next_unscheduled)
            .and_then(|definition| definition.get("id"))
            .and_then(Json::as_str)
            .as_ref()
        {
            let unused = walk.next_unscheduled;
            walk.scheduled[unused] = true;
            walk.queue.push_back((unused, child_path("", id)));
            continue;
        }
        if let Some(group) = walk.group_nodes.iter().position(|(_, _, done)| !done) {
            let name = walk.group_nodes[group].0;
            walk.group_nodes[group].2 = true;
            walk.group_queue
                .push_back((group, child_path("", &format!("workflow>{name}"))));
            continue;
        }
        break;
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
    /// Registers every subgraph definition: the workflow's and, recursively, those nested in
    /// definitions.
    fn read_definitions(&mut self, document: &'d Json<'d>) {
        let mut holders = vec![document];
        while let Some(holder) = holders.pop() {
            let Some(definitions) = holder.get("definitions") else {
                continue;
            };
            let subgraphs = match definitions.get("subgraphs") {
                None if definitions.as_object().is_some() => continue,
                Some(Json::Array(subgraphs)) => subgraphs,
                _ => {
                    self.checker.workflow_violation(
                        rules::UNEXPECTED_SHAPE,
                        "definitions.subgraphs is not a list of subgraphs".into(),
                    );
                    continue;
                }
            };
            for subgraph in subgraphs {
                if self.read_definition(subgraph) {
                    holders.push(subgraph);
                }
            }
        }
    }

    /// Registers one definition; true when it was read (and may nest further definitions).
    fn read_definition(&mut self, subgraph: &'d Json<'d>) -> bool {
        let Some(id) = subgraph.get("id").and_then(Json::as_str) else {
            self.checker.workflow_violation(
                rules::UNEXPECTED_SHAPE,
                "a subgraph definition has no string id".into(),
            );
            return false;
        };
        if !looks_like_uuid(id) {
            // Instances are matched by type; an id like "KSampler" would let a subgraph pose
            // as a node type.
            self.checker.violation(
                id,
                "",
                rules::UNEXPECTED_SHAPE,
                "a subgraph definition id must be a UUID".into(),
            );
            return false;
        }
        if !matches!(subgraph.get("nodes"), Some(Json::Array(_))) {
            self.checker.violation(
                id,
                "",
                rules::UNEXPECTED_SHAPE,
                "the subgraph definition has no nodes list".into(),
            );
            return false;
        }
        let index = self.definition_nodes.len();
        if self.definitions.insert(id, index).is_some() {
            // Nested or not, two definitions with one id: which one an instance runs depends
            // on registration order.
            self.checker.violation(
                id,
                "",
                rules::DUPLICATE_ID,
                "two subgraph definitions have this id (one may be nested in another)".into(),
            );
        }
        self.definition_nodes.push(subgraph);
        self.scheduled.push(false);
        true
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
            self.group_names.insert(name, self.group_nodes.len());
            self.group_nodes.push((name, group, false));
        }
    }

    /// Vets the nodes of a legacy group node definition under `prefix`. The loaders inside
    /// are judged on the definition's own values, which land when an instance stores none.
    fn group(&mut self, group: usize, prefix: &str) {
        let (name, definition, _) = self.group_nodes[group];
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
            let path = child_path(prefix, &index);
            let Some(class_type) = node.get("type").and_then(Json::as_str) else {
                self.checker.violation(
                    &path,
                    "",
                    rules::UNEXPECTED_SHAPE,
                    "a node of the group node definition has no string type".into(),
                );
                continue;
            };
            self.node(node, &path, class_type, None);
            for input in ModelInputs::builtin()
                .inputs_of(class_type)
                .unwrap_or_default()
            {
                let linked = input
                    .input
                    .as_deref()
                    .is_some_and(|name| input_link(node, name).is_some());
                let source = if linked {
                    Source::Computed("a link inside the group node".into())
                } else {
                    Graph::widget_source(node, input)
                };
                self.judge(&path, class_type, input, source, "");
            }
        }
    }

    /// Vets one graph (the workflow or a subgraph definition).
    fn graph(&mut self, graph: &'d Json<'d>, prefix: &str, definition: Option<usize>) {
        let Some(nodes) = graph.get("nodes").and_then(Json::as_array) else {
            return;
        };
        let g = Graph::read(graph, definition.is_some());
        let mut seen: HashSet<NodeKey<'d>> = HashSet::with_capacity(nodes.len());
        let mut canonical: HashMap<String, NodeKey<'d>> = HashMap::with_capacity(nodes.len());
        let mut infos: Vec<NodeInfo> = Vec::with_capacity(nodes.len());
        let mut input_links: Vec<(usize, u64)> = Vec::new();

        for (position, node) in nodes.iter().enumerate() {
            if !self.checker.count_node() {
                self.stopped = true;
                return;
            }
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
            let path = g.path(prefix, position);
            let class_type = node.get("type").and_then(Json::as_str);
            let (Some(key), Some(class_type)) = (g.keys[position], class_type) else {
                self.checker.violation(
                    &path,
                    class_type.unwrap_or_default(),
                    rules::UNEXPECTED_SHAPE,
                    "a node needs an id (number or string) and a string type".into(),
                );
                continue;
            };
            if !seen.insert(key) {
                self.checker.violation(
                    &path,
                    class_type,
                    rules::DUPLICATE_ID,
                    format!("two nodes in this graph have id {}", shown(&key.display())),
                );
            } else if let Some(previous) = canonical.insert(canonical_id(&key.display()), key)
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
            &g,
            prefix,
            &infos,
            &input_links,
            definition.is_some(),
        );
        self.loaders(&g, prefix);
    }

    /// Checks every value that lands in a loader's file input in this graph, where it lands:
    /// the loaders' own, and those that subgraph and group node instances supply.
    fn loaders(&mut self, g: &Graph<'d>, prefix: &str) {
        let table = ModelInputs::builtin();
        for position in 0..g.nodes.len() {
            let class_type = g.types[position];
            if let Some(inputs) = table.inputs_of(class_type) {
                let path = g.path(prefix, position);
                for input in inputs {
                    let source = match g.loader_source(position, input) {
                        // Fed by each instance; the loader's own value lands when an instance
                        // supplies none, so it is checked here when there is one.
                        Source::SubgraphInput(_) => match own_value(&g.nodes[position], input) {
                            Some(own) => own,
                            None => continue,
                        },
                        source => source,
                    };
                    self.judge(&path, class_type, input, source, "");
                }
            } else if let Some(group) = self.group_instance(class_type) {
                self.group_instance_loaders(g, prefix, position, group);
            } else if let Some(&definition) = self.definitions.get(class_type) {
                let demands = self.demands(definition);
                if demands.is_empty() {
                    continue;
                }
                let path = g.path(prefix, position);
                let names = self.definition_nodes[definition]
                    .get("inputs")
                    .and_then(Json::as_array);
                for demand in demands {
                    let name = names.and_then(|inputs| {
                        let at = usize::try_from(demand.slot).ok()?;
                        inputs.get(at)?.get("name").and_then(Json::as_str)
                    });
                    let source = g.instance_source(position, demand.slot, name);
                    if demand.fallback && matches!(source, Source::Value(None, _)) {
                        continue;
                    }
                    let inside =
                        format!(", which {} inside the subgraph loads", shown(demand.loader));
                    self.judge(&path, class_type, demand.input, source, &inside);
                }
            }
        }
    }

    /// Reports on the value a loader input receives from `source`.
    fn judge(
        &mut self,
        path: &str,
        class_type: &str,
        input: &ModelInput,
        source: Source<'d>,
        inside: &str,
    ) {
        match source {
            Source::Value(value, from) => self.checker.check_loader_input(
                path,
                class_type,
                input,
                value,
                &format!("{from}{inside}"),
            ),
            Source::AnyWidget(values) => {
                let mut any = false;
                for value in values.iter().filter(|value| value.as_str().is_some()) {
                    any = true;
                    self.checker
                        .check_loader_input(path, class_type, input, Some(value), inside);
                }
                if !any {
                    self.checker
                        .check_loader_input(path, class_type, input, None, inside);
                }
            }
            // Resolved at each instance of the subgraph.
            Source::SubgraphInput(_) => {}
            Source::Computed(what) => self.checker.loader_input_computed(
                path,
                class_type,
                input,
                &format!("{what}{inside}"),
            ),
        }
    }

    /// The loader inputs inside `definition` (and the subgraphs it nests) that are fed from
    /// its own inputs, computed once per definition, children first, without recursion.
    fn demands(&mut self, definition: usize) -> Vec<Demand<'d>> {
        let table = ModelInputs::builtin();
        let mut stack = vec![definition];
        while let Some(&current) = stack.last() {
            if self.demands[current].is_some() {
                stack.pop();
                continue;
            }
            let g = Graph::read(self.definition_nodes[current], true);
            if !self.demanding[current] {
                self.demanding[current] = true;
                let before = stack.len();
                for class_type in &g.types {
                    if let Some(&nested) = self.definitions.get(class_type)
                        && self.demands[nested].is_none()
                        && !self.demanding[nested]
                    {
                        stack.push(nested);
                    }
                }
                if stack.len() > before {
                    continue;
                }
            }
            let mut found: Vec<Demand<'d>> = Vec::new();
            for position in 0..g.nodes.len() {
                let class_type = g.types[position];
                if let Some(inputs) = table.inputs_of(class_type) {
                    for input in inputs {
                        if let Source::SubgraphInput(slot) = g.loader_source(position, input) {
                            found.push(Demand {
                                slot,
                                input,
                                loader: class_type,
                                fallback: own_value(&g.nodes[position], input).is_some(),
                            });
                        }
                    }
                } else if let Some(&nested) = self.definitions.get(class_type) {
                    // A subgraph on a cycle is still being computed: it adds nothing here
                    // (the cycle itself is refused).
                    let names = self.definition_nodes[nested]
                        .get("inputs")
                        .and_then(Json::as_array);
                    for demand in self.demands[nested].as_deref().unwrap_or_default() {
                        let name = names.and_then(|inputs| {
                            let at = usize::try_from(demand.slot).ok()?;
                            inputs.get(at)?.get("name").and_then(Json::as_str)
                        });
                        if let Source::SubgraphInput(slot) =
                            g.instance_source(position, demand.slot, name)
                        {
                            found.push(Demand { slot, ..*demand });
                        }
                    }
                }
            }
            // One entry per slot and input: instances repeated inside stay bounded.
            found.sort_by_key(|demand| (demand.slot, std::ptr::from_ref(demand.input) as usize));
            found.dedup_by_key(|demand| (demand.slot, std::ptr::from_ref(demand.input) as usize));
            self.demands[current] = Some(found);
            stack.pop();
        }
        self.demands[definition].clone().unwrap_or_default()
    }

    /// Checks the values a legacy group node instance stores for the loaders inside: its
    /// widget values follow the inner nodes' widgets in order.
    fn group_instance_loaders(
        &mut self,
        g: &Graph<'d>,
        prefix: &str,
        position: usize,
        group: usize,
    ) {
        let (_, definition, _) = self.group_nodes[group];
        let inner = definition
            .get("nodes")
            .and_then(Json::as_array)
            .unwrap_or_default();
        let table = ModelInputs::builtin();
        let mut offset = 0;
        let mut exact = true;
        let mut slots: Vec<(usize, &'static ModelInput, &'d str)> = Vec::new();
        for node in inner {
            let class_type = node.get("type").and_then(Json::as_str).unwrap_or_default();
            for input in table.inputs_of(class_type).unwrap_or_default() {
                match input.widget {
                    Some(widget) => slots.push((offset + widget, input, class_type)),
                    None => exact = false,
                }
            }
            offset += node
                .get("widgets_values")
                .and_then(Json::as_array)
                .map_or(0, <[Json]>::len);
        }
        if slots.is_empty() && exact {
            return;
        }
        let class_type = g.types[position];
        let path = g.path(prefix, position);
        match g.nodes[position].get("widgets_values") {
            // The definition's values land; they were judged with the definition.
            None | Some(Json::Null) => {}
            Some(Json::Array(values)) if exact && values.len() == offset => {
                for (at, input, loader) in slots {
                    let from = format!(
                        " (group node widget {at}, which {} inside loads)",
                        shown(loader)
                    );
                    self.checker.check_loader_input(
                        &path,
                        class_type,
                        input,
                        values.get(at),
                        &from,
                    );
                }
            }
            Some(_) => {
                for (_, input, loader) in slots {
                    let from = format!(
                        " (the group node's widget values do not line up with its definition, so the value {} inside loads is unknown)",
                        shown(loader)
                    );
                    self.checker
                        .check_loader_input(&path, class_type, input, None, &from);
                }
            }
        }
    }

    /// Vets one node: its type (or subgraph), provenance and widget values. The widgets of a
    /// built-in loader's file inputs are judged where their values land (`loaders`).
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
                self.group_nodes[group].2 = true;
                self.group_queue.push_back((group, path.to_owned()));
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
        let loader_inputs = ModelInputs::builtin().inputs_of(class_type);
        let is_loader_widget = |slot: usize| {
            loader_inputs.is_some_and(|inputs| {
                inputs
                    .iter()
                    .any(|input| input.widget.is_none_or(|widget| widget == slot))
            })
        };
        match node.get("widgets_values") {
            None | Some(Json::Null) => {}
            Some(Json::Array(values)) => {
                for (slot, value) in values.iter().enumerate() {
                    if !is_loader_widget(slot) {
                        self.checker
                            .check_value(path, class_type, None, value, Slot::Text);
                    }
                }
            }
            Some(values @ Json::Object(_)) => {
                self.checker
                    .check_value(path, class_type, None, values, Slot::Text);
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
        self.group_names.get(name).copied()
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
    fn links(
        &mut self,
        graph: &'d Json<'d>,
        g: &Graph<'d>,
        prefix: &str,
        infos: &[NodeInfo],
        input_links: &[(usize, u64)],
        in_subgraph: bool,
    ) {
        let index = &g.index;
        let types = &g.types;
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
                |p| (g.path(prefix, p), types[p].to_owned()),
            )
        };
        let mut link_ids: HashMap<u64, usize> = HashMap::with_capacity(links.len());
        let mut edges: Vec<(usize, usize)> = Vec::with_capacity(links.len());
        for link in links {
            let Some(parts) = LinkParts::read(link) else {
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
                    &g.path(prefix, origin_at),
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
                    &g.path(prefix, target_at),
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
                    &g.path(prefix, position),
                    types[position],
                    rules::DANGLING_LINK,
                    format!("an input uses link {link}, which is not in the links list"),
                ),
                // The node and the links list would tell different graphs.
                Some(&target) if target != position => self.checker.violation(
                    &g.path(prefix, position),
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
                &g.path(prefix, position),
                types[position],
                rules::CYCLE,
                "the node is on, or fed by, a cycle of links; ComfyUI cannot order it".into(),
            );
        }
    }
}

/// The loader's own widget value for `input`, when it holds a non-empty name.
fn own_value<'d>(node: &'d Json<'d>, input: &ModelInput) -> Option<Source<'d>> {
    match Graph::widget_source(node, input) {
        Source::Value(Some(value), from) if value.as_str().is_some_and(|v| !v.is_empty()) => {
            Some(Source::Value(Some(value), from))
        }
        _ => None,
    }
}

fn describe_key(key: &NodeKey) -> String {
    match key {
        NodeKey::Number(n) => format!("{n} (a number)"),
        NodeKey::Text(s) => format!("{} (a string)", shown(s)),
    }
}
