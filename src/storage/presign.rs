//! Presigned access for a render's worker, which never holds a credential (DESIGN.md §4.4): GET
//! URLs for its inputs (each under the user's prefix and existing) and PUT URLs for its outputs,
//! each for one key under `users/<userId>/renders/<renderJob>/`. A URL names its key inside the
//! signature, so changing the key, the method or the expiry makes the provider answer 403.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::ServerSideEncryption;

use super::S3Storage;
use super::error::StorageError;
use super::keys::{Area, ObjectKey, TEMP_TAG, TenantScope};

/// SigV4's limit on the lifetime of a presigned URL.
pub const MAX_PRESIGN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Encryption signed into upload URLs when the provider has no default bucket encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectEncryption {
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`).
    Aes256,
    /// SSE-KMS with this key.
    Kms {
        /// KMS key id or ARN.
        key_id: String,
    },
}

/// One presigned request. The URL is a bearer credential until it expires: it is not printed
/// by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// `GET` or `PUT`.
    pub method: String,
    /// The presigned URL.
    pub url: String,
    /// Headers the request must carry exactly (they are part of the signature).
    pub headers: Vec<(String, String)>,
    /// The object key.
    pub key: ObjectKey,
}

impl std::fmt::Debug for PresignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedRequest")
            .field("method", &self.method)
            .field("key", &self.key)
            .field("url", &"<redacted>")
            .finish()
    }
}

/// Everything a worker gets for one render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerAccess {
    /// One GET per input, in the order of the RenderJob's `inputs`.
    pub inputs: Vec<PresignedRequest>,
    /// One PUT per declared output name, all under the render's prefix.
    pub outputs: Vec<PresignedRequest>,
    /// The render's output prefix (`<prefix>users/<userId>/renders/<renderJob>/`).
    pub output_prefix: String,
    /// When every URL stops working.
    pub expires_at: SystemTime,
}

/// What a render needs access to.
#[derive(Clone, Debug)]
pub struct WorkerAccessRequest<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The render's user.
    pub scope: &'a TenantScope,
    /// The RenderJob's name.
    pub render_job: &'a str,
    /// Input keys as the RenderJob lists them (`users/<userId>/uploads/...`).
    pub inputs: &'a [String],
    /// Output file names relative to the render's prefix (`video.mp4`, `frames/0001.png`).
    pub outputs: &'a [String],
    /// Time until the render's deadline plus a margin: the URLs' lifetime.
    pub lifetime: Duration,
    /// Encryption to sign into every upload, when the foundry opted into per-object encryption.
    pub encryption: Option<ObjectEncryption>,
}

/// The lifetime of worker URLs: the render's remaining time plus `margin`, capped by SigV4.
pub fn worker_url_lifetime(until_deadline: Duration, margin: Duration) -> Duration {
    until_deadline
        .saturating_add(margin)
        .min(MAX_PRESIGN_LIFETIME)
}

/// The keys a render's worker gets URLs for, every one checked against the user's scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerKeys {
    /// One per input, in the order of the RenderJob's `inputs`.
    pub inputs: Vec<ObjectKey>,
    /// One per output file.
    pub outputs: Vec<ObjectKey>,
    /// The render's output prefix.
    pub output_prefix: String,
}

/// The keys of [`S3Storage::worker_access`], without signing anything (pure: `plan` shows them
/// offline). Refuses keys outside the user's scope and a lifetime SigV4 cannot sign.
pub fn worker_keys(request: &WorkerAccessRequest<'_>) -> Result<WorkerKeys, StorageError> {
    let inputs = request
        .inputs
        .iter()
        .map(|key| request.scope.resolve(key))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = request
        .outputs
        .iter()
        .map(|name| request.scope.key(Area::Renders(request.render_job), name))
        .collect::<Result<Vec<_>, _>>()?;
    let output_prefix = request
        .scope
        .area_prefix(Area::Renders(request.render_job))?;
    if request.lifetime.is_zero() || request.lifetime > MAX_PRESIGN_LIFETIME {
        return Err(StorageError::Config(
            "presigned URL lifetime must be between 1 s and 7 days".to_owned(),
        ));
    }
    Ok(WorkerKeys {
        inputs,
        outputs,
        output_prefix,
    })
}

impl S3Storage {
    /// Presigned GET and PUT URLs for one render. Every key is checked against the user's
    /// scope before any request; inputs must exist (one HEAD each, with this storage's
    /// credentials).
    pub async fn worker_access(
        &self,
        request: &WorkerAccessRequest<'_>,
    ) -> Result<WorkerAccess, StorageError> {
        let WorkerKeys {
            inputs: input_keys,
            outputs: output_keys,
            output_prefix,
        } = worker_keys(request)?;
        for (index, key) in input_keys.iter().enumerate() {
            self.require_object(request.bucket, key, index).await?;
        }
        let started = SystemTime::now();
        let config = || {
            PresigningConfig::builder()
                .start_time(started)
                .expires_in(request.lifetime)
                .build()
                .map_err(|e| StorageError::Config(format!("presigning: {e}")))
        };
        let mut inputs = Vec::with_capacity(input_keys.len());
        for key in input_keys {
            let presigned = self
                .client
                .get_object()
                .bucket(request.bucket)
                .key(key.as_str())
                .presigned(config()?)
                .await
                .map_err(|e| self.classify("PresignGetObject", e).error)?;
            inputs.push(to_request(&presigned, key));
        }
        let mut outputs = Vec::with_capacity(output_keys.len());
        for key in output_keys {
            outputs.push(
                self.presign_put(request.bucket, key, request.encryption.as_ref(), config()?)
                    .await?,
            );
        }
        Ok(WorkerAccess {
            inputs,
            outputs,
            output_prefix,
            expires_at: started + request.lifetime,
        })
    }

    /// A presigned PUT for the platform's backend: `path` in `area` of the user's space (refused
    /// before any request when it escapes). Uploads to `temp/` carry the lifecycle tag (signed),
    /// so that the foundry's temp rule expires them.
    pub async fn presign_user_upload(
        &self,
        bucket: &str,
        scope: &TenantScope,
        area: Area<'_>,
        path: &str,
        lifetime: Duration,
        encryption: Option<&ObjectEncryption>,
    ) -> Result<PresignedRequest, StorageError> {
        let key = scope.key(area, path)?;
        if lifetime.is_zero() || lifetime > MAX_PRESIGN_LIFETIME {
            return Err(StorageError::Config(
                "presigned URL lifetime must be between 1 s and 7 days".to_owned(),
            ));
        }
        let config = PresigningConfig::expires_in(lifetime)
            .map_err(|e| StorageError::Config(format!("presigning: {e}")))?;
        let tagging = matches!(area, Area::Temp).then(|| format!("{}={}", TEMP_TAG.0, TEMP_TAG.1));
        self.presign_put_tagged(bucket, key, encryption, tagging, config)
            .await
    }

    /// A presigned PUT for `key`, with the encryption headers signed in when given.
    pub async fn presign_put(
        &self,
        bucket: &str,
        key: ObjectKey,
        encryption: Option<&ObjectEncryption>,
        config: PresigningConfig,
    ) -> Result<PresignedRequest, StorageError> {
        self.presign_put_tagged(bucket, key, encryption, None, config)
            .await
    }

    async fn presign_put_tagged(
        &self,
        bucket: &str,
        key: ObjectKey,
        encryption: Option<&ObjectEncryption>,
        tagging: Option<String>,
        config: PresigningConfig,
    ) -> Result<PresignedRequest, StorageError> {
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key.as_str())
            .set_tagging(tagging);
        match encryption {
            None => {}
            Some(ObjectEncryption::Aes256) => {
                put = put.server_side_encryption(ServerSideEncryption::Aes256);
            }
            Some(ObjectEncryption::Kms { key_id }) => {
                put = put
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(key_id);
            }
        }
        let presigned = put
            .presigned(config)
            .await
            .map_err(|e| self.classify("PresignPutObject", e).error)?;
        Ok(to_request(&presigned, key))
    }

    async fn require_object(
        &self,
        bucket: &str,
        key: &ObjectKey,
        index: usize,
    ) -> Result<(), StorageError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = self.classify("HeadObject", err);
                if failure.status == Some(404) {
                    Err(StorageError::InputMissing { index })
                } else {
                    Err(failure.error)
                }
            }
        }
    }
}

fn to_request(
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    key: ObjectKey,
) -> PresignedRequest {
    PresignedRequest {
        method: presigned.method().to_owned(),
        url: presigned.uri().to_owned(),
        headers: presigned
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        key,
    }
}

impl S3Storage {
    /// Keys under `prefix` (a render's output prefix), at most `limit`, in key order, relative
    /// to the foundry prefix `strip`. One ListObjectsV2 page per 1,000 keys.
    pub async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        strip: &str,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.classify("ListObjectsV2", e).error)?;
            for object in page.contents() {
                if keys.len() >= limit {
                    return Ok(keys);
                }
                if let Some(key) = object.key() {
                    keys.push(key.strip_prefix(strip).unwrap_or(key).to_owned());
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }
}
