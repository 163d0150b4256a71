//! Strong random secrets. `rand::rng()` is a CSPRNG (ChaCha12) seeded and periodically reseeded
//! from the operating system, which rand documents as suitable for keys and passwords.

use rand::Rng;
use secrecy::SecretString;

/// Bytes of entropy in a generated JWT secret (512 bits, the HS512 block size).
pub const JWT_SECRET_BYTES: usize = 64;

/// Database passwords come from the Postgres layer, which also turns them into SCRAM verifiers.
pub use crate::postgres::generate_password;

/// A JWT signing secret: 64 random bytes, hex-encoded.
pub fn generate_jwt_secret() -> SecretString {
    let mut bytes = [0u8; JWT_SECRET_BYTES];
    rand::rng().fill(&mut bytes[..]);
    SecretString::from(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::BTreeSet;

    #[test]
    fn passwords_are_long_alphanumeric_and_distinct() {
        let passwords: BTreeSet<String> = (0..1000)
            .map(|_| generate_password().expose_secret().to_owned())
            .collect();
        assert_eq!(passwords.len(), 1000);
        for password in &passwords {
            assert_eq!(password.len(), 40);
            assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn jwt_secrets_carry_512_bits_and_are_redacted_in_debug() {
        let secret = generate_jwt_secret();
        assert_eq!(secret.expose_secret().len(), JWT_SECRET_BYTES * 2);
        assert_ne!(
            secret.expose_secret(),
            generate_jwt_secret().expose_secret()
        );
        assert!(!format!("{secret:?}").contains(secret.expose_secret()));
    }
}
