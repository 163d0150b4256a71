//! Per-node rules shared by both formats: node type and provenance, and every string value
//! (URLs, escaping paths, model references).

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::json::Json;
use super::model_inputs::{ModelInput, ModelInputs};
use super::policy::{API_NODE_HOST, Egress, NodeStanding, Policy};
use super::report::{self, Format, ModelUse, Report, Resources, rules};
use super::values::{self, Concern};
use crate::crd::render_job::Violation;

/// Where a UI node says it comes from (`properties.cnr_id`, `aux_id`, `ver`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Provenance<'a> {
    pub cnr_id: Option<&'a str>,
    pub aux_id: Option<&'a str>,
    pub ver: Option<&'a str>,
}

impl Provenance<'_> {
    fn is_stated(&self) -> bool {
        self.cnr_id.is_some() || self.aux_id.is_some() || self.ver.is_some()
    }
}

const CORE_REGISTRY_ID: &str = "comfy-core";
const MAX_SHOWN: usize = 120;
/// Most violations a report lists (the first ones in document order); the report's
/// `violation_count` is the exact total.
pub const MAX_VIOLATIONS: usize = 1_000;
/// Longest node id segment and node id path a violation carries, in bytes.
const MAX_ID_SEGMENT: usize = 64;
const MAX_ID_PATH: usize = 256;
/// Longest class type a violation carries, in bytes.
const MAX_CLASS_TYPE: usize = 128;
/// Most distinct model references a report records; a workflow with more is refused.
pub const MAX_MODELS: usize = 4_096;

/// How a string value is read as a model reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Free text or an unknown input: a model reference only by its extension.
    Text,
    /// A custom node's input whose name says it names a model: `None` and `""` mean none.
    NamedModel,
    /// An input of a built-in node that ComfyUI resolves against a model folder: the value
    /// always names a file (an empty value makes the frontend pick one).
    Loader,
}

/// Collects violations and resources while the format walkers visit the workflow.
pub struct Checker<'p> {
    pub policy: &'p Policy,
    violations: Vec<Violation>,
    /// Hashes of every distinct violation found, listed or not, for exact totals.
    seen: HashSet<u64>,
    rejects_always: bool,
    resources: Resources,
    checked_nodes: usize,
    max_nodes: usize,
    over_node_limit: bool,
    over_model_limit: bool,
}

impl<'p> Checker<'p> {
    pub fn new(policy: &'p Policy, max_nodes: usize) -> Self {
        Self {
            policy,
            violations: Vec::new(),
            seen: HashSet::new(),
            rejects_always: false,
            resources: Resources::default(),
            checked_nodes: 0,
            max_nodes,
            over_node_limit: false,
            over_model_limit: false,
        }
    }

