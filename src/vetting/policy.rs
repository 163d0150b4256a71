//! The effective policy: the foundry's ApprovedNodeLists merged with the built-in core list, the
//! vetting mode and the egress mode.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::core_nodes::CoreNodes;
use super::patterns::{ModelGlob, normalize_repository};
use crate::crd::approved_node_list::ApprovedNodeListSpec;
use crate::crd::video_foundry::{EgressMode, VettingMode};
use crate::vetting::approved_list::validate;

/// How violations are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Any violation rejects.
    Strict,
    /// Policy violations are recorded and the render allowed; malformed or ambiguous
    /// workflows and blocked nodes still reject.
    Warn,
}

impl From<VettingMode> for Mode {
    /// An unknown mode is treated as `strict`.
    fn from(mode: VettingMode) -> Self {
        match mode {
            VettingMode::Warn => Mode::Warn,
            VettingMode::Strict | VettingMode::Unknown => Mode::Strict,
        }
    }
}

/// Whether workers can reach the internet; decides whether ComfyUI's API nodes may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// No internet: API nodes are rejected.
    Blocked,
    /// An admin allowlist: API nodes are allowed only when approved by name in a list.
    Restricted,
    /// Open egress (developer mode).
    Open,
}

impl From<EgressMode> for Egress {
    /// An unknown egress mode is treated as `blocked`.
    fn from(mode: EgressMode) -> Self {
        match mode {
            EgressMode::Open => Egress::Open,
            EgressMode::Restricted => Egress::Restricted,
            EgressMode::Blocked | EgressMode::Unknown => Egress::Blocked,
        }
    }
}

/// The host every ComfyUI API node calls (Comfy's API gateway in front of the paid services).
pub const API_NODE_HOST: (&str, u16) = ("api.comfy.org", 443);

/// One approved custom (or explicitly listed) node type and its pins.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePin {
    /// Repository as lowercase `host/owner/repo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Comfy registry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    /// Pinned commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Pinned registry version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An approved repository (UI format: nodes whose `aux_id` names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryPin {
    /// Lowercase `host/owner/repo`.
    pub repository: String,
    /// Pinned commit.
    pub commit: Option<String>,
}

/// The approval a model reference matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelMatch<'p> {
    /// The identifier or pattern that matched.
    pub approved_as: &'p str,
    /// The SHA-256 the worker must verify, when pinned.
    pub sha256: Option<&'p str>,
}

/// How the policy treats a node type, before provenance is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStanding<'p> {
    /// Listed under `blockedNodes`.
    Blocked,
    /// A ComfyUI core node allowed by the lists.
    Core {
        /// True for API nodes (internet services).
        api_node: bool,
        /// True when a list names it explicitly under `nodes`.
        listed: bool,
    },
    /// A custom node approved under `nodes`.
    Custom(&'p NodePin),
    /// Not approved by type; may still be approved by repository in the UI format.
    NotApproved,
}

/// The lists could not be merged into a usable policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the approved node lists cannot be used: {}", problems.join("; "))]
pub struct PolicyError {
    /// One line per problem.
    pub problems: Vec<String>,
}

/// The effective policy a workflow is vetted against.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Strict or warn.
    pub mode: Mode,
    /// Egress of the workers.
    pub egress: Egress,
    core: CoreNodes,
    include_core: bool,
    nodes: HashMap<String, NodePin>,
    repositories: HashMap<String, RepositoryPin>,
    models_exact: HashMap<String, (String, Option<String>)>,
    model_globs: Vec<(String, ModelGlob, Option<String>)>,
    blocked: HashSet<String>,
    hosts: Option<crate::egress::Policy>,
}

impl Policy {
    /// Adds the foundry's hosts approved by name (its `network.allowedHosts` in force, empty
    /// when the gateway does not run): API nodes and URL values then also need their host
    /// approved, and a violation names it. Without this (offline vetting) hosts are not checked.
    #[must_use]
    pub fn with_approved_hosts(mut self, hosts: crate::egress::Policy) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// Whether `host:port` is approved for the foundry; `None` without a foundry's hosts.
    pub fn host_approved(&self, host: &str, port: u16) -> Option<bool> {
        self.hosts
            .as_ref()
            .map(|hosts| hosts.check_target(host, port).is_ok())
    }

