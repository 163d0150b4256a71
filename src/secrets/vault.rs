//! A logged-in Vault session (vaultrs over rustls), and the few raw HTTP calls vaultrs lacks.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};

use super::error::{SecretsError, classify, classify_status};

/// Where the operator's service-account token is mounted in its pod.
pub const SERVICE_ACCOUNT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// How long one Vault request may take before the server counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How the operator logs in to Vault.
pub enum VaultLogin {
    /// Kubernetes auth with the operator's service-account token (production).
    Kubernetes {
        /// Mount path of the auth method, e.g. `kubernetes`.
        mount: String,
        /// Vault role, e.g. `videofoundry-operator`.
        role: String,
        /// The service-account JWT.
        jwt: SecretString,
    },
    /// A token read from a Kubernetes Secret: developer mode only, reported as a relaxation by
    /// [`crate::security_profile::resolve`].
    Token(SecretString),
}

impl std::fmt::Debug for VaultLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kubernetes { mount, role, .. } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .finish_non_exhaustive(),
            Self::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Reads a service-account token file (the projected token is rotated by the kubelet, so read
/// it at each login).
pub fn read_service_account_token(path: &std::path::Path) -> Result<SecretString, SecretsError> {
    std::fs::read_to_string(path)
        .map(|token| SecretString::from(token.trim().to_owned()))
        .map_err(|e| {
            SecretsError::Configuration(format!(
                "cannot read the service-account token at {}: {}",
                path.display(),
                e.kind()
            ))
        })
}

/// A Vault client holding a token. Its `Debug` shows the address only.
pub struct VaultSession {
    client: VaultClient,
    address: String,
}

impl std::fmt::Debug for VaultSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSession")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl VaultSession {
    /// A client for `address` that trusts the system roots plus, when given, the PEM CA bundle
    /// `ca_pem` (the content of `spec.vault.caSecretRef`), and holds `token` (empty before a
    /// login). Environment variables such as `VAULT_SKIP_VERIFY` are not consulted.
    pub fn new(
        address: &str,
        ca_pem: Option<&[u8]>,
        token: &SecretString,
    ) -> Result<Self, SecretsError> {
        crate::install_crypto_provider();
        url::Url::parse(address).map_err(|_| {
            SecretsError::Configuration(format!("the Vault address {address:?} is not a URL"))
        })?;
        let settings = VaultClientSettingsBuilder::default()
            .address(address)
            .token(token.expose_secret())
            .ca_certs(Vec::new())
            .verify(true)
            .timeout(Some(REQUEST_TIMEOUT))
            .build()
            .map_err(|e| SecretsError::Configuration(e.to_string()))?;
        let mut client = VaultClient::new(settings).map_err(|e| {
            SecretsError::Configuration(format!("cannot build the Vault client: {e}"))
        })?;
        if let Some(pem) = ca_pem {
            // vaultrs reads extra CAs from files only; the operator has the PEM in memory (from
            // a Secret), so it swaps in an HTTP client built the same way plus that bundle.
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| {
                    SecretsError::Configuration(
                        "the Vault CA bundle holds no PEM certificate".to_owned(),
                    )
                })?;
            let http = reqwest::ClientBuilder::new()
                .tls_backend_rustls()
                .timeout(REQUEST_TIMEOUT)
                .tls_certs_merge(certs)
                .build()
                .map_err(|e| {
                    SecretsError::Configuration(format!("cannot build the Vault client: {e}"))
                })?;
            let base = client.http.base.clone();
            client.http = rustify::clients::reqwest::Client::new(&base, http);
        }
        Ok(Self {
            client,
            address: address.trim_end_matches('/').to_owned(),
        })
    }

    /// Logs in and returns a session holding the resulting token.
    pub async fn login(
        address: &str,
        ca_pem: Option<&[u8]>,
        login: &VaultLogin,
    ) -> Result<Self, SecretsError> {
        match login {
            VaultLogin::Token(token) => {
                let session = Self::new(address, ca_pem, token)?;
                // A cheap call that every valid token may make, so a bad token fails here.
                vaultrs::token::lookup_self(&session.client)
                    .await
                    .map_err(|e| login_error(&e, &session.address, "token"))?;
                Ok(session)
            }
            VaultLogin::Kubernetes { mount, role, jwt } => {
                let mut session = Self::new(address, ca_pem, &SecretString::from(""))?;
                let auth = vaultrs::auth::kubernetes::login(
                    &session.client,
                    mount,
                    role,
                    jwt.expose_secret(),
                )
                .await
                .map_err(|e| login_error(&e, &session.address, "kubernetes"))?;
                session.client.set_token(&auth.client_token);
                tracing::debug!(mount, role, "logged in to Vault with Kubernetes auth");
                Ok(session)
            }
        }
    }

    /// The underlying vaultrs client.
    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Classifies a vaultrs error of `operation` on `path`.
    pub(crate) fn error(
        &self,
        error: &vaultrs::error::ClientError,
        operation: &'static str,
        path: &str,
    ) -> SecretsError {
        classify(error, &self.address, operation, path)
    }

    /// A 403 on a KV path can also mean the mount does not exist (Vault checks policies before
    /// routing). `sys/internal/ui/mounts/<mount>` answers any token with some capability under
    /// an existing mount, so when it too says 403 the mount is missing from this token's view.
    pub(crate) async fn refine_denied(&self, error: SecretsError, mount: &str) -> SecretsError {
        if !matches!(error, SecretsError::PermissionDenied { .. }) {
            return error;
        }
        let probe = self
            .raw(
                reqwest::Method::GET,
                &format!("sys/internal/ui/mounts/{mount}"),
                "look up mount",
                None,
            )
            .await;
        match probe {
            Err(SecretsError::PermissionDenied { .. } | SecretsError::MountMissing { .. }) => {
                SecretsError::MountMissing {
                    mount: mount.to_owned(),
                }
            }
            _ => error,
        }
    }

    /// Sends one request to the Vault HTTP API directly and returns the whole response envelope
    /// (`data`, `lease_id`, ...). Used only where vaultrs drops part of the answer: its
    /// `database::role::creds` returns the username and password but not the lease id that
    /// revocation needs, and it has no `sys/leases` endpoints.
    pub(crate) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        operation: &'static str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, SecretsError> {
        let url = format!("{}/v1/{}", self.address, path);
        let mut request = self
            .client
            .http
            .http
            .request(method, &url)
            .header("X-Vault-Request", "true")
            .header("X-Vault-Token", self.client.settings().token.as_str());
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let unreachable = || SecretsError::Unreachable {
            address: self.address.clone(),
            operation,
        };
        let response = request.send().await.map_err(|_| unreachable())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|_| unreachable())?;
        let envelope: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(envelope);
        }
        let errors: Vec<String> = envelope
            .get("errors")
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .unwrap_or_default();
        Err(classify_status(
            status,
            &errors,
            &self.address,
            operation,
            path,
        ))
    }
}

fn login_error(
    error: &vaultrs::error::ClientError,
    address: &str,
    method: &'static str,
) -> SecretsError {
    match classify(error, address, "login", method) {
        SecretsError::Rejected { status, .. } => SecretsError::LoginFailed { method, status },
        SecretsError::PermissionDenied { .. } => SecretsError::LoginFailed {
            method,
            status: 403,
        },
        other => other,
    }
}
