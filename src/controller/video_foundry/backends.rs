//! The foundry's external backends, in the order they depend on each other: secrets (Vault, or
//! a Kubernetes Secret in developer mode) hold the application password; the database is
//! provisioned with it (and rotated by it); the bucket is hardened. Each step reports its own
//! condition; a failure never hides what the other steps found.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;

use super::credentials::{CredentialError, SecretReader};
use super::status::StepOutcome;
use crate::crd::VideoFoundry;
use crate::crd::conditions::types::{DATABASE_READY, SECRETS_READY, STORAGE_READY};
use crate::crd::video_foundry::ExecutionMode;
use crate::metrics::{RotatedSecret, RotationResult};
use crate::postgres::{self, FoundryDatabase, ProvisionInput, ProvisionReport, TenantKey};
use crate::secrets::database::{CredentialTtl, DatabaseConnection, ensure_database_engine};
use crate::secrets::database_rotation::{
    PASSWORD, ensure_database_password, password_candidates, reconcile_stored_password,
};
use crate::secrets::kv::SecretFields;
use crate::secrets::plan::{LoginPlan, SecretsPlan, plan, secrets_step};
use crate::secrets::rotation::{
    ROTATE_ANNOTATION, RotationOutcome, RotationPolicy, reconcile_jwt_secret,
};
use crate::secrets::tenant_key::{CLAIM_KEY, accepted_tenant_keys, generate_claim_key};
use crate::secrets::{
    SecretKey, SecretsError, ServiceAccountJwt, VaultLogin, VaultSession, access,
};
use crate::security_profile::{DATABASE_PLAINTEXT_RELAXATION, database_url_requires_tls};
use crate::storage::{FoundryStorage, S3Connection, S3Storage, storage_outcome};

/// Key of the access key id in the storage credentials Secret.
pub const ACCESS_KEY_ID_KEY: &str = "accessKeyId";
/// Key of the secret access key in the storage credentials Secret.
pub const SECRET_ACCESS_KEY_KEY: &str = "secretAccessKey";
/// Optional key of a PEM CA bundle for a private S3 endpoint, in the same Secret.
pub const STORAGE_CA_KEY: &str = "ca.crt";
/// Lifetime of the Vault tokens the platform backend gets through Kubernetes auth.
pub const BACKEND_TOKEN_TTL: &str = "1h";
/// How long a backend may take to answer before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of the secrets and database steps, and the rotation times for the status.
pub struct SecretsAndDatabase {
    /// `SecretsReady`.
    pub secrets: StepOutcome,
    /// `DatabaseReady`.
    pub database: StepOutcome,
    /// When generated secrets were last rotated (Vault only).
    pub last_rotation: Option<Time>,
    /// When the next rotation is due (Vault only).
    pub next_rotation: Option<Time>,
    /// The rotation checks that ran, for the metrics.
    pub rotations: Vec<(RotatedSecret, RotationResult)>,
}

/// A rotation step's result as a metric value.
fn rotation_result<E>(outcome: &Result<RotationOutcome, E>) -> RotationResult {
    match outcome {
        Ok(RotationOutcome::Rotated { .. }) => RotationResult::Rotated,
        Ok(RotationOutcome::Unchanged { .. }) => RotationResult::Unchanged,
        Err(_) => RotationResult::Failed,
    }
}

/// Hardens the foundry's bucket (or its prefix of a shared bucket).
pub async fn storage_step(reader: &SecretReader, foundry: &VideoFoundry) -> StepOutcome {
    match storage_connection(reader, foundry).await {
        Ok((connection, storage)) => ensure_storage(&connection, &storage).await,
        Err(failure) => failure,
    }
}

/// The foundry's storage and the connection to it, with the credentials from its Secret.
pub(super) async fn storage_connection(
    reader: &SecretReader,
    foundry: &VideoFoundry,
) -> Result<(S3Connection, FoundryStorage), StepOutcome> {
    let namespace = foundry.namespace().unwrap_or_default();
    let storage = FoundryStorage::from_spec(&namespace, &foundry.name_any(), &foundry.spec)
        .map_err(|e| StepOutcome::failed(STORAGE_READY, "InvalidSpec", e.to_string(), false))?;
    let secret = &foundry.spec.storage.credentials_secret_ref.name;
    let credentials = async {
        let data = reader.secret(secret).await?;
        let key_id = data.value(ACCESS_KEY_ID_KEY)?;
        let secret_key = data.value(SECRET_ACCESS_KEY_KEY)?;
        Ok::<_, CredentialError>((key_id, secret_key, data.optional_bytes(STORAGE_CA_KEY)))
    };
    let (key_id, secret_key, ca) = credentials.await.map_err(|e| e.outcome(STORAGE_READY))?;
    let connection = S3Connection::from_spec(
        &foundry.spec.storage,
        key_id.expose_secret().to_owned(),
        secret_key,
        ca,
    );
    Ok((connection, storage))
}