    /// Records a violation. Ids and class types are cut to a bounded length; the first
    /// `MAX_VIOLATIONS` distinct violations (in document order) are listed and all are counted,
    /// so that a hostile file cannot make the report huge.
    pub fn violation(&mut self, node_id: &str, class_type: &str, rule: &str, message: String) {
        let node_id = bounded_path(node_id);
        let class_type = cut(class_type, MAX_CLASS_TYPE);
        let mut hasher = std::hash::DefaultHasher::new();
        (&node_id, &class_type, rule, &message).hash(&mut hasher);
        if !self.seen.insert(hasher.finish()) {
            return;
        }
        self.rejects_always |= report::ALWAYS_REJECT.contains(&rule);
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                node_id,
                class_type,
                rule: rule.to_owned(),
                message,
            });
        }
    }

    /// Records a violation of the workflow as a whole.
    pub fn workflow_violation(&mut self, rule: &str, message: String) {
        self.violation("", "", rule, message);
    }

    /// Counts one node; false (with a violation, once) when the node limit is exceeded and the
    /// walk must stop.
    pub fn count_node(&mut self) -> bool {
        if self.checked_nodes >= self.max_nodes {
            if !self.over_node_limit {
                self.over_node_limit = true;
                self.workflow_violation(
                    rules::LIMIT_EXCEEDED,
                    format!(
                        "the workflow has more than {} nodes (subgraphs included); split it",
                        self.max_nodes
                    ),
                );
            }
            return false;
        }
        self.checked_nodes += 1;
        true
    }

    /// Checks the node type against the policy; `provenance` is given in the UI format only.
    pub fn check_node_type(
        &mut self,
        node_id: &str,
        class_type: &str,
        format: Format,
        provenance: Option<Provenance<'_>>,
    ) {
        if !self.resources.node_types.contains(class_type) {
            self.resources.node_types.insert(class_type.to_owned());
        }
        let provenance = provenance.unwrap_or_default();
        match self.policy.standing(class_type) {
            NodeStanding::Blocked => self.violation(
                node_id,
                class_type,
                rules::NODE_BLOCKED,
                format!(
                    "node type {} is blocked by an ApprovedNodeList (blockedNodes always wins); remove the node",
                    shown(class_type)
                ),
            ),
            NodeStanding::Core { api_node, listed } => {
                if let Some(why) = api_node.then(|| self.api_node_refusal(listed)).flatten() {
                    let (host, port) = API_NODE_HOST;
                    self.violation(
                        node_id,
                        class_type,
                        rules::API_NODE_EGRESS,
                        format!(
                            "{} is a ComfyUI API node that calls an external service ({host}:{port}) over the internet; {why}",
                            shown(class_type),
                        ),
                    );
                }
                if provenance.cnr_id.is_some_and(|id| id != CORE_REGISTRY_ID)
                    || provenance.aux_id.is_some()
                {
                    self.violation(
                        node_id,
                        class_type,
                        rules::PROVENANCE_MISMATCH,
                        format!(
                            "{} is a ComfyUI core node type, but the node says it comes from {}; a custom pack that overrides a core node must be approved under spec.nodes with its repository",
                            shown(class_type),
                            describe(&provenance)
                        ),
                    );
                }
            }
            NodeStanding::Custom(pin) => {
                if format == Format::Ui {
                    self.check_provenance(node_id, class_type, &provenance, pin);
                }
                self.resources
                    .custom_nodes
                    .insert(class_type.to_owned(), pin.clone());
            }
            NodeStanding::NotApproved => {
                if format == Format::Ui
                    && let Some(aux_id) = provenance.aux_id
                    && let Some(repository) = self.policy.repository_for_aux_id(aux_id)
                {
                    if provenance.cnr_id == Some(CORE_REGISTRY_ID) {
                        self.violation(
                            node_id,
                            class_type,
                            rules::PROVENANCE_MISMATCH,
                            format!("the node claims both cnr_id comfy-core and aux_id {}", shown(aux_id)),
                        );
                    }
                    let commit = repository.commit.clone();
                    let name = repository.repository.clone();
                    if let (Some(commit), Some(ver)) = (commit.as_deref(), provenance.ver)
                        && !commit_matches(commit, ver)
                    {
                        self.violation(
                            node_id,
                            class_type,
                            rules::PROVENANCE_MISMATCH,
                            format!(
                                "the node says it is at version {} of {name}, but the repository is pinned to commit {commit}; update the workflow or the pin",
                                shown(ver)
                            ),
                        );
                    }
                    self.resources.repositories.insert(name);
                    return;
                }
                let newer_core;
                let hint = if self.policy.core().is_core(class_type) {
                    "it is a ComfyUI core node, but the ApprovedNodeLists exclude core nodes (includeCoreNodes: false); list it under spec.nodes"
                } else if provenance.cnr_id == Some(CORE_REGISTRY_ID) {
                    newer_core = format!(
                        "the node says it is a core node of ComfyUI {}, which is not in the core list this operator ships; regenerate config/comfyui-core-nodes.json for the worker's ComfyUI, or list the type under spec.nodes",
                        provenance.ver.map_or_else(|| "(no version)".to_owned(), shown)
                    );
                    &newer_core
                } else if looks_like_uuid(class_type) && format == Format::Ui {
                    "no subgraph definition has this id, and it is not an approved node type"
                } else {
                    "approve it under spec.nodes of an ApprovedNodeList (with its repository and a commit pin), or remove the node"
                };
                self.violation(
                    node_id,
                    class_type,
                    rules::NODE_NOT_APPROVED,
                    format!(
                        "node type {} is neither a ComfyUI core node ({}) nor approved: {hint}",
                        shown(class_type),
                        self.policy.core().comfyui_version
                    ),
                );
            }
        }
    }

    /// Why an API node may not run (`None`: it may): egress must reach it, an ApprovedNodeList
    /// must list it, and, where the foundry's hosts are known, its host must be approved.
    fn api_node_refusal(&self, listed: bool) -> Option<&'static str> {
        let (host, port) = API_NODE_HOST;
        match self.policy.egress {
            Egress::Open => None,
            Egress::Blocked => Some("workers have no internet egress: remove the node"),
            Egress::Restricted if !listed => Some(
                "workers have no internet egress beyond the admin allowlist: list the node type under spec.nodes of an ApprovedNodeList to allow it",
            ),
            Egress::Restricted => (self.policy.host_approved(host, port) == Some(false)).then_some(
                "its host is not approved for the foundry: add it to the VideoFoundry's spec.network.allowedHosts",
            ),
        }
    }

    /// Why a URL value approved as a model source may still not be fetched: its host is not
    /// approved for the foundry (only checked where the foundry's hosts are known and egress
    /// is not open).
    fn url_host_refusal(&self, text: &str) -> Option<String> {
        if self.policy.egress == Egress::Open {
            return None;
        }
        let url = url::Url::parse(text.trim()).ok();
        let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
        let port = url.as_ref().and_then(url::Url::port_or_known_default);
        let approved = port.and_then(|port| self.policy.host_approved(host, port))?;
        (!approved).then(|| {
            let shown_host = if host.is_empty() { "(none)" } else { host };
            match port {
                Some(port) => format!("{shown_host}:{port}"),
                None => shown_host.to_owned(),
            }
        })
    }

    fn check_provenance(
        &mut self,
        node_id: &str,
        class_type: &str,
        provenance: &Provenance<'_>,
        pin: &super::policy::NodePin,
    ) {
        if !provenance.is_stated() {
            return;
        }
        let repository = pin.repository.as_deref().unwrap_or_default();
        let repo_name = repository.rsplit('/').next().unwrap_or_default();
        let mut problems: Vec<String> = Vec::new();
        if let Some(cnr_id) = provenance.cnr_id {
            let expected = pin
                .registry_id
                .as_deref()
                .map_or_else(|| repo_name.to_owned(), str::to_ascii_lowercase);
            if cnr_id.to_ascii_lowercase() != expected {
                problems.push(format!(
                    "cnr_id {} is not the approved registry id {expected:?} (set registryId in the approval if the pack's registry id differs from its repository name)",
                    shown(cnr_id)
                ));
            }
        }
        if let Some(aux_id) = provenance.aux_id {
            let expected = super::patterns::github_aux_id(repository);
            if expected != Some(aux_id.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "aux_id {} does not name the approved repository {repository}",
                    shown(aux_id)
                ));
            }
        }
        if let Some(ver) = provenance.ver {
            let by_commit = pin.commit.as_deref().map(|c| commit_matches(c, ver));
            let by_version = pin.version.as_deref().map(|v| v == ver);
            let matches = match (by_commit, by_version) {
                (None, None) => true,
                (c, v) => c == Some(true) || v == Some(true),
            };
            if !matches {
                problems.push(format!(
                    "ver {} matches neither the pinned commit nor the pinned version",
                    shown(ver)
                ));
            }
        }
        for problem in problems {
            self.violation(
                node_id,
                class_type,
                rules::PROVENANCE_MISMATCH,
                format!("{}: {problem}", shown(class_type)),
            );
        }
    }

    /// Checks the provenance of a subgraph instance node: only `comfy-core` may be claimed.
    pub fn check_instance_provenance(
        &mut self,
        node_id: &str,
        class_type: &str,
        provenance: &Provenance<'_>,
    ) {
        if provenance.cnr_id.is_some_and(|id| id != CORE_REGISTRY_ID) || provenance.aux_id.is_some()
        {
            self.violation(
                node_id,
                class_type,
                rules::PROVENANCE_MISMATCH,
                format!(
                    "a subgraph instance can only come from comfy-core, but the node says it comes from {}",
                    describe(provenance)
                ),
            );
        }
    }

    /// Checks every string inside `value`. `input` is the input's name when known; `slot` says
    /// how the value is read as a model reference.
    pub fn check_value(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: Option<&str>,
        value: &Json,
        slot: Slot,
    ) {
        match value {
            Json::String(text) => self.check_string(node_id, class_type, input, text, slot),
            // A model slot stays one inside containers: ComfyUI unwraps `{"__value__": [...]}`.
            Json::Array(items) => {
                for item in items {
                    self.check_value(node_id, class_type, input, item, slot);
                }
            }
            Json::Object(members) => {
                for (key, item) in members {
                    let slot = if slot == Slot::Text && values::is_model_input(key) {
                        Slot::NamedModel
                    } else {
                        slot
                    };
                    self.check_value(node_id, class_type, Some(key), item, slot);
                }
            }
            Json::Null | Json::Bool(_) | Json::Number(_) => {}
        }
    }

    /// Checks the value that lands in a built-in loader's file input (`value` is None when
    /// there is none): it must be a concrete name, and an approved model unless it is one of
    /// the literal choices ComfyUI offers or the folder holds no weights.
    pub fn check_loader_input(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: &ModelInput,
        value: Option<&Json>,
        source: &str,
    ) {
        let name = input.input.as_deref().unwrap_or("?");
        let folders = input.folders.join(", ");
        let text = match value {
            Some(Json::String(text)) if !text.is_empty() => text,
            // ComfyUI unwraps `{"__value__": [...]}` constants: every name inside may land.
            Some(container @ (Json::Array(_) | Json::Object(_))) if has_string(container) => {
                self.check_value(
                    node_id,
                    class_type,
                    input.input.as_deref(),
                    container,
                    Slot::Loader,
                );
                return;
            }
            other => {
                let what = match other {
                    None => "has no value".to_owned(),
                    Some(Json::String(_)) => "is empty".to_owned(),
                    Some(other) => format!("is {}", other.kind()),
                };
                self.violation(
                    node_id,
                    class_type,
                    rules::MODEL_UNRESOLVED,
                    format!(
                        "input {} {what}{source}; ComfyUI would load a file of its own choosing from folder {folders}: set an approved file name",
                        shown(name)
                    ),
                );
                return;
            }
        };
        if input
            .literal_options
            .iter()
            .any(|option| option == text.as_ref())
        {
            return;
        }
        let slot = if ModelInputs::builtin().loads_weights(input) {
            Slot::Loader
        } else {
            Slot::Text
        };
        self.check_string(node_id, class_type, Some(name), text, slot);
    }

    /// Refuses a loader input whose value is computed by another node at run time.
    pub fn loader_input_computed(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: &ModelInput,
        source: &str,
    ) {
        self.violation(
            node_id,
            class_type,
            rules::MODEL_UNRESOLVED,
            format!(
                "input {} is fed by {source}, whose value is only known when it runs; a loader needs a concrete, approved file name",
                shown(input.input.as_deref().unwrap_or("?"))
            ),
        );
    }

    fn check_string(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: Option<&str>,
        text: &str,
        slot: Slot,
    ) {
        let at = || input.map_or_else(String::new, |name| format!(" (input {})", shown(name)));
        if let Some(concern) = values::concern(text) {
            let approved = matches!(concern, Concern::Url | Concern::AbsolutePath)
                .then(|| self.policy.model(text))
                .flatten();
            if let Some(approval) = approved {
                if concern == Concern::Url
                    && let Some(host) = self.url_host_refusal(text)
                {
                    self.violation(
                        node_id,
                        class_type,
                        rules::URL_HOST_NOT_APPROVED,
                        format!(
                            "value {}{} is an approved model source, but its host {host} is not approved for the foundry: add it to the VideoFoundry's spec.network.allowedHosts (with network.egress restricted), or put the file in the models volume",
                            shown(text),
                            at(),
                        ),
                    );
                    return;
                }
                let usage = ModelUse {
                    approved_as: Some(approval.approved_as.to_owned()),
                    sha256: approval.sha256.map(str::to_owned),
                };
                self.record_model(text, usage);
                return;
            }
            let (rule, message) = match concern {
                Concern::Url => (
                    rules::URL_INPUT,
                    format!(
                        "value {}{} is a URL; workers have no internet access: put the file in the models volume or storage and refer to it by name, or approve the source under spec.models",
                        shown(text),
                        at(),
                    ),
                ),
                Concern::AbsolutePath => (
                    rules::ABSOLUTE_PATH,
                    format!(
                        "value {}{} is an absolute path (once the quotes, spaces and control characters that nodes strip are removed); use a name relative to ComfyUI's folders",
                        shown(text),
                        at(),
                    ),
                ),
                Concern::Climbs => (
                    rules::PATH_TRAVERSAL,
                    format!(
                        "value {}{} climbs out of its folder with `..`; use a name inside ComfyUI's folders",
                        shown(text),
                        at(),
                    ),
                ),
                Concern::ControlCharacter => (
                    rules::CONTROL_CHARACTER,
                    format!(
                        "value {}{} contains a NUL character, which can truncate a path; remove it",
                        shown(text),
                        at(),
                    ),
                ),
            };
            self.violation(node_id, class_type, rule, message);
            return;
        }
        let is_model = match slot {
            Slot::Loader => true,
            Slot::NamedModel => !values::is_no_model(text),
            Slot::Text => false,
        } || values::has_model_extension(text);
        if is_model {
            self.check_model(node_id, class_type, text, &at());
        }
        self.check_embeddings(node_id, class_type, text, &at());
    }

    /// Every `embedding:<name>` in the text loads a file from the embeddings folder: each file
    /// ComfyUI may pick for it must be approved like any model.
    fn check_embeddings(&mut self, node_id: &str, class_type: &str, text: &str, at: &str) {
        for name in values::embedding_names(text) {
            let context = format!("{at} (`embedding:{}` in text)", cut(name, MAX_SHOWN));
            if let Some(concern) = values::concern(name) {
                self.violation(
                    node_id,
                    class_type,
                    concern.rule(),
                    format!(
                        "embedding {}{context} must name a file inside the embeddings folder",
                        shown(name)
                    ),
                );
                continue;
            }
            let suffixes = ModelInputs::builtin().embedding_suffixes();
            let has_suffix = suffixes.iter().any(|suffix| {
                name.len() > suffix.len()
                    && name.as_bytes()[name.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            });
            self.check_model(node_id, class_type, name, &context);
            if !has_suffix {
                // ComfyUI tries these when no file has the bare name.
                for suffix in suffixes {
                    self.check_model(node_id, class_type, &format!("{name}{suffix}"), &context);
                }
            }
        }
    }

    /// Records a model the workflow uses; past `MAX_MODELS` distinct ones the workflow is
    /// refused once, so that the resource list stays bounded.
    fn record_model(&mut self, text: &str, usage: ModelUse) {
        if self.resources.models.len() < MAX_MODELS || self.resources.models.contains_key(text) {
            self.resources.models.insert(text.to_owned(), usage);
        } else if !self.over_model_limit {
            self.over_model_limit = true;
            self.workflow_violation(
                rules::LIMIT_EXCEEDED,
                format!("the workflow refers to more than {MAX_MODELS} distinct models"),
            );
        }
    }

    /// Checks one model reference against the approvals.
    fn check_model(&mut self, node_id: &str, class_type: &str, text: &str, at: &str) {
        if text.contains('\\') {
            self.violation(
                node_id,
                class_type,
                rules::PATH_TRAVERSAL,
                format!(
                    "model reference {}{at} contains a backslash; use `/` between folders",
                    shown(text),
                ),
            );
            return;
        }
        // An approved model seen before needs no second lookup (an unapproved one is reported
        // at every node that uses it).
        if self
            .resources
            .models
            .get(text)
            .is_some_and(|usage| usage.approved_as.is_some())
        {
            return;
        }
        match self.policy.model(text) {
            Some(approval) => {
                let usage = ModelUse {
                    approved_as: Some(approval.approved_as.to_owned()),
                    sha256: approval.sha256.map(str::to_owned),
                };
                self.record_model(text, usage);
            }
            None => {
                self.record_model(
                    text,
                    ModelUse {
                        approved_as: None,
                        sha256: None,
                    },
                );
                self.violation(
                    node_id,
                    class_type,
                    rules::MODEL_NOT_APPROVED,
                    format!(
                        "model {}{at} is not approved; add it under spec.models of an ApprovedNodeList (identifier or pattern)",
                        shown(text),
                    ),
                );
            }
        }
    }

    /// Sorts the violations and builds the report.
    pub fn finish(mut self, format: Option<Format>, workflow_sha256: String) -> Report {
        report::sort_violations(&mut self.violations);
        let violation_count = self.seen.len();
        Report {
            verdict: report::verdict_of(self.policy.mode, violation_count, self.rejects_always),
            format,
            violations: self.violations,
            violation_count: u32::try_from(violation_count).unwrap_or(u32::MAX),
            checked_nodes: u32::try_from(self.checked_nodes).unwrap_or(u32::MAX),
            workflow_sha256,
            resources: self.resources,
        }
    }
}

