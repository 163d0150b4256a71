//! The render's record in the foundry's database: one `render_jobs` row per RenderJob (keyed by
//! its UID) and one `audit_logs` row per transition, written as the application role inside
//! `tenant::begin`, so row-level security confines every statement to the render's user.
//!
//! Every write is idempotent: a transition updates the row only when its phase differs (and is
//! not final), and the audit row is inserted from the same statement's result, so a reconcile
//! interrupted and re-run never writes a second row. Rejections and deletions have no phase
//! change to hang on, so their audit rows are guarded by `NOT EXISTS`.

use sqlx::PgPool;

use crate::crd::render_job::RenderPhase;
use crate::postgres::{self, TenantKey, quote_ident, tenant};

/// `audit_logs.resource_type` of renders.
pub const RESOURCE_TYPE: &str = "render_job";

/// What the ledger needs to know about a render.
#[derive(Clone, Debug)]
pub struct RenderRecord<'a> {
    /// The foundry's schema.
    pub schema: &'a str,
    /// Signs the tenant claim of each transaction.
    pub key: &'a TenantKey,
    /// The RenderJob's UID: the row's key.
    pub uid: &'a str,
    /// The tenant user.
    pub user_id: &'a str,
    /// The project, when the render names one.
    pub project_id: Option<&'a str>,
    /// The foundry's name.
    pub foundry: &'a str,
    /// The RenderJob's namespace.
    pub namespace: &'a str,
    /// The RenderJob's name.
    pub name: &'a str,
    /// The vetted workflow digest.
    pub workflow_sha256: &'a str,
    /// The execution mode in force, for the audit trail.
    pub execution_mode: &'a str,
}

/// A transition of a recorded render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The new phase.
    pub phase: RenderPhase,
    /// Why (a condition reason), for the audit details.
    pub reason: String,
    /// What happened, for `render_jobs.error_message` and the audit details on failure.
    pub message: Option<String>,
    /// The output prefix once known.
    pub output_prefix: Option<String>,
}

/// Why the ledger could not write.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The render's user has no row in the foundry's `users` table.
    #[error(
        "user {0} is not known to the foundry's database; the platform must create the user before it renders"
    )]
    UserUnknown(String),
    /// The render's project does not exist or belongs to another user.
    #[error("project {0} does not exist or does not belong to the render's user")]
    ProjectNotOwned(String),
    /// Anything else from the database layer.
    #[error(transparent)]
    Database(#[from] postgres::Error),
}

impl LedgerError {
    /// A bounded PascalCase reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::UserUnknown(_) => "UserUnknown",
            Self::ProjectNotOwned(_) => "ProjectNotOwned",
            Self::Database(error) => error.category(),
        }
    }

    /// True when retrying without a change elsewhere cannot help soon.
    pub fn is_permanent(&self) -> bool {
        match self {
            // The platform may create the user or project any moment: retried with backoff.
            Self::UserUnknown(_) | Self::ProjectNotOwned(_) => false,
            Self::Database(error) => error.is_permanent(),
        }
    }

    /// True when the credentials were refused (the cached pool must be dropped).
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Self::Database(postgres::Error::AuthenticationFailed(_))
        )
    }
}

/// The legacy `render_jobs.status` spelling of a phase (Jynco readers use it).
pub fn legacy_status(phase: RenderPhase) -> &'static str {
    match phase {
        RenderPhase::Pending => "pending",
        RenderPhase::Rejected => "rejected",
        RenderPhase::Queued => "queued",
        RenderPhase::Running => "processing",
        RenderPhase::Succeeded => "completed",
        RenderPhase::Failed => "failed",
        RenderPhase::Cancelled => "cancelled",
        RenderPhase::Unknown => "unknown",
    }
}

/// The audit action of entering `phase`.
pub fn audit_action(phase: RenderPhase) -> &'static str {
    match phase {
        RenderPhase::Queued => "render.submitted",
        RenderPhase::Running => "render.started",
        RenderPhase::Succeeded => "render.finished",
        RenderPhase::Failed => "render.failed",
        RenderPhase::Cancelled => "render.cancelled",
        RenderPhase::Rejected => "render.rejected",
        RenderPhase::Pending | RenderPhase::Unknown => "render.updated",
    }
}

