//! Hostile sessions as the application role that leaked on PostgreSQL 15 before the signed
//! tenant claim, the key guards and the hidden statistics (issue 16): each attack must now fail
//! or show nothing of another tenant, in any output, error or plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use std::time::Duration;

use postgres_support::{Foundry, Tenant, provisioned};
use secrecy::ExposeSecret as _;
use sqlx::{Connection as _, PgConnection};
use videofoundry::postgres::{self, ChangeKind, TenantKey, UserId, quote_ident, tenant};

fn user_id(tenant: &Tenant) -> UserId {
    tenant.user.to_string().parse().unwrap()
}

/// Gives the victim values worth stealing: a name, a project name, an audit action, an error
/// message and a Kubernetes uid, each a random token.
async fn secrets_of(foundry: &Foundry, victim: &Tenant) -> Vec<String> {
    let token = || format!("secret{}", uuid::Uuid::new_v4().simple());
    let (name, project, action, message) = (token(), token(), token(), token());
    let uid = uuid::Uuid::new_v4();
    foundry
        .admin_exec(&format!(
            "UPDATE {users} SET name = '{name}' WHERE id = '{u}'; \
             UPDATE {projects} SET name = '{project}' WHERE id = '{p}'; \
             UPDATE {workflows} SET name = '{project}' WHERE id = '{w}'; \
             UPDATE {segments} SET prompt = '{message}' WHERE id = '{s}'; \
             UPDATE {render_jobs} SET error_message = '{message}', kubernetes_uid = '{uid}' WHERE id = '{r}'; \
             INSERT INTO {audit} (user_id, action) VALUES ('{u}', '{action}');",
            users = foundry.table("users"),
            projects = foundry.table("projects"),
            workflows = foundry.table("workflows"),
            segments = foundry.table("segments"),
            render_jobs = foundry.table("render_jobs"),
            audit = foundry.table("audit_logs"),
            u = victim.user,
            p = victim.project,
            w = victim.workflow,
            s = victim.segment,
            r = victim.render_job,
        ))
        .await;
    vec![
        victim.user.to_string(),
        victim.project.to_string(),
        victim.workflow.to_string(),
        victim.segment.to_string(),
        victim.render_job.to_string(),
        uid.to_string(),
        name,
        project,
        action,
        message,
    ]
}

fn assert_no_secret(text: &str, secrets: &[String], context: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{context}: leaked {secret} in {text}"
        );
    }
}

