//! Dynamic database credentials and the application password's rotation, against a real OpenBao
//! (scripts/services/openbao.sh) and a real PostgreSQL (scripts/services/postgres.sh): issued
//! users log in and are still confined by row-level security, revocation drops them, rotation
//! changes the password, and an interrupted rotation converges with a working password at every
//! step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "postgres_support/mod.rs"]
mod postgres_support;
// postgres_support already loads tests/common; loading it twice is refused by clippy.
use postgres_support::common;
#[path = "common/vault_harness.rs"]
mod vault_harness;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use postgres_support::{Foundry, pool, provisioned};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use vault_harness::{Bao, bao, fresh_foundry};
use videofoundry::postgres;
use videofoundry::secrets::database::{
    CredentialTtl, DatabaseConnection, ensure_database_engine, issue_credentials,
    revoke_credentials,
};
use videofoundry::secrets::database_rotation::{
    self as db_rotation, PASSWORD, PENDING_PASSWORD, password_candidates,
};
use videofoundry::secrets::kv::{self, SecretFields};
use videofoundry::secrets::rotation::{RotationOutcome, RotationPolicy};
use videofoundry::secrets::tenant_key::{PREVIOUS_CLAIM_KEY, accepted_tenant_keys, tenant_key};
use videofoundry::secrets::{FoundryLayout, SecretKey, VaultSession, access};

/// Both servers, a provisioned foundry, its Vault layout, and the operator's and backend's
/// sessions (tokens carrying exactly the foundry's policies).
struct Setup {
    bao: Bao,
    foundry: Foundry,
    layout: FoundryLayout,
    operator: VaultSession,
    backend: VaultSession,
}

async fn setup(label: &str) -> Option<Setup> {
    let bao = bao().await?;
    let foundry = provisioned(label).await?;
    bao.ensure_secrets_engine("database", "database").await;
    let layout = fresh_foundry("test");
    access::ensure_policies(&bao.root, &layout).await.unwrap();
    let (operator, _) = bao
        .session_with_policies(&[layout.operator_policy_name()])
        .await;
    let (backend, _) = bao
        .session_with_policies(&[layout.backend_policy_name()])
        .await;
    Some(Setup {
        bao,
        foundry,
        layout,
        operator,
        backend,
    })
}

fn admin_url() -> SecretString {
    SecretString::from(common::service_env("VF_TEST_POSTGRES_URL").unwrap())
}

