//! What a foundry's storage should look like, derived from its spec (no I/O).

use super::keys::{self, KeyError};
use crate::crd::video_foundry::{EncryptionMode, ExecutionMode, VideoFoundrySpec};

/// Default encryption the bucket should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultEncryption {
    /// SSE-S3.
    Aes256,
    /// SSE-KMS with this key.
    Kms {
        /// KMS key id or ARN.
        key_id: String,
    },
    /// None (developer mode only; a reported relaxation).
    Off,
}

/// The desired storage of one foundry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundryStorage {
    /// Short stable id of the foundry (from namespace and name), used in policy `Sid`s and
    /// lifecycle rule ids so that foundries sharing a bucket own distinct entries.
    pub id: String,
    /// Bucket name.
    pub bucket: String,
    /// Region of the bucket.
    pub region: String,
    /// Key prefix of the foundry (empty for a dedicated bucket, otherwise ends in `/`).
    pub prefix: String,
    /// ARN of the tenant principal confined to the prefix.
    pub tenant_principal: Option<String>,
    /// Deny requests without TLS.
    pub require_tls: bool,
    /// Keep object versions.
    pub versioning: bool,
    /// Set the public access block with all four flags.
    pub block_public_access: bool,
    /// Default bucket encryption.
    pub encryption: DefaultEncryption,
    /// Sign SSE headers into every upload URL (for providers without default encryption).
    pub per_object_encryption: bool,
    /// Days after which `temp/` objects expire.
    pub temp_expiration_days: u32,
    /// Days non-current versions are kept.
    pub noncurrent_version_days: u32,
    /// The execution mode (production fails closed on missing encryption).
    pub execution_mode: ExecutionMode,
}

/// The foundry id of `namespace/name`: `vf` and 16 hex digits of its SHA-256 (a valid policy
/// `Sid` fragment, stable across restarts, distinct per foundry).
pub fn foundry_id(namespace: &str, name: &str) -> String {
    format!("vf{}", &crate::crd::foundry_digest(namespace, name)[..16])
}

impl FoundryStorage {
    /// Production storage with every hardening on and the default retention: the starting point
    /// of tests, benchmarks and tools that describe a foundry without a spec.
    pub fn hardened(
        id: &str,
        bucket: &str,
        region: &str,
        prefix: &str,
        tenant: Option<&str>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            prefix: prefix.to_owned(),
            tenant_principal: tenant.map(str::to_owned),
            require_tls: true,
            versioning: true,
            block_public_access: true,
            encryption: DefaultEncryption::Aes256,
            per_object_encryption: false,
            temp_expiration_days: 7,
            noncurrent_version_days: 90,
            execution_mode: ExecutionMode::Production,
        }
    }

    /// The desired storage of the foundry `namespace/name`.
    pub fn from_spec(
        namespace: &str,
        name: &str,
        spec: &VideoFoundrySpec,
    ) -> Result<Self, KeyError> {
        let storage = &spec.storage;
        keys::check_foundry_prefix(&storage.prefix)?;
        let encryption = match storage.encryption.as_ref() {
            None => DefaultEncryption::Aes256,
            Some(e) => match (e.mode, &e.kms_key_id) {
                (EncryptionMode::AwsKms, Some(key_id)) => DefaultEncryption::Kms {
                    key_id: key_id.clone(),
                },
                (EncryptionMode::None, _) => DefaultEncryption::Off,
                // aws:kms without a key is refused by the CRD; unknown modes by the security
                // profile. Fall back to the strictest setting the provider surely accepts.
                _ => DefaultEncryption::Aes256,
            },
        };
        Ok(Self {
            id: foundry_id(namespace, name),
            bucket: storage.bucket.clone(),
            region: storage.region.clone(),
            prefix: storage.prefix.clone(),
            tenant_principal: storage.tenant_principal.clone(),
            require_tls: storage.require_tls,
            versioning: storage.versioning,
            block_public_access: storage.block_public_access,
            encryption,
            per_object_encryption: storage.encryption.as_ref().is_some_and(|e| e.per_object),
            temp_expiration_days: storage.temp_expiration_days,
            noncurrent_version_days: spec.retention.clone().unwrap_or_default().render_days,
            execution_mode: spec.execution_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ensure::{EncryptionState, EnsureReport};

    use crate::crd::test_support::example_spec as example;

    #[test]
    fn production_example_asks_for_every_hardening() {
        let storage =
            FoundryStorage::from_spec("studios", "a", &example("videofoundry-production.yaml"))
                .unwrap();
        assert!(storage.require_tls && storage.versioning && storage.block_public_access);
        assert_ne!(storage.encryption, DefaultEncryption::Off);
        assert_eq!(storage.id, foundry_id("studios", "a"));
        assert_ne!(storage.id, foundry_id("studios", "b"));
    }

    #[test]
    fn missing_default_encryption_fails_closed_only_in_production() {
        let spec = example("videofoundry-production.yaml");
        let mut storage = FoundryStorage::from_spec("studios", "a", &spec).unwrap();
        let report = EnsureReport {
            changes: Vec::new(),
            encryption: EncryptionState::Unsupported,
            policy_bytes: 0,
            provider_workarounds: Vec::new(),
        };
        let closed = report.condition(&storage);
        assert!(!closed.ready);
        assert_eq!(closed.reason, "EncryptionUnsupported");
        storage.per_object_encryption = true;
        let per_object = report.condition(&storage);
        assert!(per_object.ready);
        assert_eq!(per_object.reason, "EncryptionUnsupported");
        storage.per_object_encryption = false;
        storage.execution_mode = ExecutionMode::Developer;
        assert!(report.condition(&storage).ready);
        let hardened = EnsureReport {
            encryption: EncryptionState::Default,
            ..report
        };
        assert_eq!(hardened.condition(&storage).reason, "Hardened");
        let outcome = crate::storage::storage_outcome(&Ok(hardened), &storage);
        assert!(outcome.ready && outcome.condition == "StorageReady");
        let unreachable = crate::storage::StorageError::Unreachable {
            operation: "HeadBucket",
            detail: "connection refused".to_owned(),
        };
        let outcome = crate::storage::storage_outcome(&Err(unreachable), &storage);
        assert!(!outcome.ready && outcome.transient);
        assert_eq!(outcome.reason, "EndpointUnreachable");
        let too_large = crate::storage::StorageError::PolicyTooLarge {
            bytes: 21_000,
            limit: 20_480,
        };
        let outcome = crate::storage::storage_outcome(&Err(too_large), &storage);
        assert!(!outcome.ready && !outcome.transient);
        assert_eq!(outcome.reason, "PolicyTooLarge");
    }
}
