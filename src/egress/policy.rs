//! What the egress gateway allows: a CONNECT target must name an approved host on an approved
//! port, and every address the name resolves to must be public unless the host's entry approves
//! the internal range it falls in. Pure, so every rule is a unit test.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::crd::video_foundry::AllowedHost;

/// Addresses no approved host may resolve to unless its entry approves the range explicitly:
/// "this network", private, CGNAT, loopback, link-local (cloud metadata 169.254.169.254 among
/// them), IETF/documentation/benchmark ranges, multicast, reserved; in IPv6 unspecified,
/// loopback, unique-local (AWS metadata fd00:ec2::254 among them), link-local, multicast,
/// documentation, and the translation prefixes that could wrap a private IPv4 address.
const FORBIDDEN_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// A policy that cannot be built from its entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A host name that is not a lowercase DNS name (or `*.` and one).
    #[error("allowed host {0:?} is not a lowercase DNS name or *.name")]
    InvalidHost(String),
    /// An internal range that does not parse.
    #[error("allowed host {host:?}: internal range {cidr:?} is not a CIDR such as 10.50.0.0/16")]
    InvalidCidr {
        /// The host.
        host: String,
        /// The rejected text.
        cidr: String,
    },
    /// An internal range on a wildcard entry (a whole subtree of names into the cluster).
    #[error("allowed host {0:?}: internal ranges can only be approved for an exact name")]
    WildcardInternal(String),
}

/// One approved host, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The exact name, or the suffix after `*.` for a wildcard.
    name: String,
    wildcard: bool,
    ports: Vec<u16>,
    internal: Vec<IpNet>,
}

impl Entry {
    fn matches(&self, host: &str) -> bool {
        if self.wildcard {
            host.strip_suffix(self.name.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty())
        } else {
            host == self.name
        }
    }
}

/// The gateway's allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    entries: Vec<Entry>,
    forbidden: Vec<IpNet>,
}

/// Why a target or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The host is not approved (or is an IP literal, which is never approved).
    HostNotApproved,
    /// The host is approved, the port is not.
    PortNotApproved,
}

/// An approved target: the normalised host and the internal ranges its addresses may fall in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// Lowercase host without a trailing dot.
    pub host: String,
    /// The port.
    pub port: u16,
    internal: Vec<IpNet>,
}