/// Finding 1: `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE <expr>` evaluated `<expr>` on the
/// conflicting row of another tenant (a cast error or a side effect printed its columns).
#[tokio::test]
async fn on_conflict_do_update_never_evaluates_another_tenants_row() {
    let Some(foundry) = provisioned("leak-upsert").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let secrets = secrets_of(&foundry, &victim).await;
    let victim_uid: String = secrets[5].clone();
    let t = |name: &str| foundry.table(name);
    let mut conn = foundry.app.acquire().await.unwrap();
    // A side channel the application may create: a temporary table fed by a temporary function.
    sqlx::raw_sql(
        "CREATE TEMP TABLE loot (v text); \
         CREATE FUNCTION pg_temp.steal(v text) RETURNS boolean LANGUAGE sql \
         AS 'INSERT INTO loot VALUES (v) RETURNING false'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let m = me.user;
    let fresh = uuid::Uuid::new_v4();
    let upserts = [
        format!(
            "INSERT INTO {} (id, email, name) VALUES ('{m}', '{}@example.test', 'x') \
             ON CONFLICT (email) DO UPDATE SET name = excluded.name \
             WHERE pg_temp.steal(users.id::text || '/' || coalesce(users.name, ''))",
            t("users"),
            victim.user
        ),
        format!(
            "INSERT INTO {} (id, email, name) VALUES ('{m}', '{}@example.test', 'x') \
             ON CONFLICT (email) DO UPDATE SET name = excluded.name \
             WHERE (users.id::text || users.name)::int > 0",
            t("users"),
            victim.user
        ),
        format!(
            "INSERT INTO {} (id, email) VALUES ('{}', 'guess@example.test') \
             ON CONFLICT (id) DO UPDATE SET name = 'x' WHERE (users.email || users.name)::int > 0",
            t("users"),
            victim.user
        ),
        format!(
            "INSERT INTO {} (id, user_id, name) VALUES ('{}', '{m}', 'x') \
             ON CONFLICT (id) DO UPDATE SET name = 'x' \
             WHERE pg_temp.steal(projects.user_id::text || projects.name)",
            t("projects"),
            victim.project
        ),
        format!(
            "INSERT INTO {} (id, user_id, name) VALUES ('{}', '{m}', 'x') \
             ON CONFLICT ON CONSTRAINT projects_pkey DO UPDATE SET name = 'x' \
             WHERE (projects.name)::int > 0",
            t("projects"),
            victim.project
        ),
        format!(
            "INSERT INTO {} (id, user_id, name, definition) VALUES ('{}', '{m}', 'x', '{{}}') \
             ON CONFLICT (id) DO UPDATE SET name = 'x' \
             WHERE pg_temp.steal(workflows.user_id::text || workflows.name)",
            t("workflows"),
            victim.workflow
        ),
        format!(
            "INSERT INTO {} (id, project_id) VALUES ('{}', '{}') \
             ON CONFLICT (id) DO UPDATE SET prompt = 'x' \
             WHERE pg_temp.steal(segments.project_id::text || coalesce(segments.prompt, ''))",
            t("segments"),
            victim.segment,
            me.project
        ),
        format!(
            "INSERT INTO {} (id, user_id) VALUES ('{}', '{m}') \
             ON CONFLICT (id) DO UPDATE SET status = 'x' \
             WHERE pg_temp.steal(render_jobs.user_id::text || coalesce(render_jobs.error_message, ''))",
            t("render_jobs"),
            victim.render_job
        ),
        format!(
            "INSERT INTO {} (id, user_id, kubernetes_uid) VALUES ('{fresh}', '{m}', '{victim_uid}') \
             ON CONFLICT (kubernetes_uid) DO UPDATE SET status = 'x' \
             WHERE (render_jobs.id::text || render_jobs.error_message)::int > 0",
            t("render_jobs")
        ),
        format!(
            "INSERT INTO {} (id, user_id, kubernetes_uid) VALUES ('{fresh}', '{m}', '{victim_uid}') \
             ON CONFLICT (kubernetes_uid) DO UPDATE SET status = 'x' \
             WHERE pg_temp.steal(render_jobs.user_id::text || render_jobs.id::text)",
            t("render_jobs")
        ),
    ];
    for sql in &upserts {
        let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
            .await
            .unwrap();
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await
        {
            Ok(_) => {
                let loot: Vec<String> = sqlx::query_scalar("SELECT v FROM loot")
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                assert_no_secret(&loot.join(" "), &secrets, sql);
            }
            Err(error) => {
                let text = match &error {
                    sqlx::Error::Database(db) => format!("{} {:?}", db.message(), db),
                    other => other.to_string(),
                };
                assert_no_secret(&text, &secrets, sql);
            }
        }
        tx.rollback().await.unwrap();
    }

    // The tenant's own upserts and audit rows keep working (the RenderJob controller's writes).
    let own_uid = uuid::Uuid::new_v4();
    for _ in 0..2 {
        let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (user_id, kubernetes_uid, phase) VALUES ($1, $2, 'Pending') \
             ON CONFLICT (kubernetes_uid) DO NOTHING",
            t("render_jobs")
        )))
        .bind(me.user)
        .bind(own_uid)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (user_id, kubernetes_uid, phase) VALUES ($1, $2, 'Queued') \
             ON CONFLICT (kubernetes_uid) DO UPDATE SET phase = excluded.phase \
             WHERE render_jobs.phase IS DISTINCT FROM excluded.phase",
            t("render_jobs")
        )))
        .bind(me.user)
        .bind(own_uid)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (user_id, action, resource_type) VALUES ($1, 'render', 'RenderJob')",
            t("audit_logs")
        )))
        .bind(me.user)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let sql = format!(
        "SELECT count(*) FROM {} WHERE kubernetes_uid = '{own_uid}' AND user_id = '{}' AND phase = 'Queued'",
        t("render_jobs"),
        me.user
    );
    let own: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert_eq!(own, 1);
    // The victim's rows are untouched.
    let sql = format!(
        "SELECT count(*) FROM {} WHERE id = '{}' AND name = '{}'",
        t("users"),
        victim.user,
        secrets[6]
    );
    let untouched: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert_eq!(untouched, 1);
}

/// The `Plan Rows` estimate of `EXPLAIN (FORMAT JSON) <query>`.
async fn estimate(conn: &mut PgConnection, query: &str) -> f64 {
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (FORMAT JSON) {query}"
    )))
    .fetch_one(conn)
    .await
    .unwrap();
    plan[0]["Plan"]["Plan Rows"].as_f64().unwrap()
}

