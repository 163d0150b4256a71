//! Errors of the secrets layer, and how each maps onto the `SecretsReady` condition.
//!
//! No variant holds a secret or the text of a Vault response: Vault's error strings can quote
//! request data, so they are only inspected to classify the failure, never kept. Messages name
//! the operation and the path (paths are not secret).

use vaultrs::error::ClientError;

/// What went wrong talking to Vault or rotating a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No answer from the server (connection refused, DNS, TLS, timeout).
    #[error("Vault at {address} is unreachable during {operation}")]
    Unreachable {
        /// The server address.
        address: String,
        /// What was being done.
        operation: &'static str,
    },
    /// The server answered that it is sealed.
    #[error("Vault at {address} is sealed")]
    Sealed {
        /// The server address.
        address: String,
    },
    /// The token's policies do not allow the request.
    #[error("Vault denied {operation} on {path}: permission denied")]
    PermissionDenied {
        /// What was being done.
        operation: &'static str,
        /// The request path.
        path: String,
    },
    /// Nothing is mounted where the foundry expects an engine (or the operator cannot see it).
    #[error(
        "no secrets engine is mounted at {mount}/ (or the operator's policy does not cover it)"
    )]
    MountMissing {
        /// The mount path.
        mount: String,
    },
    /// A check-and-set write lost against a concurrent writer.
    #[error("{path} was changed by another writer (expected version {expected_version})")]
    WriteConflict {
        /// The KV path.
        path: String,
        /// The version this writer based its update on.
        expected_version: u64,
    },
    /// Kubernetes auth or token login refused.
    #[error("Vault login with {method} failed (HTTP {status})")]
    LoginFailed {
        /// `kubernetes` or `token`.
        method: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// Any other refusal by the server.
    #[error("Vault refused {operation} on {path} (HTTP {status})")]
    Rejected {
        /// What was being done.
        operation: &'static str,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A stored secret lacks a field the operator needs (its value is not shown).
    #[error("secret {path} has no field {field}")]
    MissingField {
        /// The KV path.
        path: String,
        /// The missing field.
        field: &'static str,
    },
    /// A stored field has a value the operator cannot use (its value is not shown).
    #[error("secret {path} has an unusable value in field {field}")]
    InvalidField {
        /// The KV path (or Secret key prefix).
        path: String,
        /// The field.
        field: &'static str,
    },
    /// The foundry's Vault settings are unusable.
    #[error(transparent)]
    InvalidPath(#[from] super::layout::InvalidVaultPath),
    /// The operator's own configuration (address, CA, token file) is unusable.
    #[error("Vault client configuration: {0}")]
    Configuration(String),
    /// A Postgres step of a rotation failed.
    #[error("Postgres step {step} of the rotation failed: {category}")]
    Database {
        /// Which step.
        step: &'static str,
        /// The sqlx error kind, without the server's message (which may quote SQL).
        category: &'static str,
    },
}

impl SecretsError {
    /// The `SecretsReady=False` reason: PascalCase and bounded.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "VaultUnreachable",
            Self::Sealed { .. } => "VaultSealed",
            Self::PermissionDenied { .. } => "VaultPermissionDenied",
            Self::MountMissing { .. } => "VaultMountMissing",
            Self::WriteConflict { .. } => "VaultWriteConflict",
            Self::LoginFailed { .. } => "VaultLoginFailed",
            Self::Rejected { .. } => "VaultRequestFailed",
            Self::MissingField { .. } | Self::InvalidField { .. } => "VaultSecretMalformed",
            Self::InvalidPath(_) | Self::Configuration(_) => "VaultConfigInvalid",
            Self::Database { .. } => "SecretRotationFailed",
        }
    }

    /// Transient failures are retried with backoff; the others wait for a spec change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Sealed { .. }
                | Self::WriteConflict { .. }
                | Self::Database { .. }
                | Self::Rejected { .. }
        )
    }
}

/// Classifies a vaultrs error. `address` and `path` are for the message; the server's own
/// error strings are read only to tell a sealed server and a missing route from other failures.
pub(crate) fn classify(
    error: &ClientError,
    address: &str,
    operation: &'static str,
    path: &str,
) -> SecretsError {
    match error {
        ClientError::APIError { code, errors } => {
            classify_status(*code, errors, address, operation, path)
        }
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code, .. } => {
                classify_status(*code, &[], address, operation, path)
            }
            _ => SecretsError::Unreachable {
                address: address.to_owned(),
                operation,
            },
        },
        _ => SecretsError::Rejected {
            operation,
            path: path.to_owned(),
            status: 0,
        },
    }
}

/// Classifies an HTTP status and Vault's `errors` array (not kept).
pub(crate) fn classify_status(
    status: u16,
    errors: &[String],
    address: &str,
    operation: &'static str,
    path: &str,
) -> SecretsError {
    let mentions = |needle: &str| errors.iter().any(|e| e.contains(needle));
    match status {
        // Only Vault's own answer counts: a proxy's bare 503 is an unreachable server.
        503 if mentions("sealed") => SecretsError::Sealed {
            address: address.to_owned(),
        },
        503 => SecretsError::Unreachable {
            address: address.to_owned(),
            operation,
        },
        403 => SecretsError::PermissionDenied {
            operation,
            path: path.to_owned(),
        },
        404 if mentions("no handler for route") => SecretsError::MountMissing {
            mount: path.split('/').next().unwrap_or_default().to_owned(),
        },
        400 if mentions("check-and-set") => SecretsError::WriteConflict {
            path: path.to_owned(),
            expected_version: 0,
        },
        _ => SecretsError::Rejected {
            operation,
            path: path.to_owned(),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_map_to_bounded_reasons() {
        let sealed = classify_status(503, &["Vault is sealed".into()], "http://v", "read", "p");
        assert_eq!(sealed.reason(), "VaultSealed");
        let denied = classify_status(403, &["permission denied".into()], "http://v", "read", "p");
        assert_eq!(denied.reason(), "VaultPermissionDenied");
        let missing = classify_status(
            404,
            &[r#"no handler for route "kv/data/x". route entry not found."#.into()],
            "http://v",
            "read",
            "kv/data/x",
        );
        assert_eq!(missing.reason(), "VaultMountMissing");
        assert!(missing.to_string().contains("kv/"));
        let conflict = classify_status(
            400,
            &["check-and-set parameter did not match the current version".into()],
            "http://v",
            "write",
            "p",
        );
        assert_eq!(conflict.reason(), "VaultWriteConflict");
    }

    #[test]
    fn the_servers_error_text_is_never_kept() {
        let error = classify_status(
            500,
            &["s3cr3t-in-server-text".into()],
            "http://v",
            "write",
            "p",
        );
        assert!(!format!("{error} {error:?}").contains("s3cr3t"));
    }
}
