//! The real Kubernetes control plane the tests use: `scripts/services/kubernetes.sh` starts
//! kube-apiserver and kube-controller-manager from `../shared/k8s` and exports
//! `VF_TEST_KUBECONFIG`; `VF_E2E=1` with `KUBECONFIG` uses a cluster of your own instead. Each
//! test works in a namespace of its own, so tests run in parallel on one API server.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};
use serde_json::json;

/// Field manager of what the tests apply (never the operator's).
pub const TEST_MANAGER: &str = "videofoundry-tests";

/// A client for the test control plane, or `None` (with a note) when none is configured and
/// `VF_TEST_REQUIRE_SERVICES` is unset.
pub async fn client() -> Option<Client> {
    videofoundry::install_crypto_provider();
    if std::env::var_os("VF_E2E").is_some() {
        return Some(
            Client::try_default()
                .await
                .expect("VF_E2E is set but no cluster is reachable through KUBECONFIG"),
        );
    }
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s");
    if std::env::var_os("VF_TEST_KUBECONFIG").is_none() && !shared.is_dir() {
        eprintln!(
            "skipping: ../shared/k8s is absent, so there is no local control plane (VF_E2E=1 with KUBECONFIG uses your own cluster)"
        );
        return None;
    }
    let path = super::service_env("VF_TEST_KUBECONFIG")?;
    let kubeconfig = Kubeconfig::read_from(&path).expect("readable VF_TEST_KUBECONFIG");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("usable VF_TEST_KUBECONFIG");
    Some(Client::try_from(config).expect("a client for VF_TEST_KUBECONFIG"))
}

/// Installs (or updates) the operator's CRDs by server-side apply and waits until they serve.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in videofoundry::crd::all() {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD not established within 30 s")
        .unwrap();
    }
}

/// A fresh namespace named `<prefix>-<random>`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    name
}

/// The gVisor RuntimeClass the foundries check for (cluster-wide; created once).
pub async fn ensure_gvisor_runtime_class(client: &Client) {
    let api: Api<RuntimeClass> = Api::all(client.clone());
    let class: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": "gvisor"}, "handler": "runsc"}))
            .unwrap();
    api.patch(
        "gvisor",
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&class),
    )
    .await
    .unwrap();
}

/// Applies a namespaced object (YAML or JSON value) by server-side apply.
pub async fn apply<K>(client: &Client, namespace: &str, object: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(object).unwrap();
    let name = typed.meta().name.clone().unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&typed),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

/// Waits (bounded) until `condition` holds for the object `name`; returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, condition: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let waited = tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api.clone(), name, move |object: Option<&K>| {
            object.is_some_and(&condition)
        }),
    )
    .await;
    match waited {
        Ok(Ok(Some(object))) => object,
        Ok(other) => panic!("{name}: waiting for {what} failed: {other:?}"),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!("{name}: {what} did not happen within 90 s; now: {now:#?}")
        }
    }
}

/// Waits (bounded) until the object `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let gone = tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api.clone(), name, |object: Option<&K>| object.is_none()),
    )
    .await;
    assert!(
        matches!(gone, Ok(Ok(_))),
        "{name} still exists after 90 s: {:?}",
        api.get_opt(name).await
    );
}

/// Write requests (`verb resource/name`) the API server's audit log recorded in `namespace`
/// since `since`, by users other than the control plane's own (`system:*`), on objects whose
/// name starts with one of `names` (Events are named after their object).
pub fn writes_since(
    audit_log: &str,
    namespace: &str,
    since: k8s_openapi::jiff::Timestamp,
    names: &[&str],
) -> Vec<String> {
    let text = std::fs::read_to_string(audit_log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| {
            matches!(
                entry["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            )
        })
        .filter(|entry| entry["objectRef"]["namespace"] == namespace)
        .filter(|entry| {
            !entry["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .starts_with("system:")
        })
        .filter(|entry| {
            entry["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .filter(|entry| {
            let name = entry["objectRef"]["name"].as_str().unwrap_or_default();
            names.iter().any(|prefix| name.starts_with(prefix))
        })
        .map(|entry| {
            format!(
                "{} {}/{} ({})",
                entry["verb"].as_str().unwrap_or_default(),
                entry["objectRef"]["resource"].as_str().unwrap_or_default(),
                entry["objectRef"]["name"].as_str().unwrap_or_default(),
                entry["userAgent"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Waits (bounded) until an Event with `reason` exists in `namespace`; returns it. Events are
/// published after the status they report, so a test that checks both must wait for each.
pub async fn wait_for_event(
    client: &Client,
    namespace: &str,
    reason: &str,
) -> k8s_openapi::api::events::v1::Event {
    use futures::{StreamExt, TryStreamExt};
    use kube::runtime::{WatchStreamExt, watcher};
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let found = tokio::time::timeout(
        Duration::from_secs(90),
        watcher(api, watcher::Config::default())
            .applied_objects()
            .try_filter(|event| std::future::ready(event.reason.as_deref() == Some(reason)))
            .boxed()
            .try_next(),
    )
    .await;
    match found {
        Ok(Ok(Some(event))) => event,
        other => panic!("no {reason} Event in {namespace} within 90 s: {other:?}"),
    }
}
