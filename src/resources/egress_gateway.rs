//! The foundry's egress gateway (docs/egress.md): a Deployment running the operator's own image
//! as `egress-gateway`, a ClusterIP Service in front of it, and its NetworkPolicy (ingress only
//! from the foundry's workers on the proxy port and from anywhere on the metrics port; egress
//! only to DNS and, on the approved ports, to public addresses and the internal ranges approved
//! for a host). Built only when the foundry's egress is `restricted` and it approves hosts.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::network_policy::{dns_rule, effective_egress, tcp_ports};
use super::worker_job::{
    OPERATOR_BINARY, WORKER_UID, container_security_context, runtime_default_seccomp,
};
use super::{BuildError, controller_owner_ref, labels, names, namespace_of};
use crate::crd::VideoFoundry;
use crate::crd::video_foundry::{AllowedHost, EgressMode, HostEnforcement};

/// Port of the proxy.
pub const PROXY_PORT: u16 = 3128;
/// Port of `/metrics` and `/healthz`.
pub const METRICS_PORT: u16 = 9090;
/// `app.kubernetes.io/component` of the gateway's objects.
pub const GATEWAY_COMPONENT: &str = "egress-gateway";
/// Value of [`labels::ROLE_LABEL`] on gateway pods.
pub const GATEWAY_ROLE: &str = "egress-gateway";
/// Gateway replicas (stateless; two so a node drain does not cut every render's egress).
pub const REPLICAS: i32 = 2;
/// Name of the gateway container.
pub const CONTAINER: &str = "egress-gateway";

/// Public destinations the gateway's own NetworkPolicy allows: everything except the ranges the
/// gateway refuses anyway (defence in depth; internal ranges approved for a host are added).
const PUBLIC_V4_EXCEPT: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
];
const PUBLIC_V6_EXCEPT: &[&str] = &["fc00::/7", "fe80::/10"];

/// The gateway's objects, in the order they are applied (policy first: the pods never run
/// unconfined).
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayObjects {
    /// Ingress from workers, egress on approved ports.
    pub network_policy: NetworkPolicy,
    /// The proxy pods.
    pub deployment: Deployment,
    /// The workers' proxy address.
    pub service: Service,
}

/// How the foundry's approved hosts are enforced, or `None` when they are not used: they are
/// used with `restricted` egress and at least one approved host. (In `production`, egress stays
/// `blocked` unless the admin sets `restricted`, which is reported; with `blocked` or `open`
/// the approved hosts are not used.)
pub fn named_egress(foundry: &VideoFoundry) -> Result<Option<HostEnforcement>, BuildError> {
    let Some(network) = foundry
        .spec
        .network
        .as_ref()
        .filter(|n| !n.allowed_hosts.is_empty())
    else {
        return Ok(None);
    };
    Ok((effective_egress(foundry)? == EgressMode::Restricted)
        .then(|| network.host_enforcement.unwrap_or_default()))
}

/// The foundry's `network.allowedHosts` (empty when it has none).
pub fn allowed_hosts(foundry: &VideoFoundry) -> &[AllowedHost] {
    foundry
        .spec
        .network
        .as_ref()
        .map_or(&[], |network| network.allowed_hosts.as_slice())
}

/// Whether the foundry gets a gateway: its approved hosts are used and enforced by the gateway
/// (not by Cilium).
pub fn gateway_enabled(foundry: &VideoFoundry) -> Result<bool, BuildError> {
    Ok(named_egress(foundry)? == Some(HostEnforcement::Gateway))
}

/// The gateway's objects, or `None` when the foundry has no gateway. `image` is the operator's
/// image (configuration `worker.binaryImage`).
pub fn build_gateway_objects(
    foundry: &VideoFoundry,
    image: &str,
) -> Result<Option<GatewayObjects>, BuildError> {
    if !gateway_enabled(foundry)? {
        return Ok(None);
    }
    Ok(Some(GatewayObjects {
        network_policy: build_gateway_policy(foundry)?,
        deployment: build_gateway_deployment(foundry, image)?,
        service: build_gateway_service(foundry)?,
    }))
}

