//! Deterministic names of the objects built for a foundry or a render. The same CR always yields
//! the same names (DESIGN.md §4.8), and every name fits a DNS-1123 label (63 characters): when a
//! name must be shortened or rewritten, a hash of the original keeps distinct inputs distinct.

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label and label value.
pub const MAX_LABEL_LENGTH: usize = 63;

/// Length of the hex hash suffix appended to shortened names.
const HASH_LENGTH: usize = 8;

/// Name of the worker Job of a render.
pub fn worker_job(render_name: &str) -> String {
    dns_label(render_name, "-render")
}

/// Name of the per-render Secret holding the workflow and the presigned URLs.
pub fn render_secret(render_name: &str) -> String {
    dns_label(render_name, "-render-inputs")
}

/// Name of the foundry's worker ServiceAccount.
pub fn worker_service_account(foundry_name: &str) -> String {
    dns_label(foundry_name, "-worker")
}

/// Name of the NetworkPolicy that denies all ingress and egress of the foundry's workers.
pub fn worker_default_deny_policy(foundry_name: &str) -> String {
    dns_label(foundry_name, "-worker-default-deny")
}

/// Name of the NetworkPolicy that allows the egress the foundry's mode permits.
pub fn worker_egress_policy(foundry_name: &str) -> String {
    dns_label(foundry_name, "-worker-egress")
}

/// Name of the foundry's egress gateway Deployment, Service and NetworkPolicy.
pub fn egress_gateway(foundry_name: &str) -> String {
    dns_label(foundry_name, "-egress-gateway")
}

/// Name of the foundry's ResourceQuota and LimitRange.
pub fn worker_quota(foundry_name: &str) -> String {
    dns_label(foundry_name, "-workers")
}

/// `base` + `suffix` as a DNS-1123 label: lower case, `[a-z0-9-]`, at most 63 characters,
/// starting and ending alphanumeric. When `base` had to be changed (too long, or holding `.` or
/// other characters), a hash of the original `base` is inserted before the suffix, so that
/// `a.b` and `a-b` never collide.
pub fn dns_label(base: &str, suffix: &str) -> String {
    let sanitized: String = base
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    let candidate = format!("{sanitized}{suffix}");
    if sanitized == base && candidate.len() <= MAX_LABEL_LENGTH && is_dns_label(&candidate) {
        return candidate;
    }
    let hash = short_hash(base);
    let room = MAX_LABEL_LENGTH - suffix.len() - HASH_LENGTH - 1;
    let head = sanitized[..sanitized.len().min(room)].trim_matches('-');
    if head.is_empty() {
        format!("h{hash}{suffix}")
    } else {
        format!("{head}-{hash}{suffix}")
    }
}

/// `value` as a label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric; shortened or rewritten values carry a hash of the original.
pub fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_owned();
    }
    let sanitized: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = short_hash(value);
    let room = MAX_LABEL_LENGTH - HASH_LENGTH - 1;
    let head =
        sanitized[..sanitized.len().min(room)].trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// Whether `value` is a valid DNS-1123 label.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LENGTH
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Whether `value` is a valid (non-empty) label value.
pub fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= MAX_LABEL_LENGTH
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(digest)[..HASH_LENGTH].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_names_are_kept() {
        assert_eq!(worker_job("trailer"), "trailer-render");
        assert_eq!(render_secret("trailer"), "trailer-render-inputs");
        assert_eq!(worker_service_account("studio"), "studio-worker");
        assert_eq!(worker_egress_policy("studio"), "studio-worker-egress");
    }

    #[test]
    fn long_names_are_shortened_with_a_hash_and_stay_distinct() {
        let long_a = "a".repeat(253);
        let long_b = format!("{}b", "a".repeat(252));
        let (a, b) = (worker_job(&long_a), worker_job(&long_b));
        assert!(is_dns_label(&a) && is_dns_label(&b), "{a} {b}");
        assert_eq!(a.len(), MAX_LABEL_LENGTH);
        assert!(a.ends_with("-render"));
        assert_ne!(a, b);
        assert_eq!(a, worker_job(&long_a), "deterministic");
    }

    #[test]
    fn dotted_names_never_collide_with_dashed_ones() {
        let dotted = worker_job("a.b");
        assert!(is_dns_label(&dotted), "{dotted}");
        assert_ne!(dotted, worker_job("a-b"));
    }

    #[test]
    fn shortening_never_leaves_a_dash_before_the_hash() {
        // 62 characters + "-render" is too long; the cut lands right after a dash.
        let base = format!("{}-{}", "a".repeat(46), "b".repeat(15));
        let name = worker_job(&base);
        assert!(is_dns_label(&name), "{name}");
        assert!(!name.contains("--"), "{name}");
    }

    #[test]
    fn label_values_are_valid_and_distinct() {
        assert_eq!(label_value("studio"), "studio");
        assert_eq!(label_value("my.foundry"), "my.foundry");
        let long = "x".repeat(200);
        let shortened = label_value(&long);
        assert!(is_label_value(&shortened), "{shortened}");
        assert_ne!(shortened, label_value(&"x".repeat(199)));
        assert!(is_label_value(&label_value("-.-")));
    }
}
