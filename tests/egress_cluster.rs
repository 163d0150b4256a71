//! The egress gateway's objects on the real control plane (`../shared/k8s/start.sh`): the
//! foundry controller's network step applies the gateway's NetworkPolicy, Deployment and
//! Service and the workers' rule to it; the API server's Pod Security admission admits the
//! gateway pod and a worker pod with the proxy environment in a namespace that enforces
//! `restricted` (and refuses a weakened gateway pod, so enforcement is on); the CRD's CEL rules
//! refuse a host listed twice and internal ranges on a wildcard; turning egress back to `blocked`
//! removes the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use videofoundry::controller::video_foundry::cluster::apply_network_isolation;
use videofoundry::crd::{RenderJob, VideoFoundry};
use videofoundry::resources::cilium_policy::{CILIUM_POLICY_CRD, CiliumNetworkPolicy};
use videofoundry::resources::egress_gateway::{PROXY_PORT, proxy_address};
use videofoundry::resources::worker_job::{WorkerPlan, build_worker_job};

const IMAGE: &str = "registry.example/videofoundry-operator@sha256:4f6e3b0c1d2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

/// A namespace whose pods must pass `restricted` (enforced by the API server).
async fn restricted_namespace(client: &Client) -> String {
    let name = format!("egress-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}}))
        .unwrap(),
    )
    .await
    .unwrap();
    name
}

fn foundry_spec(network: Value) -> Value {
    json!({
        "executionMode": "selfHostedProduction",
        "database": {"connectionSecretRef": {"name": "pg-admin", "key": "url"}},
        "vault": {"address": "https://vault.vault.svc:8200",
                  "auth": {"kubernetes": {"role": "videofoundry-operator"}}},
        "storage": {"endpoint": "https://s3.internal.example:9000", "bucket": "vf-egress",
                    "credentialsSecretRef": {"name": "s3-admin"}},
        "network": network,
        "workers": {"image": "registry.example/worker@sha256:4f6e3b0c1d2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"},
    })
}

fn network() -> Value {
    json!({
        "storageEndpointCidrs": ["10.40.0.0/24"],
        "allowedHosts": [
            {"host": "huggingface.co"},
            {"host": "*.hf.co", "ports": [443]},
            {"host": "models.internal", "ports": [8443], "internalCidrs": ["10.50.0.0/16"]},
        ],
    })
}

async fn create_foundry(
    client: &Client,
    namespace: &str,
    spec: Value,
) -> kube::Result<VideoFoundry> {
    let api: Api<VideoFoundry> = Api::namespaced(client.clone(), namespace);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
            "metadata": {"name": "studio"}, "spec": spec,
        }))
        .unwrap(),
    )
    .await
}

/// Creates `pod` with `dryRun=All`: every admission check runs, nothing is stored.
async fn admit_pod(client: &Client, namespace: &str, template: &Value) -> kube::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &pod,
        )
        .await
}

