//! The `CiliumNetworkPolicy` that enforces a foundry's `network.allowedHosts` by name where
//! Cilium is the CNI (`network.hostEnforcement: cilium`), instead of the egress gateway.
//!
//! Cilium's DNS proxy learns which addresses the approved names resolve to and opens egress to
//! those only. The policy lets workers ask kube-dns for the approved names and nothing else (the
//! DNS proxy answers other questions with a refusal), then reach those names on their ports.
//! Cilium's `*` matches one DNS label, so `*.hf.co` reaches `cdn.hf.co` but not `a.cdn.hf.co`:
//! stricter than the gateway, never looser (docs/egress.md).

use std::collections::BTreeMap;

use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::network_policy::{DNS_NAMESPACE, DNS_POD_LABEL};
use super::{BuildError, controller_owner_ref, labels, names, namespace_of};
use crate::crd::VideoFoundry;
use crate::crd::video_foundry::HostEnforcement;

/// Name of Cilium's CRD, whose presence the foundry controller checks before applying.
pub const CILIUM_POLICY_CRD: &str = "ciliumnetworkpolicies.cilium.io";

/// The part of Cilium's `CiliumNetworkPolicy` (cilium.io/v2) the operator writes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumNetworkPolicy",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumNetworkPolicySpec {
    /// The pods the policy applies to.
    pub endpoint_selector: EndpointSelector,
    /// Egress allowed to them (in addition to what NetworkPolicies allow).
    pub egress: Vec<CiliumEgressRule>,
}

/// Cilium's label selector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSelector {
    /// Labels the selected pods carry.
    pub match_labels: BTreeMap<String, String>,
}

/// One egress rule: to endpoints (kube-dns) or to names, on ports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CiliumEgressRule {
    /// Pods the rule allows (kube-dns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_endpoints: Vec<EndpointSelector>,
    /// Names the rule allows.
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Vec::is_empty")]
    pub to_fqdns: Vec<FqdnSelector>,
    /// Ports, and for DNS the names that may be asked for.
    pub to_ports: Vec<PortRule>,
}

/// An exact name (`matchName`) or a one-label wildcard (`matchPattern`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FqdnSelector {
    /// An exact DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A pattern with `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// Ports of a rule, with DNS rules for the DNS port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// The ports.
    pub ports: Vec<PortProtocol>,
    /// What may be asked of DNS on these ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<DnsRules>,
}

/// A port and protocol (`TCP`, `UDP` or `ANY`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PortProtocol {
    /// The port, as a string as Cilium writes it.
    pub port: String,
    /// The protocol.
    pub protocol: String,
}

/// The names DNS may be asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DnsRules {
    /// The names.
    pub dns: Vec<FqdnSelector>,
}

/// Whether the foundry's approved hosts are enforced by Cilium.
pub fn cilium_enabled(foundry: &VideoFoundry) -> Result<bool, BuildError> {
    Ok(super::egress_gateway::named_egress(foundry)? == Some(HostEnforcement::Cilium))
}

/// Name of the foundry's CiliumNetworkPolicy.
pub fn policy_name(foundry_name: &str) -> String {
    names::dns_label(foundry_name, "-worker-fqdn-egress")
}

