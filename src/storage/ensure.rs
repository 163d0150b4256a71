//! Ensures a foundry's storage: bucket, versioning, bucket policy, public access block, default
//! encryption, lifecycle. Each step reads the current setting first and writes only on drift,
//! so a second run changes nothing and reports so.
//!
//! Order: bucket → versioning → bucket policy → public access block → encryption → lifecycle.
//! The policy goes before the public access block because Ceph RGW 16 refuses a bucket policy
//! once the block is on; AWS accepts either order.

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, LifecycleRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};
use serde_json::Value;

use super::S3Storage;
use super::error::StorageError;
use super::foundry::{DefaultEncryption, FoundryStorage};
use super::lifecycle::{self, RuleShape};
use super::policy::{self, AWS_POLICY_LIMIT_BYTES};
use crate::crd::video_foundry::ExecutionMode;

/// Whether the bucket encrypts objects by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionState {
    /// Default encryption is configured as the foundry asks.
    Default,
    /// The provider does not implement default bucket encryption (Ceph RGW 16).
    Unsupported,
    /// The foundry asked for none (developer mode).
    Off,
}

/// What one run of [`S3Storage::ensure`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsureReport {
    /// One line per setting created or repaired; empty when nothing had drifted.
    pub changes: Vec<String>,
    /// Default encryption.
    pub encryption: EncryptionState,
    /// Size of the bucket policy in bytes (0 when the bucket has none).
    pub policy_bytes: usize,
    /// Settings weakened because the provider misbehaves with the strict one, one line each.
    pub provider_workarounds: Vec<String>,
}

/// The public access block flags kept on providers whose BlockPublicAcls refuses uploads.
pub const UPLOAD_SAFE_BLOCK: [bool; 4] = [false, true, true, true];

const BLOCK_PUBLIC_ACLS_WORKAROUND: &str = "BlockPublicAcls is off because the provider refuses every upload with it on (Ceph RGW 16); IgnorePublicAcls voids public ACLs instead";

/// The `StorageReady` condition of a successful ensure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageCondition {
    /// Whether storage is ready.
    pub ready: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// Human-readable detail (no credentials, no tenant keys).
    pub message: String,
}

impl EnsureReport {
    /// The condition to report: ready, unless the provider lacks default encryption in a
    /// production mode and the foundry did not opt into per-object encryption.
    pub fn condition(&self, storage: &FoundryStorage) -> StorageCondition {
        match self.encryption {
            EncryptionState::Unsupported => {
                let production = storage.execution_mode != ExecutionMode::Developer;
                if storage.per_object_encryption {
                    StorageCondition {
                        ready: true,
                        reason: "EncryptionUnsupported",
                        message: "the provider lacks default bucket encryption; every upload URL carries signed encryption headers".to_owned(),
                    }
                } else if production {
                    StorageCondition {
                        ready: false,
                        reason: "EncryptionUnsupported",
                        message: StorageError::EncryptionUnsupported.to_string(),
                    }
                } else {
                    StorageCondition {
                        ready: true,
                        reason: "EncryptionUnsupported",
                        message: "the provider lacks default bucket encryption; objects are stored unencrypted".to_owned(),
                    }
                }
            }
            EncryptionState::Default | EncryptionState::Off => StorageCondition {
                ready: true,
                reason: "Hardened",
                message: {
                    let mut message = if self.changes.is_empty() {
                        "bucket hardened; nothing drifted".to_owned()
                    } else {
                        format!("bucket hardened; applied: {}", self.changes.join("; "))
                    };
                    for workaround in &self.provider_workarounds {
                        message.push_str("; ");
                        message.push_str(workaround);
                    }
                    message
                },
            },
        }
    }
}

impl S3Storage {
    /// Creates or repairs the foundry's storage. Fails with the first step that fails; steps
    /// already applied stay applied (the next run continues from there).
    pub async fn ensure(&self, storage: &FoundryStorage) -> Result<EnsureReport, StorageError> {
        let mut changes = Vec::new();
        self.ensure_bucket(storage, &mut changes).await?;
        self.ensure_versioning(storage, &mut changes).await?;
        let policy_bytes = self.ensure_policy(storage, &mut changes).await?;
        let mut provider_workarounds = Vec::new();
        self.ensure_public_access_block(storage, &mut changes, &mut provider_workarounds)
            .await?;
        let encryption = self.ensure_encryption(storage, &mut changes).await?;
        self.ensure_lifecycle(storage, &mut changes).await?;
        Ok(EnsureReport {
            changes,
            encryption,
            policy_bytes,
            provider_workarounds,
        })
    }

