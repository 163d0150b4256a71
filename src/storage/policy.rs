//! The bucket policy statements of one foundry, and how they merge into a bucket policy that
//! several foundries may share. Each foundry owns the statements whose `Sid` starts with its id;
//! statements of other foundries (or of the bucket's owner) are kept as they are.

use serde_json::{Value, json};

use super::foundry::FoundryStorage;

/// AWS's limit on the size of a bucket policy, in bytes.
pub const AWS_POLICY_LIMIT_BYTES: usize = 20 * 1024;

/// Object actions the tenant principal may use under its prefix.
const TENANT_OBJECT_ACTIONS: [&str; 7] = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];

/// `Sid`s of the bucket-wide statements that deny requests without TLS. They are shared by
/// every foundry in the bucket (one copy, not one per foundry, so that the policy scales).
pub const TLS_SIDS: [&str; 2] = [
    "VideoFoundryDenyInsecureTransport",
    "VideoFoundryDenyUnknownTransport",
];

/// The bucket-wide statements that deny every request made without TLS.
pub fn tls_statements(bucket: &str) -> Vec<Value> {
    let resources = [
        format!("arn:aws:s3:::{bucket}"),
        format!("arn:aws:s3:::{bucket}/*"),
    ];
    vec![
        json!({
            "Sid": TLS_SIDS[0],
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }),
        // Ceph RGW 16 leaves aws:SecureTransport out of plain-HTTP requests instead of setting
        // it to false, so the deny above never matches there; this one does. AWS always sets
        // the key, so on AWS this statement is inert.
        json!({
            "Sid": TLS_SIDS[1],
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Null": {"aws:SecureTransport": "true"}}
        }),
    ]
}

/// The statements that confine `storage`'s tenant principal to its prefix.
pub fn foundry_statements(storage: &FoundryStorage) -> Vec<Value> {
    let bucket_arn = format!("arn:aws:s3:::{}", storage.bucket);
    let objects_arn = format!("{bucket_arn}/{}*", storage.prefix);
    let id = &storage.id;
    let mut statements = Vec::new();
    let Some(principal) = storage.tenant_principal.as_deref() else {
        return statements;
    };
    let principal = json!({"AWS": [principal]});
    statements.push(json!({
        "Sid": format!("{id}TenantObjects"),
        "Effect": "Allow",
        "Principal": principal,
        "Action": TENANT_OBJECT_ACTIONS,
        "Resource": [objects_arn]
    }));
    let mut list = json!({
        "Sid": format!("{id}TenantList"),
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
        "Resource": [bucket_arn]
    });
    if !storage.prefix.is_empty() {
        list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{}*", storage.prefix)]}});
        // An explicit deny outside the prefix, so that a grant elsewhere (an IAM policy on AWS,
        // another foundry's statement naming the same principal) cannot widen the confinement.
        statements.push(list);
        statements.push(json!({
            "Sid": format!("{id}TenantDenyOutsidePrefix"),
            "Effect": "Deny",
            "Principal": principal,
            "Action": "s3:*",
            "NotResource": [bucket_arn, objects_arn]
        }));
        statements.push(json!({
            "Sid": format!("{id}TenantDenyListOutsidePrefix"),
            "Effect": "Deny",
            "Principal": principal,
            "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"],
            "Resource": [bucket_arn],
            // IfExists: a listing without `prefix` is denied too (RGW evaluates a plain
            // StringNotLike on a missing key as false).
            "Condition": {"StringNotLikeIfExists": {"s3:prefix": [format!("{}*", storage.prefix)]}}
        }));
    } else {
        statements.push(list);
    }
    statements
}

fn owned_by(statement: &Value, foundry_id: &str) -> bool {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .is_some_and(|sid| sid.starts_with(foundry_id))
}

/// The statements of a policy document (none for an absent or unreadable one).
fn statements_of(policy: Option<&Value>) -> Vec<Value> {
    match policy.and_then(|p| p.get("Statement")) {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => Vec::new(),
    }
}

fn is_tls_statement(statement: &Value) -> bool {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .is_some_and(|sid| TLS_SIDS.contains(&sid))
}

