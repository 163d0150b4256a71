//! How far one shared bucket policy scales: bytes per foundry and foundries that fit under
//! AWS's 20 KB bucket policy limit, with AWS-style role ARNs and prefixes. Prints figures.

use videofoundry::storage::FoundryStorage;
use videofoundry::storage::foundry::foundry_id;
use videofoundry::storage::policy::{AWS_POLICY_LIMIT_BYTES, merged_policy};

fn foundry(index: usize, require_tls: bool) -> FoundryStorage {
    let tenant = format!("arn:aws:iam::123456789012:role/videofoundry-platform-studio-{index:04}");
    FoundryStorage {
        require_tls,
        ..FoundryStorage::hardened(
            &foundry_id("studios", &format!("studio-{index:04}")),
            "videofoundry-renders-prod",
            "eu-west-1",
            &format!("studio-{index:04}/"),
            Some(&tenant),
        )
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
