//! Provisioning against a real PostgreSQL: re-runs change nothing, every kind of drift is found
//! from the catalogs and repaired with a report, migrations upgrade a foundry at the previous
//! version, and the application password is handled without the server ever seeing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use postgres_support::{Foundry, INSUFFICIENT_PRIVILEGE, provisioned, sqlstate};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Connection as _;
use videofoundry::postgres::{self, ChangeKind, FoundryDatabase, quote_ident, tenant};

#[tokio::test]
async fn provisioning_twice_changes_nothing_the_second_time() {
    let Some(foundry) = provisioned("rerun").await else {
        return;
    };
    let first = &foundry.first_report;
    assert!(
        first
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::SchemaCreated)
    );
    assert!(
        first
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::MigrationApplied)
    );
    assert_eq!(first.repairs().count(), 0, "{:#?}", first.changes);
    for _ in 0..2 {
        let again = postgres::provision(&foundry.admin, &foundry.db, None)
            .await
            .unwrap();
        assert!(again.is_unchanged(), "{:#?}", again.changes);
        assert!(again.generated_application_password.is_none());
    }
}

#[tokio::test]
async fn concurrent_provisioning_of_one_foundry_converges() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    let admin = postgres_support::pool(options, 8).await;
    let db = postgres_support::unique_foundry("concurrent");
    let runs =
        futures::future::join_all((0..4).map(|_| postgres::provision(&admin, &db, None))).await;
    let mut generated = 0;
    for run in runs {
        let report = run.unwrap();
        generated += usize::from(report.generated_application_password.is_some());
    }
    assert_eq!(generated, 1, "exactly one run created the application role");
    assert!(
        postgres::provision(&admin, &db, None)
            .await
            .unwrap()
            .is_unchanged()
    );
}

/// Applies a hand-made change, provisions, and checks that exactly `expected` repairs are
/// reported and that a further run changes nothing.
async fn drift_is_repaired(foundry: &Foundry, drift: &str, expected: &[ChangeKind]) {
    foundry.admin_exec(drift).await;
    let report = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    let mut kinds: Vec<ChangeKind> = report.changes.iter().map(|c| c.kind).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, expected, "{drift}: {:#?}", report.changes);
    assert!(
        report.changes.iter().all(|c| c.repaired_drift),
        "{drift}: {:#?}",
        report.changes
    );
    let again = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    assert!(again.is_unchanged(), "{drift}: {:#?}", again.changes);
}

/// Whether tenant `me` can see rows of other tenants in `projects` and `audit_logs`.
async fn sees_other_tenants(foundry: &Foundry, me: uuid::Uuid) -> bool {
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.to_string())
        .await
        .unwrap();
    let mut leaked = 0_i64;
    for table in ["projects", "audit_logs"] {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE user_id <> $1",
            foundry.table(table)
        );
        let count: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .fetch_one(&mut *tx)
            .await;
        match count {
            Ok(count) => leaked += count,
            Err(_) => return false,
        }
    }
    leaked > 0
}

