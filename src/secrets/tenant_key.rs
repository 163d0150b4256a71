//! The per-foundry key that signs tenant claims (docs/postgres.md, "Signed tenant claims"). It
//! lives in the same KV `database` secret as the application password (and, in developer mode,
//! under the same `database.` keys of the foundry's Secret), so whoever may read the password
//! also reads the key:
//!
//! | field | meaning |
//! |---|---|
//! | `claimKey` | signs claims (`tenant::begin`); 64 hex characters |
//! | `pendingClaimKey` | during a rotation: installed in the database before it signs anything |
//! | `previousClaimKey` | after a rotation: still accepted until `previous_valid_until` |
//!
//! It rotates with the application password (same period, annotation and grace period, see
//! [`super::database_rotation`]), so a backend that still signs with the previous key keeps
//! working until the grace period ends.

use crate::postgres::TenantKey;

use super::error::SecretsError;
use super::kv::SecretFields;

/// The key that signs claims.
pub const CLAIM_KEY: &str = "claimKey";
/// The key a rotation is moving to, accepted by the database before it signs anything.
pub const PENDING_CLAIM_KEY: &str = "pendingClaimKey";
/// The key a rotation replaced, accepted until the grace period ends.
pub const PREVIOUS_CLAIM_KEY: &str = "previousClaimKey";

/// The key to sign tenant claims with, from the fields of the foundry's `database` secret (KV
/// or developer Secret): what a backend holding the application password passes to
/// `postgres::tenant::begin`.
pub fn tenant_key(fields: &SecretFields) -> Result<TenantKey, SecretsError> {
    parse(fields, CLAIM_KEY)?.ok_or(SecretsError::MissingField {
        path: "database".to_owned(),
        field: CLAIM_KEY,
    })
}

/// Every key the database must accept (current, pending, previous; those present), for
/// provisioning. Fails when the current key is missing or any present key is malformed.
pub fn accepted_tenant_keys(fields: &SecretFields) -> Result<Vec<TenantKey>, SecretsError> {
    let mut keys = vec![tenant_key(fields)?];
    for field in [PENDING_CLAIM_KEY, PREVIOUS_CLAIM_KEY] {
        keys.extend(parse(fields, field)?);
    }
    Ok(keys)
}

fn parse(fields: &SecretFields, field: &'static str) -> Result<Option<TenantKey>, SecretsError> {
    fields
        .get(field)
        .map(|text| {
            TenantKey::from_text(text).map_err(|_| SecretsError::InvalidField {
                path: "database".to_owned(),
                field,
            })
        })
        .transpose()
}

/// A new key in its stored form.
pub fn generate_claim_key() -> secrecy::SecretString {
    TenantKey::generate().to_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn the_current_key_signs_and_every_present_key_is_accepted() {
        let (current, previous) = (generate_claim_key(), generate_claim_key());
        let fields = SecretFields::new()
            .with("password", SecretString::from("p"))
            .with(CLAIM_KEY, current.clone())
            .with(PREVIOUS_CLAIM_KEY, previous.clone());
        let signing = tenant_key(&fields).unwrap();
        assert_eq!(signing.id(), TenantKey::from_text(&current).unwrap().id());
        let accepted: Vec<String> = accepted_tenant_keys(&fields)
            .unwrap()
            .iter()
            .map(TenantKey::id)
            .collect();
        assert_eq!(
            accepted,
            [signing.id(), TenantKey::from_text(&previous).unwrap().id()]
        );
    }

    #[test]
    fn missing_or_malformed_keys_are_named_without_their_value() {
        let none = SecretFields::new().with("password", SecretString::from("p"));
        assert!(matches!(
            tenant_key(&none),
            Err(SecretsError::MissingField {
                field: CLAIM_KEY,
                ..
            })
        ));
        let bad = none.with(CLAIM_KEY, SecretString::from("not-hex-and-secret"));
        let error = accepted_tenant_keys(&bad).err().unwrap();
        assert!(!error.to_string().contains("not-hex-and-secret"));
        assert!(error.to_string().contains(CLAIM_KEY));
    }
}
