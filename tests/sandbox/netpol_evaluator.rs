//! A NetworkPolicy evaluator (test code): answers "may this pod send to that peer?" and "may
//! that peer reach this pod?" for a set of `networking.k8s.io/v1` policies, following the
//! API's documented semantics: a pod is isolated in a direction when some policy in its
//! namespace selects it and has that policy type; then a connection is allowed when any rule of
//! any such policy allows it (policies are OR-ed). Peers: `ipBlock` (cidr minus except, by IP),
//! `namespaceSelector` and/or `podSelector` (pods only; `podSelector` alone means the policy's
//! namespace). Ports: protocol (TCP by default), port and `endPort`. Named ports are not
//! modelled (the builders never emit them) and never match.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub type Labels = BTreeMap<String, String>;

/// A rule's peers and ports, whichever the direction.
type Rule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// A pod: its namespace (name and labels) and its labels.
#[derive(Clone, Debug)]
pub struct PodIdentity {
    pub namespace: String,
    pub namespace_labels: Labels,
    pub labels: Labels,
}

/// The far end of a connection: an address, a port, a protocol and, when it is a pod, which.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: &'static str,
    pub pod: Option<PodIdentity>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// Whether `pod` may open a connection to `to`.
pub fn egress_allowed(policies: &[NetworkPolicy], pod: &PodIdentity, to: &Endpoint) -> bool {
    allowed(policies, pod, to, Direction::Egress)
}

/// Whether `from` may open a connection to `pod` on `port`/`protocol` (given in `from`).
pub fn ingress_allowed(policies: &[NetworkPolicy], pod: &PodIdentity, from: &Endpoint) -> bool {
    allowed(policies, pod, from, Direction::Ingress)
}

/// Whether any policy isolates `pod` in the direction.
pub fn is_isolated(policies: &[NetworkPolicy], pod: &PodIdentity, egress: bool) -> bool {
    let direction = if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    policies.iter().any(|p| applies(p, pod, direction))
}

fn allowed(
    policies: &[NetworkPolicy],
    pod: &PodIdentity,
    peer: &Endpoint,
    direction: Direction,
) -> bool {
    let applying: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| applies(p, pod, direction))
        .collect();
    if applying.is_empty() {
        return true;
    }
    applying.iter().any(|policy| {
        let spec = policy.spec.as_ref().unwrap();
        let namespace = policy.metadata.namespace.as_deref().unwrap();
        let rules: Vec<Rule> = match direction {
            Direction::Egress => spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
            Direction::Ingress => spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
        };
        rules.into_iter().any(|(peers, ports)| {
            let peer_ok = match peers {
                None => true,
                Some(peers) if peers.is_empty() => true,
                Some(peers) => peers.iter().any(|p| peer_matches(p, namespace, peer)),
            };
            let port_ok = match ports {
                None => true,
                Some(ports) if ports.is_empty() => true,
                Some(ports) => ports.iter().any(|p| port_matches(p, peer)),
            };
            peer_ok && port_ok
        })
    })
}

/// The policy is in the pod's namespace, selects it, and has the direction's policy type
/// (`policyTypes` defaults to Ingress, plus Egress when egress rules are present).
fn applies(policy: &NetworkPolicy, pod: &PodIdentity, direction: Direction) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    if policy.metadata.namespace.as_deref() != Some(pod.namespace.as_str()) {
        return false;
    }
    let selector = spec.pod_selector.clone().unwrap_or_default();
    if !selector_matches(&selector, &pod.labels) {
        return false;
    }
    let types: Vec<String> = spec.policy_types.clone().unwrap_or_else(|| {
        let mut types = vec!["Ingress".to_owned()];
        if spec.egress.is_some() {
            types.push("Egress".to_owned());
        }
        types
    });
    let wanted = match direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    types.iter().any(|t| t == wanted)
}

