//! ComfyUI's built-in node types, shipped as `config/comfyui-core-nodes.json`.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::Deserialize;

/// The shipped list, compiled into the binary.
const BUILTIN_JSON: &str = include_str!("../../config/comfyui-core-nodes.json");

/// ComfyUI's built-in node types at one ComfyUI version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreNodes {
    /// The ComfyUI version (repository@commit) the list reflects.
    pub comfyui_version: String,
    nodes: HashSet<String>,
    api_nodes: HashSet<String>,
    frontend_only: HashSet<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CoreNodesFile {
    comfyui_version: String,
    #[serde(rename = "commitDate")]
    _commit_date: String,
    #[serde(rename = "note")]
    _note: String,
    nodes: Vec<String>,
    api_nodes: Vec<String>,
    frontend_only_nodes: Vec<String>,
}

static BUILTIN: LazyLock<Result<CoreNodes, String>> =
    LazyLock::new(|| CoreNodes::from_json(BUILTIN_JSON).map_err(|e| e.to_string()));

impl CoreNodes {
    /// The list shipped with the operator. A broken shipped file (caught by a unit test) yields
    /// an empty list, so that nothing passes as core: fail closed.
    pub fn builtin() -> &'static CoreNodes {
        static EMPTY: LazyLock<CoreNodes> = LazyLock::new(CoreNodes::default);
        match &*BUILTIN {
            Ok(core) => core,
            Err(_) => &EMPTY,
        }
    }

    /// Reads a list in the format of `config/comfyui-core-nodes.json`.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let file: CoreNodesFile = serde_json::from_str(text)?;
        Ok(Self {
            comfyui_version: file.comfyui_version,
            nodes: file.nodes.into_iter().collect(),
            api_nodes: file.api_nodes.into_iter().collect(),
            frontend_only: file.frontend_only_nodes.into_iter().collect(),
        })
    }

    /// True for a built-in node type, API nodes included. Exact match: no trimming, no case
    /// folding.
    pub fn is_core(&self, class_type: &str) -> bool {
        self.nodes.contains(class_type) || self.api_nodes.contains(class_type)
    }

    /// True for a built-in node that calls an external service over the internet.
    pub fn is_api_node(&self, class_type: &str) -> bool {
        self.api_nodes.contains(class_type)
    }

    /// True for a node type that only the ComfyUI frontend knows (`Note`, `Reroute`, ...); the
    /// frontend never sends it to the backend.
    pub fn is_frontend_only(&self, class_type: &str) -> bool {
        self.frontend_only.contains(class_type)
    }

    /// Number of built-in node types, API nodes included.
    pub fn len(&self) -> usize {
        self.nodes.len() + self.api_nodes.len()
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_and_names_its_version() {
        let parsed = CoreNodes::from_json(BUILTIN_JSON).unwrap();
        assert!(parsed.comfyui_version.contains('@'));
        let core = CoreNodes::builtin();
        assert_eq!(core, &parsed);
        assert!(core.is_core("KSampler"));
        assert!(core.is_core("CheckpointLoaderSimple"));
        assert!(core.is_core("Epsilon Scaling"));
        assert!(!core.is_core("KSampler "));
        assert!(!core.is_core("ksampler"));
        assert!(core.is_api_node("OpenAIDalle3") || core.is_api_node("FluxProCannyNode"));
        assert!(!core.is_api_node("KSampler"));
        assert!(core.is_frontend_only("Reroute"));
        assert!(!core.is_core("Reroute"));
    }
}
