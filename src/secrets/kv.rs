//! KV v2 reads and check-and-set writes of a foundry's secrets.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::error::ClientError;

use super::error::SecretsError;
use super::vault::VaultSession;

/// The fields of one KV secret. Every value is a [`SecretString`]; `Debug` lists field names only.
#[derive(Default, Clone)]
pub struct SecretFields(BTreeMap<String, SecretString>);

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretFields {
    /// An empty set of fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a field (builder style).
    pub fn with(mut self, field: &str, value: SecretString) -> Self {
        self.0.insert(field.to_owned(), value);
        self
    }

    /// Adds or replaces a field.
    pub fn insert(&mut self, field: &str, value: SecretString) {
        self.0.insert(field.to_owned(), value);
    }

    /// Removes a field.
    pub fn remove(&mut self, field: &str) -> Option<SecretString> {
        self.0.remove(field)
    }

    /// A field's value.
    pub fn get(&self, field: &str) -> Option<&SecretString> {
        self.0.get(field)
    }

    /// A field's value, or [`SecretsError::MissingField`] naming `path`.
    pub fn require(&self, path: &str, field: &'static str) -> Result<&SecretString, SecretsError> {
        self.get(field).ok_or_else(|| SecretsError::MissingField {
            path: path.to_owned(),
            field,
        })
    }

    /// Field names, for logs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The JSON object sent to Vault. Built only at the moment of the write.
    fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Value::String(v.expose_secret().to_owned()),
                )
            })
            .collect()
    }

    fn from_json(data: serde_json::Value) -> Self {
        let serde_json::Value::Object(map) = data else {
            return Self::default();
        };
        Self(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, SecretString::from(s))),
                    serde_json::Value::Null => None,
                    other => Some((k, SecretString::from(other.to_string()))),
                })
                .collect(),
        )
    }
}

/// A secret as read, with the version a check-and-set update must name.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// KV version of `fields`.
    pub version: u64,
    /// The secret.
    pub fields: SecretFields,
}

/// True for "no such secret" (and for a latest version that was deleted or destroyed).
fn is_absent(error: &ClientError) -> bool {
    match error {
        ClientError::APIError { code: 404, errors } => {
            errors.iter().all(|e| !e.contains("no handler for route"))
        }
        // A deleted or destroyed version answers 404 with metadata instead of `errors`.
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code: 404, .. },
        } => true,
        _ => false,
    }
}

/// Reads the latest version of `path` with its version number, `None` when it does not exist.
/// (vaultrs' `kv2::read` drops the metadata, so this runs its request type directly.)
pub async fn read_latest(
    session: &VaultSession,
    mount: &str,
    path: &str,
) -> Result<Option<Versioned>, SecretsError> {
    read(session, mount, path, None).await
}

/// Reads one version of `path`; `None` when it does not exist or was deleted or destroyed.
pub async fn read_version(
    session: &VaultSession,
    mount: &str,
    path: &str,
    version: u64,
) -> Result<Option<Versioned>, SecretsError> {
    read(session, mount, path, Some(version)).await
}

async fn read(
    session: &VaultSession,
    mount: &str,
    path: &str,
    version: Option<u64>,
) -> Result<Option<Versioned>, SecretsError> {
    let full_path = format!("{mount}/data/{path}");
    let request = ReadSecretRequest::builder()
        .mount(mount)
        .path(path)
        .version(version)
        .build()
        .map_err(|e| SecretsError::Configuration(e.to_string()))?;
    match vaultrs::api::exec_with_result(session.client(), request).await {
        Ok(response) if response.data.is_null() || response.metadata.destroyed => Ok(None),
        Ok(response) => Ok(Some(Versioned {
            version: response.metadata.version,
            fields: SecretFields::from_json(response.data),
        })),
        Err(error) if is_absent(&error) => Ok(None),
        Err(error) => Err(session
            .refine_denied(session.error(&error, "read", &full_path), mount)
            .await),
    }
}

/// Writes `fields` to `path` only if its current version is `expected_version` (0: only if it
/// does not exist yet). Returns the new version; a lost race is [`SecretsError::WriteConflict`].
pub async fn write_cas(
    session: &VaultSession,
    mount: &str,
    path: &str,
    fields: &SecretFields,
    expected_version: u64,
) -> Result<u64, SecretsError> {
    let full_path = format!("{mount}/data/{path}");
    let cas = u32::try_from(expected_version).map_err(|_| SecretsError::WriteConflict {
        path: full_path.clone(),
        expected_version,
    })?;
    let options = SetSecretRequestOptions { cas };
    match vaultrs::kv2::set_with_options(session.client(), mount, path, &fields.to_json(), options)
        .await
    {
        Ok(metadata) => {
            tracing::debug!(path = %full_path, version = metadata.version, fields = ?fields, "wrote secret");
            Ok(metadata.version)
        }
        Err(error) => Err(match session.error(&error, "write", &full_path) {
            SecretsError::WriteConflict { path, .. } => SecretsError::WriteConflict {
                path,
                expected_version,
            },
            other => session.refine_denied(other, mount).await,
        }),
    }
}

/// Returns the secret at `path`, creating it with `generate()` when it does not exist. Two
/// operators racing both end with the one value that won the check-and-set.
pub async fn ensure_generated(
    session: &VaultSession,
    mount: &str,
    path: &str,
    generate: impl Fn() -> SecretFields,
) -> Result<Versioned, SecretsError> {
    if let Some(existing) = read_latest(session, mount, path).await? {
        return Ok(existing);
    }
    let fields = generate();
    match write_cas(session, mount, path, &fields, 0).await {
        Ok(version) => Ok(Versioned { version, fields }),
        Err(SecretsError::WriteConflict { .. }) => read_latest(session, mount, path)
            .await?
            .ok_or_else(|| SecretsError::WriteConflict {
                path: format!("{mount}/data/{path}"),
                expected_version: 0,
            }),
        Err(other) => Err(other),
    }
}

/// Permanently destroys the given versions of `path` (after a rotation's grace period).
pub async fn destroy_versions(
    session: &VaultSession,
    mount: &str,
    path: &str,
    versions: Vec<u64>,
) -> Result<(), SecretsError> {
    if versions.is_empty() {
        return Ok(());
    }
    vaultrs::kv2::destroy_versions(session.client(), mount, path, versions)
        .await
        .map_err(|e| {
            session.error(
                &e,
                "destroy old versions",
                &format!("{mount}/destroy/{path}"),
            )
        })
}
