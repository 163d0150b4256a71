//! Many interleaved tenant transactions on one shared pool: the tenant set in one transaction
//! never reaches another, including through sqlx's per-connection prepared-statement cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postgres_support::provisioned;
use videofoundry::postgres::tenant;

const TENANTS: usize = 32;
const PROJECTS_PER_TENANT: i64 = 4;
const TRANSACTIONS: u64 = 100_000;
const WORKERS: u64 = 48;
const POOL_SIZE: u32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_pooled_transactions_never_cross_tenants() {
    let Some(foundry) = provisioned("pooled").await else {
        return;
    };
    let tenants = foundry.seed_tenants(TENANTS).await;
    foundry
        .admin_exec(&format!(
            "INSERT INTO {} (user_id, name) SELECT id, 'extra ' || g FROM {}, generate_series(2, {PROJECTS_PER_TENANT}) g",
            foundry.table("projects"),
            foundry.table("users")
        ))
        .await;
    let pool = postgres_support::pool(
        foundry
            .admin_options
            .clone()
            .username(&foundry.db.roles.application)
            .password(secrecy::ExposeSecret::expose_secret(&foundry.app_password)),
        POOL_SIZE,
    )
    .await;
    let users: Arc<Vec<uuid::Uuid>> = Arc::new(tenants.iter().map(|t| t.user).collect());
    let select = Arc::new(format!("SELECT user_id FROM {}", foundry.table("projects")));
    let insert = Arc::new(format!(
        "INSERT INTO {} (user_id, action) VALUES ($1, 'pooled-test') RETURNING user_id",
        foundry.table("audit_logs")
    ));
    let untenanted = Arc::new(format!(
        "SELECT count(*) FROM {}",
        foundry.table("projects")
    ));
    let done = Arc::new(AtomicU64::new(0));
    let cross_tenant_rows = Arc::new(AtomicU64::new(0));
    let rows_seen = Arc::new(AtomicU64::new(0));

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (pool, users, select, insert, untenanted) = (
            pool.clone(),
            users.clone(),
            select.clone(),
            insert.clone(),
            untenanted.clone(),
        );
        let key = foundry.key.clone();
        let (done, cross_tenant_rows, rows_seen) =
            (done.clone(), cross_tenant_rows.clone(), rows_seen.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0_u64;
            while done.fetch_add(1, Ordering::Relaxed) < TRANSACTIONS {
                i += 1;
                let user = users[((worker * 7919 + i * 104_729) % users.len() as u64) as usize];
                let mut tx = tenant::begin(&pool, &key, &user.to_string()).await.unwrap();
                // Let other transactions run between setting the tenant and using it.
                tokio::task::yield_now().await;
                let seen: Vec<uuid::Uuid> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(select.as_str()))
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap();
                assert_eq!(seen.len() as i64, PROJECTS_PER_TENANT);
                rows_seen.fetch_add(seen.len() as u64, Ordering::Relaxed);
                let crossed = seen.iter().filter(|seen| **seen != user).count() as u64;
                cross_tenant_rows.fetch_add(crossed, Ordering::Relaxed);
                if i.is_multiple_of(5) {
                    let written: uuid::Uuid =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(insert.as_str()))
                            .bind(user)
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                    cross_tenant_rows.fetch_add(u64::from(written != user), Ordering::Relaxed);
                }
                if i.is_multiple_of(10) {
                    // Injected SQL keeps the claim (and the old setting) for the whole session:
                    // after this commit, no later transaction on the connection may see a tenant
                    // it did not claim itself.
                    sqlx::query(
                        "SELECT set_config('app.tenant_claim', current_setting('app.tenant_claim'), false), \
                                set_config('app.current_user_id', $1, false)",
                    )
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                }
                if i.is_multiple_of(2) {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                if i.is_multiple_of(50) {
                    // A query outside any tenant transaction, on whichever connection comes
                    // next: it must see nothing.
                    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(untenanted.as_str()))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    cross_tenant_rows.fetch_add(count as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let rows_seen = rows_seen.load(Ordering::Relaxed);
    let cross = cross_tenant_rows.load(Ordering::Relaxed);
    eprintln!(
        "{TRANSACTIONS} transactions across {TENANTS} tenants on {POOL_SIZE} connections: \
         {rows_seen} rows read, {cross} cross-tenant"
    );
    assert_eq!(rows_seen, TRANSACTIONS * PROJECTS_PER_TENANT as u64);
    assert_eq!(cross, 0);
    // Every audit entry written belongs to the tenant that wrote it (checked as the superuser).
    let sql = format!(
        "SELECT count(*) FROM {} WHERE action = 'pooled-test' AND user_id IS NULL",
        foundry.table("audit_logs")
    );
    let orphaned: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert_eq!(orphaned, 0);
}