/// Ensures `storage` over `connection` and reports it as `StorageReady`.
pub async fn ensure_storage(connection: &S3Connection, storage: &FoundryStorage) -> StepOutcome {
    let result = match S3Storage::new(connection) {
        Ok(s3) => s3.ensure(storage).await,
        Err(error) => Err(error),
    };
    let repairs = result
        .as_ref()
        .map(|report| report.changes.clone())
        .unwrap_or_default();
    storage_outcome(&result, storage).with_repairs(repairs)
}

/// The Kubernetes auth mount of the backend's role: the spec's `backendAuthMountPath`, else the
/// operator's own login mount, else `kubernetes`.
pub fn backend_auth_mount(vault: &crate::crd::video_foundry::VaultSpec) -> &str {
    vault
        .backend_auth_mount_path
        .as_deref()
        .or(vault
            .auth
            .kubernetes
            .as_ref()
            .map(|auth| auth.mount_path.as_str()))
        .unwrap_or("kubernetes")
}

/// Secrets first (they hold the application password), then the database. `jwt` is where the
/// operator's service-account token for Vault's Kubernetes auth comes from.
pub async fn secrets_and_database_steps(
    client: &Client,
    jwt: &ServiceAccountJwt,
    reader: &SecretReader,
    foundry: &VideoFoundry,
    now: Timestamp,
) -> SecretsAndDatabase {
    let namespace = foundry.namespace().unwrap_or_default();
    let name = foundry.name_any();
    let plan = match plan(&namespace, &name, &foundry.spec) {
        Ok(plan) => plan,
        Err(error) => {
            let message = error.to_string();
            return SecretsAndDatabase {
                secrets: StepOutcome::failed(SECRETS_READY, "InvalidSpec", &message, false),
                database: not_attempted(&message),
                last_rotation: None,
                next_rotation: None,
                rotations: Vec::new(),
            };
        }
    };
    let database = match FoundryDatabase::for_foundry(&namespace, &name) {
        Ok(database) => database,
        Err(error) => {
            let message = error.to_string();
            return SecretsAndDatabase {
                secrets: secrets_step(&Ok(plan)),
                database: StepOutcome::failed(DATABASE_READY, error.category(), message, false),
                last_rotation: None,
                next_rotation: None,
                rotations: Vec::new(),
            };
        }
    };
    let reference = &foundry.spec.database.connection_secret_ref;
    let admin_url = reader
        .value(&reference.name, &reference.key)
        .await
        .map_err(|e| e.outcome(DATABASE_READY));
    let admin = match &admin_url {
        Ok(url) => connect_database(url, foundry).await,
        Err(failure) => Err(failure.clone()),
    };
    match &plan {
        SecretsPlan::Vault { .. } => {
            let admin = admin.and_then(|pool| admin_url.map(|url| (pool, url)));
            vault_steps(jwt, reader, foundry, plan, &database, admin, now).await
        }
        SecretsPlan::KubernetesSecret { secret_name } => {
            let password = developer_password(client, reader, foundry, secret_name).await;
            let (secrets, (password, key)) = match password {
                Ok(found) => (secrets_step(&Ok(plan.clone())), found),
                Err(failure) => {
                    let message = failure.message.clone();
                    return SecretsAndDatabase {
                        secrets: failure,
                        database: not_attempted(&message),
                        last_rotation: None,
                        next_rotation: None,
                        rotations: Vec::new(),
                    };
                }
            };
            let database = match admin {
                Ok(admin) => {
                    let outcome =
                        provision_step(&admin, &database, &password, std::slice::from_ref(&key))
                            .await;
                    admin.pool.close().await;
                    outcome
                }
                Err(failure) => failure,
            };
            SecretsAndDatabase {
                secrets,
                database,
                last_rotation: None,
                next_rotation: None,
                rotations: Vec::new(),
            }
        }
    }
}