/// The labels that select a foundry's gateway pods.
pub fn gateway_selector(foundry_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::FOUNDRY_LABEL.to_owned(),
            names::label_value(foundry_name),
        ),
        (labels::ROLE_LABEL.to_owned(), GATEWAY_ROLE.to_owned()),
    ])
}

fn gateway_labels(foundry_name: &str) -> BTreeMap<String, String> {
    let mut labels = labels::foundry_labels(foundry_name);
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        GATEWAY_COMPONENT.to_owned(),
    );
    labels.extend(gateway_selector(foundry_name));
    labels
}

fn metadata(foundry: &VideoFoundry) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(names::egress_gateway(&foundry.name_any())),
        namespace: Some(namespace_of(foundry, "VideoFoundry")?),
        labels: Some(gateway_labels(&foundry.name_any())),
        owner_references: Some(vec![controller_owner_ref(foundry, "VideoFoundry")?]),
        ..ObjectMeta::default()
    })
}

fn allowed_hosts_json(foundry: &VideoFoundry) -> Result<String, BuildError> {
    let hosts = allowed_hosts(foundry);
    serde_json::to_string(&hosts).map_err(|e| BuildError::Serialize {
        file: "allowed hosts",
        message: e.to_string(),
    })
}

/// The proxy Deployment: PSS `restricted`, read-only, no service-account token, bounded.
pub fn build_gateway_deployment(
    foundry: &VideoFoundry,
    image: &str,
) -> Result<Deployment, BuildError> {
    let foundry_name = foundry.name_any();
    let env = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    };
    let quantity = |value: &str| Quantity(value.to_owned());
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(METRICS_PORT)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let port = |name: &str, port: u16| ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    };
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![
            OPERATOR_BINARY.to_owned(),
            "egress-gateway".to_owned(),
        ]),
        env: Some(vec![
            env("VF_FOUNDRY", foundry_name.clone()),
            env("VF_EGRESS_ALLOWED_HOSTS", allowed_hosts_json(foundry)?),
            env("VF_EGRESS_LISTEN", format!("0.0.0.0:{PROXY_PORT}")),
            env(
                "VF_EGRESS_METRICS_ADDRESS",
                format!("0.0.0.0:{METRICS_PORT}"),
            ),
            env("VF_LOG_FORMAT", "json".to_owned()),
        ]),
        ports: Some(vec![
            port("proxy", PROXY_PORT),
            port("metrics", METRICS_PORT),
        ]),
        readiness_probe: Some(probe("/healthz")),
        liveness_probe: Some(probe("/healthz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m")),
                ("memory".to_owned(), quantity("32Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("1")),
                ("memory".to_owned(), quantity("256Mi")),
            ])),
            claims: None,
        }),
        security_context: Some(container_security_context()),
        ..Container::default()
    };
    Ok(Deployment {
        metadata: metadata(foundry)?,
        spec: Some(DeploymentSpec {
            replicas: Some(REPLICAS),
            selector: LabelSelector {
                match_labels: Some(gateway_selector(&foundry_name)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(gateway_labels(&foundry_name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(WORKER_UID),
                        run_as_group: Some(WORKER_UID),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The ClusterIP Service workers reach the proxy at.
pub fn build_gateway_service(foundry: &VideoFoundry) -> Result<Service, BuildError> {
    Ok(Service {
        metadata: metadata(foundry)?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(gateway_selector(&foundry.name_any())),
            ports: Some(vec![ServicePort {
                name: Some("proxy".to_owned()),
                port: i32::from(PROXY_PORT),
                target_port: Some(IntOrString::Int(i32::from(PROXY_PORT))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The gateway's own NetworkPolicy.
pub fn build_gateway_policy(foundry: &VideoFoundry) -> Result<NetworkPolicy, BuildError> {
    let foundry_name = foundry.name_any();
    let hosts = allowed_hosts(foundry);
    let mut ports: Vec<u16> = hosts.iter().flat_map(|h| h.effective_ports()).collect();
    ports.sort_unstable();
    ports.dedup();
    let block = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|s| (*s).to_owned()).collect()),
        }),
        namespace_selector: None,
        pod_selector: None,
    };
    let mut peers = vec![
        block("0.0.0.0/0", PUBLIC_V4_EXCEPT),
        block("::/0", PUBLIC_V6_EXCEPT),
    ];
    for (index, host) in hosts.iter().enumerate() {
        for cidr in &host.internal_cidrs {
            let parsed: ipnet::IpNet =
                cidr.trim().parse().map_err(|_| BuildError::InvalidCidr {
                    field: format!("spec.network.allowedHosts[{index}].internalCidrs"),
                    cidr: cidr.clone(),
                })?;
            peers.push(block(&parsed.trunc().to_string(), &[]));
        }
    }
    for peer in &mut peers {
        if let Some(block) = &mut peer.ip_block
            && block.except.as_ref().is_some_and(Vec::is_empty)
        {
            block.except = None;
        }
    }
    let tcp = |port: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    };
    Ok(NetworkPolicy {
        metadata: metadata(foundry)?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(gateway_selector(&foundry_name)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(labels::worker_selector(&foundry_name)),
                            match_expressions: None,
                        }),
                        namespace_selector: None,
                        ip_block: None,
                    }]),
                    ports: Some(vec![tcp(PROXY_PORT)]),
                },
                // Prometheus, from wherever it runs; the port serves only counters.
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![tcp(METRICS_PORT)]),
                },
            ]),
            egress: Some(vec![
                dns_rule(),
                NetworkPolicyEgressRule {
                    to: Some(peers),
                    ports: Some(tcp_ports(&ports)),
                },
            ]),
        }),
    })
}