/// Tries to log in as `user` with `password`; true on success.
async fn logs_in(foundry: &Foundry, user: &str, password: &SecretString) -> bool {
    let options = foundry
        .admin_options
        .clone()
        .username(user)
        .password(password.expose_secret());
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
    {
        Ok(pool) => {
            pool.close().await;
            true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn dynamic_credentials_log_in_stay_confined_by_rls_and_revocation_drops_the_user() {
    let Some(s) = setup("dyn").await else { return };
    // The operator configures the engine with its foundry policy alone.
    ensure_database_engine(
        &s.operator,
        &s.layout,
        &DatabaseConnection::from_url(&admin_url()).unwrap(),
        &s.foundry.db.roles.application,
        &CredentialTtl::default(),
    )
    .await
    .unwrap();
    let (alice, alice_project) = s.foundry.seed_tenant().await;
    let (bob, _) = s.foundry.seed_tenant().await;

    // The backend issues a user with its own policy.
    let creds = issue_credentials(&s.backend, &s.layout).await.unwrap();
    assert!(
        creds.lease_id.starts_with("database/creds/"),
        "{}",
        creds.lease_id
    );
    assert!(creds.lease_duration > 0 && creds.lease_duration <= 3600);
    assert!(!format!("{creds:?}").contains(creds.password.expose_secret()));
    let user_pool = pool(
        s.foundry
            .admin_options
            .clone()
            .username(&creds.username)
            .password(creds.password.expose_secret()),
        2,
    )
    .await;

    // A member of the application role, with no way around RLS.
    let attributes = sqlx::query(
        "SELECT r.rolbypassrls, r.rolsuper, pg_has_role(r.oid, $1, 'MEMBER') AS member \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .bind(&s.foundry.db.roles.application)
    .fetch_one(&user_pool)
    .await
    .unwrap();
    assert!(!attributes.get::<bool, _>("rolbypassrls"));
    assert!(!attributes.get::<bool, _>("rolsuper"));
    assert!(attributes.get::<bool, _>("member"));

    // No tenant set: nothing. Alice's tenant: only Alice's project.
    let projects = s.foundry.table("projects");
    let count_sql = format!("SELECT count(*) FROM {projects}");
    let none: i64 = sqlx::query(sqlx::AssertSqlSafe(count_sql.clone()))
        .fetch_one(&user_pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(none, 0);
    let mut tx = postgres::tenant::begin(&user_pool, &s.foundry.key, &alice.to_string())
        .await
        .unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id FROM {projects}"
    )))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<uuid::Uuid, _>("id"), alice_project);
    assert_eq!(rows[0].get::<uuid::Uuid, _>("user_id"), alice);
    // Writing Bob's row from Alice's tenant is refused by RLS.
    let forged = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {projects} (id, user_id, name) VALUES ($1, $2, 'forged')"
    )))
    .bind(uuid::Uuid::new_v4())
    .bind(bob)
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "a dynamic user wrote another tenant's row");
    drop(tx);
    // Turning RLS off for the session does not show other tenants either.
    let mut tx = postgres::tenant::begin(&user_pool, &s.foundry.key, &alice.to_string())
        .await
        .unwrap();
    let row_security_off = sqlx::query("SET LOCAL row_security = off")
        .execute(&mut *tx)
        .await;
    if row_security_off.is_ok() {
        let seen = sqlx::query(sqlx::AssertSqlSafe(count_sql.clone()))
            .fetch_one(&mut *tx)
            .await;
        assert!(
            seen.is_err(),
            "row_security=off must error rather than bypass RLS"
        );
    }
    drop(tx);
    user_pool.close().await;

    // Another foundry's backend cannot issue this foundry's users.
    let other = fresh_foundry("test");
    access::ensure_policies(&s.bao.root, &other).await.unwrap();
    let (other_backend, _) = s
        .bao
        .session_with_policies(&[other.backend_policy_name()])
        .await;
    assert_eq!(
        issue_credentials(&other_backend, &s.layout)
            .await
            .unwrap_err()
            .reason(),
        "VaultPermissionDenied"
    );

    // Revocation (by the operator) drops the user: it no longer exists and cannot log in.
    revoke_credentials(&s.operator, &creds.lease_id)
        .await
        .unwrap();
    let exists: bool = sqlx::query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&creds.username)
        .fetch_one(&s.foundry.admin)
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the revoked user still exists");
    assert!(!logs_in(&s.foundry, &creds.username, &creds.password).await);
}

fn policy() -> RotationPolicy {
    RotationPolicy {
        period: Duration::from_secs(90 * 86_400),
        grace: Duration::from_secs(86_400),
    }
}