/// `DatabaseReady` when the database step could not run for want of the password.
fn not_attempted(why: &str) -> StepOutcome {
    StepOutcome::failed(
        DATABASE_READY,
        "SecretsNotReady",
        format!("waiting for the application password: {why}"),
        false,
    )
}

/// Vault: log in, write the policies, keep the JWT secret and the application password (with
/// rotation), provision the database with that password, then configure dynamic credentials.
async fn vault_steps(
    jwt: &ServiceAccountJwt,
    reader: &SecretReader,
    foundry: &VideoFoundry,
    plan: SecretsPlan,
    database: &FoundryDatabase,
    admin: Result<(AdminPool, SecretString), StepOutcome>,
    now: Timestamp,
) -> SecretsAndDatabase {
    let mut result = SecretsAndDatabase {
        secrets: secrets_step(&Ok(plan.clone())),
        database: not_attempted("Vault was not reached"),
        last_rotation: None,
        next_rotation: None,
        rotations: Vec::new(),
    };
    let SecretsPlan::Vault {
        address,
        layout,
        login,
    } = &plan
    else {
        return result;
    };
    let Some(vault_spec) = &foundry.spec.vault else {
        return result;
    };
    let request = foundry.annotations().get(ROTATE_ANNOTATION).cloned();
    let policy = match RotationPolicy::from_spec(vault_spec) {
        Ok(policy) => policy,
        Err(error) => {
            result.secrets =
                StepOutcome::failed(SECRETS_READY, "InvalidSpec", error.to_string(), false);
            result.database.message = "spec.vault.rotationPeriod does not parse".to_owned();
            return result;
        }
    };
    let session = match vault_session(jwt, reader, address, login, vault_spec).await {
        Ok(session) => session,
        Err(failure) => {
            result.database.message = format!("Vault login failed: {}", failure.message);
            result.secrets = failure;
            return result;
        }
    };
    let mut rotations = Vec::new();
    let secrets = async {
        access::ensure_policies(&session, layout).await?;
        if let Some(account) = &vault_spec.backend_service_account {
            let mount = backend_auth_mount(vault_spec);
            let backend = access::BackendIdentity {
                namespace: foundry.namespace().unwrap_or_default(),
                service_account: account.clone(),
                token_ttl: BACKEND_TOKEN_TTL.to_owned(),
            };
            access::ensure_backend_auth_role(&session, mount, layout, &backend).await?;
        }
        let jwt = reconcile_jwt_secret(&session, layout, &policy, request.as_deref(), now).await;
        rotations.push((RotatedSecret::Jwt, rotation_result(&jwt)));
        let jwt = jwt?;
        let password = ensure_database_password(&session, layout, now).await?;
        Ok::<_, SecretsError>((jwt, password))
    };
    let secrets = secrets.await;
    result.rotations = rotations;
    let (jwt, stored) = match secrets {
        Ok(found) => found,
        Err(error) => {
            result.database.message = format!("Vault: {error}");
            result.secrets = secrets_step(&Err(error));
            return result;
        }
    };
    // During an interrupted rotation the pending password is the one Postgres must end with.
    let Some(password) = password_candidates(&stored.fields)
        .first()
        .map(|p| (*p).clone())
    else {
        result.secrets = secrets_step(&Err(SecretsError::MissingField {
            path: SecretKey::Database.relative_path(),
            field: PASSWORD,
        }));
        return result;
    };
    let keys = match accepted_tenant_keys(&stored.fields) {
        Ok(keys) => keys,
        Err(error) => {
            result.secrets = secrets_step(&Err(error));
            return result;
        }
    };
    let (admin, admin_url) = match admin {
        Ok(admin) => admin,
        Err(failure) => {
            result.database = failure;
            return result;
        }
    };
    result.database = provision_step(&admin, database, &password, &keys).await;
    if result.database.ready {
        let engine = async {
            let connection = DatabaseConnection {
                database: foundry.spec.database.database_name.clone(),
                ..DatabaseConnection::from_url(&admin_url)?
            };
            ensure_database_engine(
                &session,
                layout,
                &connection,
                &database.roles.application,
                &CredentialTtl::default(),
            )
            .await
        };
        if let Err(error) = engine.await {
            result.secrets = secrets_step(&Err(error));
        }
        let rotated = reconcile_stored_password(
            &session,
            &admin.pool,
            layout,
            database,
            &policy,
            request.as_deref(),
            now,
            stored,
        )
        .await;
        result
            .rotations
            .push((RotatedSecret::DatabasePassword, rotation_result(&rotated)));
        if let Err(error) = rotated {
            result.secrets = secrets_step(&Err(error));
        }
    }
    admin.pool.close().await;
    // The JWT secret and the password rotate together, so the JWT's outcome dates both.
    (result.last_rotation, result.next_rotation) = jwt.status_times(policy.period);
    result
}