/// The bucket policy with `storage`'s statements replaced by the desired ones and everything
/// else kept in place. The shared TLS statements are added when the foundry requires TLS; a
/// foundry that does not removes them only from a bucket of its own (no prefix), since in a
/// shared bucket they protect the other foundries too.
pub fn merged_policy(current: Option<&Value>, storage: &FoundryStorage) -> Value {
    let current = statements_of(current);
    let had_tls = current.iter().any(is_tls_statement);
    let mut statements: Vec<Value> = current
        .into_iter()
        .filter(|statement| !owned_by(statement, &storage.id) && !is_tls_statement(statement))
        .collect();
    if storage.require_tls || (had_tls && !storage.prefix.is_empty()) {
        statements.extend(tls_statements(&storage.bucket));
    }
    statements.extend(foundry_statements(storage));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The bucket policy without the statements of foundry `foundry_id` (its deletion): `None`
/// when it holds none of them (nothing to write), `Some(None)` when nothing else is left (the
/// policy is to be deleted), else the remaining policy. Every other statement, the shared TLS
/// ones included, is kept as it is.
pub fn policy_without(current: Option<&Value>, foundry_id: &str) -> Option<Option<Value>> {
    let statements = statements_of(current);
    if !statements.iter().any(|s| owned_by(s, foundry_id)) {
        return None;
    }
    let rest: Vec<Value> = statements
        .into_iter()
        .filter(|statement| !owned_by(statement, foundry_id))
        .collect();
    if rest.is_empty() {
        return Some(None);
    }
    let version = current
        .and_then(|p| p.get("Version"))
        .cloned()
        .unwrap_or_else(|| json!("2012-10-17"));
    Some(Some(json!({"Version": version, "Statement": rest})))
}

/// Whether another foundry's statements in `current` already confine `principal` (to its own
/// prefix). Two foundries cannot share a tenant principal in one bucket: each one's deny outside
/// its prefix would lock the principal out of the other's.
pub fn principal_confined_elsewhere(current: Option<&Value>, storage: &FoundryStorage) -> bool {
    let Some(principal) = storage.tenant_principal.as_deref() else {
        return false;
    };
    statements_of(current).iter().any(|statement| {
        let sid = statement
            .get("Sid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let names_principal = match statement.pointer("/Principal/AWS") {
            Some(Value::String(arn)) => arn == principal,
            Some(Value::Array(arns)) => arns.iter().any(|arn| arn == principal),
            _ => false,
        };
        sid.ends_with("TenantDenyOutsidePrefix") && !sid.starts_with(&storage.id) && names_principal
    })
}

/// Whether two policies say the same thing, ignoring the order of statements, single values
/// written without a list, and the order of list entries (providers rewrite all three).
pub fn equivalent(a: &Value, b: &Value) -> bool {
    let canonical = |policy: &Value| {
        let mut statements: Vec<String> = statements_of(Some(policy))
            .iter()
            .map(|s| canonicalize(s).to_string())
            .collect();
        statements.sort();
        statements
    };
    canonical(a) == canonical(b)
}

fn canonicalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(_) if key != "Sid" && key != "Effect" && key != "Version" => {
                            Value::Array(vec![value.clone()])
                        }
                        other => canonicalize(other),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonicalize).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// The number of foundries whose statements fit in one shared bucket policy of at most
/// `limit_bytes`, given the serialised size of the first and of each further foundry.
pub fn foundries_within(limit_bytes: usize, per_foundry_bytes: usize, base_bytes: usize) -> usize {
    limit_bytes.saturating_sub(base_bytes) / per_foundry_bytes.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(id: &str, prefix: &str) -> FoundryStorage {
        FoundryStorage::hardened(
            id,
            "renders",
            "us-east-1",
            prefix,
            Some("arn:aws:iam::123456789012:role/platform"),
        )
    }

    #[test]
    fn removing_a_foundry_keeps_every_other_statement() {
        let a = storage("vfaaaaaaaaaaaaaaaa", "a/");
        let mut b = storage("vfbbbbbbbbbbbbbbbb", "b/");
        b.tenant_principal = Some("arn:aws:iam::123456789012:role/other".into());
        let both = merged_policy(Some(&merged_policy(None, &a)), &b);
        let rest = policy_without(Some(&both), &a.id).unwrap().unwrap();
        assert_eq!(rest, merged_policy(None, &b), "TLS and B's statements stay");
        assert_eq!(
            policy_without(Some(&rest), &a.id),
            None,
            "nothing left to remove"
        );
        let only_b_statements =
            json!({"Version": "2012-10-17", "Statement": foundry_statements(&b)});
        assert_eq!(policy_without(Some(&only_b_statements), &b.id), Some(None));
        assert_eq!(policy_without(None, &b.id), None);
    }

    #[test]
    fn merging_keeps_other_foundries_and_replaces_its_own() {
        let a = storage("vfaaaa", "studio-a/");
        let b = storage("vfbbbb", "studio-b/");
        let with_a = merged_policy(None, &a);
        let with_both = merged_policy(Some(&with_a), &b);
        assert_eq!(statements_of(Some(&with_both)).len(), 10);
        let again = merged_policy(Some(&with_both), &a);
        assert!(equivalent(&again, &with_both));
        let mut relaxed = a.clone();
        relaxed.require_tls = false;
        // In a shared bucket the TLS statements stay for the others' sake.
        let relaxed_policy = merged_policy(Some(&with_both), &relaxed);
        assert_eq!(statements_of(Some(&relaxed_policy)).len(), 10);
        // In a bucket of its own, relaxing TLS removes them.
        let mut dedicated = storage("vfcccc", "");
        let strict = merged_policy(None, &dedicated);
        dedicated.require_tls = false;
        assert_eq!(
            statements_of(Some(&merged_policy(Some(&strict), &dedicated))).len(),
            2
        );
    }

    #[test]
    fn equivalence_ignores_provider_rewrites() {
        let ours = merged_policy(None, &storage("vfaaaa", "p/"));
        let mut rewritten = ours.clone();
        if let Some(Value::Array(statements)) = rewritten.get_mut("Statement") {
            statements.reverse();
            statements[0]["Action"] = json!("s3:*");
        }
        // The first statement after reversing is a deny whose action list we changed.
        assert!(!equivalent(&ours, &rewritten));
        let mut reordered = ours.clone();
        if let Some(Value::Array(statements)) = reordered.get_mut("Statement") {
            statements.reverse();
        }
        assert!(equivalent(&ours, &reordered));
    }

    #[test]
    fn a_principal_cannot_serve_two_foundries_of_one_bucket() {
        let a = storage("vfaaaa", "studio-a/");
        let policy = merged_policy(None, &a);
        assert!(principal_confined_elsewhere(
            Some(&policy),
            &storage("vfbbbb", "studio-b/")
        ));
        assert!(!principal_confined_elsewhere(Some(&policy), &a));
        let mut other_principal = storage("vfbbbb", "studio-b/");
        other_principal.tenant_principal = Some("arn:aws:iam::123456789012:role/b".to_owned());
        assert!(!principal_confined_elsewhere(
            Some(&policy),
            &other_principal
        ));
    }

    #[test]
    fn dedicated_bucket_needs_no_outside_prefix_denies() {
        let statements = foundry_statements(&storage("vfaaaa", ""));
        assert_eq!(statements.len(), 2);
    }
}