#[tokio::test]
async fn the_gateway_and_the_workers_proxy_are_applied_and_admitted_under_restricted() {
    let Some(client) = cluster::client().await else {
        return;
    };
    cluster::install_crds(&client).await;
    cluster::ensure_gvisor_runtime_class(&client).await;
    let namespace = restricted_namespace(&client).await;

    // The schema refuses what the gateway could not honour.
    let mut twice = network();
    twice["allowedHosts"][1] = json!({"host": "huggingface.co", "ports": [8443]});
    let refused = create_foundry(&client, &namespace, foundry_spec(twice))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("lists a host more than once"),
        "{refused}"
    );
    let mut wildcard = network();
    wildcard["allowedHosts"][1]["internalCidrs"] = json!(["10.0.0.0/8"]);
    let refused = create_foundry(&client, &namespace, foundry_spec(wildcard))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not a wildcard"), "{refused}");
    let mut literal = network();
    literal["allowedHosts"][0]["host"] = json!("10.0.0.1");
    assert!(
        create_foundry(&client, &namespace, foundry_spec(literal))
            .await
            .is_err()
    );

    let foundry = create_foundry(&client, &namespace, foundry_spec(network()))
        .await
        .unwrap();
    // The control plane is shared: another branch's tests may have installed CRDs without
    // allowedHosts in the meantime, and the API server would have pruned the field.
    assert_eq!(
        foundry.spec.network.as_ref().map(|n| n.allowed_hosts.len()),
        Some(3),
        "allowedHosts was pruned: the installed VideoFoundry CRD is not this branch's"
    );
    let outcome = apply_network_isolation(&client, &foundry, IMAGE).await;
    assert!(outcome.ready, "{outcome:?}");
    assert!(
        outcome
            .message
            .contains("3 approved host(s) reached through egress gateway studio-egress-gateway"),
        "{}",
        outcome.message
    );

    // The Deployment: the operator's image as `egress-gateway`, the approved hosts as JSON.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("studio-egress-gateway")
        .await
        .unwrap();
    let template = serde_json::to_value(deployment.spec.unwrap().template).unwrap();
    let container = &template["spec"]["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["command"][1], "egress-gateway");
    assert_eq!(template["spec"]["automountServiceAccountToken"], false);
    let hosts = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "VF_EGRESS_ALLOWED_HOSTS")
        .unwrap();
    let hosts: Value = serde_json::from_str(hosts["value"].as_str().unwrap()).unwrap();
    assert_eq!(hosts, network()["allowedHosts"]);

    // Pod Security admission: the gateway pod passes `restricted`; a weakened one does not.
    admit_pod(&client, &namespace, &template)
        .await
        .unwrap_or_else(|e| panic!("the gateway pod was refused: {e}"));
    let mut weakened = template.clone();
    weakened["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let refused = admit_pod(&client, &namespace, &weakened).await.unwrap_err();
    assert!(
        refused.to_string().contains("violates PodSecurity"),
        "{refused}"
    );

    // The Service and the NetworkPolicies.
    let service = Api::<Service>::namespaced(client.clone(), &namespace)
        .get("studio-egress-gateway")
        .await
        .unwrap();
    let service_spec = service.spec.unwrap();
    assert_eq!(service_spec.ports.unwrap()[0].port, i32::from(PROXY_PORT));
    let cluster_ip = service_spec.cluster_ip.unwrap();
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let gateway_policy = serde_json::to_value(
        policies
            .get("studio-egress-gateway")
            .await
            .unwrap()
            .spec
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        gateway_policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
        json!({"videofoundry.dev/foundry": "studio", "videofoundry.dev/role": "worker"})
    );
    assert_eq!(
        gateway_policy["ingress"][0]["ports"],
        json!([{"port": 3128, "protocol": "TCP"}])
    );
    let out = &gateway_policy["egress"][1];
    assert_eq!(
        out["ports"],
        json!([{"port": 443, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}])
    );
    assert_eq!(out["to"][2]["ipBlock"]["cidr"], "10.50.0.0/16");
    let worker_policy = serde_json::to_value(
        policies
            .get("studio-worker-egress")
            .await
            .unwrap()
            .spec
            .unwrap(),
    )
    .unwrap();
    let to_gateway = worker_policy["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| {
            rule["to"][0]["podSelector"]["matchLabels"]["videofoundry.dev/role"] == "egress-gateway"
        })
        .unwrap_or_else(|| panic!("no worker rule to the gateway: {worker_policy}"));
    assert_eq!(
        to_gateway["ports"],
        json!([{"port": 3128, "protocol": "TCP"}])
    );

    // A worker of this foundry gets the proxy by cluster IP, and its pod passes `restricted`.
    let render: RenderJob = serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": "trailer-1", "namespace": namespace, "uid": "00000000-0000-4000-8000-000000000001"},
        "spec": {"foundryRef": {"name": "studio"}, "userId": "7f1c0e1a-3b2d-4c5e-8f90-a1b2c3d4e5f6",
                 "workflow": {"inline": "{}"}}
    }))
    .unwrap();
    let plan = WorkerPlan {
        workflow: "{}".to_owned(),
        workflow_sha256: videofoundry::vetting::workflow_sha256(b"{}"),
        model_pins: Vec::new(),
        egress_proxy: Some(proxy_address(&cluster_ip)),
    };
    let job = build_worker_job(&foundry, &render, &plan, IMAGE).unwrap();
    let job_template = serde_json::to_value(job.spec.as_ref().unwrap().template.clone()).unwrap();
    let env = &job_template["spec"]["containers"][0]["env"];
    let value = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("no {name} in {env}"))
            .to_owned()
    };
    let proxy = format!("http://trailer-1@{cluster_ip}:3128");
    assert_eq!(value("HTTPS_PROXY"), proxy);
    assert_eq!(value("HTTP_PROXY"), proxy);
    assert!(value("NO_PROXY").contains("s3.internal.example"));
    admit_pod(&client, &namespace, &job_template)
        .await
        .unwrap_or_else(|e| panic!("the worker pod was refused: {e}"));
    Api::<Job>::namespaced(client.clone(), &namespace)
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &job,
        )
        .await
        .unwrap();

    // Egress back to blocked: the gateway goes, and the workers lose their rule to it.
    let foundries: Api<VideoFoundry> = Api::namespaced(client.clone(), &namespace);
    let blocked = foundries
        .patch(
            "studio",
            &PatchParams::apply(cluster::TEST_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
                "metadata": {"name": "studio"},
                "spec": foundry_spec(json!({"egress": "blocked", "storageEndpointCidrs": ["10.40.0.0/24"],
                                           "allowedHosts": network()["allowedHosts"]})),
            })),
        )
        .await
        .unwrap();
    let outcome = apply_network_isolation(&client, &blocked, IMAGE).await;
    assert!(outcome.ready, "{outcome:?}");
    assert!(
        outcome.message.contains("is not used"),
        "{}",
        outcome.message
    );
    for gone in [
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("studio-egress-gateway")
            .await
            .unwrap()
            .map(|_| "Deployment"),
        Api::<Service>::namespaced(client.clone(), &namespace)
            .get_opt("studio-egress-gateway")
            .await
            .unwrap()
            .map(|_| "Service"),
        policies
            .get_opt("studio-egress-gateway")
            .await
            .unwrap()
            .map(|_| "NetworkPolicy"),
    ] {
        assert_eq!(gone, None);
    }
    let worker_policy =
        serde_json::to_value(policies.get("studio-worker-egress").await.unwrap().spec).unwrap();
    assert!(
        !worker_policy.to_string().contains("egress-gateway"),
        "{worker_policy}"
    );
}

