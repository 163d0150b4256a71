//! The `videofoundry.dev/v1alpha1` API: the three custom resources and the types they share.

pub mod approved_node_list;
pub mod conditions;
pub mod duration;
pub mod render_job;
pub mod video_foundry;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use approved_node_list::{ApprovedNodeList, ApprovedNodeListSpec, ApprovedNodeListStatus};
pub use render_job::{RenderJob, RenderJobSpec, RenderJobStatus};
pub use video_foundry::{VideoFoundry, VideoFoundrySpec, VideoFoundryStatus};

/// API group of every resource the operator serves.
pub const GROUP: &str = "videofoundry.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "videofoundry-operator";
/// Category that `kubectl get videofoundry` lists.
pub const CATEGORY: &str = "videofoundry";

/// The generated CustomResourceDefinitions, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        VideoFoundry::crd(),
        ApprovedNodeList::crd(),
        RenderJob::crd(),
    ]
}

/// Renders CRDs as one multi-document YAML stream, as `crds` prints and `crds/` stores them.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(crd)?);
    }
    Ok(out)
}

/// File name under `crds/` for one CRD.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}

/// A reference to an object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A key of a ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap, in the namespace of the referring resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the ConfigMap's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Regex of a canonical lowercase UUID. Upper case is refused so that one user never has two
/// spellings (and so two storage prefixes or database identities).
pub const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// Regex of a Go-style duration as Kubernetes writes them: `90s`, `30m`, `1h30m`, `2160h`.
pub const DURATION_PATTERN: &str = "^([0-9]{1,6}(h|m|s|ms))+$";

/// Regex of a full 40-hex git commit SHA.
pub const COMMIT_PATTERN: &str = "^[0-9a-f]{40}$";

/// Lowercase hex SHA-256 of `namespace/name`: the stable, collision-free part of every name the
/// operator derives for a foundry outside Kubernetes (database roles, bucket policy ids).
pub fn foundry_digest(namespace: &str, name: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(
        format!("{namespace}/{name}").as_bytes(),
    ))
}

/// Test helpers shared by the unit tests of several modules.
#[cfg(test)]
pub(crate) mod test_support {
    use super::VideoFoundry;
    use super::video_foundry::VideoFoundrySpec;

    /// The spec of the VideoFoundry in `examples/<file>`.
    pub(crate) fn example_spec(file: &str) -> VideoFoundrySpec {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(file);
        let foundry: VideoFoundry =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        foundry.spec
    }
}
