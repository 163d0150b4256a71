//! No planner statistics on tenant tables: they would leak other tenants' values through
//! `EXPLAIN` row estimates.

use std::collections::BTreeSet;

use sqlx::PgConnection;

use super::model::TENANT_TABLES;
use super::provision::{ChangeKind, ProvisionReport, execute};
use super::sql::qualified;
use super::{Error, FoundryDatabase, quote_ident};

/// Planner statistics of tenant tables hold other tenants' values (most common values,
/// histogram bounds), and PostgreSQL uses them for leakproof operators such as `uuid_le` and
/// `text_le` even under row security, so `EXPLAIN` row estimates would reveal them. Every
/// column of a tenant table collects none (`SET STATISTICS 0`), and statistics collected before
/// are deleted (a superuser may; otherwise a warning says they remain).
pub(crate) async fn ensure_statistics_hidden(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    superuser: bool,
    existed: &BTreeSet<String>,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let collecting: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.attnum > 0 \
           AND NOT a.attisdropped AND a.attstattarget <> 0 \
         ORDER BY 1, a.attnum",
    )
    .bind(&db.schema)
    .bind(TENANT_TABLES)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading statistics targets", e))?;
    for table in TENANT_TABLES {
        let columns: Vec<&str> = collecting
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, c)| c.as_str())
            .collect();
        if columns.is_empty() {
            continue;
        }
        let clauses: Vec<String> = columns
            .iter()
            .map(|c| format!("ALTER COLUMN {} SET STATISTICS 0", quote_ident(c)))
            .collect();
        let sql = format!(
            "ALTER TABLE {} {}",
            qualified(&db.schema, table),
            clauses.join(", ")
        );
        execute(conn, "hiding planner statistics", sql).await?;
        report.changed(
            existed.contains(table),
            ChangeKind::StatisticsHidden,
            table,
            format!("collected statistics on {}", columns.join(", ")),
        );
    }
    let kept: Vec<String> = if superuser {
        sqlx::query_scalar(
            "WITH gone AS (DELETE FROM pg_catalog.pg_statistic s USING pg_class c, pg_namespace n \
                           WHERE c.oid = s.starelid AND n.oid = c.relnamespace \
                             AND n.nspname = $1 AND c.relname = ANY($2) \
                           RETURNING c.relname::text AS relname) \
             SELECT DISTINCT relname FROM gone ORDER BY 1",
        )
    } else {
        sqlx::query_scalar(
            "SELECT DISTINCT tablename::text FROM pg_stats \
             WHERE schemaname = $1 AND tablename = ANY($2) ORDER BY 1",
        )
    }
    .bind(&db.schema)
    .bind(TENANT_TABLES)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("clearing planner statistics", e))?;
    for table in kept {
        if superuser {
            report.repaired(
                ChangeKind::StatisticsCleared,
                &table,
                "held statistics with tenant values",
            );
        } else {
            tracing::warn!(
                schema = %db.schema,
                table,
                "planner statistics with tenant values remain; only a superuser can delete them \
                 (run `videofoundry-operator migrate` once as a superuser)"
            );
        }
    }
    Ok(())
}
