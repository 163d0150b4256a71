//! Removing a foundry from its bucket (deletion with `reclaimPolicy: Delete`): its policy
//! statements and lifecycle rules, found by the foundry id in their `Sid`/`ID`, so the other
//! foundries of a shared bucket keep theirs. Objects under the foundry's prefix are deleted
//! only when asked for (`storage.objectReclaimPolicy: Delete`), never as a side effect.
//! Idempotent: a bucket, policy or rule that is already gone counts as removed.

use aws_sdk_s3::types::{BucketLifecycleConfiguration, Delete, ObjectIdentifier};

use super::{FoundryStorage, S3Storage, StorageError, policy};

/// What [`S3Storage::remove_foundry`] removed, one line each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovalReport {
    /// What changed, e.g. `removed 4 policy statements`.
    pub changes: Vec<String>,
    /// Object versions (and delete markers) deleted under the prefix.
    pub objects_deleted: usize,
}

impl S3Storage {
    /// Removes the foundry's statements and lifecycle rules, and its objects when
    /// `delete_objects`.
    pub async fn remove_foundry(
        &self,
        storage: &FoundryStorage,
        delete_objects: bool,
    ) -> Result<RemovalReport, StorageError> {
        let mut report = RemovalReport::default();
        match self.remove_statements(storage, &mut report).await {
            Err(StorageError::Provider { code, .. }) if code == "NoSuchBucket" => {
                return Ok(report);
            }
            other => other?,
        }
        self.remove_lifecycle_rules(storage, &mut report).await?;
        if delete_objects {
            report.objects_deleted = self.delete_objects_under(storage).await?;
            report.changes.push(format!(
                "deleted {} object versions under {}/{}",
                report.objects_deleted, storage.bucket, storage.prefix
            ));
        }
        Ok(report)
    }

    async fn remove_statements(
        &self,
        storage: &FoundryStorage,
        report: &mut RemovalReport,
    ) -> Result<(), StorageError> {
        let current = self.bucket_policy(&storage.bucket).await?;
        match policy::policy_without(current.as_ref(), &storage.id) {
            None => {}
            Some(None) => {
                self.client()
                    .delete_bucket_policy()
                    .bucket(&storage.bucket)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteBucketPolicy", e).error)?;
                report.changes.push(
                    "removed the bucket policy (only the foundry's statements were in it)"
                        .to_owned(),
                );
            }
            Some(Some(rest)) => {
                self.write_policy(&storage.bucket, &rest.to_string(), true)
                    .await?;
                report
                    .changes
                    .push("removed the foundry's statements from the bucket policy".to_owned());
            }
        }
        Ok(())
    }

    async fn remove_lifecycle_rules(
        &self,
        storage: &FoundryStorage,
        report: &mut RemovalReport,
    ) -> Result<(), StorageError> {
        let current = self.lifecycle_rules(&storage.bucket).await?;
        let total = current.len();
        let rest: Vec<_> = current
            .into_iter()
            .filter(|rule| !rule.id().is_some_and(|id| id.starts_with(&storage.id)))
            .collect();
        if rest.len() == total {
            return Ok(());
        }
        if rest.is_empty() {
            self.client()
                .delete_bucket_lifecycle()
                .bucket(&storage.bucket)
                .send()
                .await
                .map_err(|e| self.classify("DeleteBucketLifecycle", e).error)?;
        } else {
            let configuration = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rest))
                .build()
                .map_err(|e| StorageError::Config(format!("lifecycle: {e}")))?;
            self.client()
                .put_bucket_lifecycle_configuration()
                .bucket(&storage.bucket)
                .lifecycle_configuration(configuration)
                .send()
                .await
                .map_err(|e| self.classify("PutBucketLifecycleConfiguration", e).error)?;
        }
        report
            .changes
            .push("removed the foundry's lifecycle rules".to_owned());
        Ok(())
    }

    /// Deletes every version and delete marker under the prefix (the whole bucket when the
    /// foundry has no prefix, i.e. a bucket of its own), a page of at most 1000 at a time.
    async fn delete_objects_under(&self, storage: &FoundryStorage) -> Result<usize, StorageError> {
        let mut deleted = 0;
        loop {
            let page = self
                .client()
                .list_object_versions()
                .bucket(&storage.bucket)
                .prefix(&storage.prefix)
                .max_keys(1000)
                .send()
                .await
                .map_err(|e| self.classify("ListObjectVersions", e).error)?;
            let mut identifiers = Vec::new();
            let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
            let markers = page
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id()));
            for (key, version) in versions.chain(markers) {
                let Some(key) = key else { continue };
                let identifier = ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.map(str::to_owned))
                    .build()
                    .map_err(|e| StorageError::Config(format!("object identifier: {e}")))?;
                identifiers.push(identifier);
            }
            if identifiers.is_empty() {
                return Ok(deleted);
            }
            let count = identifiers.len();
            let delete = Delete::builder()
                .set_objects(Some(identifiers))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Config(format!("delete request: {e}")))?;
            let out = self
                .client()
                .delete_objects()
                .bucket(&storage.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.classify("DeleteObjects", e).error)?;
            if let Some(error) = out.errors().first() {
                return Err(StorageError::Provider {
                    operation: "DeleteObjects",
                    code: error.code().unwrap_or_default().to_owned(),
                    message: error.message().unwrap_or_default().to_owned(),
                });
            }
            deleted += count;
        }
    }
}
