//! Helpers shared by the tests/postgres_*.rs suites: a real PostgreSQL started by
//! scripts/services/postgres.sh, one freshly provisioned foundry per test.
#![allow(dead_code)]

use std::str::FromStr;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row as _};
use videofoundry::postgres::{self, FoundryDatabase, ProvisionReport};

#[path = "../common/mod.rs"]
pub mod common;

/// A provisioned foundry and pools for its roles.
pub struct Foundry {
    pub db: FoundryDatabase,
    pub admin: PgPool,
    pub app: PgPool,
    pub app_password: SecretString,
    pub first_report: ProvisionReport,
    pub admin_options: PgConnectOptions,
}

/// The superuser URL from scripts/services/postgres.sh, or `None` (test skipped).
pub fn admin_options() -> Option<PgConnectOptions> {
    let url = common::service_env("VF_TEST_POSTGRES_URL")?;
    Some(PgConnectOptions::from_str(&url).expect("VF_TEST_POSTGRES_URL parses"))
}

pub async fn pool(options: PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await
        .expect("connect to the test PostgreSQL")
}

/// A unique foundry name, so tests running in parallel never share roles or schemas.
pub fn unique_foundry(label: &str) -> FoundryDatabase {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    FoundryDatabase::for_foundry("test", &format!("{label}-{suffix}")).expect("valid names")
}

/// Provisions a new foundry and connects as its application role.
pub async fn provisioned(label: &str) -> Option<Foundry> {
    let admin_options = admin_options()?;
    let admin = pool(admin_options.clone(), 4).await;
    let db = unique_foundry(label);
    let first_report = postgres::provision(&admin, &db, None)
        .await
        .expect("first provisioning");
    let app_password = first_report
        .generated_application_password
        .clone()
        .expect("a generated password for a new application role");
    let app = pool(
        admin_options
            .clone()
            .username(&db.roles.application)
            .password(app_password.expose_secret()),
        8,
    )
    .await;
    Some(Foundry {
        db,
        admin,
        app,
        app_password,
        first_report,
        admin_options,
    })
}

impl Foundry {
    /// `schema.table`, quoted.
    pub fn table(&self, name: &str) -> String {
        format!(
            "{}.{}",
            postgres::quote_ident(&self.db.schema),
            postgres::quote_ident(name)
        )
    }

    /// Runs SQL as the superuser (bypasses RLS): for seeding and inspecting.
    pub async fn admin_exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Counts rows as the superuser.
    pub async fn admin_count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {}", self.table(table));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.admin)
            .await
            .unwrap()
            .get(0)
    }

    /// Creates a tenant (users row) and a project for it, as the superuser.
    pub async fn seed_tenant(&self) -> (uuid::Uuid, uuid::Uuid) {
        let user = uuid::Uuid::new_v4();
        let project = uuid::Uuid::new_v4();
        self.admin_exec(&format!(
            "INSERT INTO {} (id, email) VALUES ('{user}', '{user}@example.test'); \
             INSERT INTO {} (id, user_id, name) VALUES ('{project}', '{user}', 'p');",
            self.table("users"),
            self.table("projects")
        ))
        .await;
        (user, project)
    }
}

/// The rows seeded for one tenant, one per tenant table.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub user: uuid::Uuid,
    pub project: uuid::Uuid,
    pub workflow: uuid::Uuid,
    pub segment: uuid::Uuid,
    pub render_job: uuid::Uuid,
    pub audit_id: i32,
}

impl Foundry {
    /// Seeds `count` tenants with one row in every tenant table each (as the superuser).
    pub async fn seed_tenants(&self, count: usize) -> Vec<Tenant> {
        let mut tenants = Vec::with_capacity(count);
        for _ in 0..count {
            let (user, project) = self.seed_tenant().await;
            let workflow = uuid::Uuid::new_v4();
            let segment = uuid::Uuid::new_v4();
            let render_job = uuid::Uuid::new_v4();
            self.admin_exec(&format!(
                "INSERT INTO {} (id, user_id, name, definition) VALUES ('{workflow}', '{user}', 'w', '{{}}'); \
                 INSERT INTO {} (id, project_id, prompt) VALUES ('{segment}', '{project}', 'p'); \
                 INSERT INTO {} (id, project_id, user_id, segment_id) VALUES ('{render_job}', '{project}', '{user}', '{segment}');",
                self.table("workflows"),
                self.table("segments"),
                self.table("render_jobs"),
            ))
            .await;
            let sql = format!(
                "INSERT INTO {} (user_id, action) VALUES ('{user}', 'seed') RETURNING id",
                self.table("audit_logs")
            );
            let audit_id: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&self.admin)
                .await
                .unwrap();
            tenants.push(Tenant {
                user,
                project,
                workflow,
                segment,
                render_job,
                audit_id,
            });
        }
        tenants
    }

    /// A pool for another login role, with the same server and database.
    pub async fn login_pool(&self, role: &str, password: &str) -> PgPool {
        pool(
            self.admin_options.clone().username(role).password(password),
            2,
        )
        .await
    }
}

/// The SQLSTATE of a failed statement, or a panic when it succeeded.
pub fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other:?}"),
    }
}

/// SQLSTATE 42501: permission denied, or a row that violates a row-level-security policy.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
