//! Signed tenant claims: the tenant of a transaction is asserted by an HMAC-SHA-256 over the
//! user id, the backend's process id and the transaction's start time, made with a per-foundry
//! key. The policies trust only the user of a claim that `current_user_id()` (a `SECURITY
//! DEFINER` function owned by the owner role) verifies against the keys in `tenant_claim_keys`,
//! which the application role cannot read. SQL injected into a tenant's session can still call
//! `set_config`, but cannot sign a claim for another user, nor reuse one outside the transaction
//! it was made for.

use std::fmt;
use std::sync::Arc;

use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::{Digest as _, Sha256};

use super::Error;
use super::tenant::UserId;

/// Bytes of a tenant key (256 bits).
pub const TENANT_KEY_BYTES: usize = 32;
/// The session setting that carries the claim (set per transaction by `tenant::begin`).
pub const CLAIM_SETTING: &str = "app.tenant_claim";
/// What every signed message starts with, so a key never signs anything else by accident.
const DOMAIN: &str = "vf-tenant-claim-v1";
/// SHA-256's block size, the length of the HMAC pads stored in the database.
const BLOCK: usize = 64;

/// A per-foundry key that signs tenant claims. Kept in Vault (the `database` secret, fields
/// `claimKey` and, during a rotation's grace period, `previousClaimKey`) as 64 hex characters.
/// `Debug` shows only its id.
#[derive(Clone)]
pub struct TenantKey(Arc<SecretBox<[u8; TENANT_KEY_BYTES]>>);

impl TenantKey {
    /// Parses the stored form: exactly 64 hex characters. The text is never repeated in errors.
    pub fn from_text(text: &SecretString) -> Result<Self, Error> {
        let mut bytes = [0u8; TENANT_KEY_BYTES];
        hex::decode_to_slice(text.expose_secret().trim(), &mut bytes)
            .map_err(|_| Error::InvalidTenantKey)?;
        Ok(Self(Arc::new(SecretBox::new(Box::new(bytes)))))
    }

    /// A new random key (from a CSPRNG seeded by the operating system).
    pub fn generate() -> Self {
        let mut bytes = [0u8; TENANT_KEY_BYTES];
        rand::rng().fill(&mut bytes[..]);
        Self(Arc::new(SecretBox::new(Box::new(bytes))))
    }

    /// The stored form, for Vault or the developer Secret.
    pub fn to_text(&self) -> SecretString {
        SecretString::from(hex::encode(self.0.expose_secret()))
    }

    /// A public identifier (16 hex characters of a domain-separated SHA-256 of the key): how
    /// provisioning tells which keys the database already holds without reading them back.
    pub fn id(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"vf-tenant-key-id\0");
        digest.update(self.0.expose_secret());
        hex::encode(&digest.finalize()[..8])
    }

    /// The HMAC inner and outer pads (`key ⊕ 0x36…`, `key ⊕ 0x5c…`), as the database stores
    /// them: `sha256(outer ‖ sha256(inner ‖ message))` is then HMAC-SHA-256 in plain SQL,
    /// without an extension.
    pub(crate) fn pads(&self) -> (Vec<u8>, Vec<u8>) {
        hmac_pads(self.0.expose_secret())
    }

    /// The claim for `user` in the transaction started at `start_micros` (microseconds since the
    /// Unix epoch, `now()` on the server) on backend `pid`.
    pub(crate) fn sign(&self, pid: i32, start_micros: i64, user: UserId) -> String {
        let payload = format!("{pid}.{start_micros}.{user}");
        let (inner, outer) = self.pads();
        let mac = hmac_with_pads(&inner, &outer, signed_message(&payload).as_bytes());
        format!("v1.{payload}.{}", hex::encode(mac))
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantKey({})", self.id())
    }
}

fn signed_message(payload: &str) -> String {
    format!("{DOMAIN}|{}", payload.replace('.', "|"))
}

