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
