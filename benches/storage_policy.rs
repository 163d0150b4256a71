//! How far one shared bucket policy scales: bytes per foundry and foundries that fit under
//! AWS's 20 KB bucket policy limit, with AWS-style role ARNs and prefixes. Prints figures.

use videofoundry::crd::video_foundry::ExecutionMode;
use videofoundry::storage::foundry::foundry_id;
use videofoundry::storage::policy::{AWS_POLICY_LIMIT_BYTES, merged_policy};
use videofoundry::storage::{DefaultEncryption, FoundryStorage};

fn foundry(index: usize, require_tls: bool) -> FoundryStorage {
    FoundryStorage {
        id: foundry_id("studios", &format!("studio-{index:04}")),
        bucket: "videofoundry-renders-prod".to_owned(),
        region: "eu-west-1".to_owned(),
        prefix: format!("studio-{index:04}/"),
        tenant_principal: Some(format!(
            "arn:aws:iam::123456789012:role/videofoundry-platform-studio-{index:04}"
        )),
        require_tls,
        versioning: true,
        block_public_access: true,
        encryption: DefaultEncryption::Aes256,
        per_object_encryption: false,
        temp_expiration_days: 7,
        noncurrent_version_days: 90,
        execution_mode: ExecutionMode::Production,
    }
}

fn main() {
    for require_tls in [true, false] {
        let mut policy = None;
        let mut sizes = Vec::new();
        let mut fitting = 0;
        for index in 0..200 {
            let merged = merged_policy(policy.as_ref(), &foundry(index, require_tls));
            let bytes = merged.to_string().len();
            sizes.push(bytes);
            if bytes <= AWS_POLICY_LIMIT_BYTES {
                fitting = index + 1;
            }
            policy = Some(merged);
        }
        let per_foundry = sizes[1] - sizes[0];
        println!(
            "require_tls={require_tls}: first foundry {} B, each further foundry {per_foundry} B, \
             statements per foundry {} (plus 2 shared TLS statements), foundries under {} B: {fitting}",
            sizes[0], 4, AWS_POLICY_LIMIT_BYTES
        );
    }
}
