//! Reading the foundry's provisioning credentials from Kubernetes Secrets in its namespace. The
//! errors name the Secret and key to fix and never carry a value.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use secrecy::SecretString;

use super::status::StepOutcome;

/// Why a credential could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The Secret does not exist (yet).
    #[error("Secret {namespace}/{name} does not exist")]
    SecretMissing {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret has no such key.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key looked for.
        key: String,
    },
    /// The value is not UTF-8 text.
    #[error("key {key:?} of Secret {namespace}/{name} is not UTF-8 text")]
    NotText {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key.
        key: String,
    },
    /// The API request failed (RBAC, network).
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    Api {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl CredentialError {
    /// The step outcome for `condition`: a missing Secret may be created any moment (GitOps
    /// tools apply in parallel), so every credential failure is retried with backoff.
    pub fn outcome(&self, condition: &'static str) -> StepOutcome {
        let reason = match self {
            Self::SecretMissing { .. } | Self::KeyMissing { .. } | Self::NotText { .. } => {
                "CredentialsMissing"
            }
            Self::Api { .. } => "CredentialsUnreadable",
        };
        StepOutcome::failed(condition, reason, self.to_string(), true)
    }
}

/// The Secrets of one namespace.
pub struct SecretReader {
    api: Api<Secret>,
    namespace: String,
}

impl SecretReader {
    /// Reads Secrets of `namespace`.
    pub fn new(client: &Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// Reads Secret `name` once; take its keys from the result.
    pub async fn secret(&self, name: &str) -> Result<SecretData, CredentialError> {
        let secret = self
            .api
            .get_opt(name)
            .await
            .map_err(|source| CredentialError::Api {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| CredentialError::SecretMissing {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            })?;
        Ok(SecretData {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            // `stringData` is write-only: the API server folds it into `data`.
            data: secret.data.unwrap_or_default(),
        })
    }

    /// The value of `key` in Secret `name` (one read).
    pub async fn value(&self, name: &str, key: &str) -> Result<SecretString, CredentialError> {
        self.secret(name).await?.value(key)
    }

    /// The value of `key` in Secret `name` as bytes (a CA certificate, say).
    pub async fn bytes(&self, name: &str, key: &str) -> Result<Vec<u8>, CredentialError> {
        self.secret(name).await?.bytes(key)
    }
}

/// The data of one Secret, read once. `Debug` is deliberately not derived: it holds values.
pub struct SecretData {
    namespace: String,
    name: String,
    data: std::collections::BTreeMap<String, k8s_openapi::ByteString>,
}

impl SecretData {
    /// The value of `key` as text.
    pub fn value(&self, key: &str) -> Result<SecretString, CredentialError> {
        String::from_utf8(self.bytes(key)?)
            .map(SecretString::from)
            .map_err(|_| CredentialError::NotText {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                key: key.to_owned(),
            })
    }

    /// The value of `key` as bytes.
    pub fn bytes(&self, key: &str) -> Result<Vec<u8>, CredentialError> {
        self.optional_bytes(key)
            .ok_or_else(|| CredentialError::KeyMissing {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                key: key.to_owned(),
            })
    }

    /// The value of an optional `key` as bytes.
    pub fn optional_bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.data.get(key).map(|value| value.0.clone())
    }
}
