//! Row-level security on a real PostgreSQL: every tenant table isolates select, insert, update
//! and delete across many tenants; no tenant means no rows; session variables, the owner role
//! and `row_security = off` give no way around it; admin and auditor access comes from role
//! membership only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use postgres_support::{Foundry, INSUFFICIENT_PRIVILEGE, Tenant, provisioned, sqlstate};
use sqlx::{PgPool, Row as _};
use videofoundry::postgres::{self, TENANT_TABLES, quote_ident, tenant};

const TENANTS: usize = 24;

/// The id column and seeded id of a tenant's row in each tenant table.
fn seeded_id(table: &str, tenant: &Tenant) -> String {
    match table {
        "users" => tenant.user.to_string(),
        "projects" => tenant.project.to_string(),
        "workflows" => tenant.workflow.to_string(),
        "segments" => tenant.segment.to_string(),
        "render_jobs" => tenant.render_job.to_string(),
        "audit_logs" => tenant.audit_id.to_string(),
        other => panic!("unknown table {other}"),
    }
}

async fn visible_ids(foundry: &Foundry, tenant: &Tenant, table: &str) -> Vec<String> {
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &tenant.user.to_string())
        .await
        .unwrap();
    let sql = format!("SELECT id::text FROM {} ORDER BY 1", foundry.table(table));
    let ids = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

#[tokio::test]
async fn each_tenant_selects_only_its_own_rows_in_every_tenant_table() {
    let Some(foundry) = provisioned("iso-select").await else {
        return;
    };
    let tenants = foundry.seed_tenants(TENANTS).await;
    for tenant in &tenants {
        for table in TENANT_TABLES {
            assert_eq!(
                visible_ids(&foundry, tenant, table).await,
                [seeded_id(table, tenant)],
                "{table}"
            );
        }
    }
    for table in TENANT_TABLES {
        assert_eq!(foundry.admin_count(table).await, TENANTS as i64, "{table}");
    }
}

#[tokio::test]
async fn updates_and_deletes_reach_only_the_tenants_own_rows() {
    let Some(foundry) = provisioned("iso-write").await else {
        return;
    };
    let tenants = foundry.seed_tenants(TENANTS).await;
    let updates = [
        ("users", "name = 'changed'"),
        ("projects", "name = 'changed'"),
        ("workflows", "name = 'changed'"),
        ("segments", "prompt = 'changed'"),
        ("render_jobs", "status = 'changed'"),
    ];
    let (me, others) = tenants.split_first().unwrap();
    for (table, assignment) in updates {
        // An unqualified UPDATE touches one row: the tenant's own.
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        let sql = format!("UPDATE {} SET {assignment}", foundry.table(table));
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(result.rows_affected(), 1, "{table}");
        // Targeting another tenant's row by id finds nothing.
        for other in others {
            let sql = format!(
                "UPDATE {} SET {assignment} WHERE id::text = $1",
                foundry.table(table)
            );
            let result = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(seeded_id(table, other))
                .execute(&mut *tx)
                .await
                .unwrap();
            assert_eq!(result.rows_affected(), 0, "{table}");
        }
        tx.commit().await.unwrap();
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}",
            foundry.table(table),
            assignment.replace(" = ", " IS NOT DISTINCT FROM ")
        );
        let changed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&foundry.admin)
            .await
            .unwrap();
        assert_eq!(changed, 1, "{table}: only the tenant's row changed");
    }

    // Deletes, children first: an unqualified DELETE removes only the tenant's own row.
    for table in ["render_jobs", "segments", "workflows", "projects", "users"] {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        for other in others {
            let sql = format!("DELETE FROM {} WHERE id::text = $1", foundry.table(table));
            let result = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(seeded_id(table, other))
                .execute(&mut *tx)
                .await
                .unwrap();
            assert_eq!(result.rows_affected(), 0, "{table}");
        }
        let sql = format!("DELETE FROM {}", foundry.table(table));
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(result.rows_affected(), 1, "{table}");
        tx.commit().await.unwrap();
        assert_eq!(
            foundry.admin_count(table).await,
            (TENANTS - 1) as i64,
            "{table}"
        );
    }
}