/// The invariant of the state machine: the latest KV version holds a password that works.
async fn some_candidate_logs_in(s: &Setup) -> bool {
    let path = s.layout.path(&SecretKey::Database).unwrap();
    let latest = kv::read_latest(&s.operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    for candidate in password_candidates(&latest.fields) {
        if logs_in(&s.foundry, &s.foundry.db.roles.application, candidate).await {
            return true;
        }
    }
    false
}

async fn database_fields(s: &Setup) -> (u64, SecretFields) {
    let path = s.layout.path(&SecretKey::Database).unwrap();
    let latest = kv::read_latest(&s.operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    (latest.version, latest.fields)
}

/// Stores the application password in Vault and provisions Postgres with it, as the controller
/// does: Vault first, then `provision` with the stored value.
async fn vault_backed_password(s: &Setup, now: Timestamp) -> SecretString {
    let stored = db_rotation::ensure_database_password(&s.operator, &s.layout, now)
        .await
        .unwrap();
    let password = stored.fields.get(PASSWORD).unwrap().clone();
    postgres::provision(&s.foundry.admin, &s.foundry.db, Some(&password))
        .await
        .unwrap();
    assert!(logs_in(&s.foundry, &s.foundry.db.roles.application, &password).await);
    password
}

/// Whether a claim signed with `key` verifies in the foundry's database, for the application
/// role logged in with `password`.
async fn claim_verifies(s: &Setup, password: &SecretString, key: &postgres::TenantKey) -> bool {
    let app = s
        .foundry
        .login_pool(&s.foundry.db.roles.application, password.expose_secret())
        .await;
    let user = uuid::Uuid::new_v4();
    let mut tx = postgres::tenant::begin(&app, key, &user.to_string())
        .await
        .unwrap();
    let sql = format!(
        "SELECT {}.current_user_id()",
        postgres::quote_ident(&s.foundry.db.schema)
    );
    let verified: Option<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    app.close().await;
    verified == Some(user)
}

#[tokio::test]
async fn rotation_changes_the_password_and_the_old_one_is_gone_after_the_grace_period() {
    let Some(s) = setup("rot").await else { return };
    let app = s.foundry.db.clone();
    let t0 = Timestamp::now();
    let original = vault_backed_password(&s, t0).await;
    let original_key = tenant_key(&database_fields(&s).await.1).unwrap();
    let path = s.layout.path(&SecretKey::Database).unwrap();

    // Not due: nothing happens.
    let unchanged = db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        None,
        t0,
    )
    .await
    .unwrap();
    assert!(matches!(unchanged, RotationOutcome::Unchanged { .. }));

    // The annotation rotates now.
    let t1 = t0 + SignedDuration::from_hours(1);
    let rotated = db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        Some("rotate-1"),
        t1,
    )
    .await
    .unwrap();
    let RotationOutcome::Rotated { version, .. } = rotated else {
        panic!("{rotated:?}")
    };
    let (latest_version, fields) = database_fields(&s).await;
    assert_eq!(latest_version, version);
    let new = fields.get(PASSWORD).unwrap().clone();
    assert_ne!(new.expose_secret(), original.expose_secret());
    assert!(fields.get(PENDING_PASSWORD).is_none());
    assert!(logs_in(&s.foundry, &app.roles.application, &new).await);
    assert!(
        !logs_in(&s.foundry, &app.roles.application, &original).await,
        "the old password still logs in"
    );
    // The key that signs tenant claims rotated with it: the database accepts the new one and,
    // during the grace period, the previous one.
    let new_key = tenant_key(&fields).unwrap();
    assert_ne!(new_key.id(), original_key.id());
    let previous = fields.get(PREVIOUS_CLAIM_KEY).unwrap();
    assert_eq!(
        postgres::TenantKey::from_text(previous).unwrap().id(),
        original_key.id()
    );
    assert!(claim_verifies(&s, &new, &new_key).await);
    assert!(claim_verifies(&s, &new, &original_key).await);
    // During the grace period the previous value stays in Vault's history.
    let first = kv::read_version(&s.operator, "secret", &path, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.fields.get(PASSWORD).unwrap().expose_secret(),
        original.expose_secret()
    );
    // The backend reads the new value with its own policy.
    let backend_view = kv::read_latest(&s.backend, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        backend_view.fields.get(PASSWORD).unwrap().expose_secret(),
        new.expose_secret()
    );

    // After the grace period, every older version is destroyed.
    let t2 = t1 + SignedDuration::from_hours(25);
    db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        Some("rotate-1"),
        t2,
    )
    .await
    .unwrap();
    let (latest_version, fields) = database_fields(&s).await;
    assert_eq!(
        fields.get(PASSWORD).unwrap().expose_secret(),
        new.expose_secret()
    );
    for old in 1..latest_version {
        assert!(
            kv::read_version(&s.operator, "secret", &path, old)
                .await
                .unwrap()
                .is_none(),
            "version {old} survived the grace period"
        );
    }
    assert!(!logs_in(&s.foundry, &app.roles.application, &original).await);
    // The previous key left the secret; the next provisioning removes it from the database.
    assert!(fields.get(PREVIOUS_CLAIM_KEY).is_none());
    let keys = accepted_tenant_keys(&fields).unwrap();
    let input = postgres::ProvisionInput {
        application_password: Some(&new),
        tenant_keys: Some(&keys),
        ..postgres::ProvisionInput::default()
    };
    postgres::provision_with(&s.foundry.admin, &s.foundry.db, &input)
        .await
        .unwrap();
    assert!(claim_verifies(&s, &new, &new_key).await);
    assert!(!claim_verifies(&s, &new, &original_key).await);

    // The period rotates too.
    let t3 = t1 + SignedDuration::from_hours(24 * 90);
    assert!(matches!(
        db_rotation::reconcile_database_password(
            &s.operator,
            &s.foundry.admin,
            &s.layout,
            &app,
            &policy(),
            Some("rotate-1"),
            t3,
        )
        .await
        .unwrap(),
        RotationOutcome::Rotated { .. }
    ));
    assert!(some_candidate_logs_in(&s).await);
}

