//! The controller error: each step's error wrapped with a bounded category for conditions,
//! Events and metrics.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed (network, RBAC, conflict).
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The object cannot be handled as it is (no namespace, no name).
    #[error("object is missing {0}")]
    MissingMetadata(&'static str),
    /// The object does not match the schema this operator knows (normally prevented by the CRD).
    #[error("cannot read the object: {0}")]
    Unreadable(String),
    /// Status could not be serialized.
    #[error("cannot serialize status: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl Error {
    /// A bounded PascalCase reason, used as condition reason, Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::MissingMetadata(_) => "MissingMetadata",
            Self::Unreadable(_) => "InvalidObject",
            Self::Serialize(_) => "InternalError",
        }
    }

    /// Permanent errors wait for a change of the object instead of retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Kube(_) => false,
            Self::MissingMetadata(_) | Self::Unreadable(_) | Self::Serialize(_) => true,
        }
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Self::Kube(error)
    }
}