/// The worker egress rule to the gateway pods on the proxy port.
pub fn worker_to_gateway_rule(foundry: &VideoFoundry) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(gateway_selector(&foundry.name_any())),
                match_expressions: None,
            }),
            namespace_selector: None,
            ip_block: None,
        }]),
        ports: Some(tcp_ports(&[PROXY_PORT])),
    }
}

/// The worker's proxy environment: `HTTPS_PROXY`/`HTTP_PROXY` (and lowercase, which some
/// clients read instead) with the render's name as the proxy user name (a label in the
/// gateway's log, not a credential), and `NO_PROXY` for loopback and the storage endpoint,
/// which workers reach directly. `proxy` is the Service's `clusterIP:port`.
pub fn worker_proxy_env(foundry: &VideoFoundry, render_name: &str, proxy: &str) -> Vec<EnvVar> {
    let url = format!("http://{render_name}@{proxy}");
    let mut no_proxy = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = url::Url::parse(&foundry.spec.storage.endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        no_proxy.push(host);
    }
    let no_proxy = no_proxy.join(",");
    [
        ("HTTPS_PROXY", &url),
        ("https_proxy", &url),
        ("HTTP_PROXY", &url),
        ("http_proxy", &url),
        ("NO_PROXY", &no_proxy),
        ("no_proxy", &no_proxy),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_owned(),
        value: Some(value.clone()),
        value_from: None,
    })
    .collect()
}