#[tokio::test]
async fn inserts_are_accepted_for_the_tenant_and_refused_for_anyone_else() {
    let Some(foundry) = provisioned("iso-insert").await else {
        return;
    };
    let tenants = foundry.seed_tenants(4).await;
    let (me, others) = tenants.split_first().unwrap();
    let insert = |table: &str, columns: &str, values: String| {
        format!(
            "INSERT INTO {} ({columns}) VALUES ({values})",
            foundry.table(table)
        )
    };
    let own = [
        insert(
            "projects",
            "user_id, name",
            format!("'{}', 'mine'", me.user),
        ),
        insert(
            "workflows",
            "user_id, name, definition",
            format!("'{}', 'mine', '{{}}'", me.user),
        ),
        insert("segments", "project_id", format!("'{}'", me.project)),
        insert(
            "render_jobs",
            "user_id, project_id, segment_id",
            format!("'{}', '{}', '{}'", me.user, me.project, me.segment),
        ),
        insert(
            "audit_logs",
            "user_id, action",
            format!("'{}', 'render.create'", me.user),
        ),
    ];
    for sql in own {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tx.commit().await.unwrap();
    }
    for other in others {
        let forged = [
            insert(
                "users",
                "id, email",
                format!("'{}', 'x@example.test'", uuid::Uuid::new_v4()),
            ),
            insert(
                "projects",
                "user_id, name",
                format!("'{}', 'forged'", other.user),
            ),
            insert(
                "workflows",
                "user_id, name, definition",
                format!("'{}', 'forged', '{{}}'", other.user),
            ),
            insert("segments", "project_id", format!("'{}'", other.project)),
            insert(
                "render_jobs",
                "user_id, project_id",
                format!("'{}', '{}'", other.user, other.project),
            ),
            // Own user id, but someone else's project or segment.
            insert(
                "render_jobs",
                "user_id, project_id",
                format!("'{}', '{}'", me.user, other.project),
            ),
            insert(
                "render_jobs",
                "user_id, project_id, segment_id",
                format!("'{}', '{}', '{}'", me.user, me.project, other.segment),
            ),
            insert(
                "audit_logs",
                "user_id, action",
                format!("'{}', 'forged'", other.user),
            ),
            insert("audit_logs", "user_id, action", "NULL, 'forged'".to_owned()),
        ];
        for sql in forged {
            let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
                .await
                .unwrap();
            let result = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *tx)
                .await;
            assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE, "{sql}");
        }
    }
    assert_eq!(foundry.admin_count("projects").await, 5);
    assert_eq!(foundry.admin_count("audit_logs").await, 5);
}

#[tokio::test]
async fn without_a_tenant_every_table_is_empty() {
    let Some(foundry) = provisioned("iso-none").await else {
        return;
    };
    foundry.seed_tenants(3).await;
    for table in TENANT_TABLES {
        let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
        // Outside any transaction, inside a plain one, and with the setting explicitly empty.
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&foundry.app)
            .await
            .unwrap();
        assert_eq!(count, 0, "{table}");
        let mut tx = foundry.app.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_claim', '', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(count, 0, "{table}");
    }
}

#[tokio::test]
async fn session_variables_never_grant_admin() {
    let Some(foundry) = provisioned("iso-vars").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let me = tenants[0];
    for setting in [
        "SET app.current_user_role = 'admin'",
        "SET app.role = 'admin'",
        "SET app.is_admin = 'true'",
        "SET app.bypass_rls = 'on'",
        "SET application_name = 'admin'",
    ] {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(setting.to_owned()))
            .execute(&mut *tx)
            .await
            .unwrap();
        for table in TENANT_TABLES {
            let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(count, 1, "{setting}: {table}");
        }
    }
}

#[tokio::test]
async fn the_owner_cannot_bypass_forced_row_level_security() {
    let Some(foundry) = provisioned("iso-owner").await else {
        return;
    };
    foundry.seed_tenants(3).await;
    let mut conn = foundry.admin.acquire().await.unwrap();
    let set_role = format!("SET ROLE {}", quote_ident(&foundry.db.roles.owner));
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_role))
        .execute(&mut *conn)
        .await
        .unwrap();
    for table in TENANT_TABLES {
        let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(count, 0, "the owner reads nothing from {table}");
    }
    sqlx::raw_sql("RESET ROLE")
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_application_cannot_switch_row_security_off() {
    let Some(foundry) = provisioned("iso-rowsec").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    for table in TENANT_TABLES {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &tenants[0].user.to_string())
            .await
            .unwrap();
        sqlx::raw_sql("SET LOCAL row_security = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
        let result = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await;
        // PostgreSQL refuses the query rather than silently filtering it.
        assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE, "{table}");
    }
}

async fn create_login(foundry: &Foundry, member_of: Option<&str>) -> (String, PgPool) {
    let login = format!(
        "vf_test_login_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let password = "login-password-for-tests";
    foundry
        .admin_exec(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{password}'",
            quote_ident(&login)
        ))
        .await;
    if let Some(role) = member_of {
        foundry
            .admin_exec(&format!(
                "GRANT {} TO {}",
                quote_ident(role),
                quote_ident(&login)
            ))
            .await;
    }
    let pool = foundry.login_pool(&login, password).await;
    (login, pool)
}