/// HMAC-SHA-256 from precomputed pads (RFC 2104), exactly as the SQL function computes it.
fn hmac_with_pads(inner: &[u8], outer: &[u8], message: &[u8]) -> Vec<u8> {
    let inner_hash = Sha256::new()
        .chain_update(inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
}

fn hmac_pads(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut inner = vec![0x36u8; BLOCK];
    let mut outer = vec![0x5cu8; BLOCK];
    for (i, byte) in key.iter().enumerate().take(BLOCK) {
        inner[i] ^= byte;
        outer[i] ^= byte;
    }
    (inner, outer)
}

/// The body of `"<schema>".current_user_id()`: the verified user of the transaction's claim, or
/// NULL. `keys` is the quoted, qualified key table. Every name is qualified and the function
/// runs with `search_path = pg_catalog, pg_temp`, so nothing the caller creates can shadow them.
pub(crate) fn verify_function_body(keys: &str) -> String {
    format!(
        r#"
DECLARE
    part text[] := pg_catalog.string_to_array(pg_catalog.current_setting('{CLAIM_SETTING}', true), '.');
BEGIN
    -- Cheap shape checks only (a regular expression here costs more than the rest together);
    -- the MAC then vouches for every other part, so their casts below cannot fail.
    IF pg_catalog.cardinality(part) IS DISTINCT FROM 5 OR part[1] <> 'v1'
       OR pg_catalog.length(part[5]) <> 64
       OR pg_catalog.translate(part[5], '0123456789abcdef', '') <> '' THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM {keys} k
        WHERE pg_catalog.sha256(k.outer_pad || pg_catalog.sha256(k.inner_pad
                  || pg_catalog.convert_to('{DOMAIN}|' || part[2] || '|' || part[3] || '|' || part[4], 'UTF8')))
              = pg_catalog.decode(part[5], 'hex')
    ) THEN
        RETURN NULL;
    END IF;
    -- Valid only on the backend and in the transaction it was made for.
    IF part[2]::integer <> pg_catalog.pg_backend_pid()
       OR part[3]::numeric <> pg_catalog.extract('epoch', pg_catalog.now()) * 1000000 THEN
        RETURN NULL;
    END IF;
    RETURN part[4]::uuid;
END
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TenantKey {
        TenantKey::from_text(&SecretString::from("00".repeat(31) + "01")).unwrap()
    }

    #[test]
    fn keys_parse_only_from_64_hex_characters_and_never_print() {
        for bad in ["", "zz", &"0".repeat(63), &"0".repeat(66), &"g".repeat(64)] {
            assert!(
                TenantKey::from_text(&SecretString::from(bad)).is_err(),
                "{bad}"
            );
        }
        let generated = TenantKey::generate();
        let text = generated.to_text();
        let again = TenantKey::from_text(&text).unwrap();
        assert_eq!(again.id(), generated.id());
        assert_ne!(TenantKey::generate().id(), generated.id());
        assert!(!format!("{generated:?}").contains(text.expose_secret()));
        assert_eq!(generated.id().len(), 16);
    }

    #[test]
    fn the_pads_give_hmac_sha256_and_claims_sign_the_documented_message() {
        // RFC 4231 test case 2 ("Jefe"), then a claim signed with a 32-byte key.
        let (inner, outer) = hmac_pads(b"Jefe");
        let mac = |inner: &[u8], outer: &[u8], message: &[u8]| {
            hex::encode(hmac_with_pads(inner, outer, message))
        };
        assert_eq!(
            mac(&inner, &outer, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let user: UserId = "7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6".parse().unwrap();
        let claim = key().sign(4242, 1_700_000_000_123_456, user);
        let (inner, outer) = key().pads();
        let expected = mac(
            &inner,
            &outer,
            b"vf-tenant-claim-v1|4242|1700000000123456|7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
        );
        assert_eq!(
            claim,
            format!("v1.4242.1700000000123456.7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6.{expected}")
        );
    }
}