/// True when `value` is or holds a non-empty string.
fn has_string(value: &Json) -> bool {
    match value {
        Json::String(text) => !text.is_empty(),
        Json::Array(items) => items.iter().any(has_string),
        Json::Object(members) => members.iter().any(|(_, item)| has_string(item)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}

/// A `ver` matches a commit pin when it is the commit or an abbreviation of at least 7 digits.
fn commit_matches(commit: &str, ver: &str) -> bool {
    let ver = ver.to_ascii_lowercase();
    ver.len() >= 7 && commit.starts_with(&ver)
}

fn describe(provenance: &Provenance<'_>) -> String {
    let mut parts = Vec::new();
    if let Some(cnr_id) = provenance.cnr_id {
        parts.push(format!("cnr_id {}", shown(cnr_id)));
    }
    if let Some(aux_id) = provenance.aux_id {
        parts.push(format!("aux_id {}", shown(aux_id)));
    }
    parts.join(" and ")
}

/// True for `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits).
pub fn looks_like_uuid(value: &str) -> bool {
    value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A value for a message: quoted, escaped and cut to a readable length.
pub fn shown(value: &str) -> String {
    format!("{:?}", cut(value, MAX_SHOWN))
}

/// `value` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
pub fn cut(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// The id of a node inside nested graphs: `parent/child`, each segment and the whole path cut
/// to a bounded length, so that long ids and deep nesting cannot make paths (and reports) grow.
pub fn child_path(prefix: &str, id: &str) -> String {
    if prefix.is_empty() {
        bounded_path(id)
    } else {
        bounded_path(&format!("{prefix}/{}", cut(id, MAX_ID_SEGMENT)))
    }
}

fn bounded_path(path: &str) -> String {
    if path.len() <= MAX_ID_SEGMENT || (path.len() <= MAX_ID_PATH && path.contains('/')) {
        return path.to_owned();
    }
    if !path.contains('/') {
        return cut(path, MAX_ID_SEGMENT);
    }
    let segments: Vec<Cow<'_, str>> = path
        .split('/')
        .map(|segment| {
            if segment.len() > MAX_ID_SEGMENT {
                Cow::Owned(cut(segment, MAX_ID_SEGMENT))
            } else {
                Cow::Borrowed(segment)
            }
        })
        .collect();
    cut(&segments.join("/"), MAX_ID_PATH)
}