#[tokio::test]
async fn every_kind_of_drift_is_found_and_repaired() {
    let Some(foundry) = provisioned("drift").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let me = tenants[0].user;
    let roles = foundry.db.roles.clone();
    let app = quote_ident(&roles.application);
    let owner = quote_ident(&roles.owner);
    let schema = quote_ident(&foundry.db.schema);
    let projects = foundry.table("projects");
    let audit = foundry.table("audit_logs");
    assert!(!sees_other_tenants(&foundry, me).await);

    // Row-level security switched off, or no longer forced.
    drift_is_repaired(
        &foundry,
        &format!("ALTER TABLE {projects} DISABLE ROW LEVEL SECURITY"),
        &[ChangeKind::RowSecurityEnabled],
    )
    .await;
    drift_is_repaired(
        &foundry,
        &format!("ALTER TABLE {audit} NO FORCE ROW LEVEL SECURITY"),
        &[ChangeKind::RowSecurityForced],
    )
    .await;

    // Policies dropped, loosened, or added.
    drift_is_repaired(
        &foundry,
        &format!("DROP POLICY vf_tenant_all ON {projects}"),
        &[ChangeKind::PolicyCreated],
    )
    .await;
    foundry
        .admin_exec(&format!(
            "ALTER POLICY vf_tenant_all ON {projects} USING (true)"
        ))
        .await;
    assert!(sees_other_tenants(&foundry, me).await, "the drift is real");
    drift_is_repaired(&foundry, "SELECT 1", &[ChangeKind::PolicyReplaced]).await;
    drift_is_repaired(
        &foundry,
        &format!("ALTER POLICY vf_tenant_select ON {audit} TO PUBLIC"),
        &[ChangeKind::PolicyReplaced],
    )
    .await;
    drift_is_repaired(
        &foundry,
        &format!("CREATE POLICY open_door ON {audit} FOR SELECT USING (true)"),
        &[ChangeKind::PolicyDropped],
    )
    .await;

    // Grants widened (to the application, to PUBLIC, with grant option, on a column) or narrowed.
    drift_is_repaired(
        &foundry,
        &format!(
            "GRANT UPDATE, DELETE, TRUNCATE ON {audit} TO {app}; \
             GRANT SELECT ON {projects} TO PUBLIC; \
             GRANT SELECT ON {} TO {app} WITH GRANT OPTION; \
             GRANT UPDATE (role) ON {} TO {app}; \
             REVOKE SELECT ON {} FROM {app}; \
             GRANT UPDATE ON {schema}.audit_logs_id_seq TO {app}",
            foundry.table("workflows"),
            foundry.table("users"),
            foundry.table("segments"),
        ),
        &[ChangeKind::PrivilegesRepaired],
    )
    .await;
    drift_is_repaired(
        &foundry,
        &format!("GRANT CREATE ON SCHEMA {schema} TO {app}, PUBLIC"),
        &[ChangeKind::SchemaPrivilegesRepaired],
    )
    .await;

    // Role attributes, memberships and session defaults.
    drift_is_repaired(
        &foundry,
        &format!("ALTER ROLE {app} BYPASSRLS CREATEDB; ALTER ROLE {owner} LOGIN"),
        &[ChangeKind::RoleAttributesRepaired],
    )
    .await;
    drift_is_repaired(
        &foundry,
        &format!(
            "GRANT {owner} TO {app}; GRANT {} TO {app}; GRANT pg_read_all_data TO {}",
            quote_ident(&roles.admin),
            quote_ident(&roles.auditor)
        ),
        &[ChangeKind::MembershipRevoked],
    )
    .await;
    let victim = tenants[1].user;
    foundry
        .admin_exec(&format!(
            "ALTER ROLE {app} SET app.current_user_id = '{victim}'; \
             ALTER ROLE {app} IN DATABASE postgres SET row_security = off"
        ))
        .await;
    drift_is_repaired(&foundry, "SELECT 1", &[ChangeKind::RoleSettingsReset]).await;

    // Ownership moved away from the owner role.
    drift_is_repaired(
        &foundry,
        &format!("ALTER TABLE {projects} OWNER TO {app}"),
        // The transfer folded the application's grants into its ownership; they come back too.
        &[
            ChangeKind::TableOwnerRepaired,
            ChangeKind::PrivilegesRepaired,
        ],
    )
    .await;
    drift_is_repaired(
        &foundry,
        &format!(
            "ALTER SCHEMA {schema} OWNER TO {}",
            quote_ident(&roles.admin)
        ),
        &[
            ChangeKind::SchemaOwnerRepaired,
            ChangeKind::SchemaPrivilegesRepaired,
        ],
    )
    .await;

    // An extra table created by hand gets no privileges for anyone.
    drift_is_repaired(
        &foundry,
        &format!(
            "CREATE TABLE {schema}.side_table (x int); ALTER TABLE {schema}.side_table OWNER TO {owner}; \
             GRANT ALL ON {schema}.side_table TO {app}"
        ),
        &[ChangeKind::PrivilegesRepaired],
    )
    .await;

    // A function made by hand (here SECURITY DEFINER, owned by the superuser, executable by
    // PUBLIC by default and granted to the application) is closed to everyone but its owner.
    drift_is_repaired(
        &foundry,
        &format!(
            "CREATE FUNCTION {schema}.all_projects() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             AS 'SELECT count(*) FROM {projects}'; \
             GRANT EXECUTE ON FUNCTION {schema}.all_projects() TO {app}"
        ),
        &[ChangeKind::FunctionPrivilegesRepaired],
    )
    .await;
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.to_string())
        .await
        .unwrap();
    let call = format!("SELECT {schema}.all_projects()");
    let result = sqlx::query(sqlx::AssertSqlSafe(call))
        .execute(&mut *tx)
        .await;
    assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE);
    drop(tx);

    // Everything is back: isolation holds, the application cannot write audit entries of others.
    assert!(!sees_other_tenants(&foundry, me).await);
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.to_string())
        .await
        .unwrap();
    let result = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {audit} SET action = 'x'"
    )))
    .execute(&mut *tx)
    .await;
    assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE);
}