/// Finding 2: row estimates of `EXPLAIN` used the planner's statistics (most common values,
/// histograms), which leakproof operators may consult under row security: a tenant could
/// binary-search other tenants' ids, names, audit actions and error messages.
#[tokio::test]
async fn explain_estimates_reveal_no_other_tenants_values() {
    let Some(foundry) = provisioned("leak-explain").await else {
        return;
    };
    let tenants = foundry.seed_tenants(2).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let t = |name: &str| foundry.table(name);
    // Enough rows for statistics to matter: 300 users, a skewed project distribution, and the
    // victim's audit action repeated (a most common value).
    let action = format!("secret{}", uuid::Uuid::new_v4().simple());
    foundry
        .admin_exec(&format!(
            "INSERT INTO {users} (id, email) SELECT gen_random_uuid(), 'u' || i || '@x.test' FROM generate_series(1, 300) i; \
             INSERT INTO {projects} (user_id, name) SELECT '{v}', 'victim' || (i % 7) FROM generate_series(1, 2000) i; \
             INSERT INTO {projects} (user_id, name) SELECT id, 'other' FROM {users}; \
             INSERT INTO {audit} (user_id, action) SELECT '{v}', '{action}' FROM generate_series(1, 3000); \
             INSERT INTO {audit} (user_id, action) SELECT id, 'login' FROM {users}; \
             ANALYZE {users}; ANALYZE {projects}; ANALYZE {audit};",
            users = t("users"),
            projects = t("projects"),
            audit = t("audit_logs"),
            v = victim.user,
        ))
        .await;
    let mut conn = foundry.app.acquire().await.unwrap();
    let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
        .await
        .unwrap();
    let probes = [
        (
            format!("SELECT 1 FROM {} WHERE user_id <= ", t("projects")),
            vec![
                format!("'{}'", victim.user),
                "'00000000-0000-0000-0000-000000000001'".to_owned(),
                "'ffffffff-ffff-ffff-ffff-fffffffffffe'".to_owned(),
            ],
        ),
        (
            format!("SELECT 1 FROM {} WHERE user_id = ", t("projects")),
            vec![
                format!("'{}'", victim.user),
                format!("'{}'", uuid::Uuid::new_v4()),
            ],
        ),
        (
            format!("SELECT 1 FROM {} WHERE name <= ", t("projects")),
            vec!["'victim3'".to_owned(), "'a'".to_owned(), "'zzz'".to_owned()],
        ),
        (
            format!("SELECT 1 FROM {} WHERE action = ", t("audit_logs")),
            vec![format!("'{action}'"), "'nothing-like-it'".to_owned()],
        ),
    ];
    for (query, values) in &probes {
        let mut estimates = Vec::new();
        for value in values {
            estimates.push(estimate(&mut tx, &format!("{query}{value}")).await);
        }
        assert!(
            estimates.windows(2).all(|w| w[0] == w[1]),
            "{query}: estimates depend on the value: {estimates:?}"
        );
    }
    tx.rollback().await.unwrap();

    // No statistics exist for any tenant table (read as the superuser).
    let sql = format!(
        "SELECT count(*) FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{}'",
        foundry.db.schema
    );
    let stats: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert_eq!(stats, 0);

    // Statistics collected by hand are found and deleted.
    foundry
        .admin_exec(&format!(
            "ALTER TABLE {p} ALTER COLUMN name SET STATISTICS 100; ANALYZE {p}",
            p = t("projects")
        ))
        .await;
    let report = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    let kinds: Vec<_> = report.repairs().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::StatisticsHidden, ChangeKind::StatisticsCleared]
    );
    let stats: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
    assert_eq!(stats, 0);
}

