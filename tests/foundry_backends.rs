//! The VideoFoundry controller's backend steps against the real servers (Postgres, OpenBao,
//! Ceph RGW): credentials come from Kubernetes Secrets (served by a test double, as no API
//! server installs here); the database is provisioned with the password the secrets layer holds;
//! a rotation requested by annotation changes it; the bucket is hardened; bad credentials give a
//! reason and no secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/secret_store_double.rs"]
mod secret_store_double;
#[path = "common/vault_harness.rs"]
mod vault_harness;

use std::str::FromStr;

use secrecy::ExposeSecret;
use secret_store_double::SecretStoreDouble;
use serde_json::json;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use videofoundry::controller::video_foundry::backends::{secrets_and_database_steps, storage_step};
use videofoundry::controller::video_foundry::credentials::SecretReader;
use videofoundry::crd::VideoFoundry;
use videofoundry::metrics::{RotatedSecret, RotationResult};
use videofoundry::postgres::FoundryDatabase;

const NAMESPACE: &str = "backends";

/// The operator's JWT source in a pod (unused by token logins).
fn in_pod() -> videofoundry::secrets::ServiceAccountJwt {
    videofoundry::secrets::ServiceAccountJwt::in_pod()
}

struct Servers {
    postgres_url: String,
    s3_endpoint: String,
    s3_key_id: String,
    s3_secret: String,
    s3_ca: String,
}

fn servers() -> Option<Servers> {
    let postgres_url = common::service_env("VF_TEST_POSTGRES_URL")?;
    let s3_endpoint = common::service_env("VF_TEST_S3_ENDPOINT")?;
    let ca_file = common::service_env("VF_TEST_S3_CA_FILE")?;
    Some(Servers {
        postgres_url,
        s3_endpoint,
        s3_key_id: common::service_env("VF_TEST_S3_ADMIN_ACCESS_KEY_ID")?,
        s3_secret: common::service_env("VF_TEST_S3_ADMIN_SECRET_ACCESS_KEY")?,
        s3_ca: std::fs::read_to_string(ca_file).unwrap(),
    })
}