/// The foundry's CiliumNetworkPolicy, or `None` when Cilium does not enforce its hosts.
pub fn build_cilium_policy(
    foundry: &VideoFoundry,
) -> Result<Option<CiliumNetworkPolicy>, BuildError> {
    if !cilium_enabled(foundry)? {
        return Ok(None);
    }
    let foundry_name = foundry.name_any();
    let hosts = super::egress_gateway::allowed_hosts(foundry);
    let selector = |host: &str| match host.strip_prefix("*.") {
        Some(_) => FqdnSelector {
            match_name: None,
            match_pattern: Some(host.to_owned()),
        },
        None => FqdnSelector {
            match_name: Some(host.to_owned()),
            match_pattern: None,
        },
    };
    let (dns_key, dns_value) = DNS_POD_LABEL;
    let mut egress = vec![CiliumEgressRule {
        to_endpoints: vec![EndpointSelector {
            match_labels: BTreeMap::from([
                (
                    "k8s:io.kubernetes.pod.namespace".to_owned(),
                    DNS_NAMESPACE.to_owned(),
                ),
                (format!("k8s:{dns_key}"), dns_value.to_owned()),
            ]),
        }],
        to_fqdns: Vec::new(),
        to_ports: vec![PortRule {
            ports: vec![PortProtocol {
                port: "53".to_owned(),
                protocol: "ANY".to_owned(),
            }],
            rules: Some(DnsRules {
                dns: hosts.iter().map(|h| selector(&h.host)).collect(),
            }),
        }],
    }];
    egress.extend(hosts.iter().map(|host| CiliumEgressRule {
        to_endpoints: Vec::new(),
        to_fqdns: vec![selector(&host.host)],
        to_ports: vec![PortRule {
            ports: host
                .effective_ports()
                .into_iter()
                .map(|port| PortProtocol {
                    port: port.to_string(),
                    protocol: "TCP".to_owned(),
                })
                .collect(),
            rules: None,
        }],
    }));
    let mut policy = CiliumNetworkPolicy::new(
        &policy_name(&foundry_name),
        CiliumNetworkPolicySpec {
            endpoint_selector: EndpointSelector {
                match_labels: labels::worker_selector(&foundry_name),
            },
            egress,
        },
    );
    policy.metadata.namespace = Some(namespace_of(foundry, "VideoFoundry")?);
    policy.metadata.labels = Some(labels::foundry_labels(&foundry_name));
    policy.metadata.owner_references = Some(vec![controller_owner_ref(foundry, "VideoFoundry")?]);
    Ok(Some(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::test_support::example_spec;
    use crate::crd::video_foundry::{AllowedHost, EgressMode, ExecutionMode, NetworkSpec};

    fn foundry(enforcement: Option<HostEnforcement>, egress: EgressMode) -> VideoFoundry {
        let mut spec = example_spec("videofoundry-production.yaml");
        spec.execution_mode = ExecutionMode::SelfHostedProduction;
        spec.network = Some(NetworkSpec {
            egress: Some(egress),
            allowed_hosts: vec![
                AllowedHost {
                    host: "huggingface.co".to_owned(),
                    ports: vec![],
                    internal_cidrs: vec![],
                },
                AllowedHost {
                    host: "*.hf.co".to_owned(),
                    ports: vec![443, 8443],
                    internal_cidrs: vec![],
                },
            ],
            host_enforcement: enforcement,
            ..spec.network.unwrap_or_default()
        });
        let mut foundry = VideoFoundry::new("studio", spec);
        foundry.metadata.namespace = Some("render".to_owned());
        foundry.metadata.uid = Some("0000-1111".to_owned());
        foundry
    }

    #[test]
    fn cilium_enforcement_names_each_host_on_its_ports_and_only_those_in_dns() {
        let policy = build_cilium_policy(&foundry(
            Some(HostEnforcement::Cilium),
            EgressMode::Restricted,
        ))
        .unwrap()
        .unwrap();
        let value = serde_json::to_value(&policy).unwrap();
        assert_eq!(value["apiVersion"], "cilium.io/v2");
        assert_eq!(value["metadata"]["name"], "studio-worker-fqdn-egress");
        assert_eq!(
            value["spec"]["endpointSelector"]["matchLabels"],
            serde_json::to_value(labels::worker_selector("studio")).unwrap()
        );
        let egress = &value["spec"]["egress"];
        assert_eq!(
            egress[0]["toPorts"][0]["rules"]["dns"],
            serde_json::json!([{"matchName": "huggingface.co"}, {"matchPattern": "*.hf.co"}])
        );
        assert_eq!(
            egress[1]["toFQDNs"],
            serde_json::json!([{"matchName": "huggingface.co"}])
        );
        assert_eq!(
            egress[1]["toPorts"][0]["ports"],
            serde_json::json!([{"port": "443", "protocol": "TCP"}])
        );
        assert_eq!(
            egress[2]["toPorts"][0]["ports"],
            serde_json::json!([{"port": "443", "protocol": "TCP"}, {"port": "8443", "protocol": "TCP"}])
        );
    }

    #[test]
    fn the_gateway_default_and_unrestricted_egress_get_no_cilium_policy() {
        assert!(
            build_cilium_policy(&foundry(None, EgressMode::Restricted))
                .unwrap()
                .is_none()
        );
        assert!(
            build_cilium_policy(&foundry(Some(HostEnforcement::Cilium), EgressMode::Blocked))
                .unwrap()
                .is_none()
        );
        let cilium = foundry(Some(HostEnforcement::Cilium), EgressMode::Restricted);
        assert!(!super::super::egress_gateway::gateway_enabled(&cilium).unwrap());
    }
}
