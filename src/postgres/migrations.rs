//! The embedded migrations, run inside one foundry's schema as its owner role, so that every
//! table belongs to the owner and the schema's `_sqlx_migrations` records the foundry's version.

use sqlx::PgConnection;
use sqlx::migrate::Migrator;

use super::model::MIGRATIONS_TABLE;
use super::{Error, FoundryDatabase, quote_ident};

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Applies pending migrations (up to `target` when given) in the foundry's schema, which must
/// exist and belong to the owner role. Returns the versions it applied.
///
/// The connection's session is changed while migrating (`search_path`, `ROLE`) and restored
/// afterwards.
pub async fn run_migrations(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    target: Option<i64>,
) -> Result<Vec<i64>, Error> {
    let mut migrator = Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ..Migrator::DEFAULT
    };
    let table = format!(
        "{}.{}",
        quote_ident(&db.schema),
        quote_ident(MIGRATIONS_TABLE)
    );
    migrator.dangerous_set_table_name(table);
    // No sqlx lock: it is one per database, so a foundry's `CREATE INDEX CONCURRENTLY` (which
    // waits for every older snapshot in the database) and another foundry's migration blocked
    // on that lock would deadlock. Each foundry's runs are serialised by its own lock instead.
    migrator.set_locking(false);

    let before = applied_versions(conn, &db.schema).await?;
    let session = format!(
        "SET search_path TO {}; SET ROLE {}",
        quote_ident(&db.schema),
        quote_ident(&db.roles.owner)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(session))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("switching to the owner role", e))?;
    // `run_direct` rather than `run`: `run`'s `Acquire<'a>` bound makes every caller's future
    // fail the `Send` check that the controller runtime needs (sqlx documents this workaround).
    let outcome = migrator.run_direct(target, &mut *conn, false).await;
    let restored = sqlx::raw_sql("RESET ROLE; RESET search_path")
        .execute(&mut *conn)
        .await;
    outcome?;
    restored.map_err(|e| Error::from_sqlx("restoring the session", e))?;
    rebuild_invalid_indexes(conn, db).await?;

    let after = applied_versions(conn, &db.schema).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

/// The versions recorded in the schema's migrations table (none when it does not exist yet).
pub(crate) async fn applied_versions(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<i64>, Error> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relname = $2)",
    )
    .bind(schema)
    .bind(MIGRATIONS_TABLE)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading migration history", e))?;
    if !exists {
        return Ok(vec![]);
    }
    let query = format!(
        "SELECT version FROM {}.{} WHERE success ORDER BY version",
        quote_ident(schema),
        quote_ident(MIGRATIONS_TABLE)
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(query))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("reading migration history", e))
}

/// Rebuilds the schema's invalid indexes: what an interrupted `CREATE INDEX CONCURRENTLY` (a
/// migration that timed out waiting for a long transaction) leaves behind, and which a retried
/// `IF NOT EXISTS` would otherwise accept. `REINDEX CONCURRENTLY`, as the owner role, so the
/// application role keeps writing meanwhile.
async fn rebuild_invalid_indexes(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
) -> Result<(), Error> {
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND NOT i.indisvalid ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("looking for invalid indexes", e))?;
    if invalid.is_empty() {
        return Ok(());
    }
    let role = format!("SET ROLE {}", quote_ident(&db.roles.owner));
    sqlx::raw_sql(sqlx::AssertSqlSafe(role))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("switching to the owner role", e))?;
    let mut outcome = Ok(());
    for index in &invalid {
        // One statement per query: REINDEX CONCURRENTLY refuses to run in a transaction block.
        let reindex = format!(
            "REINDEX INDEX CONCURRENTLY {}.{}",
            quote_ident(&db.schema),
            quote_ident(index)
        );
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(reindex))
            .execute(&mut *conn)
            .await
        {
            outcome = Err(Error::from_sqlx("rebuilding an invalid index", error));
            break;
        }
    }
    let restored = sqlx::raw_sql("RESET ROLE").execute(&mut *conn).await;
    outcome?;
    restored
        .map(|_| ())
        .map_err(|e| Error::from_sqlx("restoring the session", e))
}

/// The schemas in the connected database that hold a foundry: a migrations table, and the
/// owner role named after the schema.
pub async fn foundry_schemas(conn: &mut PgConnection) -> Result<Vec<FoundryDatabase>, Error> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $1 \
         WHERE EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = n.nspname || '_owner') \
         ORDER BY 1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("listing the foundries' schemas", e))?;
    schemas
        .iter()
        .map(|schema| FoundryDatabase::for_schema(schema))
        .collect()
}

/// Applies the pending migrations to every foundry schema of the database `admin` is connected
/// to (an upgrade ahead of the operator's own reconciles), each under its foundry's
/// provisioning lock. Only migrations: privileges and policies of what a migration adds follow
/// at the foundry's next provisioning. Returns each foundry's schema and the versions applied;
/// stops at the first failure.
pub async fn upgrade_all(
    admin: &sqlx::PgPool,
    lock_timeout: std::time::Duration,
) -> Result<Vec<(FoundryDatabase, Vec<i64>)>, Error> {
    use sqlx::Connection as _;
    let mut conn = admin
        .acquire()
        .await
        .map_err(|e| Error::from_sqlx("connecting", e))?
        .detach();
    let outcome = async {
        let timeout = format!("SET lock_timeout = {}", lock_timeout.as_millis().max(1));
        super::provision::execute(&mut conn, "setting the lock timeout", timeout).await?;
        let mut upgraded = Vec::new();
        for db in foundry_schemas(&mut conn).await? {
            if !super::provision::lock_foundry(&mut conn, &db, lock_timeout).await? {
                return Err(super::provision::blocked(admin, &db, lock_timeout).await);
            }
            let lock = super::provision::provisioning_lock(&db);
            let applied = run_migrations(&mut conn, &db, None).await;
            sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(&lock)
                .execute(&mut conn)
                .await
                .map_err(|e| Error::from_sqlx("unlocking the foundry", e))?;
            upgraded.push((db, applied?));
        }
        Ok(upgraded)
    }
    .await;
    let _closed = conn.close().await;
    outcome
}