fn peer_matches(peer: &NetworkPolicyPeer, policy_namespace: &str, endpoint: &Endpoint) -> bool {
    if let Some(block) = &peer.ip_block {
        let cidr: IpNet = block.cidr.parse().unwrap();
        let excepted = block
            .except
            .iter()
            .flatten()
            .any(|e| e.parse::<IpNet>().unwrap().contains(&endpoint.ip));
        return cidr.contains(&endpoint.ip) && !excepted;
    }
    let Some(pod) = &endpoint.pod else {
        return false;
    };
    let namespace_ok = match &peer.namespace_selector {
        Some(selector) => selector_matches(selector, &pod.namespace_labels),
        None => pod.namespace == policy_namespace,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|selector| selector_matches(selector, &pod.labels));
    namespace_ok && pod_ok
}

fn port_matches(port: &NetworkPolicyPort, endpoint: &Endpoint) -> bool {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    if protocol != endpoint.protocol {
        return false;
    }
    match &port.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = port.end_port.unwrap_or(*first);
            (*first..=last).contains(&i32::from(endpoint.port))
        }
        Some(IntOrString::String(_)) => false,
    }
}

/// `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist); empty matches all.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
mod tests {
    //! The evaluator against hand-written policies whose meaning the Kubernetes docs spell out.
    use super::*;
    use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyEgressRule, NetworkPolicySpec};

    fn pod(namespace: &str, labels: &[(&str, &str)]) -> PodIdentity {
        PodIdentity {
            namespace: namespace.to_owned(),
            namespace_labels: Labels::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )]),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn ip(address: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: address.parse().unwrap(),
            port,
            protocol: "TCP",
            pod: None,
        }
    }

    fn policy(spec: NetworkPolicySpec) -> NetworkPolicy {
        NetworkPolicy {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".to_owned()),
                namespace: Some("ns".to_owned()),
                ..Default::default()
            },
            spec: Some(spec),
        }
    }

    #[test]
    fn unselected_pods_are_not_isolated() {
        let deny = policy(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(Labels::from([("role".to_owned(), "worker".to_owned())])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Egress".to_owned()]),
            ..Default::default()
        });
        let other = pod("ns", &[("role", "web")]);
        let worker = pod("ns", &[("role", "worker")]);
        assert!(egress_allowed(
            std::slice::from_ref(&deny),
            &other,
            &ip("1.1.1.1", 443)
        ));
        assert!(!egress_allowed(
            std::slice::from_ref(&deny),
            &worker,
            &ip("1.1.1.1", 443)
        ));
        // Egress-only policy: ingress stays open.
        assert!(ingress_allowed(&[deny], &worker, &ip("1.1.1.1", 443)));
    }

    #[test]
    fn ip_blocks_honour_except_ports_and_or_across_policies() {
        let allow = |cidr: &str, except: Option<Vec<String>>, port: i32| {
            policy(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: cidr.to_owned(),
                            except,
                        }),
                        ..Default::default()
                    }]),
                    ports: Some(vec![NetworkPolicyPort {
                        port: Some(IntOrString::Int(port)),
                        protocol: None,
                        end_port: Some(port + 10),
                    }]),
                }]),
                ..Default::default()
            })
        };
        let policies = [
            allow("10.0.0.0/8", Some(vec!["10.1.0.0/16".to_owned()]), 443),
            allow("192.168.0.0/24", None, 80),
        ];
        let any = pod("ns", &[]);
        assert!(egress_allowed(&policies, &any, &ip("10.2.3.4", 443)));
        assert!(
            egress_allowed(&policies, &any, &ip("10.2.3.4", 453)),
            "endPort"
        );
        assert!(!egress_allowed(&policies, &any, &ip("10.2.3.4", 454)));
        assert!(
            !egress_allowed(&policies, &any, &ip("10.1.3.4", 443)),
            "except"
        );
        assert!(
            egress_allowed(&policies, &any, &ip("192.168.0.9", 85)),
            "second policy"
        );
        let mut udp = ip("10.2.3.4", 443);
        udp.protocol = "UDP";
        assert!(
            !egress_allowed(&policies, &any, &udp),
            "TCP is the default protocol"
        );
    }
}
