//! When secrets rotate, and the rotation of the JWT secret (the database password's state
//! machine is in [`super::database_rotation`]).
//!
//! A rotation is due when `spec.vault.rotationPeriod` has passed since the last one, or when the
//! annotation `videofoundry.dev/rotate-secrets` carries a value not handled yet. The last
//! rotation time and the handled annotation value are kept in the secrets themselves
//! (`rotated_at`, `rotation_request`), so they survive a lost status and are written atomically
//! with the new value by the same check-and-set.

use std::time::Duration;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};

use super::error::SecretsError;
use super::generate::generate_jwt_secret;
use super::kv::{self, SecretFields, Versioned};
use super::layout::{FoundryLayout, SecretKey};
use super::vault::VaultSession;

/// Annotation on a VideoFoundry: any new value rotates the secrets now.
pub const ROTATE_ANNOTATION: &str = "videofoundry.dev/rotate-secrets";
/// How long the previous value stays readable (and, for the JWT secret, accepted) by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Bookkeeping fields stored beside the values (not secret).
pub mod fields {
    /// When the value was last rotated (RFC 3339).
    pub const ROTATED_AT: &str = "rotated_at";
    /// The `rotate-secrets` annotation value the last rotation handled.
    pub const ROTATION_REQUEST: &str = "rotation_request";
    /// Until when the previous value is kept (RFC 3339).
    pub const PREVIOUS_VALID_UNTIL: &str = "previous_valid_until";
    /// The JWT signing secret.
    pub const JWT_SECRET: &str = "secret";
    /// The previous JWT secret, still accepted for verification during the grace period.
    pub const JWT_PREVIOUS_SECRET: &str = "previous_secret";
}

/// The foundry's rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// `spec.vault.rotationPeriod`.
    pub period: Duration,
    /// How long the previous value is kept.
    pub grace: Duration,
}

impl RotationPolicy {
    /// The policy of `spec.vault`: its `rotationPeriod`, and the default grace period (capped
    /// at half the period, so a short test period still ends its grace before the next rotation).
    pub fn from_spec(
        vault: &crate::crd::video_foundry::VaultSpec,
    ) -> Result<Self, crate::crd::duration::InvalidDuration> {
        let period = crate::crd::duration::parse(&vault.rotation_period)?;
        Ok(Self {
            period,
            grace: DEFAULT_GRACE.min(period / 2),
        })
    }
}

/// Whether to rotate now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationDue {
    /// Not yet; the next rotation is due at this time.
    NotYet {
        /// When it is due.
        next: Timestamp,
    },
    /// The period has passed (or the secret was never rotated and has no creation time).
    Periodic,
    /// The annotation asks for it.
    Requested,
}

/// Decides whether a rotation is due. `last` is the last rotation (or creation), `request` the
/// annotation's current value and `handled` the value the last rotation recorded. Pure.
pub fn rotation_due(
    policy: &RotationPolicy,
    last: Option<Timestamp>,
    request: Option<&str>,
    handled: Option<&str>,
    now: Timestamp,
) -> RotationDue {
    if let Some(request) = request
        && !request.is_empty()
        && Some(request) != handled
    {
        return RotationDue::Requested;
    }
    match last.and_then(|last| next_rotation(last, policy.period)) {
        Some(next) if now < next => RotationDue::NotYet { next },
        _ => RotationDue::Periodic,
    }
}

/// `last + period`, for `status.nextRotation`.
pub fn next_rotation(last: Timestamp, period: Duration) -> Option<Timestamp> {
    let period = jiff::SignedDuration::try_from(period).ok()?;
    last.checked_add(period).ok()
}

impl RotationOutcome {
    /// `status.lastRotation` and `status.nextRotation` after this outcome: the next rotation is
    /// one period after the last, so either one gives the other (no second read of the secret).
    pub fn status_times(
        &self,
        period: Duration,
    ) -> (
        Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let signed = jiff::SignedDuration::try_from(period).ok();
        let (last, next) = match self {
            Self::Rotated { at, .. } => (Some(*at), next_rotation(*at, period)),
            Self::Unchanged { next } => (
                next.zip(signed)
                    .and_then(|(next, period)| next.checked_sub(period).ok()),
                *next,
            ),
        };
        (last.map(Time), next.map(Time))
    }
}

/// Reads a bookkeeping timestamp field.
pub fn timestamp_field(fields: &SecretFields, name: &str) -> Option<Timestamp> {
    fields.get(name)?.expose_secret().parse().ok()
}

fn text(value: impl ToString) -> SecretString {
    SecretString::from(value.to_string())
}

/// What a rotation step did, for logs and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// Nothing was due.
    Unchanged {
        /// When the next rotation is due.
        next: Option<Timestamp>,
    },
    /// A new value is in force.
    Rotated {
        /// The rotation time.
        at: Timestamp,
        /// The new KV version.
        version: u64,
    },
}

