//! HTTP with the object store through presigned URLs: one client that follows redirects only
//! within the URL's origin (a presigned URL sent elsewhere would leak its signature), and a
//! bounded body reader. Errors are worded without the URL.

use std::time::Duration;

use reqwest::redirect::{Attempt, Policy};

use super::error::{WorkerError, describe_http};

/// Redirects followed within one origin.
const MAX_REDIRECTS: usize = 5;

/// Why a response body was not read to the end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the cap.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// The connection failed.
    #[error("{0}")]
    Http(String),
    /// The sink failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The HTTP client for presigned URLs. `extra_ca_pem` adds a private CA of the storage
/// endpoint to the system roots; an image without system roots (many slim ComfyUI images)
/// trusts only that CA (and can still reach a plain-HTTP endpoint).
pub fn storage_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client, WorkerError> {
    crate::install_crypto_provider();
    let extra = match extra_ca_pem {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            WorkerError::Transient(format!("storage CA file: {}", describe_http(e)))
        })?,
        None => Vec::new(),
    };
    let builder = || {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(Policy::custom(same_origin_only))
            .connect_timeout(Duration::from_secs(30))
            // A stalled transfer fails instead of hanging until the Job's deadline.
            .read_timeout(Duration::from_secs(120))
    };
    let with_system_roots = extra
        .iter()
        .cloned()
        .fold(builder(), |b, certificate| {
            b.add_root_certificate(certificate)
        })
        .build();
    match with_system_roots {
        Ok(client) => Ok(client),
        Err(error) => {
            tracing::warn!(
                error = %describe_http(error),
                "no system CA certificates; trusting only the storage CA file"
            );
            builder()
                .tls_certs_only(extra)
                .build()
                .map_err(|e| WorkerError::Transient(format!("HTTP client: {}", describe_http(e))))
        }
    }
}

fn same_origin_only(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let same_origin = attempt
        .previous()
        .first()
        .is_some_and(|first| first.origin() == attempt.url().origin());
    if !same_origin {
        attempt.error(CrossOriginRedirect)
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(TooManyRedirects)
    } else {
        attempt.follow()
    }
}

/// A redirect to another scheme, host or port.
#[derive(Debug, thiserror::Error)]
#[error("redirected to another host, which is refused")]
pub struct CrossOriginRedirect;

#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

/// Whether a send error was a refused redirect.
pub fn is_cross_origin_redirect(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<CrossOriginRedirect>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Reads a body into `sink`, chunk by chunk, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then as it streams). Returns the bytes read.
pub async fn copy_bounded(
    mut response: reqwest::Response,
    limit: u64,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<u64, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut total = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Http(describe_http(e)))?
    {
        total += chunk.len() as u64;
        if total > limit {
            return Err(BodyError::TooLarge { limit });
        }
        sink(&chunk)?;
    }
    Ok(total)
}

/// Reads a body into memory, up to `limit` bytes.
pub async fn read_bounded(response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    copy_bounded(response, limit, |chunk| {
        body.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(body)
}