/// Finding 3: any SQL that could call `set_config` became any tenant, within one statement or
/// for the rest of the session. Now only a claim signed with the foundry's key, for this backend
/// and this transaction, names a tenant.
#[tokio::test]
async fn injected_set_config_cannot_name_another_tenant() {
    let Some(foundry) = provisioned("leak-claim").await else {
        return;
    };
    let tenants = foundry.seed_tenants(3).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let v = victim.user;
    let schema = quote_ident(&foundry.db.schema);
    let projects = foundry.table("projects");
    let mut conn = foundry.app.acquire().await.unwrap();
    let my_claim: String = {
        let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT current_setting('app.tenant_claim')")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    };
    // My claim with the victim's id, a claim signed by another key, and the old setting.
    let swapped = my_claim.replace(&me.user.to_string(), &v.to_string());
    let attacks = [
        format!("SELECT set_config('app.current_user_id', '{v}', true)"),
        format!("SELECT set_config('app.tenant_claim', '{swapped}', true)"),
        format!("SELECT set_config('app.tenant_claim', '{swapped}', false)"),
        format!("SET LOCAL app.tenant_claim = '{swapped}'"),
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS t_default (x text DEFAULT set_config('app.current_user_id', '{v}', true)); \
             INSERT INTO t_default DEFAULT VALUES"
        ),
    ];
    let within_statement = [
        format!(
            "WITH x AS MATERIALIZED (SELECT set_config('app.tenant_claim', '{swapped}', true)) \
             SELECT p.user_id FROM x, {projects} p"
        ),
        format!(
            "SELECT NULL::uuid AS user_id FROM (SELECT set_config('app.current_user_id', '{v}', true)) s \
             UNION ALL SELECT user_id FROM {projects}"
        ),
    ];
    for attack in &attacks {
        let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(attack.clone()))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{attack}: {e}"));
        let seen: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT user_id FROM {projects}"
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert!(!seen.contains(&v), "{attack}");
        let current: Option<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {schema}.current_user_id()"
        )))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_ne!(current, Some(v), "{attack}");
        tx.rollback().await.unwrap();
    }
    for attack in &within_statement {
        let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&me))
            .await
            .unwrap();
        let seen: Vec<Option<uuid::Uuid>> = sqlx::query_scalar(sqlx::AssertSqlSafe(attack.clone()))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(!seen.contains(&Some(v)), "{attack}");
        tx.rollback().await.unwrap();
    }

    // A claim outlives nothing: replayed at session level, in the next transaction, or on
    // another connection, it verifies for nobody.
    sqlx::query("SELECT set_config('app.tenant_claim', $1, false)")
        .bind(&my_claim)
        .execute(&mut *conn)
        .await
        .unwrap();
    let count_sql = format!("SELECT count(*) FROM {projects}");
    let after: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(after, 0);
    let mut other = foundry.app.acquire().await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_claim', $1, true)")
        .bind(&my_claim)
        .execute(&mut *tx)
        .await
        .unwrap();
    let elsewhere: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(elsewhere, 0);
    tx.rollback().await.unwrap();

    // A key of another foundry signs nothing here; the foundry's own key does.
    let stranger = TenantKey::generate();
    let mut tx = tenant::begin_on(&mut conn, &stranger, user_id(&victim))
        .await
        .unwrap();
    let with_stranger: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(with_stranger, 0);
    tx.rollback().await.unwrap();
    let mut tx = tenant::begin_on(&mut conn, &foundry.key, user_id(&victim))
        .await
        .unwrap();
    let with_key: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(with_key, 1);
    tx.rollback().await.unwrap();
}

/// Finding 4: every tenant's running SQL text was visible to every other tenant session (one
/// shared role) in `pg_stat_activity`. A statement a victim is running is now not shown.
#[tokio::test]
async fn tenant_sessions_do_not_see_each_others_sql() {
    let Some(foundry) = provisioned("leak-activity").await else {
        return;
    };
    let tenants = foundry.seed_tenants(2).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let password = foundry.app_password.expose_secret().to_owned();
    let victim_pool = foundry
        .login_pool(&foundry.db.roles.application, &password)
        .await;
    let token = format!("secret{}", uuid::Uuid::new_v4().simple());
    let lock_key = i64::from(rand_key());

    // The test holds an advisory lock, so the victim's statement waits while we look.
    let mut holder = PgConnection::connect_with(&foundry.admin_options)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_key)
        .execute(&mut holder)
        .await
        .unwrap();
    let key = foundry.key.clone();
    let victim_id = user_id(&victim);
    let sql = format!("SELECT '{token}' AS secret, pg_advisory_xact_lock({lock_key})");
    let running = tokio::spawn(async move {
        let mut tx = tenant::begin_as(&victim_pool, &key, victim_id)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    });
    // Wait until the victim's backend is waiting for the lock.
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                            AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(lock_key)
        .fetch_one(&foundry.admin)
        .await
        .unwrap();
        if waiting {
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
        .await
        .unwrap();
    let texts: Vec<Option<String>> =
        sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE usename = current_user")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert!(texts.len() >= 2, "{texts:?}");
    for text in texts.iter().flatten() {
        assert!(!text.contains(&token), "{text}");
    }
    let via_function: Vec<Option<String>> =
        sqlx::query_scalar("SELECT query FROM pg_stat_get_activity(NULL)")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    for text in via_function.iter().flatten() {
        assert!(!text.contains(&token), "{text}");
    }
    tx.rollback().await.unwrap();
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_key)
        .execute(&mut holder)
        .await
        .unwrap();
    running.await.unwrap();
}