fn phase_name(phase: RenderPhase) -> &'static str {
    match phase {
        RenderPhase::Pending => "Pending",
        RenderPhase::Rejected => "Rejected",
        RenderPhase::Queued => "Queued",
        RenderPhase::Running => "Running",
        RenderPhase::Succeeded => "Succeeded",
        RenderPhase::Failed => "Failed",
        RenderPhase::Cancelled => "Cancelled",
        RenderPhase::Unknown => "Pending",
    }
}

/// `INSERT` of the render row (phase `Queued`) and its `render.submitted` audit row, both only
/// when the row did not exist yet.
pub fn submit_sql(schema: &str) -> String {
    let schema = quote_ident(schema);
    format!(
        "WITH inserted AS ( \
           INSERT INTO {schema}.render_jobs (user_id, project_id, status, foundry, namespace, name, \
             kubernetes_uid, phase, workflow_sha256, output_prefix, queued_at) \
           VALUES ($1::uuid, $2::uuid, 'queued', $3, $4, $5, $6::uuid, 'Queued', $7, $8, now()) \
           ON CONFLICT (kubernetes_uid) DO NOTHING \
           RETURNING user_id) \
         INSERT INTO {schema}.audit_logs (user_id, action, resource_type, resource_id, details, \
           user_agent, execution_mode, success) \
         SELECT user_id, 'render.submitted', '{RESOURCE_TYPE}', $6, \
           jsonb_build_object('namespace', $4::text, 'name', $5::text, 'foundry', $3::text, \
             'workflowSha256', $7::text), \
           $9, $10, true \
         FROM inserted \
         WHERE NOT EXISTS (SELECT 1 FROM {schema}.audit_logs \
           WHERE resource_type = '{RESOURCE_TYPE}' AND resource_id = $6 AND action = 'render.submitted')"
    )
}

/// `UPDATE` of the row to a new phase (never out of a final one) and the transition's audit row,
/// both only when the phase changed.
pub fn transition_sql(schema: &str) -> String {
    let schema = quote_ident(schema);
    format!(
        "WITH changed AS ( \
           UPDATE {schema}.render_jobs SET phase = $2, status = $3, \
             started_at = CASE WHEN $2 = 'Running' THEN COALESCE(started_at, now()) ELSE started_at END, \
             finished_at = CASE WHEN $2 IN ('Succeeded', 'Failed', 'Cancelled') THEN COALESCE(finished_at, now()) ELSE finished_at END, \
             error_message = COALESCE($4, error_message), \
             output_prefix = COALESCE($5, output_prefix), \
             updated_at = now() \
           WHERE kubernetes_uid = $1::uuid AND phase IS DISTINCT FROM $2 \
             AND NOT (phase = 'Running' AND $2 = 'Queued') \
             AND phase NOT IN ('Succeeded', 'Failed', 'Cancelled', 'Rejected') \
           RETURNING user_id) \
         INSERT INTO {schema}.audit_logs (user_id, action, resource_type, resource_id, details, \
           user_agent, execution_mode, success) \
         SELECT user_id, $6, '{RESOURCE_TYPE}', $1, \
           jsonb_build_object('phase', $2::text, 'reason', $7::text, 'message', $4::text), \
           $8, $9, $10 \
         FROM changed"
    )
}

/// An audit row for an event with no phase change (rejection, deletion), once per render.
pub fn audit_once_sql(schema: &str) -> String {
    let schema = quote_ident(schema);
    format!(
        "INSERT INTO {schema}.audit_logs (user_id, action, resource_type, resource_id, details, \
           user_agent, execution_mode, success) \
         SELECT $1::uuid, $2, '{RESOURCE_TYPE}', $3, $4::jsonb, $5, $6, $7 \
         WHERE NOT EXISTS (SELECT 1 FROM {schema}.audit_logs \
           WHERE resource_type = '{RESOURCE_TYPE}' AND resource_id = $3 AND action = $2)"
    )
}

/// The `User-Agent` the operator records in audit rows.
pub fn audit_user_agent() -> String {
    format!("videofoundry-operator/{}", env!("CARGO_PKG_VERSION"))
}

/// Records an approved render as submitted (phase `Queued`). Idempotent.
pub async fn submit(
    pool: &PgPool,
    record: &RenderRecord<'_>,
    output_prefix: &str,
) -> Result<(), LedgerError> {
    let mut tx = tenant::begin(pool, record.key, record.user_id).await?;
    let result = sqlx::query(sqlx::AssertSqlSafe(submit_sql(record.schema)))
        .bind(record.user_id)
        .bind(record.project_id)
        .bind(record.foundry)
        .bind(record.namespace)
        .bind(record.name)
        .bind(record.uid)
        .bind(record.workflow_sha256)
        .bind(output_prefix)
        .bind(audit_user_agent())
        .bind(record.execution_mode)
        .execute(&mut *tx)
        .await;
    if let Err(error) = result {
        return Err(classify(record, error));
    }
    tx.commit()
        .await
        .map_err(|e| postgres::Error::from_sqlx("committing the render record", e))?;
    Ok(())
}