#[tokio::test]
async fn an_interrupted_rotation_converges_and_a_working_password_exists_at_every_step() {
    let Some(s) = setup("int").await else { return };
    let app = s.foundry.db.clone();
    let t0 = Timestamp::now();
    vault_backed_password(&s, t0).await;
    let path = s.layout.path(&SecretKey::Database).unwrap();

    // Crash after step 1 (pending recorded, Postgres untouched).
    let current = kv::read_latest(&s.operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    let pending = db_rotation::begin_rotation(&s.operator, &s.layout, &current, Some("a"))
        .await
        .unwrap();
    assert!(
        some_candidate_logs_in(&s).await,
        "no working password after step 1"
    );
    let resumed = db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        Some("a"),
        t0,
    )
    .await
    .unwrap();
    assert!(matches!(resumed, RotationOutcome::Rotated { .. }));
    let (_, fields) = database_fields(&s).await;
    assert_eq!(
        fields.get(PASSWORD).unwrap().expose_secret(),
        pending
            .fields
            .get(PENDING_PASSWORD)
            .unwrap()
            .expose_secret(),
        "the resumed rotation must finish the recorded password, not invent another"
    );
    assert!(
        logs_in(
            &s.foundry,
            &app.roles.application,
            fields.get(PASSWORD).unwrap()
        )
        .await
    );

    // Crash after step 2 (Postgres has the pending password, Vault's `password` is stale).
    let current = kv::read_latest(&s.operator, "secret", &path)
        .await
        .unwrap()
        .unwrap();
    let pending = db_rotation::begin_rotation(&s.operator, &s.layout, &current, Some("b"))
        .await
        .unwrap();
    db_rotation::apply_pending(&s.foundry.admin, &app.roles.application, &pending, &path)
        .await
        .unwrap();
    assert!(
        !logs_in(
            &s.foundry,
            &app.roles.application,
            pending.fields.get(PASSWORD).unwrap()
        )
        .await
    );
    assert!(
        some_candidate_logs_in(&s).await,
        "no working password after step 2"
    );
    // A second operator racing the resume loses at check-and-set, and nothing breaks.
    let stale = db_rotation::begin_rotation(&s.operator, &s.layout, &current, Some("c")).await;
    assert_eq!(stale.unwrap_err().reason(), "VaultWriteConflict");
    db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        Some("b"),
        t0,
    )
    .await
    .unwrap();
    let (_, fields) = database_fields(&s).await;
    assert!(fields.get(PENDING_PASSWORD).is_none());
    assert!(
        logs_in(
            &s.foundry,
            &app.roles.application,
            fields.get(PASSWORD).unwrap()
        )
        .await
    );
    assert!(some_candidate_logs_in(&s).await);
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_password_appears_in_trace_logs_or_errors_of_the_database_steps() {
    let Some(s) = setup("log").await else { return };
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = s.foundry.db.clone();
    let admin = admin_url();
    let connection = DatabaseConnection::from_url(&admin).unwrap();
    let admin_password = connection.password.clone();

    ensure_database_engine(
        &s.operator,
        &s.layout,
        &connection,
        &app.roles.application,
        &CredentialTtl::default(),
    )
    .await
    .unwrap();
    let creds = issue_credentials(&s.backend, &s.layout).await.unwrap();
    revoke_credentials(&s.operator, &creds.lease_id)
        .await
        .unwrap();
    let t0 = Timestamp::now();
    let original = vault_backed_password(&s, t0).await;
    db_rotation::reconcile_database_password(
        &s.operator,
        &s.foundry.admin,
        &s.layout,
        &app,
        &policy(),
        Some("x"),
        t0,
    )
    .await
    .unwrap();
    let (_, fields) = database_fields(&s).await;
    let rotated = fields.get(PASSWORD).unwrap().clone();
    // A failing configuration (wrong admin password) and a failing ALTER ROLE.
    let wrong = DatabaseConnection {
        password: SecretString::from("wrong-admin-password-1234"),
        ..DatabaseConnection::from_url(&admin).unwrap()
    };
    let refused = ensure_database_engine(
        &s.operator,
        &s.layout,
        &wrong,
        &app.roles.application,
        &CredentialTtl::default(),
    )
    .await
    .unwrap_err();
    let missing_role = db_rotation::apply_pending(
        &s.foundry.admin,
        "no_such_role_x",
        &kv::Versioned {
            version: 1,
            fields: SecretFields::new()
                .with(PENDING_PASSWORD, SecretString::from("pending-secret-5678")),
        },
        "p",
    )
    .await
    .unwrap_err();
    let outputs = format!(
        "{refused} {refused:?} {missing_role} {missing_role:?} {creds:?} {connection:?} {fields:?}"
    );

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("TRACE"));
    let everything = format!("{log}\n{outputs}");
    eprintln!(
        "searched {} bytes of TRACE output for 6 passwords",
        log.len()
    );
    for secret in [
        &admin_password,
        &creds.password,
        &original,
        &rotated,
        &SecretString::from("wrong-admin-password-1234"),
        &SecretString::from("pending-secret-5678"),
    ] {
        assert!(
            !everything.contains(secret.expose_secret()),
            "a password leaked into the logs or an error"
        );
    }
}
