//! RLS overhead: the same indexed tenant query, run as the application role under row-level
//! security, and with an explicit `WHERE user_id = $1` as a role that bypasses RLS (the
//! superuser), on 1,000,000 projects of 1,000 tenants. Both sides run in identical transactions
//! (`tenant::begin`, with a signed claim), alternating, with the tenants in the same random order; only the query is
//! timed. Also reports PostgreSQL's own execution time (EXPLAIN ANALYZE) for both plans.
//!
//! Run: `eval "$(bash scripts/services/postgres.sh start)"` then
//! `cargo bench --profile dev --bench rls_overhead`. Target: ratio ≤ 1.10.

use std::str::FromStr;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row as _};
use videofoundry::postgres::{self, FoundryDatabase, TenantKey, quote_ident, tenant};

const TENANTS: i64 = 1_000;
const ROWS_PER_TENANT: i64 = 1_000;
const ITERATIONS: usize = 2_000;
const WARMUP: usize = 200;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(url) = std::env::var("VF_TEST_POSTGRES_URL") else {
        eprintln!(
            "rls_overhead: VF_TEST_POSTGRES_URL is not set; start scripts/services/postgres.sh"
        );
        return;
    };
    if let Err(message) = run(&url).await {
        eprintln!("rls_overhead: {message}");
        std::process::exit(1);
    }
}

