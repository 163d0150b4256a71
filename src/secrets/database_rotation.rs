//! Rotation of the application role's Postgres password, as a state machine whose every state
//! is safe to stop in.
//!
//! The `database` secret's latest KV version always holds a password Postgres accepts, in
//! `password` or (during a rotation) `pending_password`; readers use [`password_candidates`].
//!
//! | state | KV latest | Postgres | a run that finds it |
//! |---|---|---|---|
//! | Stable | `password`=P | P | rotates when due: writes `pending_password`=N (CAS) → Pending |
//! | Pending | `password`=P, `pending_password`=N | P | `ALTER ROLE ... PASSWORD` N → Applied |
//! | Applied | `password`=P, `pending_password`=N | N | writes `password`=N, `previous_valid_until` (CAS) → Grace |
//! | Grace | `password`=N, `previous_valid_until`=T | N | after T: drops the field, destroys older versions (CAS) → Stable |
//!
//! A run interrupted anywhere resumes from the state it finds: Pending and Applied look alike
//! in Vault, and re-applying N is idempotent, so a run that finds `pending_password` applies it
//! and commits. P stays readable in the older KV versions until the grace period ends. Postgres
//! keeps one password per role, so new logins with P fail from the `ALTER ROLE` on (sessions
//! already open stay open); the grace period keeps P recoverable from Vault and auditable.
//! Two operators racing lose at a check-and-set and retry on the next reconcile.
//!
//! The key that signs tenant claims (`claimKey`, [`super::tenant_key`]) rides along: Pending
//! also records `pendingClaimKey`, Applied has installed it in the database (which then accepts
//! both keys), and Grace makes it `claimKey` with the old one as `previousClaimKey`, still
//! accepted until the grace period ends. A backend never signs with a key the database lacks.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::postgres::FoundryDatabase;

use super::error::SecretsError;
use super::generate::generate_password;
use super::kv::{self, SecretFields, Versioned};
use super::layout::{FoundryLayout, SecretKey};
use super::rotation::{
    RotationDue, RotationOutcome, RotationPolicy, end_grace_if_expired, fields, grace_end,
    rotation_due, timestamp_field,
};
use super::tenant_key::{CLAIM_KEY, PENDING_CLAIM_KEY, PREVIOUS_CLAIM_KEY, generate_claim_key};
use super::vault::VaultSession;

/// The application role's password in the `database` secret.
pub const PASSWORD: &str = "password";
/// The password being rotated to.
pub const PENDING_PASSWORD: &str = "pending_password";

/// The passwords to try, in order, when logging in as the application role: the pending one
/// first (during a rotation it is the one Postgres has once `ALTER ROLE` ran), then the current.
pub fn password_candidates(fields: &SecretFields) -> Vec<&SecretString> {
    [PENDING_PASSWORD, PASSWORD]
        .into_iter()
        .filter_map(|name| fields.get(name))
        .collect()
}

fn text(value: impl ToString) -> SecretString {
    SecretString::from(value.to_string())
}

/// Stores the application password and the key that signs tenant claims if the foundry has
/// none yet (a secret written before the key existed gets one added); returns what Vault holds
/// afterwards. Provisioning should be called with the stored password and keys, so Vault and
/// Postgres agree.
pub async fn ensure_database_password(
    session: &VaultSession,
    layout: &FoundryLayout,
    now: Timestamp,
) -> Result<Versioned, SecretsError> {
    let path = layout.path(&SecretKey::Database)?;
    let current = kv::ensure_generated(session, &layout.kv_mount, &path, || {
        SecretFields::new()
            .with(PASSWORD, generate_password())
            .with(CLAIM_KEY, generate_claim_key())
            .with(fields::ROTATED_AT, text(now))
    })
    .await?;
    if current.fields.get(CLAIM_KEY).is_some() {
        return Ok(current);
    }
    let mut fields = current.fields.clone();
    fields.insert(CLAIM_KEY, generate_claim_key());
    let version = kv::write_cas(session, &layout.kv_mount, &path, &fields, current.version).await?;
    Ok(Versioned { version, fields })
}

/// Step Stable → Pending: records a new password as pending. Returns the new KV version.
pub async fn begin_rotation(
    session: &VaultSession,
    layout: &FoundryLayout,
    current: &Versioned,
    request: Option<&str>,
) -> Result<Versioned, SecretsError> {
    let path = layout.path(&SecretKey::Database)?;
    let mut pending = current.fields.clone();
    pending.insert(PENDING_PASSWORD, generate_password());
    if pending.get(PENDING_CLAIM_KEY).is_none() {
        pending.insert(PENDING_CLAIM_KEY, generate_claim_key());
    }
    pending.insert(fields::ROTATION_REQUEST, text(request.unwrap_or_default()));
    let version =
        kv::write_cas(session, &layout.kv_mount, &path, &pending, current.version).await?;
    Ok(Versioned {
        version,
        fields: pending,
    })
}