/// A fresh foundry name, so reruns against long-lived servers never collide.
fn fresh_name() -> String {
    format!(
        "studio-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn foundry(name: &str, servers: &Servers, vault: Option<serde_json::Value>) -> VideoFoundry {
    let mut spec = json!({
        "executionMode": "developer",
        "database": {"connectionSecretRef": {"name": "pg-admin", "key": "url"}, "databaseName": "vf_backends"},
        "storage": {"endpoint": servers.s3_endpoint, "bucket": format!("vf-{name}"), "forcePathStyle": true,
                    "credentialsSecretRef": {"name": "s3-admin"}},
        "workers": {"image": "registry.example/worker@sha256:4f6e3b0c1d2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"},
    });
    if let Some(vault) = vault {
        spec["vault"] = vault;
    }
    serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uuid::Uuid::new_v4().to_string(), "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn store_with_credentials(servers: &Servers, postgres_url: &str) -> SecretStoreDouble {
    let store = SecretStoreDouble::default();
    store.put("pg-admin", &[("url", postgres_url)]);
    store.put(
        "s3-admin",
        &[
            ("accessKeyId", &servers.s3_key_id),
            ("secretAccessKey", &servers.s3_secret),
            ("ca.crt", &servers.s3_ca),
        ],
    );
    store
}

/// Whether the foundry's application role accepts `password` (in the foundry's database).
async fn application_logs_in(servers: &Servers, name: &str, password: &str) -> bool {
    let database = FoundryDatabase::for_foundry(NAMESPACE, name).unwrap();
    let options = PgConnectOptions::from_str(&servers.postgres_url)
        .unwrap()
        .username(&database.roles.application)
        .password(password)
        .database("vf_backends");
    match PgConnection::connect_with(&options).await {
        Ok(connection) => {
            connection.close().await.unwrap();
            true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn developer_foundry_gets_a_generated_secret_a_provisioned_database_and_a_hardened_bucket() {
    let Some(servers) = servers() else { return };
    videofoundry::install_crypto_provider();
    let name = fresh_name();
    let foundry = foundry(&name, &servers, None);
    let store = store_with_credentials(&servers, &servers.postgres_url);
    let client = store.client();
    let reader = SecretReader::new(&client, NAMESPACE);

    let first = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(first.secrets.ready, "{:?}", first.secrets);
    assert_eq!(first.secrets.reason, "SecretsInKubernetesSecret");
    assert!(first.database.ready, "{:?}", first.database);
    assert_eq!(first.database.reason, "Provisioned");
    let secret_name = format!("{name}-secrets");
    let password = store
        .get(&secret_name, "database.password")
        .expect("the generated Secret holds the application password");
    assert!(store.get(&secret_name, "jwt.secret").is_some());
    let claim_key = store
        .get(&secret_name, "database.claimKey")
        .expect("the generated Secret holds the key that signs tenant claims");
    assert_eq!(claim_key.len(), 64);
    assert!(application_logs_in(&servers, &name, &password).await);
    assert!(!application_logs_in(&servers, &name, "not-the-password").await);

    // Re-running changes nothing: same password, nothing repaired.
    let second = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert_eq!(
        second.database.reason, "Provisioned",
        "{:?}",
        second.database
    );
    assert_eq!(
        store.get(&secret_name, "database.password"),
        Some(password.clone())
    );
    assert_eq!(
        store.get(&secret_name, "database.claimKey"),
        Some(claim_key.clone())
    );

    let storage = storage_step(&reader, &foundry).await;
    assert!(storage.ready, "{storage:?}");
    let again = storage_step(&reader, &foundry).await;
    assert!(again.ready, "{again:?}");
}

#[tokio::test]
async fn wrong_admin_password_is_a_reason_without_the_password() {
    let Some(servers) = servers() else { return };
    let name = fresh_name();
    let foundry = foundry(&name, &servers, None);
    let mut url = url::Url::parse(&servers.postgres_url).unwrap();
    url.set_password(Some("Wr0ng-Passw0rd-Sentinel")).unwrap();
    let store = store_with_credentials(&servers, url.as_str());
    store.put(
        &format!("{name}-secrets"),
        &[("database.password", "app-Passw0rd-Sentinel")],
    );
    let client = store.client();
    let reader = SecretReader::new(&client, NAMESPACE);

    let outcome = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(!outcome.database.ready);
    assert_eq!(outcome.database.reason, "DatabaseAuthenticationFailed");
    // A Secret written before tenant keys existed gets one added.
    let added = store.get(&format!("{name}-secrets"), "database.claimKey");
    assert_eq!(added.map(|key| key.len()), Some(64));
    for text in [&outcome.database.message, &outcome.secrets.message] {
        assert!(!text.contains("Wr0ng-Passw0rd-Sentinel"), "{text}");
        assert!(!text.contains("app-Passw0rd-Sentinel"), "{text}");
    }
}

#[tokio::test]
async fn missing_storage_keys_name_the_secret_to_fix() {
    let Some(servers) = servers() else { return };
    let name = fresh_name();
    let foundry = foundry(&name, &servers, None);
    let store = SecretStoreDouble::default();
    store.put("s3-admin", &[("accessKeyId", "AKIAEXAMPLE")]);
    let client = store.client();
    let reader = SecretReader::new(&client, NAMESPACE);
    let outcome = storage_step(&reader, &foundry).await;
    assert!(!outcome.ready);
    assert_eq!(outcome.reason, "CredentialsMissing");
    assert!(
        outcome.transient,
        "a Secret created later must be picked up by a retry"
    );
    assert!(
        outcome.message.contains("backends/s3-admin")
            && outcome.message.contains("secretAccessKey"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn vault_foundry_keeps_the_password_in_vault_and_rotates_it_on_request() {
    let Some(servers) = servers() else { return };
    let Some(bao) = vault_harness::bao().await else {
        return;
    };
    bao.ensure_secrets_engine("database", "database").await;
    bao.ensure_auth_method("kubernetes", "kubernetes").await;
    let name = fresh_name();
    let vault = json!({
        "address": bao.addr,
        "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
        "kvMount": "secret",
        "rotationPeriod": "2160h",
        "backendServiceAccount": "studio-backend",
    });
    let mut foundry = foundry(&name, &servers, Some(vault));
    let store = store_with_credentials(&servers, &servers.postgres_url);
    store.put("vault-token", &[("token", bao.root_token.expose_secret())]);
    let client = store.client();
    let reader = SecretReader::new(&client, NAMESPACE);

    let first = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(first.secrets.ready, "{:?}", first.secrets);
    assert_eq!(first.secrets.reason, "SecretsStoredInVault");
    assert!(first.database.ready, "{:?}", first.database);
    assert!(first.last_rotation.is_some() && first.next_rotation.is_some());
    assert!(
        store
            .get(&format!("{name}-secrets"), "database.password")
            .is_none(),
        "no Kubernetes Secret when Vault is used"
    );

    let layout = videofoundry::secrets::FoundryLayout::for_foundry(
        NAMESPACE,
        &name,
        foundry.spec.vault.as_ref(),
    )
    .unwrap();
    let read_password = || async {
        let path = layout
            .path(&videofoundry::secrets::SecretKey::Database)
            .unwrap();
        let stored = videofoundry::secrets::kv::read_latest(&bao.root, &layout.kv_mount, &path)
            .await
            .unwrap()
            .unwrap();
        stored
            .fields
            .get("password")
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    // The platform backend's service account is bound to the foundry's backend policy only.
    let role = vaultrs::auth::kubernetes::role::read(
        bao.root.client(),
        "kubernetes",
        &layout.backend_auth_role_name(),
    )
    .await
    .unwrap();
    assert_eq!(role.bound_service_account_names, ["studio-backend"]);
    assert_eq!(role.bound_service_account_namespaces, [NAMESPACE]);
    assert_eq!(role.token_policies, [layout.backend_policy_name()]);

    let before = read_password().await;
    assert!(application_logs_in(&servers, &name, &before).await);

    // The annotation asks for a rotation: a new password in Vault and in Postgres.
    foundry.metadata.annotations = Some(
        [(
            "videofoundry.dev/rotate-secrets".to_owned(),
            "now-1".to_owned(),
        )]
        .into(),
    );
    let rotated = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(
        rotated.secrets.ready && rotated.database.ready,
        "{:?} {:?}",
        rotated.secrets,
        rotated.database
    );
    // Both rotations show in the metrics' results.
    assert_eq!(
        rotated.rotations,
        [
            (RotatedSecret::Jwt, RotationResult::Rotated),
            (RotatedSecret::DatabasePassword, RotationResult::Rotated)
        ]
    );
    let after = read_password().await;
    assert_ne!(before, after);
    assert!(application_logs_in(&servers, &name, &after).await);
    assert!(!application_logs_in(&servers, &name, &before).await);

    // The same annotation value again is already handled: nothing changes.
    let settled = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(settled.database.ready);
    assert_eq!(read_password().await, after);
    assert_eq!(
        settled.rotations,
        [
            (RotatedSecret::Jwt, RotationResult::Unchanged),
            (RotatedSecret::DatabasePassword, RotationResult::Unchanged)
        ]
    );
}

#[tokio::test]
async fn the_shipped_operator_policy_is_all_a_vault_foundry_needs() {
    let Some(servers) = servers() else { return };
    let Some(bao) = vault_harness::bao().await else {
        return;
    };
    bao.ensure_secrets_engine("database", "database").await;
    bao.ensure_auth_method("kubernetes", "kubernetes").await;
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/vault-operator-policy.hcl"
    ))
    .unwrap();
    let policy_name = "videofoundry-operator-identity-test".to_owned();
    vaultrs::sys::policy::set(bao.root.client(), &policy_name, &policy)
        .await
        .unwrap();
    // A token with that policy only (not even `default`), as the operator's role would issue.
    let (_session, token) = bao.session_with_policies(&[policy_name]).await;

    let name = fresh_name();
    let vault = json!({
        "address": bao.addr,
        "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
        "backendServiceAccount": "studio-backend",
    });
    let foundry = foundry(&name, &servers, Some(vault));
    let store = store_with_credentials(&servers, &servers.postgres_url);
    store.put("vault-token", &[("token", token.expose_secret())]);
    let client = store.client();
    let reader = SecretReader::new(&client, NAMESPACE);
    let outcome = secrets_and_database_steps(
        &client,
        &in_pod(),
        &reader,
        &foundry,
        jiff::Timestamp::now(),
    )
    .await;
    assert!(outcome.secrets.ready, "{:?}", outcome.secrets);
    assert!(outcome.database.ready, "{:?}", outcome.database);

    // The same token may not touch anything outside the videofoundry names.
    let operator = videofoundry::secrets::VaultSession::new(&bao.addr, None, &token).unwrap();
    let denied = vaultrs::sys::policy::set(
        operator.client(),
        "someone-else",
        "path \"secret/*\" { capabilities = [\"read\"] }",
    )
    .await;
    assert!(
        denied.is_err(),
        "the operator policy must not write foreign policies"
    );
}
