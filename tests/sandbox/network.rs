//! DESIGN.md §4.3 over the generated policies: per egress mode and DNS setting, which
//! destinations a worker pod reaches, and that nothing reaches a worker.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use videofoundry::crd::video_foundry::{EgressMode, ExecutionMode};
use videofoundry::resources::build_foundry_objects;

use crate::fixtures;
use crate::netpol_evaluator::{
    Endpoint, Labels, PodIdentity, egress_allowed, ingress_allowed, is_isolated,
};

fn namespace_pod(namespace: &str, labels: Labels) -> PodIdentity {
    PodIdentity {
        namespace: namespace.to_owned(),
        namespace_labels: Labels::from([(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        )]),
        labels,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The worker pod of the fixture render, as its Job's template labels it.
fn worker() -> PodIdentity {
    let job = fixtures::render_objects(&fixtures::foundry(), &fixtures::cpu_render()).job;
    let template_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    namespace_pod("renders", template_labels)
}

fn endpoint(ip: &str, port: u16, protocol: &'static str, pod: Option<PodIdentity>) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port,
        protocol,
        pod,
    }
}

/// A destination, and whether each of blocked / restricted / open lets a worker reach it
/// (`None`: only when DNS is allowed).
struct Destination {
    what: &'static str,
    endpoint: Endpoint,
    blocked: Option<bool>,
    restricted: Option<bool>,
}

fn destinations() -> Vec<Destination> {
    let other_worker = {
        let mut pod = worker();
        pod.labels
            .insert("videofoundry.dev/render".to_owned(), "other".to_owned());
        pod
    };
    let row = |what, endpoint, blocked: Option<bool>, restricted: Option<bool>| Destination {
        what,
        endpoint,
        blocked,
        restricted,
    };
    vec![
        row(
            "internet",
            endpoint("93.184.216.34", 443, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "internet IPv6",
            endpoint("2606:2800:220:1::1", 443, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "cluster DNS (UDP)",
            endpoint(
                "10.244.0.10",
                53,
                "UDP",
                Some(namespace_pod(
                    "kube-system",
                    labels(&[("k8s-app", "kube-dns")]),
                )),
            ),
            None,
            None,
        ),
        row(
            "cluster DNS (TCP)",
            endpoint(
                "10.244.0.10",
                53,
                "TCP",
                Some(namespace_pod(
                    "kube-system",
                    labels(&[("k8s-app", "kube-dns")]),
                )),
            ),
            None,
            None,
        ),
        row(
            "another kube-system pod on port 53",
            endpoint(
                "10.244.0.11",
                53,
                "UDP",
                Some(namespace_pod(
                    "kube-system",
                    labels(&[("k8s-app", "metrics")]),
                )),
            ),
            Some(false),
            Some(false),
        ),
        row(
            "artifact repository",
            endpoint("10.30.0.5", 443, "TCP", None),
            Some(true),
            Some(true),
        ),
        row(
            "artifact repository, other port",
            endpoint("10.30.0.5", 22, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "artifact repository neighbour",
            endpoint("10.30.0.6", 443, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "storage endpoint",
            endpoint("10.40.0.10", 443, "TCP", None),
            Some(true),
            Some(true),
        ),
        row(
            "storage endpoint, other port",
            endpoint("10.40.0.10", 80, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "admin allowlist",
            endpoint("10.20.5.5", 443, "TCP", None),
            Some(false),
            Some(true),
        ),
        row(
            "admin allowlist, other port",
            endpoint("10.20.5.5", 80, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "pod in another namespace",
            endpoint(
                "10.244.1.7",
                5432,
                "TCP",
                Some(namespace_pod("tenant-b", labels(&[("app", "db")]))),
            ),
            Some(false),
            Some(false),
        ),
        row(
            "platform backend in the foundry namespace",
            endpoint(
                "10.244.2.3",
                8080,
                "TCP",
                Some(namespace_pod("renders", labels(&[("app", "backend")]))),
            ),
            Some(false),
            Some(false),
        ),
        row(
            "another render's worker",
            endpoint("10.244.2.9", 8188, "TCP", Some(other_worker)),
            Some(false),
            Some(false),
        ),
        row(
            "API server (service VIP)",
            endpoint("10.96.0.1", 443, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "API server (endpoint)",
            endpoint("172.18.0.2", 6443, "TCP", None),
            Some(false),
            Some(false),
        ),
        row(
            "cloud metadata",
            endpoint("169.254.169.254", 80, "TCP", None),
            Some(false),
            Some(false),
        ),
    ]
}

fn policies(egress: EgressMode, allow_dns: bool) -> Vec<NetworkPolicy> {
    let foundry = fixtures::foundry_variant(
        ExecutionMode::SelfHostedProduction,
        Some(egress),
        Some(allow_dns),
        None,
    );
    build_foundry_objects(&foundry, None)
        .unwrap()
        .network_policies
}

#[test]
fn worker_egress_is_what_the_mode_allows_and_nothing_more() {
    let worker = worker();
    let mut failures = Vec::new();
    for egress in [
        EgressMode::Blocked,
        EgressMode::Restricted,
        EgressMode::Open,
    ] {
        for allow_dns in [false, true] {
            let policies = policies(egress, allow_dns);
            for destination in destinations() {
                let expected = match egress {
                    EgressMode::Open => true,
                    EgressMode::Blocked => destination.blocked.unwrap_or(allow_dns),
                    _ => destination.restricted.unwrap_or(allow_dns),
                };
                let actual = egress_allowed(&policies, &worker, &destination.endpoint);
                if actual != expected {
                    failures.push(format!(
                        "{egress:?} dns={allow_dns}: {} expected {expected}, got {actual}",
                        destination.what
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn nothing_reaches_a_worker_in_any_mode() {
    let worker = worker();
    let sources = [
        endpoint(
            "10.244.2.3",
            8188,
            "TCP",
            Some(namespace_pod("renders", labels(&[("app", "backend")]))),
        ),
        endpoint(
            "10.244.1.7",
            8188,
            "TCP",
            Some(namespace_pod("tenant-b", Labels::new())),
        ),
        endpoint("93.184.216.34", 8188, "TCP", None),
        endpoint("172.18.0.2", 10250, "TCP", None),
        endpoint("10.244.2.9", 8188, "TCP", Some(worker.clone())),
    ];
    for egress in [
        EgressMode::Blocked,
        EgressMode::Restricted,
        EgressMode::Open,
    ] {
        for allow_dns in [false, true] {
            let policies = policies(egress, allow_dns);
            assert!(
                is_isolated(&policies, &worker, false),
                "{egress:?}: ingress isolated"
            );
            assert!(
                is_isolated(&policies, &worker, true),
                "{egress:?}: egress isolated"
            );
            for source in &sources {
                assert!(
                    !ingress_allowed(&policies, &worker, source),
                    "{egress:?} dns={allow_dns}: {source:?} reached the worker"
                );
            }
        }
    }
}

#[test]
fn the_policies_select_only_this_foundrys_workers() {
    let policies = policies(EgressMode::Blocked, false);
    let backend = namespace_pod("renders", labels(&[("app", "backend")]));
    assert!(!is_isolated(&policies, &backend, true));
    assert!(!is_isolated(&policies, &backend, false));
    let mut other_foundry_worker = worker();
    other_foundry_worker
        .labels
        .insert("videofoundry.dev/foundry".to_owned(), "other".to_owned());
    assert!(!is_isolated(&policies, &other_foundry_worker, true));
}

#[test]
fn the_mode_default_is_blocked_in_production_and_dns_is_off() {
    let worker = worker();
    let policies = build_foundry_objects(
        &fixtures::foundry_variant(ExecutionMode::Production, None, None, None),
        None,
    )
    .unwrap()
    .network_policies;
    let dns = endpoint(
        "10.244.0.10",
        53,
        "UDP",
        Some(namespace_pod(
            "kube-system",
            labels(&[("k8s-app", "kube-dns")]),
        )),
    );
    assert!(!egress_allowed(&policies, &worker, &dns));
    assert!(!egress_allowed(
        &policies,
        &worker,
        &endpoint("10.20.5.5", 443, "TCP", None)
    ));
    assert!(egress_allowed(
        &policies,
        &worker,
        &endpoint("10.40.0.10", 443, "TCP", None)
    ));
}

#[test]
fn blocked_with_nothing_configured_denies_everything() {
    let mut foundry = fixtures::foundry_variant(
        ExecutionMode::Production,
        Some(EgressMode::Blocked),
        None,
        None,
    );
    foundry.spec.network = Some(Default::default());
    let policies = build_foundry_objects(&foundry, None)
        .unwrap()
        .network_policies;
    for destination in destinations() {
        assert!(
            !egress_allowed(&policies, &worker(), &destination.endpoint),
            "{}",
            destination.what
        );
    }
}