fn rand_key() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

/// Finding 5: an application session holding the provisioning advisory lock stalled
/// provisioning forever; now it fails after the lock timeout and names the holder. And a
/// password the application role changed itself is reported as repaired drift.
#[tokio::test]
async fn provisioning_reports_who_blocks_it_and_repairs_a_changed_password() {
    let Some(foundry) = provisioned("leak-lock").await else {
        return;
    };
    let mut app = foundry.app.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("videofoundry:{}", foundry.db.schema))
        .execute(&mut *app)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *app)
        .await
        .unwrap();
    let input = postgres::ProvisionInput {
        lock_timeout: Duration::from_secs(1),
        ..postgres::ProvisionInput::default()
    };
    let error = postgres::provision_with(&foundry.admin, &foundry.db, &input)
        .await
        .expect_err("provisioning must fail while blocked");
    assert_eq!(error.category(), "DatabaseBlocked");
    let text = error.to_string();
    assert!(text.contains(&format!("pid {pid}")), "{text}");
    assert!(text.contains(&foundry.db.roles.application), "{text}");
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *app)
        .await
        .unwrap();

    // The same for a lock on a tenant table held by a tenant transaction, when a repair needs
    // that table.
    foundry
        .admin_exec(&format!(
            "ALTER TABLE {} ALTER COLUMN name SET STATISTICS 10",
            foundry.table("projects")
        ))
        .await;
    let mut tx = sqlx::Acquire::begin(&mut *app).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        foundry.table("projects")
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let error = postgres::provision_with(&foundry.admin, &foundry.db, &input)
        .await
        .expect_err("provisioning must fail while blocked");
    let text = error.to_string();
    assert_eq!(error.category(), "DatabaseBlocked", "{text}");
    assert!(text.contains(&format!("pid {pid}")), "{text}");
    assert!(text.contains("AccessExclusiveLock on projects"), "{text}");
    tx.rollback().await.unwrap();
    drop(app);
    let report = postgres::provision_with(&foundry.admin, &foundry.db, &input)
        .await
        .unwrap();
    let kinds: Vec<_> = report.repairs().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::StatisticsHidden]);

    // The application role changes its own password: repaired, not created.
    let given = foundry.app_password.clone();
    let changed = format!(
        "ALTER ROLE {} PASSWORD 'changed-by-the-application-{}'",
        quote_ident(&foundry.db.roles.application),
        uuid::Uuid::new_v4().simple()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(changed))
        .execute(&foundry.app)
        .await
        .unwrap();
    let report = postgres::provision(&foundry.admin, &foundry.db, Some(&given))
        .await
        .unwrap();
    let password: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::ApplicationPasswordSet)
        .collect();
    assert_eq!(password.len(), 1, "{:#?}", report.changes);
    assert!(password[0].repaired_drift);
}

/// Finding 4, what remains: a tenant transaction may still take an `ACCESS EXCLUSIVE` lock on a
/// table it may update; another tenant waiting for it fails after the tenant lock timeout
/// (`tenant::TENANT_LOCK_TIMEOUT`) instead of hanging.
#[tokio::test]
async fn a_tenant_blocked_by_another_fails_after_the_lock_timeout() {
    let Some(foundry) = provisioned("leak-wait").await else {
        return;
    };
    let tenants = foundry.seed_tenants(2).await;
    let (me, victim) = (tenants[0], tenants[1]);
    let mut attacker = tenant::begin(&foundry.app, &foundry.key, &me.user.to_string())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        foundry.table("projects")
    )))
    .execute(&mut *attacker)
    .await
    .unwrap();
    let mut tx = tenant::begin(&foundry.app, &foundry.key, &victim.user.to_string())
        .await
        .unwrap();
    let result = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {}",
        foundry.table("projects")
    )))
    .fetch_all(&mut *tx)
    .await;
    assert_eq!(postgres_support::sqlstate(result), "55P03");
    tx.rollback().await.unwrap();
    attacker.rollback().await.unwrap();
}