pub(super) async fn vault_session(
    jwt: &ServiceAccountJwt,
    reader: &SecretReader,
    address: &str,
    login: &LoginPlan,
    vault_spec: &crate::crd::video_foundry::VaultSpec,
) -> Result<VaultSession, StepOutcome> {
    let ca = match &vault_spec.ca_secret_ref {
        Some(reference) => Some(
            reader
                .bytes(&reference.name, &reference.key)
                .await
                .map_err(|e| e.outcome(SECRETS_READY))?,
        ),
        None => None,
    };
    let login = match login {
        LoginPlan::Kubernetes { mount, role } => VaultLogin::Kubernetes {
            mount: mount.clone(),
            role: role.clone(),
            jwt: jwt.jwt().await.map_err(|e| secrets_step(&Err(e)))?,
        },
        LoginPlan::TokenFromSecret { secret, key } => VaultLogin::Token(
            reader
                .value(secret, key)
                .await
                .map_err(|e| e.outcome(SECRETS_READY))?,
        ),
    };
    VaultSession::login(address, ca.as_deref(), &login)
        .await
        .map_err(|e| secrets_step(&Err(e)))
}

/// Developer mode without Vault: the password and the key that signs tenant claims live in the
/// foundry's Kubernetes Secret (`database.password`, `database.claimKey`), which the operator
/// creates (with a generated password, key and JWT secret) when it does not exist, and to which
/// it adds a key when an older Secret has none.
async fn developer_password(
    client: &Client,
    reader: &SecretReader,
    foundry: &VideoFoundry,
    secret_name: &str,
) -> Result<(SecretString, TenantKey), StepOutcome> {
    let base = SecretKey::Database.relative_path();
    let key = format!("{base}.{PASSWORD}");
    let claim = format!("{base}.{CLAIM_KEY}");
    let namespace = foundry.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    match reader.value(secret_name, &key).await {
        Ok(password) => {
            let claim_key = match reader.value(secret_name, &claim).await {
                Ok(text) => text,
                Err(CredentialError::KeyMissing { .. }) => {
                    add_developer_claim_key(&api, &namespace, secret_name, &claim).await?
                }
                Err(other) => return Err(other.outcome(SECRETS_READY)),
            };
            return Ok((password, developer_tenant_key(&claim_key, secret_name)?));
        }
        Err(CredentialError::SecretMissing { .. }) => {}
        Err(other) => return Err(other.outcome(SECRETS_READY)),
    }
    let password = postgres::generate_password();
    let claim_key = generate_claim_key();
    let entries = [
        (
            SecretKey::Database,
            SecretFields::new()
                .with(PASSWORD, password.clone())
                .with(CLAIM_KEY, claim_key.clone()),
        ),
        (
            SecretKey::Jwt,
            SecretFields::new().with(
                crate::secrets::rotation::fields::JWT_SECRET,
                crate::secrets::generate::generate_jwt_secret(),
            ),
        ),
    ];
    let secret = crate::secrets::developer_secret::build_developer_secret(
        &namespace,
        &foundry.name_any(),
        secret_name,
        &entries,
    )
    .map_err(|e| StepOutcome::failed(SECRETS_READY, "InvalidSpec", e.to_string(), false))?;
    // Create only: a Secret that appeared meanwhile (another replica, a GitOps tool) wins.
    match api.create(&kube::api::PostParams::default(), &secret).await {
        Ok(_) => Ok((password, developer_tenant_key(&claim_key, secret_name)?)),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let password = reader
                .value(secret_name, &key)
                .await
                .map_err(|e| e.outcome(SECRETS_READY))?;
            let claim_key = reader
                .value(secret_name, &claim)
                .await
                .map_err(|e| e.outcome(SECRETS_READY))?;
            Ok((password, developer_tenant_key(&claim_key, secret_name)?))
        }
        Err(error) => Err(StepOutcome::failed(
            SECRETS_READY,
            "KubernetesApiError",
            format!("cannot create Secret {namespace}/{secret_name}: {error}"),
            true,
        )),
    }
}