    async fn ensure_bucket(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
    ) -> Result<(), StorageError> {
        let probe = self
            .client
            .head_bucket()
            .bucket(&storage.bucket)
            .send()
            .await;
        let failure = match probe {
            Ok(_) => return Ok(()),
            Err(err) => self.classify("HeadBucket", err),
        };
        match failure.status {
            Some(404) => {}
            // HEAD has no body: a 403 is either someone else's bucket or bad credentials, and
            // CreateBucket below tells which.
            Some(403) => {}
            _ => return Err(failure.error),
        }
        let mut create = self.client.create_bucket().bucket(&storage.bucket);
        if storage.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(storage.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {
                changes.push("created the bucket".to_owned());
                Ok(())
            }
            Err(err) => {
                let failure = self.classify("CreateBucket", err);
                if failure.is("BucketAlreadyOwnedByYou") {
                    Ok(())
                } else if failure.is("BucketAlreadyExists") {
                    Err(StorageError::BucketOwnedByAnotherAccount {
                        bucket: storage.bucket.clone(),
                    })
                } else {
                    Err(failure.error)
                }
            }
        }
    }

    async fn ensure_versioning(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
    ) -> Result<(), StorageError> {
        if !storage.versioning {
            // Turning versioning off is a reported relaxation; the operator never suspends it
            // on a bucket other foundries may share.
            return Ok(());
        }
        let current = self
            .client
            .get_bucket_versioning()
            .bucket(&storage.bucket)
            .send()
            .await
            .map_err(|e| self.classify("GetBucketVersioning", e).error)?;
        if current.status() == Some(&BucketVersioningStatus::Enabled) {
            return Ok(());
        }
        self.client
            .put_bucket_versioning()
            .bucket(&storage.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.classify("PutBucketVersioning", e).error)?;
        changes.push("enabled versioning".to_owned());
        Ok(())
    }

