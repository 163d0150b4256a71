//! `videofoundry-operator migrate` end to end against a real PostgreSQL: it provisions, reports,
//! changes nothing when re-run, hands the application password over through a file, and fails
//! with clear messages that never contain the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use std::process::Output;

use secrecy::SecretString;
use videofoundry::postgres::{FoundryDatabase, TenantKey, quote_ident, tenant};

fn migrate(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"))
        .arg("migrate")
        .args(args)
        .env_remove("VF_DATABASE_URL")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn migrate_provisions_then_changes_nothing_and_hands_over_the_password() {
    let Some(url) = postgres_support::common::service_env("VF_TEST_POSTGRES_URL") else {
        return;
    };
    let name = format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("app-password");
    let password_arg = password_file.to_str().unwrap();
    let key_file = dir.path().join("tenant-key");
    let key_arg = key_file.to_str().unwrap();
    let args = [
        "--tenant-key-file",
        key_arg,
        "--database-url",
        &url,
        "--namespace",
        "test",
        "--name",
        &name,
        "--application-password-file",
        password_arg,
    ];

    let first = migrate(&args);
    assert!(first.status.success(), "{}", text(&first));
    let output = text(&first);
    assert!(output.contains("created: SchemaCreated"), "{output}");
    assert!(
        output.contains("created: PolicyCreated audit_logs.vf_tenant_insert"),
        "{output}"
    );
    let password = std::fs::read_to_string(&password_file).unwrap();
    let password = password.trim_end();
    assert_eq!(password.len(), 40);
    assert!(!output.contains(password));
    let admin_password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!output.contains(admin_password));

    let again = migrate(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).starts_with("no changes"), "{}", text(&again));

    // The application role logs in with the handed-over password and sees no tenant rows.
    let db = FoundryDatabase::for_foundry("test", &name).unwrap();
    let options = postgres_support::admin_options()
        .unwrap()
        .username(&db.roles.application)
        .password(password);
    let app = postgres_support::pool(options, 1).await;
    let sql = format!("SELECT count(*) FROM {}.users", quote_ident(&db.schema));
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(count, 0);

    // The key written to the file signs claims the database accepts.
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key_text.trim_end().len(), 64);
    assert!(!output.contains(key_text.trim_end()));
    let key = TenantKey::from_text(&SecretString::from(key_text)).unwrap();
    let user = uuid::Uuid::new_v4().to_string();
    let mut tx = tenant::begin(&app, &key, &user).await.unwrap();
    let sql = format!("SELECT {}.current_user_id()::text", quote_ident(&db.schema));
    let verified: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(verified.as_deref(), Some(user.as_str()));
    tx.rollback().await.unwrap();

    // A password the application role changed itself is repaired, and reported so.
    let changed = format!(
        "ALTER ROLE {} PASSWORD 'changed-by-the-app-{}'",
        quote_ident(&db.roles.application),
        uuid::Uuid::new_v4().simple()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(changed))
        .execute(&app)
        .await
        .unwrap();
    let repaired = migrate(&args);
    assert!(repaired.status.success(), "{}", text(&repaired));
    assert!(
        text(&repaired).contains("repaired: ApplicationPasswordSet"),
        "{}",
        text(&repaired)
    );

    // Drift made by hand is repaired and reported as such.
    let admin = postgres_support::pool(postgres_support::admin_options().unwrap(), 1).await;
    let drift = format!(
        "ALTER TABLE {}.projects NO FORCE ROW LEVEL SECURITY",
        quote_ident(&db.schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(drift))
        .execute(&admin)
        .await
        .unwrap();
    let repaired = migrate(&args);
    assert!(repaired.status.success(), "{}", text(&repaired));
    assert!(
        text(&repaired).contains("repaired: RowSecurityForced projects"),
        "{}",
        text(&repaired)
    );
}

