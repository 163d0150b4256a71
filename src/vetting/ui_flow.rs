//! Where a value that lands in a loader's file input comes from, in the UI format: the node's
//! own widget, or a link followed through `Reroute` nodes to a `PrimitiveNode` (whose value the
//! frontend copies into the loader), to the input of the enclosing subgraph (whose value the
//! subgraph's instance supplies: a promoted widget or a link in the parent graph), or to a node
//! that computes it at run time.

use std::collections::HashMap;

use super::check::{child_path, shown};
use super::json::{Json, Number};
use super::model_inputs::ModelInput;

/// Id of the virtual input node inside a subgraph.
pub const SUBGRAPH_INPUT_NODE: i64 = -10;
const REROUTE: &str = "Reroute";
const PRIMITIVE: &str = "PrimitiveNode";

/// A node id as written: a number and a string with the same digits are different ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKey<'d> {
    Number(i64),
    Text(&'d str),
}

impl<'d> NodeKey<'d> {
    pub fn read(value: &'d Json<'d>) -> Option<NodeKey<'d>> {
        match value {
            Json::Number(Number::Unsigned(n)) => i64::try_from(*n).ok().map(NodeKey::Number),
            Json::Number(Number::Signed(n)) => Some(NodeKey::Number(*n)),
            Json::String(s) => Some(NodeKey::Text(s)),
            _ => None,
        }
    }

    pub fn display(&self) -> String {
        match self {
            NodeKey::Number(n) => n.to_string(),
            NodeKey::Text(s) => (*s).to_owned(),
        }
    }
}

/// The nodes and links of one graph (the workflow or a subgraph definition), indexed.
pub struct Graph<'d> {
    pub nodes: &'d [Json<'d>],
    pub keys: Vec<Option<NodeKey<'d>>>,
    pub types: Vec<&'d str>,
    /// Node id → position (the last node with that id; duplicates are reported elsewhere).
    pub index: HashMap<NodeKey<'d>, usize>,
    /// Link id → (origin node id, origin slot).
    origins: HashMap<u64, (NodeKey<'d>, u64)>,
    in_subgraph: bool,
}

/// Where a loader's value comes from.
pub enum Source<'d> {
    /// A value in the document (None when there is none), and a note on where it was found.
    Value(Option<&'d Json<'d>>, String),
    /// The input's widget position is unknown: any of these widget values may land.
    AnyWidget(&'d [Json<'d>]),
    /// The input of the enclosing subgraph with this slot.
    SubgraphInput(u64),
    /// Computed at run time by the described node.
    Computed(String),
}

impl<'d> Graph<'d> {
    /// Indexes `graph`; malformed nodes and links are left out (the walker reports them).
    pub fn read(graph: &'d Json<'d>, in_subgraph: bool) -> Self {
        let nodes = graph
            .get("nodes")
            .and_then(Json::as_array)
            .unwrap_or_default();
        let mut index = HashMap::with_capacity(nodes.len());
        let mut keys = Vec::with_capacity(nodes.len());
        let mut types = Vec::with_capacity(nodes.len());
        for (position, node) in nodes.iter().enumerate() {
            let key = node.get("id").and_then(NodeKey::read);
            if let Some(key) = key {
                index.insert(key, position);
            }
            keys.push(key);
            types.push(node.get("type").and_then(Json::as_str).unwrap_or_default());
        }
        let mut origins = HashMap::new();
        for link in graph
            .get("links")
            .and_then(Json::as_array)
            .unwrap_or_default()
        {
            if let Some(parts) = LinkParts::read(link)
                && let (Some(id), Some(origin), Some(slot)) = (
                    parts.id.as_index(),
                    NodeKey::read(parts.origin),
                    parts.origin_slot.as_index(),
                )
            {
                origins.entry(id).or_insert((origin, slot));
            }
        }
        Self {
            nodes,
            keys,
            types,
            index,
            origins,
            in_subgraph,
        }
    }

    /// The bounded id path of the node at `position` under `prefix`.
    pub fn path(&self, prefix: &str, position: usize) -> String {
        let id = self.keys[position].map_or_else(|| "?".to_owned(), |key| key.display());
        child_path(prefix, &id)
    }

