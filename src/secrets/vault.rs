//! A logged-in Vault session (vaultrs over rustls), and the few raw HTTP calls vaultrs lacks.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
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
/// it at each login). The error says how to log in from outside a cluster.
pub fn read_service_account_token(path: &std::path::Path) -> Result<SecretString, SecretsError> {
    std::fs::read_to_string(path)
        .map(|token| SecretString::from(token.trim().to_owned()))
        .map_err(|e| {
            SecretsError::Configuration(format!(
                "cannot read the service-account token at {}: {}; outside a cluster set vault.tokenFile or vault.serviceAccount in the operator configuration",
                path.display(),
                e.kind()
            ))
        })
}

/// Where the operator gets the service-account JWT for Vault's Kubernetes auth, so it can log
/// in from anywhere: the token mounted in its pod (default), a token file, or a token requested
/// through the TokenRequest API for a named ServiceAccount (outside a cluster). Requested tokens
/// are kept until a fifth of their lifetime remains, so a foundry at rest requests none.
pub struct ServiceAccountJwt {
    source: JwtSource,
    cached: tokio::sync::Mutex<Option<(SecretString, Timestamp)>>,
}

enum JwtSource {
    File(std::path::PathBuf),
    TokenRequest {
        client: kube::Client,
        account: crate::config::ServiceAccountName,
        audiences: Vec<String>,
        expiration_seconds: i64,
    },
}

impl std::fmt::Debug for ServiceAccountJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            JwtSource::File(path) => write!(f, "ServiceAccountJwt(file {})", path.display()),
            JwtSource::TokenRequest { account, .. } => write!(
                f,
                "ServiceAccountJwt(TokenRequest for {}/{})",
                account.namespace, account.name
            ),
        }
    }
}

impl ServiceAccountJwt {
    /// The token of the pod the operator runs in.
    pub fn in_pod() -> Self {
        Self::file(SERVICE_ACCOUNT_TOKEN_PATH)
    }

    /// A token file, re-read at each login.
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            source: JwtSource::File(path.into()),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// As `config` says: `tokenFile`, else a TokenRequest for `serviceAccount` through `client`,
    /// else the pod's token.
    pub fn from_config(config: &crate::config::VaultLoginConfig, client: &kube::Client) -> Self {
        if let Some(path) = &config.token_file {
            return Self::file(path.clone());
        }
        match &config.service_account {
            Some(account) => Self {
                source: JwtSource::TokenRequest {
                    client: client.clone(),
                    account: account.clone(),
                    audiences: config.audiences.clone(),
                    expiration_seconds: config.token_expiration_seconds,
                },
                cached: tokio::sync::Mutex::new(None),
            },
            None => Self::in_pod(),
        }
    }

    /// The JWT to log in with.
    pub async fn jwt(&self) -> Result<SecretString, SecretsError> {
        match &self.source {
            JwtSource::File(path) => read_service_account_token(path),
            JwtSource::TokenRequest {
                client,
                account,
                audiences,
                expiration_seconds,
            } => {
                let mut cached = self.cached.lock().await;
                let now = Timestamp::now();
                let margin = k8s_openapi::jiff::SignedDuration::from_secs(expiration_seconds / 5);
                if let Some((token, expires)) = cached.as_ref()
                    && expires.checked_sub(margin).is_ok_and(|renew| now < renew)
                {
                    return Ok(token.clone());
                }
                let (token, expires) =
                    request_token(client, account, audiences, *expiration_seconds).await?;
                *cached = Some((token.clone(), expires));
                Ok(token)
            }
        }
    }
}

/// Asks the API server for a token of `account` (`create` on `serviceaccounts/token`).
async fn request_token(
    client: &kube::Client,
    account: &crate::config::ServiceAccountName,
    audiences: &[String],
    expiration_seconds: i64,
) -> Result<(SecretString, Timestamp), SecretsError> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), &account.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.to_vec(),
            expiration_seconds: Some(expiration_seconds),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(&account.name, &kube::api::PostParams::default(), &request)
        .await
        .map_err(|e| {
            SecretsError::Configuration(format!(
                "cannot request a token for ServiceAccount {}/{} (TokenRequest API): {}",
                account.namespace,
                account.name,
                kube_error_text(&e)
            ))
        })?;
    let status = answer.status.ok_or_else(|| {
        SecretsError::Configuration(format!(
            "the TokenRequest for ServiceAccount {}/{} returned no token",
            account.namespace, account.name
        ))
    })?;
    Ok((
        SecretString::from(status.token),
        status.expiration_timestamp.0,
    ))
}

/// An API error's message (never a token: the request body is not echoed).
fn kube_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_configured_token_file_is_read_at_each_login_and_a_missing_one_says_what_to_set() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "header.payload.signature\n").unwrap();
        let config = crate::config::VaultLoginConfig {
            token_file: Some(path.clone()),
            ..crate::config::VaultLoginConfig::default()
        };
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let source = ServiceAccountJwt::from_config(&config, &client);
        assert_eq!(
            source.jwt().await.unwrap().expose_secret(),
            "header.payload.signature"
        );
        std::fs::write(&path, "rotated").unwrap();
        assert_eq!(source.jwt().await.unwrap().expose_secret(), "rotated");
        std::fs::remove_file(&path).unwrap();
        let error = source.jwt().await.unwrap_err().to_string();
        assert!(error.contains("vault.tokenFile"), "{error}");
        assert!(!error.contains("rotated"));
    }
}