#[test]
fn migrate_explains_an_unreachable_server() {
    let output = migrate(&[
        "--database-url",
        "postgres://admin:Sup3rSecret@127.0.0.1:1/videofoundry",
        "--schema",
        "vf_unreachable",
        "--connect-timeout",
        "3",
    ]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("cannot reach the PostgreSQL server"),
        "{message}"
    );
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("Sup3rSecret"), "{message}");
}

#[test]
fn migrate_explains_wrong_credentials_without_echoing_them() {
    let Some(url) = postgres_support::common::service_env("VF_TEST_POSTGRES_URL") else {
        return;
    };
    let (prefix, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    let wrong = format!("{prefix}://{user}:Wr0ngPassw0rd@{host}");
    let output = migrate(&["--database-url", &wrong, "--schema", "vf_wrong_password"]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("rejected the credentials"), "{message}");
    assert!(!message.contains("Wr0ngPassw0rd"), "{message}");
}

#[tokio::test]
async fn migrate_explains_missing_privileges() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    let admin = postgres_support::pool(options.clone(), 1).await;
    let login = format!(
        "vf_test_weak_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let create = format!(
        "CREATE ROLE {} LOGIN PASSWORD 'weak-password'",
        quote_ident(&login)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!(
        "postgres://{login}:weak-password@{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    );
    let output = migrate(&["--database-url", &url, "--schema", "vf_weak"]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("missing privilege"), "{message}");
    assert!(message.contains("CREATEROLE"), "{message}");
    assert!(!message.contains("weak-password"), "{message}");
}

#[test]
fn migrate_rejects_invalid_foundry_names() {
    let output = migrate(&[
        "--database-url",
        "postgres://admin:pw@127.0.0.1:1/db",
        "--schema",
        "x\"; DROP SCHEMA public; --",
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("invalid foundry identity"),
        "{}",
        text(&output)
    );
}

/// `url` pointing at database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    match query {
        Some(query) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Takes a foundry back to the previous release's schema: migration 5 (the audit_logs timestamp
/// index) not applied.
async fn back_to_previous_release(admin: &sqlx::PgPool, db: &FoundryDatabase) {
    let sql = format!(
        "DROP INDEX {schema}.audit_logs_timestamp_idx; DELETE FROM {schema}._sqlx_migrations WHERE version = 5",
        schema = quote_ident(&db.schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(admin)
        .await
        .unwrap();
}

async fn index_valid(admin: &sqlx::PgPool, db: &FoundryDatabase) -> Option<bool> {
    sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'audit_logs_timestamp_idx'",
    )
    .bind(&db.schema)
    .fetch_optional(admin)
    .await
    .unwrap()
}

async fn insert_audit(tx: &mut sqlx::PgConnection, db: &FoundryDatabase, user: &str) {
    let sql = format!(
        "INSERT INTO {}.audit_logs (user_id, action) VALUES ($1::uuid, 'render.submitted')",
        quote_ident(&db.schema)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .execute(tx)
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_all_foundries_upgrades_every_schema_while_the_application_keeps_writing() {
    use secrecy::ExposeSecret as _;
    let Some(url) = postgres_support::common::service_env("VF_TEST_POSTGRES_URL") else {
        return;
    };
    // A database of its own: --all-foundries upgrades every foundry schema in the database.
    let name = format!(
        "vf_upgrade_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let server = postgres_support::pool(postgres_support::admin_options().unwrap(), 1).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&server)
        .await
        .unwrap();
    let options = postgres_support::admin_options().unwrap().database(&name);
    let admin = postgres_support::pool(options.clone(), 4).await;
    let url = with_database(&url, &name);

    // Two foundries as the previous release left them, with data.
    let mut foundries = Vec::new();
    for label in ["one", "two"] {
        let db =
            FoundryDatabase::for_foundry("upgrade", &format!("{label}-{name}").replace('_', "-"))
                .unwrap();
        let report = videofoundry::postgres::provision(&admin, &db, None)
            .await
            .unwrap();
        back_to_previous_release(&admin, &db).await;
        assert_eq!(index_valid(&admin, &db).await, None);
        let password = report.generated_application_password.unwrap();
        let key = report.generated_tenant_key.unwrap();
        let app = postgres_support::pool(
            options
                .clone()
                .username(&db.roles.application)
                .password(password.expose_secret()),
            4,
        )
        .await;
        foundries.push((db, app, key, password));
    }
    let user = uuid::Uuid::new_v4().to_string();
    for (db, _, _, _) in &foundries {
        let seed = format!(
            "INSERT INTO {}.users (id, email) VALUES ('{user}', 'u@example.test')",
            quote_ident(&db.schema)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
            .execute(&admin)
            .await
            .unwrap();
    }

    // The application is mid-transaction on each foundry's audit log when the upgrade starts.
    let mut open = Vec::new();
    for (db, app, key, _) in &foundries {
        let mut tx = tenant::begin(app, key, &user).await.unwrap();
        insert_audit(&mut tx, db, &user).await;
        open.push(tx);
    }
    let upgrade = tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"))
        .args([
            "migrate",
            "--all-foundries",
            "--database-url",
            &url,
            "--lock-timeout",
            "120",
        ])
        .env_remove("VF_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The index build waits for the open transactions (it must see their rows)...
    let started = std::time::Instant::now();
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' \
             AND query ILIKE '%CREATE INDEX CONCURRENTLY%')",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the upgrade never reached the index build"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // ...while the application keeps writing: a plain CREATE INDEX would queue a SHARE lock
    // that blocks this insert until the lock timeout.
    for (db, app, key, _) in &foundries {
        let mut tx = tenant::begin(app, key, &user).await.unwrap();
        sqlx::raw_sql("SET LOCAL lock_timeout = '2s'")
            .execute(&mut *tx)
            .await
            .unwrap();
        insert_audit(&mut tx, db, &user).await;
        tx.commit().await.unwrap();
    }
    for tx in open {
        tx.commit().await.unwrap();
    }
    let output = upgrade.wait_with_output().await.unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    for (db, _, _, _) in &foundries {
        assert!(
            printed.contains(&format!("{}: applied migrations 5", db.schema)),
            "{printed}"
        );
        assert_eq!(index_valid(&admin, db).await, Some(true));
        let count = format!(
            "SELECT count(*) FROM {}.audit_logs",
            quote_ident(&db.schema)
        );
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(rows, 2, "both application writes are there");
        let users = format!("SELECT count(*) FROM {}.users", quote_ident(&db.schema));
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(users))
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
    assert!(!printed.contains(url_password_of(&url)), "{printed}");
    let again = migrate(&["--all-foundries", "--database-url", &url]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        text(&again).matches(": up to date").count(),
        2,
        "{}",
        text(&again)
    );

    // The operator's path: the next provisioning (reconcile) applies it too.
    let (db, _, _, password) = &foundries[1];
    back_to_previous_release(&admin, db).await;
    let report = videofoundry::postgres::provision(&admin, db, Some(password))
        .await
        .unwrap();
    assert!(
        report.changes.iter().any(|c| c.kind
            == videofoundry::postgres::ChangeKind::MigrationApplied
            && c.object == "5"),
        "{:?}",
        report.changes
    );
    // An index build that was interrupted (left invalid) is rebuilt, not accepted.
    let invalidate = format!(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{}.audit_logs_timestamp_idx'::regclass",
        quote_ident(&db.schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(invalidate))
        .execute(&admin)
        .await
        .unwrap();
    assert_eq!(index_valid(&admin, db).await, Some(false));
    videofoundry::postgres::provision(&admin, db, Some(password))
        .await
        .unwrap();
    assert_eq!(index_valid(&admin, db).await, Some(true));

    for (db, app, _, _) in foundries {
        app.close().await;
        // Roles are cluster-wide: removed here so no test run leaves any behind.
        videofoundry::postgres::deprovision(&admin, &db)
            .await
            .unwrap();
    }
    admin.close().await;
    let drop = format!("DROP DATABASE {name} WITH (FORCE)");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&server)
        .await;
}

fn url_password_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|auth| auth.split(':').nth(1))
        .unwrap_or("no-password-in-url")
}