    /// Merges `lists` (each named, for messages). Every list must validate; a node type approved
    /// with different pins by two lists is a conflict. Core nodes are allowed when every list
    /// includes them (a list that sets `includeCoreNodes: false` is respected). Blocks from any
    /// list win over allows from any list.
    pub fn new(
        lists: &[(String, ApprovedNodeListSpec)],
        core: &CoreNodes,
        mode: Mode,
        egress: Egress,
    ) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();
        let mut policy = Policy {
            mode,
            egress,
            core: core.clone(),
            include_core: lists.iter().all(|(_, spec)| spec.include_core_nodes),
            nodes: HashMap::new(),
            repositories: HashMap::new(),
            models_exact: HashMap::new(),
            model_globs: Vec::new(),
            blocked: HashSet::new(),
            hosts: None,
        };
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        for (name, spec) in lists {
            let report = validate(spec);
            problems.extend(report.problems.iter().map(|p| format!("{name}: {p}")));
            for node in &spec.nodes {
                let pin = NodePin {
                    repository: node.repository.as_deref().and_then(normalize_repository),
                    registry_id: node.registry_id.clone(),
                    commit: node.commit.clone(),
                    version: node.version.clone(),
                };
                match policy.nodes.get(&node.class_type) {
                    Some(existing) if *existing != pin => problems.push(format!(
                        "{name}: node type {:?} is approved with different pins by {}",
                        node.class_type,
                        origins.get(&node.class_type).map_or("another list", |s| s)
                    )),
                    Some(_) => {}
                    None => {
                        origins.insert(node.class_type.clone(), name.clone());
                        policy.nodes.insert(node.class_type.clone(), pin);
                    }
                }
            }
            for repository in &spec.repositories {
                if let Some(normalized) = normalize_repository(&repository.url) {
                    let pin = RepositoryPin {
                        repository: normalized.clone(),
                        commit: repository.commit.clone(),
                    };
                    match policy.repositories.get(&normalized) {
                        Some(existing) if *existing != pin => problems.push(format!(
                            "{name}: repository {normalized} is approved with different commits"
                        )),
                        _ => {
                            policy.repositories.insert(normalized, pin);
                        }
                    }
                }
            }
            for model in &spec.models {
                if let Some(identifier) = &model.identifier {
                    policy.models_exact.insert(
                        identifier.clone(),
                        (identifier.clone(), model.sha256.clone()),
                    );
                }
                if let Some(pattern) = &model.pattern
                    && let Ok(glob) = ModelGlob::new(pattern)
                {
                    policy
                        .model_globs
                        .push((pattern.clone(), glob, model.sha256.clone()));
                }
            }
            policy.blocked.extend(spec.blocked_nodes.iter().cloned());
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError { problems })
        }
    }

    /// The built-in core list this policy uses.
    pub fn core(&self) -> &CoreNodes {
        &self.core
    }

    /// How the policy treats `class_type`.
    pub fn standing(&self, class_type: &str) -> NodeStanding<'_> {
        if self.blocked.contains(class_type) {
            return NodeStanding::Blocked;
        }
        let listed = self.nodes.get(class_type);
        if self.core.is_core(class_type) {
            // A core name listed with a repository is a custom pack overriding a core node: it
            // is vetted as the custom node the list describes.
            match listed {
                Some(pin) if pin.repository.is_some() => return NodeStanding::Custom(pin),
                Some(_) => {
                    return NodeStanding::Core {
                        api_node: self.core.is_api_node(class_type),
                        listed: true,
                    };
                }
                None if self.include_core => {
                    return NodeStanding::Core {
                        api_node: self.core.is_api_node(class_type),
                        listed: false,
                    };
                }
                None => return NodeStanding::NotApproved,
            }
        }
        match listed {
            // A custom node must name its repository (the validator refuses lists that do not);
            // without one it is not approved.
            Some(pin) if pin.repository.is_some() => NodeStanding::Custom(pin),
            _ => NodeStanding::NotApproved,
        }
    }

    /// The approved repository that a UI node's `aux_id` (`owner/repo`, GitHub) names.
    pub fn repository_for_aux_id(&self, aux_id: &str) -> Option<&RepositoryPin> {
        let key = format!("github.com/{}", aux_id.to_ascii_lowercase());
        self.repositories.get(&key)
    }

    /// The approval that allows the model reference `value`, if any.
    pub fn model(&self, value: &str) -> Option<ModelMatch<'_>> {
        if let Some((identifier, sha256)) = self.models_exact.get(value) {
            return Some(ModelMatch {
                approved_as: identifier,
                sha256: sha256.as_deref(),
            });
        }
        self.model_globs
            .iter()
            .find(|(_, glob, _)| glob.is_match(value))
            .map(|(pattern, _, sha256)| ModelMatch {
                approved_as: pattern,
                sha256: sha256.as_deref(),
            })
    }
}