/// Creates the JWT secret if missing, rotates it when due (keeping the previous one as
/// `previous_secret` until the grace period ends, so tokens signed before the rotation still
/// verify), and ends an expired grace period (dropping `previous_secret` and destroying old
/// KV versions). One check-and-set write per change.
pub async fn reconcile_jwt_secret(
    session: &VaultSession,
    layout: &FoundryLayout,
    policy: &RotationPolicy,
    request: Option<&str>,
    now: Timestamp,
) -> Result<RotationOutcome, SecretsError> {
    let path = layout.path(&SecretKey::Jwt)?;
    let mount = &layout.kv_mount;
    let current = kv::ensure_generated(session, mount, &path, || {
        SecretFields::new()
            .with(fields::JWT_SECRET, generate_jwt_secret())
            .with(fields::ROTATED_AT, text(now))
            .with(fields::ROTATION_REQUEST, text(request.unwrap_or_default()))
    })
    .await?;
    let Versioned {
        version,
        fields: old,
    } = current;
    let last = timestamp_field(&old, fields::ROTATED_AT);
    let handled = old.get(fields::ROTATION_REQUEST).map(|h| h.expose_secret());
    match rotation_due(policy, last, request, handled, now) {
        RotationDue::NotYet { next } => {
            end_grace_if_expired(session, mount, &path, version, old, now).await?;
            Ok(RotationOutcome::Unchanged { next: Some(next) })
        }
        due => {
            tracing::info!(path, ?due, "rotating the JWT secret");
            let previous = old.require(&path, fields::JWT_SECRET)?.clone();
            let valid_until = grace_end(now, policy.grace)?;
            let updated = SecretFields::new()
                .with(fields::JWT_SECRET, generate_jwt_secret())
                .with(fields::JWT_PREVIOUS_SECRET, previous)
                .with(fields::PREVIOUS_VALID_UNTIL, text(valid_until))
                .with(fields::ROTATED_AT, text(now))
                .with(fields::ROTATION_REQUEST, text(request.unwrap_or_default()));
            let version = kv::write_cas(session, mount, &path, &updated, version).await?;
            Ok(RotationOutcome::Rotated { at: now, version })
        }
    }
}

pub(crate) fn grace_end(now: Timestamp, grace: Duration) -> Result<Timestamp, SecretsError> {
    jiff::SignedDuration::try_from(grace)
        .ok()
        .and_then(|g| now.checked_add(g).ok())
        .ok_or_else(|| SecretsError::Configuration("the grace period is too long".to_owned()))
}

/// After `previous_valid_until`: removes the previous value's fields from the latest version
/// (check-and-set) and destroys every older KV version, so the old value is gone for good.
pub(crate) async fn end_grace_if_expired(
    session: &VaultSession,
    mount: &str,
    path: &str,
    version: u64,
    mut current: SecretFields,
    now: Timestamp,
) -> Result<(), SecretsError> {
    let Some(until) = timestamp_field(&current, fields::PREVIOUS_VALID_UNTIL) else {
        return Ok(());
    };
    if now < until {
        return Ok(());
    }
    current.remove(fields::PREVIOUS_VALID_UNTIL);
    current.remove(fields::JWT_PREVIOUS_SECRET);
    // The database stops accepting it at the next provisioning, which installs exactly the
    // keys the secret still holds.
    current.remove(super::tenant_key::PREVIOUS_CLAIM_KEY);
    let kept = kv::write_cas(session, mount, path, &current, version).await?;
    kv::destroy_versions(session, mount, path, (1..kept).collect()).await?;
    tracing::info!(path, "grace period over: previous versions destroyed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn policy() -> RotationPolicy {
        RotationPolicy {
            period: 90 * DAY,
            grace: DAY,
        }
    }

    fn at(day: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + day * 86_400).unwrap()
    }

    #[test]
    fn the_period_decides_and_next_is_reported() {
        assert_eq!(
            rotation_due(&policy(), Some(at(0)), None, None, at(89)),
            RotationDue::NotYet { next: at(90) }
        );
        assert_eq!(
            rotation_due(&policy(), Some(at(0)), None, None, at(90)),
            RotationDue::Periodic
        );
        assert_eq!(
            rotation_due(&policy(), None, None, None, at(0)),
            RotationDue::Periodic
        );
    }

    #[test]
    fn the_spec_period_defaults_to_90_days_with_a_day_of_grace() {
        let vault: crate::crd::video_foundry::VaultSpec =
            serde_yaml::from_str("address: https://v\nauth: {kubernetes: {role: r}}\n").unwrap();
        assert_eq!(RotationPolicy::from_spec(&vault).unwrap(), policy());
        let short = crate::crd::video_foundry::VaultSpec {
            rotation_period: "2h".into(),
            ..vault
        };
        assert_eq!(
            RotationPolicy::from_spec(&short).unwrap().grace,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn status_shows_the_last_rotation_and_when_the_next_is_due() {
        let rotated = RotationOutcome::Rotated {
            at: at(3),
            version: 2,
        };
        let (last, next) = rotated.status_times(policy().period);
        assert_eq!(last.as_ref().unwrap().0, at(3));
        assert_eq!(next.as_ref().unwrap().0, at(93));
        let unchanged = RotationOutcome::Unchanged { next: Some(at(93)) };
        assert_eq!(unchanged.status_times(policy().period), (last, next));
        let unknown = RotationOutcome::Unchanged { next: None };
        assert_eq!(unknown.status_times(policy().period), (None, None));
    }

    #[test]
    fn a_new_annotation_value_rotates_now_and_only_once() {
        assert_eq!(
            rotation_due(&policy(), Some(at(0)), Some("2026-11-29"), None, at(1)),
            RotationDue::Requested
        );
        assert!(matches!(
            rotation_due(
                &policy(),
                Some(at(1)),
                Some("2026-11-29"),
                Some("2026-11-29"),
                at(2)
            ),
            RotationDue::NotYet { .. }
        ));
        assert!(matches!(
            rotation_due(&policy(), Some(at(1)), Some(""), Some("x"), at(2)),
            RotationDue::NotYet { .. }
        ));
    }
}