/// Cilium's CRD, reduced to what the API server needs to store CiliumNetworkPolicies (no
/// schema: Cilium validates its own policies). Installed by the test, as Cilium's install does.
fn cilium_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CILIUM_POLICY_CRD},
        "spec": {
            "group": "cilium.io", "scope": "Namespaced",
            "names": {"plural": "ciliumnetworkpolicies", "singular": "ciliumnetworkpolicy",
                      "kind": "CiliumNetworkPolicy", "listKind": "CiliumNetworkPolicyList"},
            "versions": [{"name": "v2", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn cilium_enforces_named_hosts_once_its_crd_is_served() {
    let Some(client) = cluster::client().await else {
        return;
    };
    cluster::install_crds(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Start from a cluster without Cilium (a previous run may have left the CRD).
    if crds.get_opt(CILIUM_POLICY_CRD).await.unwrap().is_some() {
        crds.delete(CILIUM_POLICY_CRD, &Default::default())
            .await
            .unwrap();
        cluster::wait_gone(&crds, CILIUM_POLICY_CRD).await;
    }
    let namespace = cluster::namespace(&client, "cilium").await;
    let mut network = network();
    network["hostEnforcement"] = json!("cilium");
    let mut foundry = create_foundry(&client, &namespace, foundry_spec(network.clone()))
        .await
        .unwrap();

    // Asked for, not served: NetworkIsolated says why, and nothing of the gateway is made.
    let outcome = apply_network_isolation(&client, &foundry, IMAGE).await;
    assert!(!outcome.ready, "{outcome:?}");
    assert_eq!(outcome.reason, "CiliumNotInstalled", "{outcome:?}");
    assert!(outcome.message.contains(CILIUM_POLICY_CRD), "{outcome:?}");

    // Cilium installed: the policy names each host on its ports, DNS only for those names.
    crds.create(&PostParams::default(), &cilium_crd())
        .await
        .unwrap();
    cluster::wait_for(&crds, CILIUM_POLICY_CRD, "Established", |crd| {
        crd.status.as_ref().is_some_and(|status| {
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
    })
    .await;
    let outcome = apply_network_isolation(&client, &foundry, IMAGE).await;
    assert!(outcome.ready, "{outcome:?}");
    assert!(
        outcome
            .message
            .contains("enforced by CiliumNetworkPolicy studio-worker-fqdn-egress"),
        "{}",
        outcome.message
    );
    let policies: Api<CiliumNetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let stored =
        serde_json::to_value(policies.get("studio-worker-fqdn-egress").await.unwrap()).unwrap();
    let egress = &stored["spec"]["egress"];
    assert_eq!(
        egress[0]["toPorts"][0]["rules"]["dns"],
        json!([{"matchName": "huggingface.co"}, {"matchPattern": "*.hf.co"},
               {"matchName": "models.internal"}])
    );
    assert_eq!(
        egress[3]["toFQDNs"],
        json!([{"matchName": "models.internal"}])
    );
    assert_eq!(
        egress[3]["toPorts"][0]["ports"],
        json!([{"port": "8443", "protocol": "TCP"}])
    );
    assert_eq!(
        stored["spec"]["endpointSelector"]["matchLabels"],
        json!({"videofoundry.dev/foundry": "studio", "videofoundry.dev/role": "worker"})
    );
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["kind"],
        "VideoFoundry"
    );
    // No gateway, and workers get no rule to one.
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("studio-egress-gateway")
            .await
            .unwrap()
            .is_none()
    );
    let worker_policy = serde_json::to_value(
        Api::<NetworkPolicy>::namespaced(client.clone(), &namespace)
            .get("studio-worker-egress")
            .await
            .unwrap()
            .spec,
    )
    .unwrap();
    assert!(
        !worker_policy.to_string().contains("egress-gateway"),
        "{worker_policy}"
    );
    // Re-applying changes nothing.
    let again = apply_network_isolation(&client, &foundry, IMAGE).await;
    assert!(again.ready && again.repairs.is_empty(), "{again:?}");

    // Back to the gateway: the Cilium policy goes and the gateway comes.
    foundry.status = Some(
        serde_json::from_value(json!({"conditions": [{
        "type": "NetworkIsolated", "status": "True", "reason": outcome.reason,
        "message": outcome.message, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
        .unwrap(),
    );
    foundry.spec.network.as_mut().unwrap().host_enforcement = None;
    let outcome = apply_network_isolation(&client, &foundry, IMAGE).await;
    assert!(outcome.ready, "{outcome:?}");
    assert!(
        policies
            .get_opt("studio-worker-fqdn-egress")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        outcome.message.contains("reached through egress gateway"),
        "{outcome:?}"
    );

    crds.delete(CILIUM_POLICY_CRD, &Default::default())
        .await
        .unwrap();
}
