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