    /// The bucket policy as stored, `None` when the bucket has none.
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<Value>, StorageError> {
        match self.client.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => {
                let text = out.policy().unwrap_or_default();
                if text.is_empty() {
                    return Ok(None);
                }
                serde_json::from_str(text).map(Some).map_err(|e| {
                    StorageError::Config(format!("the stored bucket policy is not JSON: {e}"))
                })
            }
            Err(err) => {
                let failure = self.classify("GetBucketPolicy", err);
                if failure.is("NoSuchBucketPolicy") {
                    Ok(None)
                } else {
                    Err(failure.error)
                }
            }
        }
    }

    async fn ensure_policy(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
    ) -> Result<usize, StorageError> {
        let current = self.bucket_policy(&storage.bucket).await?;
        if policy::principal_confined_elsewhere(current.as_ref(), storage) {
            return Err(StorageError::Config(
                "the tenant principal is already confined to another foundry's prefix in this bucket; give each foundry its own principal".to_owned(),
            ));
        }
        let desired = policy::merged_policy(current.as_ref(), storage);
        let desired_text = desired.to_string();
        let empty = desired
            .get("Statement")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if let Some(current) = &current
            && policy::equivalent(current, &desired)
        {
            return Ok(current.to_string().len());
        }
        if empty {
            if current.is_some() {
                self.client
                    .delete_bucket_policy()
                    .bucket(&storage.bucket)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteBucketPolicy", e).error)?;
                changes.push("removed the bucket policy".to_owned());
            }
            return Ok(0);
        }
        if desired_text.len() > AWS_POLICY_LIMIT_BYTES {
            return Err(StorageError::PolicyTooLarge {
                bytes: desired_text.len(),
                limit: AWS_POLICY_LIMIT_BYTES,
            });
        }
        let lifted_block = self
            .write_policy(&storage.bucket, &desired_text, storage.block_public_access)
            .await?;
        changes.push(match (current.is_some(), lifted_block) {
            (true, false) => "repaired the bucket policy".to_owned(),
            (false, false) => "set the bucket policy".to_owned(),
            (true, true) => {
                "repaired the bucket policy (public access block lifted for the write and restored)"
                    .to_owned()
            }
            (false, true) => {
                "set the bucket policy (public access block lifted for the write and restored)"
                    .to_owned()
            }
        });
        Ok(desired_text.len())
    }

    /// Puts `text` as the bucket policy; returns whether the public access block had to be
    /// lifted for the write (and was restored).
    pub(crate) async fn write_policy(
        &self,
        bucket: &str,
        text: &str,
        may_lift_block: bool,
    ) -> Result<bool, StorageError> {
        let mut lifted_block = false;
        let mut put = self.put_policy(bucket, text).await;
        let block_before = self.public_access_block(bucket).await?;
        if let Err(failure) = &put
            && matches!(failure.error, StorageError::AccessDenied { .. })
            && may_lift_block
            && block_before[2]
        {
            // Ceph RGW 16 counts any `Principal: "*"` statement (our TLS deny) as public and
            // refuses the policy while BlockPublicPolicy is on: lift the block for the one
            // write (the policy is ours and grants nothing public) and restore it at once.
            self.client
                .delete_public_access_block()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| self.classify("DeletePublicAccessBlock", e).error)?;
            put = self.put_policy(bucket, text).await;
            self.put_public_access_block(bucket, block_before).await?;
            lifted_block = true;
        }
        match put {
            Ok(()) => {}
            Err(failure) => {
                if failure.is("MalformedPolicy") || failure.is("InvalidArgument") {
                    return Err(StorageError::PolicyRejected {
                        code: failure.code.unwrap_or_default(),
                        message: match failure.error {
                            StorageError::Provider { message, .. } => message,
                            other => other.to_string(),
                        },
                    });
                }
                if failure.is("PolicyTooLarge") || failure.is("EntityTooLarge") {
                    return Err(StorageError::PolicyTooLarge {
                        bytes: text.len(),
                        limit: AWS_POLICY_LIMIT_BYTES,
                    });
                }
                return Err(failure.error);
            }
        }
        Ok(lifted_block)
    }

    async fn put_policy(&self, bucket: &str, policy: &str) -> Result<(), super::error::Failure> {
        self.client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify("PutBucketPolicy", e))
    }

    async fn put_public_access_block(
        &self,
        bucket: &str,
        [block_acls, ignore_acls, block_policy, restrict]: [bool; 4],
    ) -> Result<(), StorageError> {
        self.client
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(block_acls)
                    .ignore_public_acls(ignore_acls)
                    .block_public_policy(block_policy)
                    .restrict_public_buckets(restrict)
                    .build(),
            )
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify("PutPublicAccessBlock", e).error)
    }

    /// The public access block flags (block ACLs, ignore ACLs, block policy, restrict buckets),
    /// all `false` when the bucket has none.
    pub async fn public_access_block(&self, bucket: &str) -> Result<[bool; 4], StorageError> {
        match self
            .client
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .public_access_block_configuration()
                .map(|c| {
                    [
                        c.block_public_acls().unwrap_or(false),
                        c.ignore_public_acls().unwrap_or(false),
                        c.block_public_policy().unwrap_or(false),
                        c.restrict_public_buckets().unwrap_or(false),
                    ]
                })
                .unwrap_or_default()),
            Err(err) => {
                // Ceph RGW 16 answers 200 with the root element misspelt
                // (`BlockPublicAccessBlockConfiguration`), which the SDK cannot parse: read the
                // four flags from the body ourselves.
                let body = err
                    .raw_response()
                    .filter(|r| r.status().as_u16() == 200)
                    .and_then(|r| r.body().bytes())
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                if let Some(body) = body {
                    return Ok(public_access_flags_of(&body));
                }
                let failure = self.classify("GetPublicAccessBlock", err);
                if failure.is("NoSuchPublicAccessBlockConfiguration") {
                    Ok([false; 4])
                } else {
                    Err(failure.error)
                }
            }
        }
    }

    async fn ensure_public_access_block(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
        workarounds: &mut Vec<String>,
    ) -> Result<(), StorageError> {
        if !storage.block_public_access {
            return Ok(());
        }
        let current = self.public_access_block(&storage.bucket).await?;
        if current == [true; 4] {
            return Ok(());
        }
        if current == UPLOAD_SAFE_BLOCK {
            // The settled state on providers whose BlockPublicAcls refuses every upload
            // (found by the probe below when the block was first applied).
            workarounds.push(BLOCK_PUBLIC_ACLS_WORKAROUND.to_owned());
            return Ok(());
        }
        self.put_public_access_block(&storage.bucket, [true; 4])
            .await?;
        changes.push("blocked public access".to_owned());
        // Ceph RGW 16 refuses every PutObject while BlockPublicAcls is on (whatever the ACL).
        // Probe with an empty object under the foundry's prefix; if the upload is refused,
        // keep the other three flags: IgnorePublicAcls still voids any public ACL.
        let probe_key = format!("{}.videofoundry/upload-probe", storage.prefix);
        let probe = self
            .client
            .put_object()
            .bucket(&storage.bucket)
            .key(&probe_key)
            .send()
            .await;
        match probe {
            Ok(_) => {}
            Err(err) => {
                let failure = self.classify("PutObject (upload probe)", err);
                if !matches!(failure.error, StorageError::AccessDenied { .. }) {
                    return Err(failure.error);
                }
                self.put_public_access_block(&storage.bucket, UPLOAD_SAFE_BLOCK)
                    .await?;
                workarounds.push(BLOCK_PUBLIC_ACLS_WORKAROUND.to_owned());
            }
        }
        self.client
            .delete_object()
            .bucket(&storage.bucket)
            .key(&probe_key)
            .send()
            .await
            .map_err(|e| self.classify("DeleteObject (upload probe)", e).error)?;
        Ok(())
    }

    async fn ensure_encryption(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
    ) -> Result<EncryptionState, StorageError> {
        let (algorithm, key_id) = match &storage.encryption {
            DefaultEncryption::Off => return Ok(EncryptionState::Off),
            DefaultEncryption::Aes256 => (ServerSideEncryption::Aes256, None),
            DefaultEncryption::Kms { key_id } => {
                (ServerSideEncryption::AwsKms, Some(key_id.as_str()))
            }
        };
        match self
            .client
            .get_bucket_encryption()
            .bucket(&storage.bucket)
            .send()
            .await
        {
            Ok(out) => {
                let matches = out
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|r| r.apply_server_side_encryption_by_default())
                    .is_some_and(|d| {
                        d.sse_algorithm() == &algorithm && d.kms_master_key_id() == key_id
                    });
                if matches {
                    return Ok(EncryptionState::Default);
                }
            }
            Err(err) => {
                let failure = self.classify("GetBucketEncryption", err);
                if matches!(failure.error, StorageError::Unsupported { .. }) {
                    return Ok(EncryptionState::Unsupported);
                }
                // Ceph RGW 16 does not know `?encryption`: it answers GET with an object
                // listing (200) and PUT with InvalidArgument. A listing means "unsupported".
                if failure.status == Some(200) {
                    return Ok(EncryptionState::Unsupported);
                }
                if !failure.is("ServerSideEncryptionConfigurationNotFoundError") {
                    return Err(failure.error);
                }
            }
        }
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(algorithm)
            .set_kms_master_key_id(key_id.map(str::to_owned))
            .build()
            .map_err(|e| StorageError::Config(format!("encryption: {e}")))?;
        let configuration = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .build(),
            )
            .build()
            .map_err(|e| StorageError::Config(format!("encryption: {e}")))?;
        match self
            .client
            .put_bucket_encryption()
            .bucket(&storage.bucket)
            .server_side_encryption_configuration(configuration)
            .send()
            .await
        {
            Ok(_) => {
                changes.push("set default encryption".to_owned());
                Ok(EncryptionState::Default)
            }
            Err(err) => {
                let failure = self.classify("PutBucketEncryption", err);
                if matches!(failure.error, StorageError::Unsupported { .. }) {
                    Ok(EncryptionState::Unsupported)
                } else {
                    Err(failure.error)
                }
            }
        }
    }

    /// The bucket's lifecycle rules as stored.
    pub async fn lifecycle_rules(&self, bucket: &str) -> Result<Vec<LifecycleRule>, StorageError> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(err) => {
                let failure = self.classify("GetBucketLifecycleConfiguration", err);
                if failure.is("NoSuchLifecycleConfiguration") {
                    Ok(Vec::new())
                } else {
                    Err(failure.error)
                }
            }
        }
    }

    async fn ensure_lifecycle(
        &self,
        storage: &FoundryStorage,
        changes: &mut Vec<String>,
    ) -> Result<(), StorageError> {
        let current = self.lifecycle_rules(&storage.bucket).await?;
        let (ours, others): (Vec<LifecycleRule>, Vec<LifecycleRule>) = current
            .into_iter()
            .partition(|rule| rule.id().is_some_and(|id| id.starts_with(&storage.id)));
        let mut current_shapes: Vec<Option<RuleShape>> =
            ours.iter().map(lifecycle::shape_of).collect();
        current_shapes.sort_by(|a, b| {
            a.as_ref()
                .map(|s| s.id.clone())
                .cmp(&b.as_ref().map(|s| s.id.clone()))
        });
        let desired = lifecycle::foundry_rules(storage);
        let desired_shapes: Vec<Option<RuleShape>> = desired.iter().cloned().map(Some).collect();
        if current_shapes == desired_shapes {
            return Ok(());
        }
        let mut rules = others;
        for shape in &desired {
            rules.push(lifecycle::rule_of(shape)?);
        }
        let configuration = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| StorageError::Config(format!("lifecycle: {e}")))?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&storage.bucket)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|e| self.classify("PutBucketLifecycleConfiguration", e).error)?;
        changes.push(if ours.is_empty() {
            "set lifecycle rules".to_owned()
        } else {
            "repaired lifecycle rules".to_owned()
        });
        Ok(())
    }
}

/// The four public access block flags of an XML document, `false` when a flag is absent.
fn public_access_flags_of(xml: &str) -> [bool; 4] {
    [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ]
    .map(|flag| {
        xml.contains(&format!("<{flag}>true</{flag}>"))
            || xml.contains(&format!("<{flag}>TRUE</{flag}>"))
    })
}