/// Step Pending → Applied: sets the pending password on the application role (idempotent).
pub async fn apply_pending(
    admin: &PgPool,
    application_role: &str,
    pending: &Versioned,
    path: &str,
) -> Result<(), SecretsError> {
    let password = pending.fields.require(path, PENDING_PASSWORD)?;
    crate::postgres::set_role_password(admin, application_role, password)
        .await
        .map_err(|error| SecretsError::Database {
            step: "ALTER ROLE ... PASSWORD",
            // The kind only: the server's text could quote the statement.
            category: match error {
                crate::postgres::Error::Unreachable(_) => "the server is unreachable",
                crate::postgres::Error::AuthenticationFailed(_) => "the admin login was refused",
                crate::postgres::Error::MissingPrivilege { .. } => "a privilege is missing",
                crate::postgres::Error::InvalidRole(_) => "the role name is invalid",
                _ => "the server refused the statement",
            },
        })
}

/// Part of step Pending → Applied: the database accepts every key of the secret (the pending one
/// included) before any backend signs with it. Only adds keys; provisioning removes old ones.
pub async fn install_pending_keys(
    admin: &PgPool,
    database: &FoundryDatabase,
    pending: &Versioned,
) -> Result<(), SecretsError> {
    let keys = super::tenant_key::accepted_tenant_keys(&pending.fields)?;
    crate::postgres::add_tenant_keys(admin, database, &keys)
        .await
        .map(|_added| ())
        .map_err(|error| SecretsError::Database {
            step: "installing the tenant claim keys",
            category: error.category(),
        })
}

/// Step Applied → Grace: the pending password becomes the current one.
pub async fn commit_rotation(
    session: &VaultSession,
    layout: &FoundryLayout,
    applied: &Versioned,
    policy: &RotationPolicy,
    now: Timestamp,
) -> Result<u64, SecretsError> {
    let path = layout.path(&SecretKey::Database)?;
    let mut committed = applied.fields.clone();
    let new_password = committed
        .remove(PENDING_PASSWORD)
        .ok_or(SecretsError::MissingField {
            path: path.clone(),
            field: PENDING_PASSWORD,
        })?;
    committed.insert(PASSWORD, new_password);
    if let Some(new_key) = committed.remove(PENDING_CLAIM_KEY) {
        if let Some(old_key) = committed.remove(CLAIM_KEY) {
            committed.insert(PREVIOUS_CLAIM_KEY, old_key);
        }
        committed.insert(CLAIM_KEY, new_key);
    }
    committed.insert(fields::ROTATED_AT, text(now));
    committed.insert(
        fields::PREVIOUS_VALID_UNTIL,
        text(grace_end(now, policy.grace)?),
    );
    kv::write_cas(
        session,
        &layout.kv_mount,
        &path,
        &committed,
        applied.version,
    )
    .await
}

/// One reconcile of the application password: finishes an interrupted rotation, rotates when
/// due (period or annotation), and ends an expired grace period.
pub async fn reconcile_database_password(
    session: &VaultSession,
    admin: &PgPool,
    layout: &FoundryLayout,
    database: &FoundryDatabase,
    policy: &RotationPolicy,
    request: Option<&str>,
    now: Timestamp,
) -> Result<RotationOutcome, SecretsError> {
    let current = ensure_database_password(session, layout, now).await?;
    reconcile_stored_password(
        session, admin, layout, database, policy, request, now, current,
    )
    .await
}

/// [`reconcile_database_password`] for a caller that already holds what Vault stores (from
/// [`ensure_database_password`] in the same reconcile), so the secret is read once.
#[allow(clippy::too_many_arguments)]
pub async fn reconcile_stored_password(
    session: &VaultSession,
    admin: &PgPool,
    layout: &FoundryLayout,
    database: &FoundryDatabase,
    policy: &RotationPolicy,
    request: Option<&str>,
    now: Timestamp,
    current: Versioned,
) -> Result<RotationOutcome, SecretsError> {
    let path = layout.path(&SecretKey::Database)?;
    let pending = if current.fields.get(PENDING_PASSWORD).is_some() {
        tracing::info!(
            path,
            "resuming an interrupted rotation of the application password"
        );
        current
    } else {
        let last = timestamp_field(&current.fields, fields::ROTATED_AT);
        let handled = current
            .fields
            .get(fields::ROTATION_REQUEST)
            .map(|h| h.expose_secret());
        match rotation_due(policy, last, request, handled, now) {
            RotationDue::NotYet { next } => {
                let Versioned { version, fields } = current;
                end_grace_if_expired(session, &layout.kv_mount, &path, version, fields, now)
                    .await?;
                return Ok(RotationOutcome::Unchanged { next: Some(next) });
            }
            due => {
                tracing::info!(path, ?due, "rotating the application password");
                begin_rotation(session, layout, &current, request).await?
            }
        }
    };
    apply_pending(admin, &database.roles.application, &pending, &path).await?;
    install_pending_keys(admin, database, &pending).await?;
    let version = commit_rotation(session, layout, &pending, policy, now).await?;
    Ok(RotationOutcome::Rotated { at: now, version })
}
