//! The NetworkPolicies of a foundry namespace (DESIGN.md §4.3): the foundry's worker pods get no
//! ingress at all, and only the egress their mode allows:
//!
//! - `blocked`: the storage endpoint CIDRs on the storage ports, and the artifact repository;
//! - `restricted`: the same plus the admin's `allowedEgress`, and the foundry's egress gateway
//!   (on its proxy port) when it approves hosts by name (`allowedHosts`, docs/egress.md);
//! - `open`: anything (developer mode; still no ingress).
//!
//! Cluster DNS (kube-dns in kube-system, port 53) is allowed only when the foundry allows it.
//! Policies are additive, so a default-deny policy selects the workers for both directions and a
//! second policy lists what is allowed; the two must be applied before any worker Job exists.

use crate::security_profile;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::BTreeMap;

use super::{BuildError, controller_owner_ref, egress_gateway, labels, names, namespace_of};
use crate::crd::VideoFoundry;
use crate::crd::video_foundry::{EgressMode, EgressRule, ExecutionMode};

/// Storage port when `network.storageEndpointPorts` is empty.
pub const DEFAULT_STORAGE_PORT: u16 = 443;
/// Namespace of the cluster DNS.
pub const DNS_NAMESPACE: &str = "kube-system";
/// Label of the cluster DNS pods (kube-dns and CoreDNS both carry it).
pub const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// Worker egress in force: the spec's `network.egress`, or the execution mode's default.
pub fn effective_egress(foundry: &VideoFoundry) -> Result<EgressMode, BuildError> {
    let unknown = |field| BuildError::UnknownSetting {
        foundry: foundry.name_any(),
        field,
    };
    match foundry.spec.network.as_ref().and_then(|n| n.egress) {
        Some(EgressMode::Unknown) => Err(unknown("spec.network.egress")),
        Some(mode) => Ok(mode),
        None if foundry.spec.execution_mode == ExecutionMode::Unknown => {
            Err(unknown("spec.executionMode"))
        }
        None => Ok(security_profile::defaults(foundry.spec.execution_mode).egress),
    }
}

/// Whether workers may query the cluster DNS: the spec's `network.allowDns`, else only in
/// developer mode (in the production modes DNS could carry data out).
pub fn effective_allow_dns(foundry: &VideoFoundry) -> bool {
    foundry
        .spec
        .network
        .as_ref()
        .and_then(|n| n.allow_dns)
        .unwrap_or(security_profile::defaults(foundry.spec.execution_mode).allow_dns)
}

/// The foundry's worker NetworkPolicies: default deny first, then the egress allowances.
pub fn build_network_policies(foundry: &VideoFoundry) -> Result<Vec<NetworkPolicy>, BuildError> {
    Ok(vec![
        build_default_deny(foundry)?,
        build_egress_allowances(foundry)?,
    ])
}

/// Denies all ingress and egress of the foundry's workers.
pub fn build_default_deny(foundry: &VideoFoundry) -> Result<NetworkPolicy, BuildError> {
    let name = names::worker_default_deny_policy(&foundry.name_any());
    Ok(NetworkPolicy {
        metadata: policy_metadata(foundry, name)?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(worker_pods(foundry)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    })
}

/// Allows the egress of the foundry's mode; never any ingress.
pub fn build_egress_allowances(foundry: &VideoFoundry) -> Result<NetworkPolicy, BuildError> {
    let name = names::worker_egress_policy(&foundry.name_any());
    let rules = egress_rules(foundry)?;
    Ok(NetworkPolicy {
        metadata: policy_metadata(foundry, name)?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(worker_pods(foundry)),
            policy_types: Some(vec!["Egress".to_owned()]),
            ingress: None,
            egress: (!rules.is_empty()).then_some(rules),
        }),
    })
}

fn egress_rules(foundry: &VideoFoundry) -> Result<Vec<NetworkPolicyEgressRule>, BuildError> {
    let mode = effective_egress(foundry)?;
    if mode == EgressMode::Open {
        // One empty rule: every destination, every port.
        return Ok(vec![NetworkPolicyEgressRule::default()]);
    }
    let network = foundry.spec.network.clone().unwrap_or_default();
    let mut rules = Vec::new();
    if !network.storage_endpoint_cidrs.is_empty() {
        let peers = network
            .storage_endpoint_cidrs
            .iter()
            .enumerate()
            .map(|(index, cidr)| {
                ip_peer(cidr, || {
                    format!("spec.network.storageEndpointCidrs[{index}]")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ports = if network.storage_endpoint_ports.is_empty() {
            vec![DEFAULT_STORAGE_PORT]
        } else {
            network.storage_endpoint_ports.clone()
        };
        rules.push(NetworkPolicyEgressRule {
            to: Some(peers),
            ports: Some(tcp_ports(&ports)),
        });
    }
    if let Some(repository) = &network.artifact_repository {
        rules.push(cidr_rule(repository, || {
            "spec.network.artifactRepository.cidr".to_owned()
        })?);
    }
    if mode == EgressMode::Restricted {
        for (index, allowed) in network.allowed_egress.iter().enumerate() {
            rules.push(cidr_rule(allowed, || {
                format!("spec.network.allowedEgress[{index}].cidr")
            })?);
        }
    }
    if egress_gateway::gateway_enabled(foundry)? {
        rules.push(egress_gateway::worker_to_gateway_rule(foundry));
    }
    if effective_allow_dns(foundry) {
        rules.push(dns_rule());
    }
    Ok(rules)
}

fn cidr_rule(
    rule: &EgressRule,
    field: impl Fn() -> String,
) -> Result<NetworkPolicyEgressRule, BuildError> {
    Ok(NetworkPolicyEgressRule {
        to: Some(vec![ip_peer(&rule.cidr, field)?]),
        ports: (!rule.ports.is_empty()).then(|| tcp_ports(&rule.ports)),
    })
}

/// Kube-dns pods in kube-system, UDP and TCP 53.
pub(crate) fn dns_rule() -> NetworkPolicyEgressRule {
    let (key, value) = DNS_POD_LABEL;
    let port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_owned()),
        end_port: None,
    };
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    DNS_NAMESPACE.to_owned(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: Some(vec![port("UDP"), port("TCP")]),
    }
}

/// An ipBlock peer with the CIDR in canonical form (host bits cleared), or a clear error.
fn ip_peer(cidr: &str, field: impl Fn() -> String) -> Result<NetworkPolicyPeer, BuildError> {
    let parsed: IpNet = cidr.trim().parse().map_err(|_| BuildError::InvalidCidr {
        field: field(),
        cidr: cidr.to_owned(),
    })?;
    Ok(NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: parsed.trunc().to_string(),
            except: None,
        }),
        namespace_selector: None,
        pod_selector: None,
    })
}

pub(crate) fn tcp_ports(ports: &[u16]) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|port| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(*port))),
            protocol: Some("TCP".to_owned()),
            end_port: None,
        })
        .collect()
}

fn worker_pods(foundry: &VideoFoundry) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels::worker_selector(&foundry.name_any())),
        match_expressions: None,
    }
}

fn policy_metadata(foundry: &VideoFoundry, name: String) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace_of(foundry, "VideoFoundry")?),
        labels: Some(labels::foundry_labels(&foundry.name_any())),
        owner_references: Some(vec![controller_owner_ref(foundry, "VideoFoundry")?]),
        ..ObjectMeta::default()
    })
}