fn developer_tenant_key(text: &SecretString, secret_name: &str) -> Result<TenantKey, StepOutcome> {
    TenantKey::from_text(text).map_err(|_| {
        StepOutcome::failed(
            SECRETS_READY,
            "SecretMalformed",
            format!("Secret {secret_name}: {CLAIM_KEY} must be 64 hex characters"),
            false,
        )
    })
}

/// Adds a generated `database.claimKey` to a developer Secret written before keys existed.
async fn add_developer_claim_key(
    api: &Api<Secret>,
    namespace: &str,
    secret_name: &str,
    claim: &str,
) -> Result<SecretString, StepOutcome> {
    use base64::Engine as _;
    let claim_key = generate_claim_key();
    let encoded = base64::engine::general_purpose::STANDARD.encode(claim_key.expose_secret());
    let patch = serde_json::json!({ "data": { claim: encoded } });
    api.patch(
        secret_name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(|error| {
        StepOutcome::failed(
            SECRETS_READY,
            "KubernetesApiError",
            format!("cannot add {claim} to Secret {namespace}/{secret_name}: {error}"),
            true,
        )
    })?;
    Ok(claim_key)
}

/// The admin connection pool, and whether its URL lets the connection go without TLS (allowed in
/// developer mode only, and then named in `DatabaseReady`'s message).
pub struct AdminPool {
    /// The pool.
    pub pool: PgPool,
    /// The URL does not require TLS.
    pub plaintext: bool,
}

/// Connects with the admin URL to the foundry's database (created when missing). Outside
/// developer mode the URL must require TLS (`TlsRequired` otherwise, nothing is connected).
pub(super) async fn connect_database(
    url: &SecretString,
    foundry: &VideoFoundry,
) -> Result<AdminPool, StepOutcome> {
    let plaintext = !database_url_requires_tls(url.expose_secret());
    let mode = foundry.spec.execution_mode;
    if plaintext && mode != ExecutionMode::Developer {
        let reference = &foundry.spec.database.connection_secret_ref;
        return Err(StepOutcome::failed(
            DATABASE_READY,
            "TlsRequired",
            format!(
                "{mode:?} mode requires TLS to PostgreSQL: add sslmode=require (or verify-full) to the URL in Secret {}/{} key {:?}",
                foundry.namespace().unwrap_or_default(),
                reference.name,
                reference.key
            ),
            false,
        ));
    }
    let options = postgres::parse_url(url).map_err(|e| database_failure(&e))?;
    let pool = postgres::connect_admin(
        &options,
        &foundry.spec.database.database_name,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| database_failure(&e))?;
    Ok(AdminPool { pool, plaintext })
}

/// Provisions roles, schema and row-level security with `password` for the application role and
/// `keys` as the keys the database accepts for tenant claims.
pub async fn provision_step(
    admin: &AdminPool,
    database: &FoundryDatabase,
    password: &SecretString,
    keys: &[TenantKey],
) -> StepOutcome {
    let input = ProvisionInput {
        application_password: Some(password),
        tenant_keys: Some(keys),
        ..ProvisionInput::default()
    };
    match postgres::provision_with(&admin.pool, database, &input).await {
        Ok(report) => {
            let mut outcome = provisioned(&report, database);
            if admin.plaintext {
                outcome.message = format!("{}; {DATABASE_PLAINTEXT_RELAXATION}", outcome.message);
            }
            outcome
        }
        Err(error) => database_failure(&error),
    }
}

/// `DatabaseReady=True` with a message that does not change with the repairs (they are told by
/// a `DriftRepaired` Event), so a repair does not rewrite the status twice.
fn provisioned(report: &ProvisionReport, database: &FoundryDatabase) -> StepOutcome {
    let repaired: Vec<String> = report
        .repairs()
        .map(|change| format!("{} {}", change.object, change.detail))
        .collect();
    StepOutcome::ready(
        DATABASE_READY,
        "Provisioned",
        format!(
            "schema {} with forced row-level security; roles {}, {}, {}, {}",
            database.schema,
            database.roles.owner,
            database.roles.application,
            database.roles.admin,
            database.roles.auditor
        ),
    )
    .with_repairs(repaired)
}

fn database_failure(error: &postgres::Error) -> StepOutcome {
    StepOutcome::failed(
        DATABASE_READY,
        error.category(),
        error.to_string(),
        !error.is_permanent(),
    )
}

/// The application role's passwords, in the order to try them (during a rotation the pending
/// one first), and the key that signs tenant claims: from Vault's `database` secret, or from
/// the developer Secret. The render controller logs in with them to record renders under each
/// user's identity.
pub async fn application_login(
    jwt: &ServiceAccountJwt,
    reader: &SecretReader,
    foundry: &VideoFoundry,
) -> Result<(Vec<SecretString>, TenantKey), StepOutcome> {
    let namespace = foundry.namespace().unwrap_or_default();
    let plan = plan(&namespace, &foundry.name_any(), &foundry.spec)
        .map_err(|e| StepOutcome::failed(SECRETS_READY, "InvalidSpec", e.to_string(), false))?;
    match &plan {
        SecretsPlan::KubernetesSecret { secret_name } => {
            let base = SecretKey::Database.relative_path();
            let data = reader
                .secret(secret_name)
                .await
                .map_err(|e| e.outcome(SECRETS_READY))?;
            let password = data
                .value(&format!("{base}.{PASSWORD}"))
                .map_err(|e| e.outcome(SECRETS_READY))?;
            let claim = data
                .value(&format!("{base}.{CLAIM_KEY}"))
                .map_err(|e| e.outcome(SECRETS_READY))?;
            Ok((vec![password], developer_tenant_key(&claim, secret_name)?))
        }
        SecretsPlan::Vault {
            address,
            layout,
            login,
        } => {
            let Some(vault_spec) = &foundry.spec.vault else {
                return Err(not_attempted("spec.vault is missing"));
            };
            let session = vault_session(jwt, reader, address, login, vault_spec).await?;
            let read = async {
                let path = layout.path(&SecretKey::Database)?;
                let stored = crate::secrets::kv::read_latest(&session, &layout.kv_mount, &path)
                    .await?
                    .ok_or(SecretsError::MissingField {
                        path: SecretKey::Database.relative_path(),
                        field: PASSWORD,
                    })?;
                let key = crate::secrets::tenant_key::tenant_key(&stored.fields)?;
                let passwords: Vec<SecretString> = password_candidates(&stored.fields)
                    .into_iter()
                    .cloned()
                    .collect();
                Ok::<_, SecretsError>((passwords, key))
            };
            let (passwords, key) = read.await.map_err(|e| secrets_step(&Err(e)))?;
            if passwords.is_empty() {
                return Err(secrets_step(&Err(SecretsError::MissingField {
                    path: SecretKey::Database.relative_path(),
                    field: PASSWORD,
                })));
            }
            Ok((passwords, key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foundry(file: &str) -> VideoFoundry {
        let mut foundry = VideoFoundry::new("studio", crate::crd::test_support::example_spec(file));
        foundry.metadata.namespace = Some("media".to_owned());
        foundry
    }

    #[tokio::test]
    async fn production_refuses_a_database_url_without_tls_before_connecting() {
        let url = SecretString::from("postgres://admin:Sentinel-Pw@db.invalid:5432/x".to_owned());
        let refused = connect_database(&url, &foundry("videofoundry-production.yaml"))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.reason, "TlsRequired");
        assert!(
            refused.message.contains("sslmode=require"),
            "{}",
            refused.message
        );
        assert!(!refused.message.contains("Sentinel-Pw"));
        assert!(!refused.transient);
    }

    #[test]
    fn the_backend_role_goes_to_the_configured_or_the_login_mount() {
        let mut vault = crate::crd::test_support::example_spec("videofoundry-production.yaml")
            .vault
            .unwrap();
        vault.auth.kubernetes.as_mut().unwrap().mount_path = "k8s-prod".into();
        assert_eq!(backend_auth_mount(&vault), "k8s-prod");
        vault.backend_auth_mount_path = Some("k8s-backends".into());
        assert_eq!(backend_auth_mount(&vault), "k8s-backends");
        vault.backend_auth_mount_path = None;
        vault.auth.kubernetes = None;
        assert_eq!(backend_auth_mount(&vault), "kubernetes");
    }
}
