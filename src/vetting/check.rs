//! Per-node rules shared by both formats: node type and provenance, and every string value
//! (URLs, escaping paths, model references).

use super::json::Json;
use super::policy::{Egress, NodeStanding, Policy};
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
/// Most violations a report lists.
pub const MAX_VIOLATIONS: usize = 10_000;

/// Collects violations and resources while the format walkers visit the workflow.
pub struct Checker<'p> {
    pub policy: &'p Policy,
    violations: Vec<Violation>,
    resources: Resources,
    checked_nodes: usize,
    max_nodes: usize,
    over_node_limit: bool,
    too_many_violations: bool,
}

impl<'p> Checker<'p> {
    pub fn new(policy: &'p Policy, max_nodes: usize) -> Self {
        Self {
            policy,
            violations: Vec::new(),
            resources: Resources::default(),
            checked_nodes: 0,
            max_nodes,
            over_node_limit: false,
            too_many_violations: false,
        }
    }

    /// Records a violation. Past `MAX_VIOLATIONS` (in document order) one `limit-exceeded`
    /// violation stands for the rest, so that a hostile file cannot make the report huge.
    pub fn violation(&mut self, node_id: &str, class_type: &str, rule: &str, message: String) {
        if self.violations.len() >= MAX_VIOLATIONS {
            if !self.too_many_violations {
                self.too_many_violations = true;
                self.violations.push(Violation {
                    node_id: String::new(),
                    class_type: String::new(),
                    rule: rules::LIMIT_EXCEEDED.to_owned(),
                    message: format!(
                        "more than {MAX_VIOLATIONS} violations; the rest are not listed"
                    ),
                });
            }
            return;
        }
        self.violations.push(Violation {
            node_id: node_id.to_owned(),
            class_type: class_type.to_owned(),
            rule: rule.to_owned(),
            message,
        });
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
                if api_node && !self.api_node_allowed(listed) {
                    self.violation(
                        node_id,
                        class_type,
                        rules::API_NODE_EGRESS,
                        format!(
                            "{} is a ComfyUI API node that calls an external service over the internet; workers have no internet egress{}",
                            shown(class_type),
                            if self.policy.egress == Egress::Restricted {
                                " beyond the admin allowlist: list the node type under spec.nodes of an ApprovedNodeList to allow it"
                            } else {
                                ": remove the node"
                            }
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

    fn api_node_allowed(&self, listed: bool) -> bool {
        match self.policy.egress {
            Egress::Open => true,
            Egress::Restricted => listed,
            Egress::Blocked => false,
        }
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

    /// Checks every string inside `value`. `input` is the input's name when known;
    /// `model_slot` is true when the value sits where the node reads a model name.
    pub fn check_value(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: Option<&str>,
        value: &Json,
        model_slot: bool,
    ) {
        match value {
            Json::String(text) => self.check_string(node_id, class_type, input, text, model_slot),
            // A model slot stays one inside containers: ComfyUI unwraps `{"__value__": [...]}`.
            Json::Array(items) => {
                for item in items {
                    self.check_value(node_id, class_type, input, item, model_slot);
                }
            }
            Json::Object(members) => {
                for (key, item) in members {
                    let model_slot = model_slot || values::is_model_input(key);
                    self.check_value(node_id, class_type, Some(key), item, model_slot);
                }
            }
            Json::Null | Json::Bool(_) | Json::Number(_) => {}
        }
    }

    fn check_string(
        &mut self,
        node_id: &str,
        class_type: &str,
        input: Option<&str>,
        text: &str,
        model_slot: bool,
    ) {
        let at = || input.map_or_else(String::new, |name| format!(" (input {})", shown(name)));
        if let Some(concern) = values::concern(text) {
            let approved = matches!(concern, Concern::Url | Concern::AbsolutePath)
                .then(|| self.policy.model(text))
                .flatten();
            if let Some(approval) = approved {
                let usage = ModelUse {
                    approved_as: Some(approval.approved_as.to_owned()),
                    sha256: approval.sha256.map(str::to_owned),
                };
                self.resources.models.insert(text.to_owned(), usage);
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
                        "value {}{} is an absolute path; use a name relative to ComfyUI's folders",
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
        let is_model =
            (model_slot && !values::is_no_model(text)) || values::has_model_extension(text);
        if !is_model {
            return;
        }
        if text.contains('\\') {
            self.violation(
                node_id,
                class_type,
                rules::PATH_TRAVERSAL,
                format!(
                    "model reference {}{} contains a backslash; use `/` between folders",
                    shown(text),
                    at(),
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
                self.resources.models.insert(text.to_owned(), usage);
            }
            None => {
                self.resources.models.insert(
                    text.to_owned(),
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
                        "model {}{} is not approved; add it under spec.models of an ApprovedNodeList (identifier or pattern)",
                        shown(text),
                        at(),
                    ),
                );
            }
        }
    }

    /// Sorts the violations and builds the report.
    pub fn finish(mut self, format: Option<Format>, workflow_sha256: String) -> Report {
        report::sort_violations(&mut self.violations);
        Report {
            verdict: report::verdict(self.policy.mode, &self.violations),
            format,
            violations: self.violations,
            checked_nodes: u32::try_from(self.checked_nodes).unwrap_or(u32::MAX),
            workflow_sha256,
            resources: self.resources,
        }
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
    if value.chars().count() <= MAX_SHOWN {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX_SHOWN).collect();
        format!("{cut:?}…")
    }
}