#[tokio::test]
async fn admin_access_comes_from_role_membership_only() {
    let Some(foundry) = provisioned("iso-admin").await else {
        return;
    };
    foundry.seed_tenants(5).await;
    let (_, staff) = create_login(&foundry, Some(&foundry.db.roles.admin)).await;
    let (_, stranger) = create_login(&foundry, None).await;
    // A member of the admin role sees and manages every tenant's rows, no variable needed.
    for table in TENANT_TABLES {
        let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&staff)
            .await
            .unwrap();
        assert_eq!(count, 5, "{table}");
        // Anyone else, whatever they set, is refused by the privileges.
        let mut tx = stranger.begin().await.unwrap();
        sqlx::raw_sql("SET LOCAL app.current_user_role = 'admin'")
            .execute(&mut *tx)
            .await
            .unwrap();
        let result = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await;
        assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE, "{table}");
    }
    let sql = format!("UPDATE {} SET name = 'by admin'", foundry.table("projects"));
    let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&staff)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 5);
    // Admins keep the audit trail intact: no UPDATE on audit_logs.
    let sql = format!("UPDATE {} SET action = 'x'", foundry.table("audit_logs"));
    let result = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&staff).await;
    assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE);
}

#[tokio::test]
async fn the_auditor_reads_everything_and_writes_nothing() {
    let Some(foundry) = provisioned("iso-auditor").await else {
        return;
    };
    let tenants = foundry.seed_tenants(4).await;
    let (_, auditor) = create_login(&foundry, Some(&foundry.db.roles.auditor)).await;
    for table in TENANT_TABLES {
        let sql = format!("SELECT count(*) FROM {}", foundry.table(table));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&auditor)
            .await
            .unwrap();
        assert_eq!(count, 4, "{table}");
        let sql = format!("DELETE FROM {}", foundry.table(table));
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&auditor)
            .await;
        assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE, "{table}");
    }
    let sql = format!(
        "INSERT INTO {} (user_id, action) VALUES ('{}', 'x')",
        foundry.table("audit_logs"),
        tenants[0].user
    );
    let result = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&auditor)
        .await;
    assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE);
}

#[tokio::test]
async fn audit_logs_are_insert_only_for_the_application() {
    let Some(foundry) = provisioned("iso-audit").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let me = tenants[0];
    let table = foundry.table("audit_logs");
    for sql in [
        format!("UPDATE {table} SET action = 'rewritten'"),
        format!("UPDATE {table} SET user_id = '{}'", tenants[1].user),
        format!("DELETE FROM {table}"),
        format!("DELETE FROM {table} WHERE id = {}", me.audit_id),
        format!("TRUNCATE {table}"),
    ] {
        let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
            .await
            .unwrap();
        let result = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await;
        assert_eq!(sqlstate(result), INSUFFICIENT_PRIVILEGE, "{sql}");
    }
    // The tenant reads its own entries only.
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
        .await
        .unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, user_id FROM {table}"
    )))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<uuid::Uuid, _>("user_id"), me.user);
    assert_eq!(foundry.admin_count("audit_logs").await, 3);
}

#[tokio::test]
async fn hostile_user_ids_are_rejected_before_any_sql() {
    let Some(options) = postgres_support::admin_options() else {
        return;
    };
    // A pool that can never connect: any SQL would fail as "unreachable", not "invalid id".
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect_lazy_with(options.port(1));
    for hostile in [
        "",
        "admin",
        "' OR 1=1 --",
        "00000000-0000-0000-0000-000000000000",
        "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6'; SET row_security = off; --",
        "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6\0",
        "{7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6}",
        "7f1c0e1a1b2c4d3e8f90a1b2c3d4e5f6",
        "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6,8f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
    ] {
        let error = tenant::begin(&unreachable, &postgres::TenantKey::generate(), hostile)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, postgres::Error::InvalidUserId),
            "{hostile:?}: {error}"
        );
        assert!(!error.to_string().contains("OR 1=1"));
    }
    // A valid id does reach for the (unreachable) server.
    let error = tenant::begin(
        &unreachable,
        &postgres::TenantKey::generate(),
        "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, postgres::Error::Unreachable(_)), "{error}");
}

#[tokio::test]
async fn a_pooled_connection_forgets_the_tenant_when_the_transaction_ends() {
    let Some(foundry) = provisioned("iso-pool").await else {
        return;
    };
    let tenants = foundry.seed_tenants(2).await;
    let single = foundry
        .login_pool(
            &foundry.db.roles.application,
            secrecy::ExposeSecret::expose_secret(&foundry.app_password),
        )
        .await;
    for end_with_commit in [true, false] {
        let mut tx = tenant::begin(&single, &foundry.key, &tenants[0].user.to_string())
            .await
            .unwrap();
        let current = format!(
            "SELECT {}.current_user_id()",
            postgres::quote_ident(&foundry.db.schema)
        );
        let seen: Option<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(current.clone()))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, Some(tenants[0].user));
        if end_with_commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        let after: String =
            sqlx::query_scalar("SELECT coalesce(current_setting('app.tenant_claim', true), '')")
                .fetch_one(&single)
                .await
                .unwrap();
        assert_eq!(after, "");
        let nobody: Option<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(current))
            .fetch_one(&single)
            .await
            .unwrap();
        assert_eq!(nobody, None);
        let sql = format!("SELECT count(*) FROM {}", foundry.table("projects"));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&single)
            .await
            .unwrap();
        assert_eq!(count, 0);
    }
}
