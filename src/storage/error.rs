//! Storage failures, each mapped to a `StorageReady=False` reason. Messages carry S3 error codes
//! and operation names, never a credential (the access key id is scrubbed from provider text).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::keys::KeyError;

/// A storage operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The endpoint did not answer (DNS, connect, TLS, timeout).
    #[error("storage endpoint unreachable during {operation}: {detail}")]
    Unreachable {
        /// The S3 operation.
        operation: &'static str,
        /// What the transport reported.
        detail: String,
    },
    /// The provider rejected the credentials.
    #[error("storage credentials rejected during {operation} ({code})")]
    InvalidCredentials {
        /// The S3 operation.
        operation: &'static str,
        /// The S3 error code (`InvalidAccessKeyId`, `SignatureDoesNotMatch`).
        code: String,
    },
    /// The bucket exists and belongs to someone else.
    #[error("bucket {bucket} is owned by another account")]
    BucketOwnedByAnotherAccount {
        /// The bucket.
        bucket: String,
    },
    /// The credentials are valid but lack a permission.
    #[error("access denied during {operation}")]
    AccessDenied {
        /// The S3 operation.
        operation: &'static str,
    },
    /// The merged bucket policy would exceed the provider's size limit.
    #[error(
        "bucket policy would be {bytes} bytes, over the {limit}-byte limit; give this foundry its own bucket"
    )]
    PolicyTooLarge {
        /// Serialised size of the policy.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The provider refused the bucket policy.
    #[error("bucket policy rejected ({code}): {message}")]
    PolicyRejected {
        /// The S3 error code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// Production requires default bucket encryption, which the provider lacks, and the foundry
    /// did not opt into per-object encryption.
    #[error(
        "the provider does not support default bucket encryption; set spec.storage.encryption.perObject to sign encryption into every upload"
    )]
    EncryptionUnsupported,
    /// The provider does not implement an operation the foundry needs.
    #[error("the provider does not implement {operation}")]
    Unsupported {
        /// The S3 operation.
        operation: &'static str,
    },
    /// Any other provider error.
    #[error("{operation} failed ({code}): {message}")]
    Provider {
        /// The S3 operation.
        operation: &'static str,
        /// The S3 error code or HTTP status.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// A key outside the tenant's prefix (refused before any request).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A render input that does not exist.
    #[error("render input #{index} does not exist in storage")]
    InputMissing {
        /// Position of the input in the RenderJob's `inputs`.
        index: usize,
    },
    /// A configuration the operator cannot use (bad CA bundle, expiry out of range, ...).
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Whether retrying may help without an edit (the endpoint was unreachable or answered with
    /// a server error).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Provider { code, .. } => {
                code.starts_with("HTTP 5")
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "InternalError" | "ServiceUnavailable"
                    )
            }
            _ => false,
        }
    }

    /// The `StorageReady` condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "EndpointUnreachable",
            Self::InvalidCredentials { .. } => "InvalidCredentials",
            Self::BucketOwnedByAnotherAccount { .. } => "BucketOwnedByAnotherAccount",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::PolicyTooLarge { .. } => "PolicyTooLarge",
            Self::PolicyRejected { .. } => "PolicyRejected",
            Self::EncryptionUnsupported => "EncryptionUnsupported",
            Self::Unsupported { .. } => "FeatureUnsupported",
            Self::Provider { .. } => "ProviderError",
            Self::Key(_) => "InvalidKey",
            Self::InputMissing { .. } => "InputMissing",
            Self::Config(_) => "InvalidConfiguration",
        }
    }
}

/// What a failed SDK call amounted to, before the caller decides what it means.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The S3 error code, when the provider sent one.
    pub code: Option<String>,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The error, already turned into a [`StorageError`] with the generic mapping.
    pub error: StorageError,
}

impl Failure {
    /// Whether the provider answered with this S3 error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Classifies an SDK error. `secret_words` (the access key id) are scrubbed from any text.
pub(crate) fn classify<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
    secret_words: &[&str],
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let scrub = |text: &str| {
        secret_words
            .iter()
            .filter(|word| !word.is_empty())
            .fold(text.to_owned(), |text, word| {
                text.replace(word, "<redacted>")
            })
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let message = scrub(err.message().unwrap_or_default());
    let error = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StorageError::Unreachable {
            operation,
            detail: scrub(&DisplayErrorContext(&err).to_string()),
        },
        _ => match (code.as_deref(), status) {
            (
                Some(
                    code @ ("InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"),
                ),
                _,
            ) => StorageError::InvalidCredentials {
                operation,
                code: code.to_owned(),
            },
            (Some("AccessDenied"), _) | (None, Some(403)) => {
                StorageError::AccessDenied { operation }
            }
            (Some("NotImplemented"), _) | (None, Some(501)) => {
                StorageError::Unsupported { operation }
            }
            (Some(code), _) => StorageError::Provider {
                operation,
                code: code.to_owned(),
                message,
            },
            (None, status) => StorageError::Provider {
                operation,
                code: status.map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}")),
                message: scrub(&DisplayErrorContext(&err).to_string()),
            },
        },
    };
    Failure {
        code,
        status,
        error,
    }
}
