//! The lifecycle rules of one foundry, as plain shapes that compare equal when a provider reads
//! back what was written (providers rewrite filters, so SDK structs cannot be compared as is).

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag,
};

use super::error::StorageError;
use super::foundry::FoundryStorage;
use super::keys::TEMP_TAG;

/// Days after which unfinished multipart uploads are aborted.
const ABORT_INCOMPLETE_UPLOAD_DAYS: i32 = 7;

/// A lifecycle rule reduced to what the operator sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleShape {
    /// Rule id (starts with the foundry id).
    pub id: String,
    /// Key prefix the rule applies to.
    pub prefix: String,
    /// Tag the objects must carry.
    pub tag: Option<(String, String)>,
    /// Days after which current objects expire.
    pub expiration_days: Option<i32>,
    /// Days after which non-current versions expire.
    pub noncurrent_days: Option<i32>,
    /// Days after which incomplete multipart uploads are aborted.
    pub abort_incomplete_days: Option<i32>,
}

fn days(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The rules `storage` needs: expire tagged `temp/` objects, expire non-current versions after
/// the retention period, abort forgotten multipart uploads.
pub fn foundry_rules(storage: &FoundryStorage) -> Vec<RuleShape> {
    vec![
        RuleShape {
            id: format!("{}-temp", storage.id),
            prefix: storage.prefix.clone(),
            tag: Some((TEMP_TAG.0.to_owned(), TEMP_TAG.1.to_owned())),
            expiration_days: Some(days(storage.temp_expiration_days)),
            noncurrent_days: None,
            abort_incomplete_days: None,
        },
        RuleShape {
            id: format!("{}-versions", storage.id),
            prefix: storage.prefix.clone(),
            tag: None,
            expiration_days: None,
            noncurrent_days: Some(days(storage.noncurrent_version_days)),
            abort_incomplete_days: Some(ABORT_INCOMPLETE_UPLOAD_DAYS),
        },
    ]
}

/// Reads a provider's rule back into a shape. Disabled rules and rules the operator does not
/// understand come back as `None` (and so count as drift when they are the foundry's).
pub fn shape_of(rule: &LifecycleRule) -> Option<RuleShape> {
    if rule.status() != &ExpirationStatus::Enabled {
        return None;
    }
    let filter = rule.filter();
    let (prefix, tag) = match filter.and_then(LifecycleRuleFilter::and) {
        Some(and) => {
            let tag = match and.tags() {
                [] => None,
                [tag] => Some((tag.key().to_owned(), tag.value().to_owned())),
                _ => return None,
            };
            (and.prefix().unwrap_or_default().to_owned(), tag)
        }
        None => {
            #[allow(deprecated)]
            let legacy_prefix = rule.prefix();
            let prefix = filter
                .and_then(LifecycleRuleFilter::prefix)
                .or(legacy_prefix)
                .unwrap_or_default();
            let tag = filter
                .and_then(LifecycleRuleFilter::tag)
                .map(|t| (t.key().to_owned(), t.value().to_owned()));
            (prefix.to_owned(), tag)
        }
    };
    Some(RuleShape {
        id: rule.id().unwrap_or_default().to_owned(),
        prefix,
        tag,
        expiration_days: rule.expiration().and_then(LifecycleExpiration::days),
        noncurrent_days: rule
            .noncurrent_version_expiration()
            .and_then(NoncurrentVersionExpiration::noncurrent_days),
        abort_incomplete_days: rule
            .abort_incomplete_multipart_upload()
            .and_then(AbortIncompleteMultipartUpload::days_after_initiation),
    })
}

fn config_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Config(format!("lifecycle rule: {e}"))
}

/// The SDK rule of a shape.
pub fn rule_of(shape: &RuleShape) -> Result<LifecycleRule, StorageError> {
    let filter = match &shape.tag {
        Some((key, value)) => {
            let tag = Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(config_error)?;
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix(&shape.prefix)
                        .tags(tag)
                        .build(),
                )
                .build()
        }
        None => LifecycleRuleFilter::builder().prefix(&shape.prefix).build(),
    };
    let mut rule = LifecycleRule::builder()
        .id(&shape.id)
        .status(ExpirationStatus::Enabled)
        .filter(filter);
    if let Some(days) = shape.expiration_days {
        rule = rule.expiration(LifecycleExpiration::builder().days(days).build());
    }
    if let Some(days) = shape.noncurrent_days {
        rule = rule.noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days)
                .build(),
        );
    }
    if let Some(days) = shape.abort_incomplete_days {
        rule = rule.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days)
                .build(),
        );
    }
    rule.build().map_err(config_error)
}
