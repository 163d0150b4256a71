//! Hostile SQL run as the application role, inside one tenant's transaction, against a foundry
//! provisioned the normal way: it must not read, change or forge another tenant's rows or audit
//! entries, nor change the schema, its privileges or its policies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use postgres_support::{Foundry, provisioned};
use sqlx::Row as _;
use videofoundry::postgres::{self, TENANT_TABLES, quote_ident, tenant};

/// A digest of every row of every tenant table, read as the superuser.
async fn snapshot(foundry: &Foundry) -> Vec<String> {
    let mut digests = Vec::new();
    for table in TENANT_TABLES {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t",
            foundry.table(table)
        );
        digests.push(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&foundry.admin)
                .await
                .unwrap(),
        );
    }
    digests
}

#[tokio::test]
async fn hostile_statements_as_the_application_role_fail_or_see_only_the_tenant() {
    let Some(foundry) = provisioned("hostile").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let before = snapshot(&foundry).await;
    let roles = &foundry.db.roles;
    let schema = quote_ident(&foundry.db.schema);
    let t = |name: &str| foundry.table(name);
    let v = victim.user;

    let must_fail = [
        // Becoming someone else.
        format!("SET ROLE {}", quote_ident(&roles.owner)),
        format!("SET ROLE {}", quote_ident(&roles.admin)),
        format!("SET ROLE {}", quote_ident(&roles.auditor)),
        "SET ROLE postgres".to_owned(),
        "SET SESSION AUTHORIZATION postgres".to_owned(),
        format!("GRANT {} TO CURRENT_USER", quote_ident(&roles.admin)),
        format!("ALTER ROLE {} BYPASSRLS", quote_ident(&roles.application)),
        format!("ALTER ROLE {} SUPERUSER", quote_ident(&roles.application)),
        // Switching row-level security off or rewriting the policies.
        format!("ALTER TABLE {} DISABLE ROW LEVEL SECURITY", t("projects")),
        format!(
            "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY",
            t("audit_logs")
        ),
        format!("ALTER TABLE {} OWNER TO CURRENT_USER", t("projects")),
        format!("DROP POLICY vf_tenant_all ON {}", t("projects")),
        format!(
            "ALTER POLICY vf_tenant_all ON {} USING (true)",
            t("projects")
        ),
        format!(
            "CREATE POLICY mine ON {} FOR SELECT USING (true)",
            t("projects")
        ),
        format!(
            "DO $$ BEGIN EXECUTE 'ALTER TABLE {} DISABLE ROW LEVEL SECURITY'; END $$",
            t("users")
        ),
        "SET LOCAL row_security = off; SELECT 1 FROM pg_class LIMIT 0".to_owned()
            + &format!("; SELECT * FROM {}", t("projects")),
        // Creating code or objects that would run with more rights.
        format!(
            "CREATE FUNCTION {schema}.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM {}'",
            t("projects")
        ),
        "CREATE FUNCTION public.peek() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'"
            .to_owned(),
        format!("CREATE TABLE {schema}.mine (x int)"),
        "CREATE TABLE public.mine (x int)".to_owned(),
        format!(
            "CREATE VIEW {schema}.all_projects AS SELECT * FROM {}",
            t("projects")
        ),
        format!(
            "CREATE TRIGGER spy BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            t("projects")
        ),
        "CREATE EXTENSION dblink".to_owned(),
        "CREATE SCHEMA mine".to_owned(),
        format!(
            "GRANT SELECT ON {} TO PUBLIC WITH GRANT OPTION; SELECT 1/0",
            t("projects")
        ),
        // Forging rows for another tenant.
        format!(
            "INSERT INTO {} (user_id, name) VALUES ('{v}', 'forged')",
            t("projects")
        ),
        format!(
            "INSERT INTO {} (user_id, action) VALUES ('{v}', 'login')",
            t("audit_logs")
        ),
        format!(
            "INSERT INTO {} (user_id, action) SELECT '{v}', 'login'",
            t("audit_logs")
        ),
        format!(
            "INSERT INTO {} (user_id, action) VALUES (NULL, 'anonymous')",
            t("audit_logs")
        ),
        format!(
            "INSERT INTO {} (project_id) VALUES ('{}')",
            t("segments"),
            victim.project
        ),
        format!(
            "INSERT INTO {} (user_id, project_id) VALUES ('{}', '{}')",
            t("render_jobs"),
            me.user,
            victim.project
        ),
        format!(
            "INSERT INTO {} (id, user_id, name) VALUES ('{}', '{}', 'stolen') ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id",
            t("projects"),
            victim.project,
            me.user
        ),
        format!(
            "INSERT INTO {} (id, email, role) VALUES ('{}', 'me2@example.test', 'admin')",
            t("users"),
            uuid::Uuid::new_v4()
        ),
        // Moving own rows into another tenant, or promoting oneself.
        format!("UPDATE {} SET user_id = '{v}'", t("projects")),
        format!("UPDATE {} SET user_id = '{v}'", t("workflows")),
        format!("UPDATE {} SET user_id = '{v}'", t("render_jobs")),
        format!(
            "UPDATE {} SET project_id = '{}'",
            t("segments"),
            victim.project
        ),
        format!("UPDATE {} SET id = '{v}'", t("users")),
        format!("UPDATE {} SET role = 'admin'", t("users")),
        // Rewriting or erasing the audit trail.
        format!("UPDATE {} SET action = 'nothing happened'", t("audit_logs")),
        format!("UPDATE {} SET user_id = '{v}'", t("audit_logs")),
        format!("DELETE FROM {}", t("audit_logs")),
        format!("TRUNCATE {}", t("audit_logs")),
        format!("TRUNCATE {} CASCADE", t("users")),
        format!("SELECT setval('{}.audit_logs_id_seq', 1)", schema),
        // Reading what is not the application's.
        format!("SELECT * FROM {}._sqlx_migrations", schema),
        "SELECT pg_read_file('/etc/passwd')".to_owned(),
        "COPY (SELECT 1) TO '/tmp/vf-hostile'".to_owned(),
        "SELECT * FROM pg_authid".to_owned(),
        format!("ALTER TABLE {} ADD COLUMN spy text", t("projects")),
        format!("DROP TABLE {}", t("audit_logs")),
        // The claim machinery: its keys, its function, the key guards, the hidden SQL text.
        format!("SELECT * FROM {schema}.tenant_claim_keys"),
        format!("SELECT count(*) FROM {schema}.tenant_claim_keys"),
        format!("ALTER FUNCTION {schema}.current_user_id() SECURITY INVOKER"),
        format!("ALTER FUNCTION {schema}.current_user_id() OWNER TO CURRENT_USER"),
        format!(
            "CREATE OR REPLACE FUNCTION {schema}.current_user_id() RETURNS uuid LANGUAGE sql AS 'SELECT ''{v}''::uuid'"
        ),
        format!("DROP FUNCTION {schema}.current_user_id() CASCADE"),
        format!("SELECT {schema}.vf_key_guard_users()"),
        format!("ALTER TABLE {} DISABLE TRIGGER vf_key_guard", t("users")),
        format!("ALTER TABLE {} DISABLE TRIGGER ALL", t("render_jobs")),
        format!("DROP TRIGGER vf_key_guard ON {}", t("projects")),
        format!(
            "ALTER TABLE {} ALTER COLUMN user_id SET STATISTICS 1000",
            t("projects")
        ),
        "SET track_activities = on".to_owned(),
        format!(
            "ALTER ROLE {} SET track_activities = on",
            quote_ident(&roles.application)
        ),
        "SET session_replication_role = replica".to_owned(),
    ];
    for sql in &must_fail {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await;
        assert!(result.is_err(), "hostile statement succeeded: {sql}");
        tx.rollback().await.unwrap();
    }

    // Statements PostgreSQL accepts, which must still see or touch only the tenant's rows.
    let only_own_rows = [
        format!("SELECT user_id FROM {}", t("projects")),
        format!(
            "SELECT user_id FROM {} WHERE user_id = '{v}' OR true",
            t("audit_logs")
        ),
        format!(
            "SELECT user_id FROM {} UNION ALL SELECT user_id FROM {}",
            t("projects"),
            t("workflows")
        ),
        format!(
            "SELECT p.user_id FROM {} p JOIN {} u ON true",
            t("projects"),
            t("users")
        ),
        format!("SELECT id AS user_id FROM {}", t("users")),
        format!(
            "SELECT r.user_id FROM {} r LEFT JOIN {} s ON s.id = r.segment_id",
            t("render_jobs"),
            t("segments")
        ),
        format!(
            "WITH x AS (UPDATE {} SET name = name RETURNING user_id) SELECT user_id FROM x",
            t("projects")
        ),
        format!(
            "DELETE FROM {} WHERE user_id = '{v}' RETURNING user_id",
            t("projects")
        ),
        format!(
            "UPDATE {} SET name = 'mine' WHERE user_id = '{v}' RETURNING user_id",
            t("workflows")
        ),
        format!(
            "SELECT user_id FROM {} WHERE id IN (SELECT project_id FROM {})",
            t("projects"),
            t("segments")
        ),
    ];
    for sql in &only_own_rows {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        for row in rows {
            assert_eq!(row.get::<uuid::Uuid, _>("user_id"), me.user, "{sql}");
        }
        tx.rollback().await.unwrap();
    }

    // Code the application may create for itself (temporary objects) runs with its own rights.
    let mut conn = foundry.app.acquire().await.unwrap();
    let peek = format!(
        "CREATE FUNCTION pg_temp.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
         AS 'SELECT count(*) FROM {}'; \
         CREATE TEMP VIEW all_projects AS SELECT * FROM {}",
        t("projects"),
        t("projects")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(peek))
        .execute(&mut *conn)
        .await
        .unwrap();
    let me_id: postgres::UserId = me.user.to_string().parse().unwrap();
    let mut tx = tenant::begin_on(&mut conn, &foundry.key, me_id)
        .await
        .unwrap();
    let through_function: i64 = sqlx::query_scalar("SELECT pg_temp.peek()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let through_view: i64 = sqlx::query_scalar("SELECT count(*) FROM all_projects")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!((through_function, through_view), (1, 1));
    tx.rollback().await.unwrap();
    drop(conn);

    // Planner statistics of RLS-protected tables are hidden from the application.
    foundry
        .admin_exec(&format!("ANALYZE {}", t("projects")))
        .await;
    let stats: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stats WHERE schemaname = $1")
        .bind(&foundry.db.schema)
        .fetch_one(&foundry.app)
        .await
        .unwrap();
    assert_eq!(stats, 0);

    // Nothing changed: no row of any tenant, no privilege, no policy, no RLS flag.
    assert_eq!(snapshot(&foundry).await, before);
    let report = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    assert!(report.is_unchanged(), "{:#?}", report.changes);
}

#[tokio::test]
async fn session_defaults_set_by_the_application_never_leak_and_are_reset() {
    let Some(foundry) = provisioned("hostile-defaults").await else {
        return;
    };
    let tenants = foundry.seed_tenants(2).await;
    let app = quote_ident(&foundry.db.roles.application);
    // A default tenant for future sessions is refused outright.
    let sql = format!(
        "ALTER ROLE {app} SET app.current_user_id = '{}'",
        tenants[1].user
    );
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&foundry.app)
        .await;
    assert_eq!(
        postgres_support::sqlstate(result),
        postgres_support::INSUFFICIENT_PRIVILEGE
    );

    // PostgreSQL does let a role change its own defaults for ordinary settings. With
    // row_security off, tenant queries fail instead of leaking; provisioning removes it.
    let sql = format!("ALTER ROLE {app} SET row_security = off");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&foundry.app)
        .await
        .unwrap();
    let password = secrecy::ExposeSecret::expose_secret(&foundry.app_password).to_owned();
    let count_projects = |pool: sqlx::PgPool| {
        let sql = format!("SELECT count(*) FROM {}", foundry.table("projects"));
        let user = tenants[0].user.to_string();
        let key = foundry.key.clone();
        async move {
            let mut tx = tenant::begin(&pool, &key, &user).await.unwrap();
            let result: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *tx)
                .await;
            drop(tx);
            pool.close().await;
            result
        }
    };
    let fresh = foundry
        .login_pool(&foundry.db.roles.application, &password)
        .await;
    assert!(count_projects(fresh).await.is_err());

    let report = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    let kinds: Vec<_> = report.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [postgres::ChangeKind::RoleSettingsReset]);
    let fresh = foundry
        .login_pool(&foundry.db.roles.application, &password)
        .await;
    assert_eq!(count_projects(fresh).await.unwrap(), 1);
}
