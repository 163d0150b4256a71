//! Removing a foundry from its database (deletion with `reclaimPolicy: Delete`): end the
//! sessions of its roles and of the users that are members of its application role (Vault's
//! dynamic users), drop its schema with everything in it, then its roles. Idempotent: what is
//! already gone counts as removed. Touches nothing but the foundry's own schema and roles, so
//! other foundries in the same database keep running.

use sqlx::{Connection as _, PgConnection, PgPool};

use super::provision::{DEFAULT_LOCK_TIMEOUT, blocked, check_provisioner, execute, lock_foundry};
use super::sql::quote_ident;
use super::{Error, FoundryDatabase};

/// What [`deprovision`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeprovisionReport {
    /// Sessions that were ended.
    pub sessions_ended: i64,
    /// The schema existed and was dropped.
    pub schema_dropped: bool,
    /// Roles that existed and were dropped.
    pub roles_dropped: Vec<String>,
}

/// Drops the foundry's schema and roles, after ending their sessions.
pub async fn deprovision(admin: &PgPool, db: &FoundryDatabase) -> Result<DeprovisionReport, Error> {
    let mut conn = admin
        .acquire()
        .await
        .map_err(|e| Error::from_sqlx("connecting", e))?
        .detach();
    // Serialised with provisioning runs of the same foundry (another replica, the migrate CLI).
    let outcome = match lock_foundry(&mut conn, db, DEFAULT_LOCK_TIMEOUT).await {
        Ok(true) => deprovision_on(&mut conn, db).await,
        Ok(false) => Err(blocked(admin, db, DEFAULT_LOCK_TIMEOUT).await),
        Err(error) => Err(error),
    };
    // The advisory lock ends with the session.
    let _closed = conn.close().await;
    outcome
}

async fn deprovision_on(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
) -> Result<DeprovisionReport, Error> {
    let timeout = format!("SET lock_timeout = {}", DEFAULT_LOCK_TIMEOUT.as_millis());
    execute(conn, "setting the lock timeout", timeout).await?;
    check_provisioner(conn).await?;

    let roles: Vec<String> = db.roles.all().iter().map(|r| (*r).to_owned()).collect();
    let sessions_ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) FROM pg_stat_activity a \
         WHERE a.pid <> pg_backend_pid() AND (a.usename = ANY($1) OR a.usename IN ( \
             SELECT member.rolname FROM pg_auth_members m \
             JOIN pg_roles member ON member.oid = m.member \
             JOIN pg_roles grp ON grp.oid = m.roleid WHERE grp.rolname = $2))",
    )
    .bind(&roles)
    .bind(&db.roles.application)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("ending the foundry's sessions", e))?;

    let mut report = DeprovisionReport {
        sessions_ended,
        ..DeprovisionReport::default()
    };
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a transaction", e))?;
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&db.schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| Error::from_sqlx("reading the schema", e))?;
    if schema_exists {
        let drop = format!("DROP SCHEMA {} CASCADE", quote_ident(&db.schema));
        execute(&mut tx, "dropping the foundry's schema", drop).await?;
        report.schema_dropped = true;
    }
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)")
            .bind(&roles)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| Error::from_sqlx("reading the foundry's roles", e))?;
    // In the fixed order of `all()`, so the report reads the same every time.
    for role in roles.iter().filter(|role| existing.contains(role)) {
        let quoted = quote_ident(role);
        // Privileges the role holds in this database (CONNECT, grants from other schemas).
        let owned = format!("DROP OWNED BY {quoted}");
        execute(&mut tx, "dropping what the foundry's roles own", owned).await?;
        let drop = format!("DROP ROLE {quoted}");
        execute(&mut tx, "dropping the foundry's roles", drop).await?;
        report.roles_dropped.push(role.clone());
    }
    tx.commit()
        .await
        .map_err(|e| Error::from_sqlx("committing the removal", e))?;
    Ok(report)
}