#[tokio::test]
async fn migrations_upgrade_a_foundry_at_the_previous_version() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    let admin = postgres_support::pool(options, 2).await;
    let db = postgres_support::unique_foundry("upgrade");
    // A foundry as the previous release left it: roles, schema, migration 1 only, and data.
    let mut conn = admin.acquire().await.unwrap().detach();
    let setup = format!(
        "CREATE ROLE {owner} NOLOGIN; CREATE SCHEMA {schema} AUTHORIZATION {owner}",
        owner = quote_ident(&db.roles.owner),
        schema = quote_ident(&db.schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut conn)
        .await
        .unwrap();
    let applied = postgres::run_migrations(&mut conn, &db, Some(1))
        .await
        .unwrap();
    assert_eq!(applied, [1]);
    let user = uuid::Uuid::new_v4();
    let seed = format!(
        "INSERT INTO {schema}.users (id, email) VALUES ('{user}', 'old@example.test'); \
         INSERT INTO {schema}.render_jobs (user_id, status) VALUES ('{user}', 'done')",
        schema = quote_ident(&db.schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let report = postgres::provision(&admin, &db, None).await.unwrap();
    let migrations: Vec<&str> = report
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::MigrationApplied)
        .map(|c| c.object.as_str())
        .collect();
    assert_eq!(migrations, ["2", "4", "5"]);
    // The pre-existing tables had no RLS: that is reported as repaired drift.
    assert!(
        report
            .repairs()
            .any(|c| c.kind == ChangeKind::RowSecurityForced)
    );
    let sql = format!(
        "SELECT status, phase FROM {}.render_jobs",
        quote_ident(&db.schema)
    );
    let (status, phase): (String, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!((status.as_str(), phase), ("done", None));
    assert!(
        postgres::provision(&admin, &db, None)
            .await
            .unwrap()
            .is_unchanged()
    );
}

#[tokio::test]
async fn the_application_password_is_given_generated_or_rotated() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    let admin = postgres_support::pool(options.clone(), 2).await;
    let db = postgres_support::unique_foundry("password");
    let login = |password: SecretString| {
        let options = options
            .clone()
            .username(&db.roles.application)
            .password(password.expose_secret());
        async move { sqlx::PgConnection::connect_with(&options).await }
    };

    let given = SecretString::from("Given'pass\\word with spaces");
    let report = postgres::provision(&admin, &db, Some(&given))
        .await
        .unwrap();
    assert!(report.generated_application_password.is_none());
    assert!(!format!("{report:?}").contains("Given'pass"));
    login(given.clone()).await.unwrap();
    // The same password again: nothing to do.
    assert!(
        postgres::provision(&admin, &db, Some(&given))
            .await
            .unwrap()
            .is_unchanged()
    );

    // A new one is set and reported; the old one stops working.
    let rotated = postgres::generate_password();
    let report = postgres::provision(&admin, &db, Some(&rotated))
        .await
        .unwrap();
    let kinds: Vec<_> = report.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::ApplicationPasswordSet]);
    login(rotated.clone()).await.unwrap();
    assert!(login(given).await.is_err());

    // set_role_password, for the secrets layer's own rotation.
    let third = postgres::generate_password();
    postgres::set_role_password(&admin, &db.roles.application, &third)
        .await
        .unwrap();
    login(third).await.unwrap();
    assert!(login(rotated).await.is_err());
}

#[tokio::test]
async fn generated_passwords_log_in_and_never_show_in_debug_output() {
    let Some(foundry) = provisioned("generated").await else {
        return;
    };
    let password = foundry.app_password.expose_secret().to_owned();
    assert!(password.len() >= 32);
    assert!(!format!("{:?}", foundry.first_report).contains(&password));
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&foundry.app)
        .await
        .unwrap();
    assert_eq!(who, foundry.db.roles.application);
    // The server stores a SCRAM verifier, never the password.
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(&foundry.db.roles.application)
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"));
    assert!(!stored.contains(&password));
}

#[tokio::test]
async fn foundry_names_are_usable_identifiers_on_the_server() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    let admin = postgres_support::pool(options, 2).await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let long_name = format!("{}-{suffix}", "a.very-long.foundry-name".repeat(9));
    let db = FoundryDatabase::for_foundry(&"n".repeat(63), &long_name).unwrap();
    postgres::provision(&admin, &db, None).await.unwrap();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(db.roles.all())
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(found, 4, "no name was truncated by the server");
}