    /// Where the value of loader input `input` of the node at `position` comes from.
    pub fn loader_source(&self, position: usize, input: &ModelInput) -> Source<'d> {
        let node = &self.nodes[position];
        if let Some(name) = input.input.as_deref()
            && let Some(link) = input_link(node, name)
        {
            return self.follow(link);
        }
        Self::widget_source(node, input)
    }

    /// The value of loader input `input` in the widgets of `node` itself.
    pub fn widget_source(node: &'d Json<'d>, input: &ModelInput) -> Source<'d> {
        let values = match node.get("widgets_values") {
            Some(Json::Array(values)) => values.as_slice(),
            None | Some(Json::Null) => {
                return Source::Value(None, " (the node has no widgets_values)".into());
            }
            Some(other) => {
                return Source::Value(
                    None,
                    format!(" (widgets_values is {}, not a list)", other.kind()),
                );
            }
        };
        match input.widget {
            Some(widget) => Source::Value(values.get(widget), String::new()),
            None => Source::AnyWidget(values),
        }
    }

    /// Where the value of the subgraph input `slot` (named `name` in the definition) comes
    /// from at the instance at `position`: a link into the instance's input of that name, or
    /// the instance's promoted widget for it. `Value(None, ..)` when the instance supplies
    /// nothing, in which case the frontend leaves the inner widget's own value in place.
    pub fn instance_source(&self, position: usize, slot: u64, name: Option<&str>) -> Source<'d> {
        let node = &self.nodes[position];
        let inputs = node
            .get("inputs")
            .and_then(Json::as_array)
            .unwrap_or_default();
        let found = match name {
            Some(name) => inputs
                .iter()
                .position(|input| input.get("name").and_then(Json::as_str) == Some(name)),
            None => usize::try_from(slot).ok().filter(|&at| at < inputs.len()),
        };
        let Some(at) = found else {
            return Source::Value(None, format!(" (the subgraph node has no input {slot})"));
        };
        let entry = &inputs[at];
        if let Some(link) = entry.get("link").and_then(Json::as_index) {
            return self.follow(link);
        }
        if entry.get("widget").is_none() {
            return Source::Value(
                None,
                format!(" (subgraph input {slot} has neither a link nor a widget)"),
            );
        }
        let widget = inputs[..at]
            .iter()
            .filter(|other| other.get("widget").is_some())
            .count();
        Source::Value(
            node.get("widgets_values")
                .and_then(Json::as_array)
                .and_then(|values| values.get(widget)),
            format!(" (the subgraph node's widget for input {slot})"),
        )
    }

    /// Follows `link` back through reroutes to where its value is made.
    fn follow(&self, mut link: u64) -> Source<'d> {
        // Each step visits a node; more steps than nodes means a loop of reroutes.
        for _ in 0..=self.nodes.len() {
            let Some(&(origin, slot)) = self.origins.get(&link) else {
                return Source::Value(None, format!(" (link {link} is not in the links list)"));
            };
            if self.in_subgraph && origin == NodeKey::Number(SUBGRAPH_INPUT_NODE) {
                return Source::SubgraphInput(slot);
            }
            let Some(&position) = self.index.get(&origin) else {
                return Source::Value(None, format!(" (link {link} starts at no node)"));
            };
            let node = &self.nodes[position];
            let id = self.keys[position].map_or_else(String::new, |key| key.display());
            match self.types[position] {
                REROUTE => match node
                    .get("inputs")
                    .and_then(Json::as_array)
                    .and_then(<[Json]>::first)
                    .and_then(|input| input.get("link"))
                    .and_then(Json::as_index)
                {
                    Some(next) => link = next,
                    None => {
                        return Source::Value(
                            None,
                            format!(" (reroute {} has no input)", shown(&id)),
                        );
                    }
                },
                PRIMITIVE => {
                    return Source::Value(
                        node.get("widgets_values")
                            .and_then(Json::as_array)
                            .and_then(<[Json]>::first),
                        format!(" (set by PrimitiveNode {})", shown(&id)),
                    );
                }
                other => {
                    return Source::Computed(format!("node {} ({})", shown(&id), shown(other)));
                }
            }
        }
        Source::Computed("a loop of reroutes".into())
    }
}

/// The link into the input named `name` (by its widget name or its own name), if linked.
pub fn input_link(node: &Json, name: &str) -> Option<u64> {
    node.get("inputs")
        .and_then(Json::as_array)?
        .iter()
        .filter(|input| {
            input
                .get("widget")
                .and_then(|widget| widget.get("name"))
                .and_then(Json::as_str)
                == Some(name)
                || input.get("name").and_then(Json::as_str) == Some(name)
        })
        .find_map(|input| input.get("link").and_then(Json::as_index))
}

/// The fields of a link in list form (top level) or object form (subgraphs).
pub struct LinkParts<'a> {
    pub id: &'a Json<'a>,
    pub origin: &'a Json<'a>,
    pub origin_slot: &'a Json<'a>,
    pub target: &'a Json<'a>,
    pub target_slot: &'a Json<'a>,
}

impl<'a> LinkParts<'a> {
    pub fn read(link: &'a Json<'a>) -> Option<LinkParts<'a>> {
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
}