impl Policy {
    /// Parses the foundry's `network.allowedHosts`.
    pub fn new(hosts: &[AllowedHost]) -> Result<Self, PolicyError> {
        let mut entries = Vec::with_capacity(hosts.len());
        for host in hosts {
            let (name, wildcard) = match host.host.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (host.host.as_str(), false),
            };
            if !is_dns_name(name) {
                return Err(PolicyError::InvalidHost(host.host.clone()));
            }
            if wildcard && !host.internal_cidrs.is_empty() {
                return Err(PolicyError::WildcardInternal(host.host.clone()));
            }
            let internal = host
                .internal_cidrs
                .iter()
                .map(|cidr| {
                    cidr.trim()
                        .parse::<IpNet>()
                        .map(|net| net.trunc())
                        .map_err(|_| PolicyError::InvalidCidr {
                            host: host.host.clone(),
                            cidr: cidr.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.push(Entry {
                name: name.to_owned(),
                wildcard,
                ports: host.effective_ports(),
                internal,
            });
        }
        let forbidden = FORBIDDEN_RANGES
            .iter()
            .filter_map(|range| range.parse().ok())
            .collect();
        Ok(Self { entries, forbidden })
    }

    /// Whether `host:port` may be tunnelled to. Exact entries win over wildcards, so an exact
    /// name keeps its own internal ranges.
    pub fn check_target(&self, host: &str, port: u16) -> Result<Approved, Refusal> {
        let host = normalise_host(host).ok_or(Refusal::HostNotApproved)?;
        let mut matching: Vec<&Entry> = self.entries.iter().filter(|e| e.matches(&host)).collect();
        if matching.is_empty() {
            return Err(Refusal::HostNotApproved);
        }
        matching.sort_by_key(|entry| entry.wildcard);
        let entry = matching
            .iter()
            .find(|entry| entry.ports.contains(&port))
            .ok_or(Refusal::PortNotApproved)?;
        Ok(Approved {
            host,
            port,
            internal: entry.internal.clone(),
        })
    }

    /// Whether an exact entry for `host` approves an internal range holding `address` (the
    /// test for a fixed name-to-address mapping such as `--resolve`).
    pub fn approves_internal(&self, host: &str, address: IpAddr) -> bool {
        let address = canonical(address);
        self.entries.iter().any(|entry| {
            !entry.wildcard
                && entry.name == host
                && entry.internal.iter().any(|net| net.contains(&address))
        })
    }

    /// Whether the approved target may connect to `address`: any public address, or an
    /// internal one inside a range its entry approves.
    pub fn address_allowed(&self, target: &Approved, address: IpAddr) -> bool {
        let address = canonical(address);
        target.internal.iter().any(|net| net.contains(&address))
            || !self.forbidden.iter().any(|net| net.contains(&address))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are checked as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Lowercase, without one trailing dot, and a DNS name (IP literals and anything else: `None`).
pub fn normalise_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    is_dns_name(&host).then_some(host)
}

/// A DNS name of letters, digits and hyphens, labels of 1–63 characters, at most 253 in all, and
/// a last label that starts with a letter (so no IPv4 literal passes).
fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ports: &[u16], internal: &[&str]) -> AllowedHost {
        AllowedHost {
            host: name.to_owned(),
            ports: ports.to_vec(),
            internal_cidrs: internal.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn policy() -> Policy {
        Policy::new(&[
            host("huggingface.co", &[], &[]),
            host("*.hf.co", &[443, 8443], &[]),
            host("models.internal", &[8443], &["10.50.0.0/16"]),
        ])
        .unwrap()
    }

    #[test]
    fn exact_names_wildcard_subdomains_and_ports() {
        let policy = policy();
        assert!(policy.check_target("huggingface.co", 443).is_ok());
        assert!(policy.check_target("HuggingFace.co.", 443).is_ok());
        assert_eq!(
            policy.check_target("huggingface.co", 80),
            Err(Refusal::PortNotApproved)
        );
        assert!(policy.check_target("cdn-lfs.hf.co", 8443).is_ok());
        assert!(policy.check_target("a.b.hf.co", 443).is_ok());
        for refused in [
            "hf.co",
            "evilhf.co",
            "huggingface.co.evil.com",
            "x.huggingface.co",
        ] {
            assert_eq!(
                policy.check_target(refused, 443),
                Err(Refusal::HostNotApproved),
                "{refused}"
            );
        }
    }

    #[test]
    fn ip_literals_and_junk_are_never_approved() {
        let policy = policy();
        for target in [
            "10.50.0.1",
            "[::1]",
            "::1",
            "",
            "a..b",
            "-a.co",
            "a_b.co",
            "a b",
        ] {
            assert_eq!(
                policy.check_target(target, 443),
                Err(Refusal::HostNotApproved),
                "{target:?}"
            );
        }
    }

    #[test]
    fn private_loopback_metadata_and_cgnat_addresses_are_refused_whatever_the_name() {
        let policy = policy();
        let target = policy.check_target("huggingface.co", 443).unwrap();
        for address in [
            "10.1.2.3",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "224.0.0.1",
        ] {
            assert!(
                !policy.address_allowed(&target, address.parse().unwrap()),
                "{address}"
            );
        }
        for address in ["18.160.10.1", "2600:9000::1", "::ffff:8.8.8.8"] {
            assert!(
                policy.address_allowed(&target, address.parse().unwrap()),
                "{address}"
            );
        }
    }

    #[test]
    fn an_internal_range_is_approved_only_for_its_own_host() {
        let policy = policy();
        let internal = policy.check_target("models.internal", 8443).unwrap();
        assert!(policy.address_allowed(&internal, "10.50.3.4".parse().unwrap()));
        assert!(!policy.address_allowed(&internal, "10.51.0.1".parse().unwrap()));
        assert!(!policy.address_allowed(&internal, "169.254.169.254".parse().unwrap()));
        let public = policy.check_target("huggingface.co", 443).unwrap();
        assert!(!policy.address_allowed(&public, "10.50.3.4".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            Policy::new(&[host("*.internal", &[], &["10.0.0.0/8"])]),
            Err(PolicyError::WildcardInternal("*.internal".to_owned()))
        );
        assert_eq!(
            Policy::new(&[host("a.internal", &[], &["ten"])]),
            Err(PolicyError::InvalidCidr {
                host: "a.internal".to_owned(),
                cidr: "ten".to_owned()
            })
        );
        assert_eq!(
            Policy::new(&[host("1.2.3.4", &[], &[])]),
            Err(PolicyError::InvalidHost("1.2.3.4".to_owned()))
        );
    }
}
