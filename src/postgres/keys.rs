//! The keys the database accepts for tenant claims (`tenant_claim_keys`): provisioning makes the
//! table hold exactly the secret's keys; a key rotation adds the new key first.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool};

use super::claim::TenantKey;
use super::model::CLAIM_KEYS_TABLE;
use super::provision::{ChangeKind, ProvisionReport};
use super::sql::qualified;
use super::{Error, FoundryDatabase};

/// Makes the key table hold exactly `wanted` (see [`ProvisionInput::tenant_keys`]). Returns the
/// key it generated, if any.
pub(crate) async fn ensure_tenant_keys(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    wanted: Option<&[TenantKey]>,
    report: &mut ProvisionReport,
) -> Result<Option<TenantKey>, Error> {
    let table = qualified(&db.schema, CLAIM_KEYS_TABLE);
    let present = tenant_key_ids(conn, &table).await?;
    let mut generated = None;
    let wanted: Vec<TenantKey> = match wanted {
        Some(keys) if !keys.is_empty() => keys.to_vec(),
        _ if !present.is_empty() => return Ok(None),
        _ => {
            let key = TenantKey::generate();
            generated = Some(key.clone());
            vec![key]
        }
    };
    let ids: BTreeSet<String> = wanted.iter().map(TenantKey::id).collect();
    for id in present.iter().filter(|id| !ids.contains(*id)) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE key_id = $1"
        )))
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("removing a tenant key", e))?;
        report.record(ChangeKind::TenantKeyRemoved, id, "");
    }
    insert_tenant_keys(conn, &table, &wanted, &present, report).await?;
    Ok(generated)
}

/// Adds the keys the foundry's database does not hold yet, and never removes one (provisioning
/// does, once the secret no longer holds it): the step of a key rotation that makes the database
/// accept a new key before any backend signs with it. Returns how many keys were added.
pub async fn add_tenant_keys(
    admin: &PgPool,
    db: &FoundryDatabase,
    keys: &[TenantKey],
) -> Result<usize, Error> {
    let mut tx = admin
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a transaction", e))?;
    let table = qualified(&db.schema, CLAIM_KEYS_TABLE);
    let present = tenant_key_ids(&mut tx, &table).await?;
    let mut report = ProvisionReport::default();
    insert_tenant_keys(&mut tx, &table, keys, &present, &mut report).await?;
    tx.commit()
        .await
        .map_err(|e| Error::from_sqlx("committing the tenant keys", e))?;
    Ok(report.changes.len())
}

async fn tenant_key_ids(conn: &mut PgConnection, table: &str) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT key_id::text FROM {table}"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading the tenant keys", e))
}

async fn insert_tenant_keys(
    conn: &mut PgConnection,
    table: &str,
    keys: &[TenantKey],
    present: &[String],
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    for key in keys.iter().filter(|k| !present.contains(&k.id())) {
        let (inner, outer) = key.pads();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (key_id, inner_pad, outer_pad) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id) DO NOTHING"
        )))
        .bind(key.id())
        .bind(inner)
        .bind(outer)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("installing a tenant key", e))?;
        report.record(ChangeKind::TenantKeyAdded, key.id(), "");
    }
    Ok(())
}
