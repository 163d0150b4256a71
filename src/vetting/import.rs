//! Imports of the allowlist formats Video Foundry deployments already use, and reading of
//! ApprovedNodeList manifests, all from text (no I/O).
//!
//! - `approved_nodes.json`: `approved_git_repos`, `approved_models` (globs), `blocked_nodes`,
//!   `last_updated`, `reviewed_by`.
//! - `workflow_allowlist.yaml`: one YAML document per execution mode, each with
//!   `execution_mode`, `nodes[{type, version, repository, branch, approved_by, approved_at,
//!   notes}]`, `models[{identifier, source, checksum: "sha256:..."}]`,
//!   `repositories[{url, allowed_branches}]` (a key holding only comments is null) and `notes`.
//!
//! Nothing is dropped silently: an unknown field, or a value that does not fit the
//! ApprovedNodeList, is an error.

use serde::Deserialize;

use crate::crd::approved_node_list::{
    ApprovedNodeList, ApprovedNodeListSpec, ModelApproval, NodeApproval, RepositoryApproval,
};

/// Annotation recording which legacy document a list was imported from.
pub const IMPORTED_FROM_ANNOTATION: &str = "videofoundry.dev/imported-from";

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not YAML/JSON, or a field of the wrong type or unknown.
    #[error("cannot read {format}: {source}")]
    Parse {
        /// Which format was being read.
        format: &'static str,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// The file is none of the known formats.
    #[error(
        "not an ApprovedNodeList manifest, an approved_nodes.json or a workflow_allowlist.yaml document"
    )]
    UnknownFormat,
    /// `workflow_allowlist.yaml` has no document for the mode asked for.
    #[error("no document with execution_mode {wanted:?} (found: {found})")]
    NoSuchMode {
        /// The mode asked for.
        wanted: String,
        /// The modes present.
        found: String,
    },
    /// Two documents claim the same mode.
    #[error("two documents have execution_mode {0:?}")]
    DuplicateMode(String),
    /// A value that the ApprovedNodeList cannot carry.
    #[error("{0}")]
    CannotCarry(String),
}

/// `approved_nodes.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovedNodesJson {
    #[serde(default)]
    approved_git_repos: Vec<String>,
    #[serde(default)]
    approved_models: Vec<String>,
    #[serde(default)]
    blocked_nodes: Vec<String>,
    last_updated: Option<String>,
    reviewed_by: Option<String>,
}

/// One document of `workflow_allowlist.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistDocument {
    execution_mode: String,
    #[serde(default)]
    nodes: Option<Vec<AllowlistNode>>,
    #[serde(default)]
    models: Option<Vec<AllowlistModel>>,
    #[serde(default)]
    repositories: Option<Vec<AllowlistRepository>>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    reviewed_by: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    blocked_nodes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistNode {
    #[serde(rename = "type")]
    class_type: String,
    version: Option<String>,
    repository: Option<String>,
    branch: Option<String>,
    commit: Option<String>,
    approved_by: Option<String>,
    approved_at: Option<String>,
    notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistModel {
    identifier: String,
    source: Option<String>,
    checksum: Option<String>,
    approved_by: Option<String>,
    approved_at: Option<String>,
    notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistRepository {
    url: String,
    #[serde(default)]
    allowed_branches: Vec<String>,
    commit: Option<String>,
    approved_by: Option<String>,
    approved_at: Option<String>,
    notes: Option<String>,
}

/// A list read from a file, with the name of the document it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedList {
    /// Name: the manifest's `metadata.name`, or a description of the legacy document.
    pub name: String,
    /// Where it came from (`approved_nodes.json`, `workflow_allowlist.yaml#production`), for
    /// legacy formats.
    pub imported_from: Option<String>,
    /// The spec.
    pub spec: ApprovedNodeListSpec,
}

/// Reads `approved_nodes.json`.
pub fn from_approved_nodes_json(text: &str) -> Result<ApprovedNodeListSpec, ImportError> {
    let legacy: ApprovedNodesJson =
        serde_yaml::from_str(text).map_err(|source| ImportError::Parse {
            format: "approved_nodes.json",
            source,
        })?;
    Ok(ApprovedNodeListSpec {
        reviewed_by: legacy.reviewed_by,
        last_updated: legacy.last_updated,
        include_core_nodes: true,
        repositories: legacy
            .approved_git_repos
            .into_iter()
            .map(|url| RepositoryApproval {
                url,
                ..Default::default()
            })
            .collect(),
        models: legacy
            .approved_models
            .into_iter()
            .map(|pattern| ModelApproval {
                pattern: Some(pattern),
                ..Default::default()
            })
            .collect(),
        blocked_nodes: legacy.blocked_nodes,
        ..Default::default()
    })
}

/// Reads the document of `workflow_allowlist.yaml` whose `execution_mode` is `mode`
/// (`production`, `self-hosted-production`, `developer`).
pub fn from_workflow_allowlist(
    text: &str,
    mode: &str,
) -> Result<ApprovedNodeListSpec, ImportError> {
    let mut found = Vec::new();
    let mut chosen = None;
    for document in serde_yaml::Deserializer::from_str(text) {
        let value =
            serde_yaml::Value::deserialize(document).map_err(|source| ImportError::Parse {
                format: "workflow_allowlist.yaml",
                source,
            })?;
        if value.is_null() {
            continue;
        }
        let document: AllowlistDocument =
            serde_yaml::from_value(value).map_err(|source| ImportError::Parse {
                format: "workflow_allowlist.yaml",
                source,
            })?;
        if found.contains(&document.execution_mode) {
            return Err(ImportError::DuplicateMode(document.execution_mode));
        }
        found.push(document.execution_mode.clone());
        if document.execution_mode == mode {
            chosen = Some(document);
        }
    }
    let Some(document) = chosen else {
        return Err(ImportError::NoSuchMode {
            wanted: mode.to_owned(),
            found: found.join(", "),
        });
    };
    let mut models = Vec::new();
    for model in document.models.unwrap_or_default() {
        let sha256 = match model.checksum {
            None => None,
            Some(checksum) => Some(
                checksum
                    .strip_prefix("sha256:")
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ImportError::CannotCarry(format!(
                            "model {:?}: checksum {checksum:?} is not of the form sha256:<hex>; only SHA-256 checksums can be carried",
                            model.identifier
                        ))
                    })?,
            ),
        };
        models.push(ModelApproval {
            identifier: Some(model.identifier),
            sha256,
            source: model.source,
            approved_by: model.approved_by,
            approved_at: model.approved_at,
            notes: model.notes,
            ..Default::default()
        });
    }
    Ok(ApprovedNodeListSpec {
        reviewed_by: document.reviewed_by,
        last_updated: document.last_updated,
        include_core_nodes: true,
        nodes: document
            .nodes
            .unwrap_or_default()
            .into_iter()
            .map(|node| NodeApproval {
                class_type: node.class_type,
                repository: node.repository,
                commit: node.commit,
                version: node.version,
                branch: node.branch,
                approved_by: node.approved_by,
                approved_at: node.approved_at,
                notes: node.notes,
                ..Default::default()
            })
            .collect(),
        repositories: document
            .repositories
            .unwrap_or_default()
            .into_iter()
            .map(|repository| RepositoryApproval {
                url: repository.url,
                allowed_refs: repository.allowed_branches,
                commit: repository.commit,
                approved_by: repository.approved_by,
                approved_at: repository.approved_at,
                notes: repository.notes,
            })
            .collect(),
        models,
        blocked_nodes: document.blocked_nodes.unwrap_or_default(),
        notes: document.notes,
    })
}