async fn run(url: &str) -> Result<(), String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .map_err(|e| e.to_string())?;
    // A fresh foundry each run, so that the data and its statistics are known.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let db = FoundryDatabase::for_foundry("bench", &format!("rls-overhead-{suffix}"))
        .map_err(|e| e.to_string())?;
    let report = postgres::provision(&admin, &db, None)
        .await
        .map_err(|e| e.to_string())?;
    let password = report
        .generated_application_password
        .ok_or("the application role already existed")?;
    let key = report
        .generated_tenant_key
        .ok_or("the foundry already had a tenant key")?;
    let app = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            options
                .clone()
                .username(&db.roles.application)
                .password(password.expose_secret()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let bypass = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;

    let schema = quote_ident(&db.schema);
    let started = Instant::now();
    let load = format!(
        "INSERT INTO {schema}.users (id, email) \
             SELECT gen_random_uuid(), 'user' || g || '@example.test' FROM generate_series(1, {TENANTS}) g; \
         INSERT INTO {schema}.projects (user_id, name) \
             SELECT u.id, 'project ' || g FROM {schema}.users u, generate_series(1, {ROWS_PER_TENANT}) g; \
         ANALYZE {schema}.users; ANALYZE {schema}.projects"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(load))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    let users: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {schema}.users ORDER BY md5(id::text)"
    )))
    .fetch_all(&admin)
    .await
    .map_err(|e| e.to_string())?;
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.projects"
    )))
    .fetch_one(&admin)
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "loaded {rows} projects for {} tenants in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );

    let under_rls = format!("SELECT id, name FROM {schema}.projects");
    let explicit = format!("SELECT id, name FROM {schema}.projects WHERE user_id = $1");
    let mut rls_times = Vec::with_capacity(ITERATIONS);
    let mut bypass_times = Vec::with_capacity(ITERATIONS);
    for i in 0..(WARMUP + ITERATIONS) {
        let user = users[i % users.len()];
        // Alternate which side runs first, so neither always finds the other's pages cached.
        let (rls, direct) = if i % 2 == 0 {
            let rls = timed(&app, &key, user, &under_rls, false).await?;
            (rls, timed(&bypass, &key, user, &explicit, true).await?)
        } else {
            let direct = timed(&bypass, &key, user, &explicit, true).await?;
            (timed(&app, &key, user, &under_rls, false).await?, direct)
        };
        if i >= WARMUP {
            rls_times.push(rls);
            bypass_times.push(direct);
        }
    }
    let (rls_median, bypass_median) = (median(&mut rls_times), median(&mut bypass_times));
    let (rls_mean, bypass_mean) = (mean(&rls_times), mean(&bypass_times));
    println!(
        "query: {ROWS_PER_TENANT} rows of one tenant through projects_user_id_idx; {ITERATIONS} runs each, alternating"
    );
    println!(
        "application role under RLS:       median {:>8.1} µs, mean {:>8.1} µs",
        micros(rls_median),
        micros(rls_mean)
    );
    println!(
        "bypassing role with WHERE:        median {:>8.1} µs, mean {:>8.1} µs",
        micros(bypass_median),
        micros(bypass_mean)
    );
    println!(
        "RLS overhead ratio (median):      {:.3}x   (mean: {:.3}x; target <= 1.10x)",
        rls_median.as_secs_f64() / bypass_median.as_secs_f64(),
        rls_mean.as_secs_f64() / bypass_mean.as_secs_f64()
    );

    // PostgreSQL's own execution time, without the client.
    let mut rls_server = Vec::new();
    let mut bypass_server = Vec::new();
    for (i, user) in users.iter().enumerate() {
        if i % 2 == 0 {
            rls_server.push(server_time(&app, &key, *user, &under_rls, false).await?);
            bypass_server.push(server_time(&bypass, &key, *user, &explicit, true).await?);
        } else {
            bypass_server.push(server_time(&bypass, &key, *user, &explicit, true).await?);
            rls_server.push(server_time(&app, &key, *user, &under_rls, false).await?);
        }
    }
    let (rls_server, bypass_server) = (median_f64(&mut rls_server), median_f64(&mut bypass_server));
    println!(
        "server execution time (median):   RLS {rls_server:.3} ms, WHERE {bypass_server:.3} ms, ratio {:.3}x",
        rls_server / bypass_server
    );
    let plan = plan_text(&bypass, &key, users[0], &explicit, true).await?;
    println!("plan with WHERE, bypassing RLS:\n{plan}");
    let plan = plan_text(&app, &key, users[0], &under_rls, false).await?;
    println!("plan under RLS:\n{plan}");

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    for role in db.roles.all() {
        let drop = format!("DROP OWNED BY {0}; DROP ROLE {0}", quote_ident(role));
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&admin)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn timed(
    pool: &PgPool,
    key: &TenantKey,
    user: uuid::Uuid,
    sql: &str,
    bind_user: bool,
) -> Result<Duration, String> {
    let mut tx = tenant::begin(pool, key, &user.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    if bind_user {
        query = query.bind(user);
    }
    let started = Instant::now();
    let rows = query.fetch_all(&mut *tx).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    tx.rollback().await.map_err(|e| e.to_string())?;
    if rows.len() as i64 != ROWS_PER_TENANT {
        return Err(format!(
            "expected {ROWS_PER_TENANT} rows, got {}",
            rows.len()
        ));
    }
    Ok(elapsed)
}

async fn server_time(
    pool: &PgPool,
    key: &TenantKey,
    user: uuid::Uuid,
    sql: &str,
    bind_user: bool,
) -> Result<f64, String> {
    let mut tx = tenant::begin(pool, key, &user.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
    if bind_user {
        query = query.bind(user);
    }
    let row = query.fetch_one(&mut *tx).await.map_err(|e| e.to_string())?;
    tx.rollback().await.map_err(|e| e.to_string())?;
    let plan: serde_json::Value = row.try_get(0).map_err(|e| e.to_string())?;
    plan[0]["Execution Time"]
        .as_f64()
        .ok_or_else(|| "no execution time in the plan".to_owned())
}

async fn plan_text(
    pool: &PgPool,
    key: &TenantKey,
    user: uuid::Uuid,
    sql: &str,
    bind_user: bool,
) -> Result<String, String> {
    let mut tx = tenant::begin(pool, key, &user.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")));
    if bind_user {
        query = query.bind(user);
    }
    let lines: Vec<String> = query.fetch_all(&mut *tx).await.map_err(|e| e.to_string())?;
    tx.rollback().await.map_err(|e| e.to_string())?;
    Ok(lines.join("\n"))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / times.len() as u32
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