/// `clusterIP:port` of the gateway Service (IPv6 in brackets).
pub fn proxy_address(cluster_ip: &str) -> String {
    if cluster_ip.contains(':') {
        format!("[{cluster_ip}]:{PROXY_PORT}")
    } else {
        format!("{cluster_ip}:{PROXY_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::test_support::example_spec;
    use crate::crd::video_foundry::{AllowedHost, NetworkSpec};

    fn foundry(egress: Option<EgressMode>, hosts: Vec<AllowedHost>) -> VideoFoundry {
        let mut spec = example_spec("videofoundry-production.yaml");
        spec.execution_mode = crate::crd::video_foundry::ExecutionMode::SelfHostedProduction;
        spec.network = Some(NetworkSpec {
            egress,
            allowed_hosts: hosts,
            ..spec.network.unwrap_or_default()
        });
        let mut foundry = VideoFoundry::new("studio", spec);
        foundry.metadata.namespace = Some("render".to_owned());
        foundry.metadata.uid = Some("0000-1111".to_owned());
        foundry
    }

    fn hf() -> AllowedHost {
        AllowedHost {
            host: "huggingface.co".to_owned(),
            ports: vec![],
            internal_cidrs: vec![],
        }
    }

    fn models() -> AllowedHost {
        AllowedHost {
            host: "models.internal".to_owned(),
            ports: vec![8443],
            internal_cidrs: vec!["10.50.0.7/16".to_owned()],
        }
    }

    #[test]
    fn only_restricted_egress_with_hosts_gets_a_gateway() {
        assert!(gateway_enabled(&foundry(None, vec![hf()])).unwrap());
        assert!(!gateway_enabled(&foundry(None, vec![])).unwrap());
        assert!(!gateway_enabled(&foundry(Some(EgressMode::Blocked), vec![hf()])).unwrap());
        assert!(!gateway_enabled(&foundry(Some(EgressMode::Open), vec![hf()])).unwrap());
        let mut production = foundry(None, vec![hf()]);
        production.spec.execution_mode = crate::crd::video_foundry::ExecutionMode::Production;
        assert!(build_gateway_objects(&production, "img").unwrap().is_none());
    }

    #[test]
    fn the_gateway_pod_is_restricted_read_only_tokenless_and_bounded() {
        let objects = build_gateway_objects(&foundry(None, vec![hf()]), "operator@sha256:abc")
            .unwrap()
            .unwrap();
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("operator@sha256:abc"));
        assert_eq!(
            container.command.as_ref().unwrap()[1..],
            ["egress-gateway".to_owned()]
        );
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert!(limits.contains_key("cpu") && limits.contains_key("memory"));
        let hosts = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "VF_EGRESS_ALLOWED_HOSTS")
            .unwrap();
        assert_eq!(
            hosts.value.as_deref(),
            Some(r#"[{"host":"huggingface.co"}]"#)
        );
    }

    #[test]
    fn the_gateway_policy_admits_workers_and_leaves_only_on_approved_ports() {
        let policy = build_gateway_policy(&foundry(None, vec![hf(), models()])).unwrap();
        let spec = policy.spec.unwrap();
        let ingress = spec.ingress.unwrap();
        assert_eq!(
            ingress[0].from.as_ref().unwrap()[0]
                .pod_selector
                .as_ref()
                .unwrap()
                .match_labels,
            Some(labels::worker_selector("studio"))
        );
        let egress = spec.egress.unwrap();
        let out = &egress[1];
        let ports: Vec<_> = out
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port.clone())
            .collect();
        assert_eq!(
            ports,
            [Some(IntOrString::Int(443)), Some(IntOrString::Int(8443))]
        );
        let cidrs: Vec<_> = out
            .to
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.ip_block.as_ref().unwrap().cidr.clone())
            .collect();
        assert_eq!(cidrs, ["0.0.0.0/0", "::/0", "10.50.0.0/16"]);
        let public = out.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
        assert!(
            public
                .except
                .as_ref()
                .unwrap()
                .contains(&"169.254.0.0/16".to_owned())
        );
    }

    #[test]
    fn workers_get_the_proxy_with_their_render_name_and_bypass_it_for_storage() {
        let foundry = foundry(None, vec![hf()]);
        let env = worker_proxy_env(&foundry, "trailer-1", &proxy_address("10.96.0.12"));
        let get = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
                .unwrap()
        };
        assert_eq!(get("HTTPS_PROXY"), "http://trailer-1@10.96.0.12:3128");
        assert_eq!(get("http_proxy"), "http://trailer-1@10.96.0.12:3128");
        let storage = url::Url::parse(&foundry.spec.storage.endpoint).unwrap();
        assert!(get("NO_PROXY").contains(storage.host_str().unwrap()));
        assert_eq!(proxy_address("fd00::12"), "[fd00::12]:3128");
    }
}
