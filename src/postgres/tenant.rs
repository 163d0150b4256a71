//! Tenant-scoped access: the one way to run a tenant's queries. The user id is validated before
//! any SQL runs; the transaction then learns its backend's process id and start time and sets a
//! claim signed with the foundry's [`TenantKey`] (`set_config('app.tenant_claim', $1, true)`).
//! The policies trust only a claim that verifies for this backend and this transaction, so SQL
//! injected into the session cannot name another tenant, and neither a session-level setting nor
//! a pooled connection carries a tenant into the next transaction.

use std::fmt;
use std::str::FromStr;

use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Transaction};

use super::Error;
use super::claim::{CLAIM_SETTING, TenantKey};

/// How long a tenant's statement waits for a lock before failing: another session holding an
/// `ACCESS EXCLUSIVE` lock on a tenant table stalls a tenant for at most this long.
pub const TENANT_LOCK_TIMEOUT: &str = "10s";

/// A tenant's user id: a canonical (hyphenated, 36-character) UUID that is not nil.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(uuid::Uuid);

impl UserId {
    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl FromStr for UserId {
    type Err = Error;

    /// Accepts only the canonical hyphenated form (either case), so that braces, URNs, simple
    /// hex, whitespace, NUL bytes or SQL fragments are rejected outright.
    fn from_str(text: &str) -> Result<Self, Error> {
        let well_formed = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if !well_formed {
            return Err(Error::InvalidUserId);
        }
        let uuid = uuid::Uuid::try_parse(text).map_err(|_| Error::InvalidUserId)?;
        if uuid.is_nil() || uuid.is_max() {
            return Err(Error::InvalidUserId);
        }
        Ok(UserId(uuid))
    }
}

impl From<UserId> for uuid::Uuid {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0.hyphenated())
    }
}

/// Begins a transaction scoped to one tenant, asserted by a claim signed with `key` (the
/// foundry's current key, see `crate::secrets::tenant_key`). `user_id` is validated first;
/// nothing reaches the server when it is malformed. Use a pool that logs in as the foundry's
/// application role: a superuser or a role with `BYPASSRLS` is not confined by the policies.
pub async fn begin(
    pool: &PgPool,
    key: &TenantKey,
    user_id: &str,
) -> Result<Transaction<'static, Postgres>, Error> {
    let user = user_id.parse::<UserId>()?;
    begin_as(pool, key, user).await
}

/// [`begin`] for an already validated user id.
pub async fn begin_as(
    pool: &PgPool,
    key: &TenantKey,
    user: UserId,
) -> Result<Transaction<'static, Postgres>, Error> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a tenant transaction", e))?;
    assert_tenant(&mut tx, key, user).await?;
    Ok(tx)
}

/// [`begin_as`] on a connection the caller holds (e.g. one with session objects of its own).
pub async fn begin_on<'c>(
    conn: &'c mut PgConnection,
    key: &TenantKey,
    user: UserId,
) -> Result<Transaction<'c, Postgres>, Error> {
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a tenant transaction", e))?;
    assert_tenant(&mut tx, key, user).await?;
    Ok(tx)
}

/// Sets the signed claim for `user`, bound to this backend and this transaction's start time
/// (`now()`), and a lock timeout for the transaction.
async fn assert_tenant(
    conn: &mut PgConnection,
    key: &TenantKey,
    user: UserId,
) -> Result<(), Error> {
    let (pid, start_micros): (i32, i64) = sqlx::query_as(
        "SELECT pg_catalog.pg_backend_pid(), \
                (pg_catalog.extract('epoch', pg_catalog.now()) * 1000000)::bigint",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading the transaction's identity", e))?;
    sqlx::query(
        "SELECT pg_catalog.set_config($1, $2, true), pg_catalog.set_config('lock_timeout', $3, true)",
    )
    .bind(CLAIM_SETTING)
    .bind(key.sign(pid, start_micros, user))
    .bind(TENANT_LOCK_TIMEOUT)
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("setting the tenant", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_are_accepted() {
        let id: UserId = "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6".parse().unwrap();
        assert_eq!(id.to_string(), "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6");
        let upper: UserId = "7F1C0E1A-1B2C-4D3E-8F90-A1B2C3D4E5F6".parse().unwrap();
        assert_eq!(upper, id);
    }

    #[test]
    fn hostile_and_malformed_ids_are_rejected() {
        for text in [
            "",
            " ",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "7f1c0e1a1b2c4d3e8f90a1b2c3d4e5f6",
            "{7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6}",
            "urn:uuid:7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
            " 7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
            "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6 ",
            "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6\0",
            "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5fg",
            "7f1c0e1a-1b2c-4d3e-8f90a-1b2c3d4e5f6",
            "' OR '1'='1",
            "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6'; SET row_security = off; --",
            "'; DROP TABLE users; --00000000000000",
            "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f６",
        ] {
            assert!(text.parse::<UserId>().is_err(), "{text:?}");
        }
    }
}