/// Reads any supported file: ApprovedNodeList manifests (one or more YAML documents),
/// `approved_nodes.json`, or `workflow_allowlist.yaml` (the document for `allowlist_mode`).
pub fn read_lists(
    text: &str,
    file_name: &str,
    allowlist_mode: &str,
) -> Result<Vec<ImportedList>, ImportError> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value =
            serde_yaml::Value::deserialize(document).map_err(|source| ImportError::Parse {
                format: "YAML or JSON",
                source,
            })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    let has = |value: &serde_yaml::Value, key: &str| value.get(key).is_some();
    if !documents.is_empty() && documents.iter().all(|d| has(d, "execution_mode")) {
        let spec = from_workflow_allowlist(text, allowlist_mode)?;
        return Ok(vec![ImportedList {
            name: format!("{file_name}#{allowlist_mode}"),
            imported_from: Some(format!("workflow_allowlist.yaml#{allowlist_mode}")),
            spec,
        }]);
    }
    if let [single] = documents.as_slice()
        && ["approved_git_repos", "approved_models", "blocked_nodes"]
            .iter()
            .any(|key| has(single, key))
        && !has(single, "kind")
    {
        return Ok(vec![ImportedList {
            name: file_name.to_owned(),
            imported_from: Some("approved_nodes.json".into()),
            spec: from_approved_nodes_json(text)?,
        }]);
    }
    let mut lists = Vec::new();
    for document in documents {
        if document.get("kind").and_then(serde_yaml::Value::as_str) != Some("ApprovedNodeList") {
            return Err(ImportError::UnknownFormat);
        }
        let list: ApprovedNodeList =
            serde_yaml::from_value(document).map_err(|source| ImportError::Parse {
                format: "ApprovedNodeList",
                source,
            })?;
        lists.push(ImportedList {
            name: list
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| file_name.to_owned()),
            imported_from: None,
            spec: list.spec,
        });
    }
    if lists.is_empty() {
        return Err(ImportError::UnknownFormat);
    }
    Ok(lists)
}

/// The ApprovedNodeList manifest for an imported spec.
pub fn to_manifest(
    name: &str,
    namespace: Option<&str>,
    imported: &ImportedList,
) -> Result<String, serde_yaml::Error> {
    let mut list = ApprovedNodeList::new(name, imported.spec.clone());
    list.metadata.namespace = namespace.map(str::to_owned);
    if let Some(from) = &imported.imported_from {
        list.metadata.annotations = Some(
            [(IMPORTED_FROM_ANNOTATION.to_owned(), from.clone())]
                .into_iter()
                .collect(),
        );
    }
    serde_yaml::to_string(&list)
}
