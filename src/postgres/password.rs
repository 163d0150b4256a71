//! The application role's password: generated here, stored by PostgreSQL only as a SCRAM-SHA-256
//! verifier computed here, so the clear text never reaches the server, its logs or sqlx's
//! statement log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{Error, quote_ident, quote_literal};

/// Length of generated passwords: 40 alphanumeric characters, about 238 bits.
const GENERATED_LENGTH: usize = 40;
/// PostgreSQL's default `scram_iterations`.
const SCRAM_ITERATIONS: u32 = 4096;
const SALT_BYTES: usize = 16;

/// A fresh random password (alphanumeric, so it survives URLs and config files unescaped).
pub fn generate_password() -> SecretString {
    let password: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(GENERATED_LENGTH)
        .map(char::from)
        .collect();
    SecretString::from(password)
}

/// Sets a role's password with `ALTER ROLE ... PASSWORD`. PostgreSQL cannot bind parameters
/// there, so the statement carries a SCRAM-SHA-256 verifier (not the password) as a quoted
/// literal; the role name is a quoted identifier.
pub async fn set_role_password(
    admin: &PgPool,
    role: &str,
    password: &SecretString,
) -> Result<(), Error> {
    let statement = alter_role_password_sql(role, password)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(admin)
        .await
        .map_err(|e| Error::from_sqlx("setting a role password", e))?;
    Ok(())
}

/// The `ALTER ROLE` statement for [`set_role_password`].
pub(crate) fn alter_role_password_sql(
    role: &str,
    password: &SecretString,
) -> Result<String, Error> {
    if role.is_empty() || role.contains('\0') {
        return Err(Error::InvalidRole("empty or containing NUL".into()));
    }
    let verifier = scram_sha256_verifier(password, &random_salt());
    Ok(format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_ident(role),
        quote_literal(&verifier)
    ))
}

/// The clause for `CREATE ROLE` with a password (a verifier, as in [`set_role_password`]).
pub(crate) fn password_clause(password: &SecretString) -> String {
    format!(
        "PASSWORD {}",
        quote_literal(&scram_sha256_verifier(password, &random_salt()))
    )
}

fn random_salt() -> [u8; SALT_BYTES] {
    let mut salt = [0_u8; SALT_BYTES];
    rand::rng().fill(&mut salt);
    salt
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores in `pg_authid.rolpassword` (RFC 5802/7677):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. The password is normalised with
/// SASLprep as clients do; like PostgreSQL, the raw bytes are used when SASLprep rejects it.
pub fn scram_sha256_verifier(password: &SecretString, salt: &[u8]) -> String {
    let exposed = password.expose_secret();
    let prepared = stringprep::saslprep(exposed).unwrap_or(std::borrow::Cow::Borrowed(exposed));
    let salted = salted_password(prepared.as_bytes(), salt, SCRAM_ITERATIONS);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1_u32.to_be_bytes());
    let mut block = hmac_sha256(password, &first);
    let mut result = block;
    for _ in 1..iterations {
        block = hmac_sha256(password, &block);
        for (out, byte) in result.iter_mut().zip(block) {
            *out ^= byte;
        }
    }
    result
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut padded_key = [0_u8; BLOCK];
    if key.len() > BLOCK {
        padded_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(padded_key.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(padded_key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifier_matches_rfc_7677_example() {
        // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = scram_sha256_verifier(&SecretString::from("pencil"), &salt);
        let salted = salted_password(b"pencil", &salt, 4096);
        let server_key = hmac_sha256(&salted, b"Server Key");
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert!(verifier.ends_with(&BASE64.encode(server_key)));
        // The server signature of the RFC's exchange is HMAC(ServerKey, AuthMessage).
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac_sha256(&server_key, auth_message.as_bytes());
        assert_eq!(
            BASE64.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), GENERATED_LENGTH);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn the_statement_never_contains_the_password() {
        let password = SecretString::from("s3cret'; DROP ROLE x; --");
        let sql = alter_role_password_sql("vf_a\"_app", &password).unwrap();
        assert!(sql.starts_with("ALTER ROLE \"vf_a\"\"_app\" PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(!sql.contains("s3cret"));
        assert!(alter_role_password_sql("", &password).is_err());
    }
}
