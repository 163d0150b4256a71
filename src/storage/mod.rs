//! Object storage isolation on S3 (DESIGN.md §3, §4.4, §4.6).
//!
//! - [`foundry`]: the desired storage of a foundry, from its spec.
//! - [`policy`], [`lifecycle`]: the foundry's bucket policy statements and lifecycle rules,
//!   merged into buckets that several foundries may share.
//! - [`ensure`]: applies them with `aws-sdk-s3`, idempotently, reporting what drifted.
//! - [`keys`]: the tenant-scoped key space, refusing escapes before any request.
//! - [`presign`]: presigned access for workers, confined to one user and one render.
//! - [`error`]: failures mapped to `StorageReady` reasons, without credentials.

pub mod connection;
pub mod ensure;
pub mod error;
pub mod foundry;
pub mod keys;
pub mod lifecycle;
pub mod policy;
pub mod presign;
pub mod reclaim;

pub use connection::S3Connection;
pub use ensure::{EncryptionState, EnsureReport, StorageCondition};
pub use error::StorageError;
pub use foundry::{DefaultEncryption, FoundryStorage};
pub use keys::{Area, KeyError, ObjectKey, TenantScope};
pub use presign::{ObjectEncryption, PresignedRequest, WorkerAccess};

use crate::crd::conditions::types::STORAGE_READY;
use crate::provisioning::StepOutcome;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// An S3 endpoint with one set of credentials.
#[derive(Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    /// Scrubbed from every provider message.
    access_key_id: String,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage").finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Connects (lazily: no request is made until the first operation).
    pub fn new(connection: &S3Connection) -> Result<Self, StorageError> {
        Ok(Self {
            client: connection.client()?,
            access_key_id: connection.access_key_id.clone(),
        })
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn classify<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> error::Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        error::classify(operation, err, &[&self.access_key_id])
    }
}

/// The `StorageReady` outcome of one ensure, for the VideoFoundry controller.
pub fn storage_outcome(
    result: &Result<EnsureReport, StorageError>,
    storage: &FoundryStorage,
) -> StepOutcome {
    match result {
        Ok(report) => {
            let condition = report.condition(storage);
            if condition.ready {
                StepOutcome::ready(STORAGE_READY, condition.reason, condition.message)
            } else {
                StepOutcome::failed(STORAGE_READY, condition.reason, condition.message, false)
            }
        }
        Err(error) => StepOutcome::failed(
            STORAGE_READY,
            error.reason(),
            error.to_string(),
            error.is_transient(),
        ),
    }
}