/// Records a transition of a submitted render. Idempotent; a final phase never changes.
pub async fn transition(
    pool: &PgPool,
    record: &RenderRecord<'_>,
    transition: &Transition,
) -> Result<(), LedgerError> {
    let mut tx = tenant::begin(pool, record.key, record.user_id).await?;
    let success = !matches!(transition.phase, RenderPhase::Failed);
    sqlx::query(sqlx::AssertSqlSafe(transition_sql(record.schema)))
        .bind(record.uid)
        .bind(phase_name(transition.phase))
        .bind(legacy_status(transition.phase))
        .bind(transition.message.as_deref())
        .bind(transition.output_prefix.as_deref())
        .bind(audit_action(transition.phase))
        .bind(&transition.reason)
        .bind(audit_user_agent())
        .bind(record.execution_mode)
        .bind(success)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(record, e))?;
    tx.commit()
        .await
        .map_err(|e| postgres::Error::from_sqlx("committing the render record", e))?;
    Ok(())
}

/// Writes the audit row `action` for the render once (rejection, deletion).
pub async fn audit_once(
    pool: &PgPool,
    record: &RenderRecord<'_>,
    action: &str,
    details: serde_json::Value,
    success: bool,
) -> Result<(), LedgerError> {
    let mut tx = tenant::begin(pool, record.key, record.user_id).await?;
    sqlx::query(sqlx::AssertSqlSafe(audit_once_sql(record.schema)))
        .bind(record.user_id)
        .bind(action)
        .bind(record.uid)
        .bind(sqlx::types::Json(details))
        .bind(audit_user_agent())
        .bind(record.execution_mode)
        .bind(success)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(record, e))?;
    tx.commit()
        .await
        .map_err(|e| postgres::Error::from_sqlx("committing the audit record", e))?;
    Ok(())
}

/// Turns the database's refusals of a tenant's row into reasons a user can act on.
fn classify(record: &RenderRecord<'_>, error: sqlx::Error) -> LedgerError {
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        // foreign_key_violation: the user (or project) row does not exist.
        Some("23503") if is_user_key(&error) => LedgerError::UserUnknown(record.user_id.to_owned()),
        Some("23503") | Some("42501") if record.project_id.is_some() => {
            LedgerError::ProjectNotOwned(record.project_id.unwrap_or_default().to_owned())
        }
        _ => LedgerError::Database(postgres::Error::from_sqlx("recording the render", error)),
    }
}

fn is_user_key(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.constraint().is_some_and(|c| c.contains("user_id")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_quotes_the_schema_and_binds_every_value() {
        for sql in [
            submit_sql("vf_a\"b"),
            transition_sql("vf_a\"b"),
            audit_once_sql("vf_a\"b"),
        ] {
            assert!(
                sql.contains("\"vf_a\"\"b\".render_jobs")
                    || sql.contains("\"vf_a\"\"b\".audit_logs")
            );
            // No value is spliced into the text: only the schema and fixed words are.
            assert!(!sql.contains("7f1c"), "{sql}");
        }
    }

    #[test]
    fn a_final_phase_is_never_left() {
        let sql = transition_sql("s");
        assert!(sql.contains("phase NOT IN ('Succeeded', 'Failed', 'Cancelled', 'Rejected')"));
        assert!(sql.contains("phase IS DISTINCT FROM $2"));
        // A render that ran never goes back to Queued (no second `render.submitted`).
        assert!(sql.contains("NOT (phase = 'Running' AND $2 = 'Queued')"));
    }

    #[test]
    fn each_phase_has_its_own_audit_action() {
        let phases = [
            RenderPhase::Queued,
            RenderPhase::Running,
            RenderPhase::Succeeded,
            RenderPhase::Failed,
            RenderPhase::Cancelled,
            RenderPhase::Rejected,
        ];
        let actions: std::collections::BTreeSet<_> =
            phases.iter().map(|p| audit_action(*p)).collect();
        assert_eq!(actions.len(), phases.len());
    }
}
