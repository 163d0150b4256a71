//! What the render controller holds per foundry: a small pool logged in as the foundry's
//! application role (never the admin DSN: renders are recorded under row-level security) and an
//! S3 client for presigning and listing outputs. Building them costs a Vault login and a few
//! Secret reads, so they are cached per foundry UID and rebuilt after `MAX_AGE`, when the
//! foundry changes, or when the database refuses the cached password (a rotation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Client, Resource, ResourceExt};
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::controller::video_foundry::backends::{
    ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, STORAGE_CA_KEY, application_login,
};
use crate::controller::video_foundry::credentials::SecretReader;
use crate::crd::VideoFoundry;
use crate::postgres::{self, FoundryDatabase, TenantKey};
use crate::storage::{FoundryStorage, ObjectEncryption, S3Connection, S3Storage};

/// How long cached credentials are used before they are read again.
const MAX_AGE: Duration = Duration::from_secs(600);
/// Connections per foundry: renders are recorded in short transactions.
const POOL_SIZE: u32 = 4;
/// How long a backend may take to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One foundry's backends, as the render controller uses them.
pub struct FoundryAccess {
    /// The foundry's schema and role names.
    pub database: FoundryDatabase,
    /// Logged in as the application role.
    pub pool: PgPool,
    /// Signs the tenant claims of `pool`'s transactions.
    pub tenant_key: TenantKey,
    /// The foundry's storage as its spec describes it.
    pub storage: FoundryStorage,
    /// Presigning and listing, with the operator's storage credentials.
    pub s3: S3Storage,
    uid: String,
    generation: Option<i64>,
    built: Instant,
}

impl FoundryAccess {
    /// Encryption to sign into upload URLs, when the foundry opted into per-object encryption.
    pub fn upload_encryption(&self) -> Option<ObjectEncryption> {
        if !self.storage.per_object_encryption {
            return None;
        }
        match &self.storage.encryption {
            crate::storage::DefaultEncryption::Kms { key_id } => Some(ObjectEncryption::Kms {
                key_id: key_id.clone(),
            }),
            crate::storage::DefaultEncryption::Aes256 => Some(ObjectEncryption::Aes256),
            crate::storage::DefaultEncryption::Off => None,
        }
    }
}

/// Why a foundry's backends cannot be used right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessError {
    /// PascalCase reason.
    pub reason: String,
    /// What is wrong (never a secret).
    pub message: String,
}

/// The cache, keyed by `namespace/name`.
#[derive(Default)]
pub struct AccessCache {
    entries: Mutex<HashMap<String, Arc<FoundryAccess>>>,
}

impl AccessCache {
    /// The backends of `foundry`, built (or rebuilt) when needed.
    pub async fn get(
        &self,
        ctx: &crate::controller::Context,
        foundry: &VideoFoundry,
    ) -> Result<Arc<FoundryAccess>, AccessError> {
        let key = cache_key(foundry);
        let uid = foundry.uid().unwrap_or_default();
        if let Some(found) = self.lookup(&key) {
            let fresh = found.built.elapsed() < MAX_AGE
                && found.uid == uid
                && found.generation == foundry.meta().generation;
            if fresh {
                return Ok(found);
            }
        }
        let built = Arc::new(build(&ctx.client, &ctx.vault_jwt, foundry).await?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, built.clone());
        }
        Ok(built)
    }

    /// Drops the cached backends of `foundry` (after the database refused its password).
    pub fn forget(&self, foundry: &VideoFoundry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&cache_key(foundry));
        }
    }

    fn lookup(&self, key: &str) -> Option<Arc<FoundryAccess>> {
        self.entries.lock().ok()?.get(key).cloned()
    }
}

fn cache_key(foundry: &VideoFoundry) -> String {
    format!(
        "{}/{}",
        foundry.namespace().unwrap_or_default(),
        foundry.name_any()
    )
}

fn failure(reason: &str, message: impl Into<String>) -> AccessError {
    AccessError {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

async fn build(
    client: &Client,
    jwt: &crate::secrets::ServiceAccountJwt,
    foundry: &VideoFoundry,
) -> Result<FoundryAccess, AccessError> {
    let namespace = foundry.namespace().unwrap_or_default();
    let name = foundry.name_any();
    let reader = SecretReader::new(client, &namespace);
    let database = FoundryDatabase::for_foundry(&namespace, &name)
        .map_err(|e| failure(e.category(), e.to_string()))?;
    let storage = FoundryStorage::from_spec(&namespace, &name, &foundry.spec)
        .map_err(|e| failure("InvalidSpec", e.to_string()))?;

    let reference = &foundry.spec.database.connection_secret_ref;
    let admin_url = reader
        .value(&reference.name, &reference.key)
        .await
        .map_err(|e| outcome_error(&e.outcome("DatabaseReady")))?;
    let options = postgres::parse_url(&admin_url)
        .map_err(|e| failure(e.category(), e.to_string()))?
        .database(&foundry.spec.database.database_name)
        .username(&database.roles.application);
    let (passwords, tenant_key) = application_login(jwt, &reader, foundry)
        .await
        .map_err(|e| outcome_error(&e))?;
    let mut last_error = None;
    let mut pool = None;
    for password in &passwords {
        let attempt = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone().password(password.expose_secret()))
            .await;
        match attempt {
            Ok(found) => {
                pool = Some(found);
                break;
            }
            Err(error) => last_error = Some(postgres::Error::from_sqlx("logging in", error)),
        }
    }
    let pool = pool.ok_or_else(|| match last_error {
        Some(error) => failure(error.category(), error.to_string()),
        None => failure("SecretsNotReady", "no application password is stored"),
    })?;

    let secret = &foundry.spec.storage.credentials_secret_ref.name;
    let data = reader
        .secret(secret)
        .await
        .map_err(|e| outcome_error(&e.outcome("StorageReady")))?;
    let key_id = data
        .value(ACCESS_KEY_ID_KEY)
        .map_err(|e| outcome_error(&e.outcome("StorageReady")))?;
    let secret_key = data
        .value(SECRET_ACCESS_KEY_KEY)
        .map_err(|e| outcome_error(&e.outcome("StorageReady")))?;
    let connection = S3Connection::from_spec(
        &foundry.spec.storage,
        key_id.expose_secret().to_owned(),
        secret_key,
        data.optional_bytes(STORAGE_CA_KEY),
    );
    let s3 = S3Storage::new(&connection).map_err(|e| failure(e.reason(), e.to_string()))?;
    Ok(FoundryAccess {
        database,
        pool,
        tenant_key,
        storage,
        s3,
        uid: foundry.uid().unwrap_or_default(),
        generation: foundry.meta().generation,
        built: Instant::now(),
    })
}

fn outcome_error(outcome: &crate::controller::video_foundry::status::StepOutcome) -> AccessError {
    failure(&outcome.reason, outcome.message.clone())
}
