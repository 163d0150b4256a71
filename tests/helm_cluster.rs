//! The Helm chart on the real control plane: the CRDs applied first by server-side apply, the
//! chart installed into a namespace of its own (every object accepted), the operator run with
//! nothing but a token of the chart's ServiceAccount (TokenRequest API) through a render's
//! whole life (no request forbidden, in its own record or in the API server's audit log, and
//! every RBAC rule used), then upgraded and uninstalled with nothing left behind. Values the
//! schema refuses are refused by `helm install` too, before anything reaches the cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "render_run/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cluster;
use common::kubelet_stand_in::KubeletStandIn;
use common::request_log::{RequestLog, Seen};
use harness::{APPROVED_WORKFLOW, HOSTILE_WORKFLOW, Harness};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use videofoundry::crd::render_job::{CANCEL_ANNOTATION, RenderPhase};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/videofoundry-operator")
}

fn helm(helm: &Path, args: &[&str]) -> Output {
    let kubeconfig = std::env::var("VF_TEST_KUBECONFIG").unwrap();
    Command::new(helm)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_yaml::from_value::<Value>(serde::Deserialize::deserialize(doc).unwrap()).unwrap()
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A unique release name: the chart's cluster-scoped objects are named after it.
fn release_name() -> String {
    format!("vfo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Every object carrying the release's label, in every listable resource, namespaced and
/// cluster-scoped (`kind namespace/name`).
async fn labelled(client: &Client, release: &str) -> BTreeSet<String> {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let mut found = BTreeSet::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || resource.plural == "events" {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = api.list_metadata(&selector).await else {
                continue;
            };
            for object in list {
                found.insert(format!(
                    "{} {}/{}",
                    resource.kind,
                    object.namespace().unwrap_or_default(),
                    object.name_any()
                ));
            }
        }
    }
    found
}

/// A client holding only a fresh token of the ServiceAccount (TokenRequest API), in a
/// kubeconfig built from the test cluster's, with every request recorded in `log`.
async fn service_account_client(
    admin: &Client,
    namespace: &str,
    name: &str,
    log: &RequestLog,
) -> Client {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let minted = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = minted.status.unwrap().token;
    let mut kubeconfig =
        Kubeconfig::read_from(std::env::var("VF_TEST_KUBECONFIG").unwrap()).unwrap();
    for auth in &mut kubeconfig.auth_infos {
        auth.auth_info = Some(kube::config::AuthInfo {
            token: Some(token.clone().into()),
            ..Default::default()
        });
    }
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(videofoundry::cli::run::USER_AGENT),
    ));
    kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(log)
        .build()
}

/// `(group, resource, verb)` of every rule, with the namespace of a Role (None: cluster-wide).
fn grants(
    rules: &[PolicyRule],
    namespace: Option<&str>,
) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((
                        group.clone(),
                        resource.clone(),
                        verb.clone(),
                        namespace.map(str::to_owned),
                    ));
                }
            }
        }
    }
    out
}

/// Writes of `user` in the audit log since `since`: `(verb resource[/sub], code)`.
fn audited_writes(
    audit_log: &str,
    user: &str,
    since: k8s_openapi::jiff::Timestamp,
) -> Vec<(String, i64)> {
    let text = std::fs::read_to_string(audit_log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["user"]["username"] == user)
        .filter(|entry| {
            entry["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .map(|entry| {
            let resource = entry["objectRef"]["resource"].as_str().unwrap_or_default();
            let sub = entry["objectRef"]["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            (
                format!(
                    "{} {}{}",
                    entry["verb"].as_str().unwrap_or_default(),
                    resource,
                    sub
                ),
                entry["responseStatus"]["code"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// Rules a render's life on this control plane cannot exercise, and why each is granted.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    // OwnerReferencesPermissionEnforcement (on by default in OpenShift, off in this API
    // server) lets only a client that may update an owner's finalizers set
    // blockOwnerDeletion on its children; it is an admission check, never a request.
    (
        "videofoundry.dev",
        "videofoundries/finalizers",
        "update",
        "blockOwnerDeletion on a foundry's children under OwnerReferencesPermissionEnforcement",
    ),
    (
        "videofoundry.dev",
        "renderjobs/finalizers",
        "update",
        "blockOwnerDeletion on a render's Job and Secret under OwnerReferencesPermissionEnforcement",
    ),
    // A developer Secret written by an older version gets its claim key added (patch); a render
    // Secret whose presigned URLs expired before its Job was created is replaced (delete).
    (
        "",
        "secrets",
        "patch",
        "adding a claim key to an older developer Secret",
    ),
    (
        "",
        "secrets",
        "delete",
        "replacing a render Secret whose URLs expired",
    ),
    // The optional namespace guards of a foundry (spec.quota, src/resources/quota.rs).
    (
        "",
        "resourcequotas",
        "*",
        "the optional ResourceQuota of spec.quota",
    ),
    (
        "",
        "limitranges",
        "*",
        "the optional LimitRange of spec.quota",
    ),
    // The egress gateway of a foundry that approves hosts by name (tests/egress_cluster.rs):
    // its Deployment and Service, applied, read for the workers' proxy address, and deleted
    // when the foundry stops naming hosts; this run's foundry names none.
    (
        "apps",
        "deployments",
        "*",
        "the egress gateway's Deployment",
    ),
    ("", "services", "*", "the egress gateway's Service"),
    // reclaimPolicy: Delete removes the worker ServiceAccount and NetworkPolicies
    // (tests/foundry_lifecycle.rs); the gateway's NetworkPolicy also goes when it stops.
    (
        "",
        "serviceaccounts",
        "delete",
        "deleting the worker ServiceAccount on reclaimPolicy Delete",
    ),
    (
        "networking.k8s.io",
        "networkpolicies",
        "delete",
        "deleting NetworkPolicies on reclaimPolicy Delete or when the gateway stops",
    ),
];

#[tokio::test]
async fn the_chart_runs_a_render_with_least_privilege_and_leaves_no_orphans() {
    let Some(helm_bin) = common::required_tool("helm") else {
        return;
    };
    let Some(audit_log) = common::service_env("VF_TEST_K8S_AUDIT_LOG") else {
        return;
    };
    // The foundry's namespace with its Secrets, list and foundry; the CRDs are applied first by
    // server-side apply (cluster::install_crds), as the README says, since Helm never
    // upgrades crds/.
    let Some(mut h) = Harness::start("helm-rbac", 2, false).await else {
        return;
    };
    let admin = h.client.clone();
    let release_ns = cluster::namespace(&admin, "vfo-system").await;
    let release = release_name();
    let foundry_ns = format!("{{{}}}", h.namespace);
    let installed = helm(
        &helm_bin,
        &[
            "install",
            &release,
            chart().to_str().unwrap(),
            "--namespace",
            &release_ns,
            "--skip-crds",
            "--set",
            &format!("foundryNamespaces={foundry_ns}"),
            "--set",
            &format!("image.digest=sha256:{}", "0".repeat(64)),
            // The render's life below also runs under the admission policy (when served).
            "--set",
            &format!(
                "admissionPolicy.enabled={}",
                admission_policy_served(&admin).await
            ),
        ],
    );
    succeeded("helm install", &installed);

    // Every object of the release exists as rendered.
    let manifest = succeeded(
        "helm get manifest",
        &helm(&helm_bin, &["get", "manifest", &release, "-n", &release_ns]),
    );
    let objects = yaml_documents(&manifest);
    assert!(
        objects.len() >= 10,
        "only {} objects in the release",
        objects.len()
    );
    let discovery = Discovery::new(admin.clone()).run().await.unwrap();
    for object in &objects {
        let (group, version) = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .unwrap_or(("", object["apiVersion"].as_str().unwrap()));
        let kind = object["kind"].as_str().unwrap();
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} not served"));
        let name = object["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(admin.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                admin.clone(),
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(&release_ns),
                &resource,
            ),
        };
        assert!(
            api.get_opt(name).await.unwrap().is_some(),
            "{kind} {name} was not created"
        );
    }

    // The operator with only the ServiceAccount's token, leader election on, through a render's
    // life: provisioning, an approved render run to the end and deleted, a rejected one, a
    // cancelled one.
    let account = format!("{release}-videofoundry-operator");
    let log = RequestLog::default();
    let since = k8s_openapi::jiff::Timestamp::now();
    let client = service_account_client(&admin, &release_ns, &account, &log).await;
    let config = videofoundry::config::OperatorConfig {
        watch_namespace: Some(h.namespace.clone()),
        leader_election: videofoundry::config::LeaderElectionConfig {
            enabled: true,
            lease_namespace: Some(release_ns.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    h.start_operator_as(client, config);
    h.foundry_ready().await;
    let user = h.create_user().await;
    h.render(
        "approved",
        &user,
        APPROVED_WORKFLOW,
        json!({"outputs": ["video.mp4"]}),
    )
    .await;
    let job = h.job("approved").await;
    let kubelet = KubeletStandIn::new(&admin, &h.namespace);
    let pod = kubelet.pod_of(&job.name_any()).await;
    kubelet.start(&pod).await;
    h.phase("approved", RenderPhase::Running).await;
    kubelet.finish(&pod, 0, "").await;
    h.phase("approved", RenderPhase::Succeeded).await;
    h.render("hostile", &user, HOSTILE_WORKFLOW, json!({}))
        .await;
    h.phase("hostile", RenderPhase::Rejected).await;
    h.render("cancel-me", &user, APPROVED_WORKFLOW, json!({}))
        .await;
    h.job("cancel-me").await;
    h.renders()
        .patch(
            "cancel-me",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {CANCEL_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    h.phase("cancel-me", RenderPhase::Cancelled).await;
    // A workflow from a ConfigMap (read with the foundry Role's configmaps get).
    cluster::apply::<k8s_openapi::api::core::v1::ConfigMap>(
        &admin,
        &h.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "workflow"},
               "data": {"workflow.json": APPROVED_WORKFLOW}}),
    )
    .await;
    h.render(
        "from-configmap",
        &user,
        APPROVED_WORKFLOW,
        json!({"workflow": {"configMapRef": {"name": "workflow", "key": "workflow.json"}}}),
    )
    .await;
    h.phase("from-configmap", RenderPhase::Queued).await;
    h.renders()
        .delete("approved", &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_gone(&h.renders(), "approved").await;
    h.stop_operator().await;

    // Nothing forbidden, seen from the client and from the API server's audit log.
    let seen = log.seen();
    let refused: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.status == 401 || s.status == 403)
        .collect();
    assert!(
        refused.is_empty(),
        "requests refused to the chart's ServiceAccount: {refused:#?}"
    );
    let user_name = format!("system:serviceaccount:{release_ns}:{account}");
    let writes = audited_writes(&audit_log, &user_name, since);
    assert!(
        !writes.is_empty(),
        "the audit log shows no write by {user_name}"
    );
    let forbidden: Vec<_> = writes.iter().filter(|(_, code)| *code == 403).collect();
    assert!(
        forbidden.is_empty(),
        "the audit log shows writes forbidden to {user_name}: {forbidden:#?}"
    );

    // Every rule granted is used (or is listed with the reason it cannot be exercised here).
    let cluster_role: ClusterRole = Api::all(admin.clone()).get(&account).await.unwrap();
    let mut granted = grants(cluster_role.rules.as_deref().unwrap_or_default(), None);
    for (namespace, role) in [
        (&release_ns, format!("{account}-leader")),
        (&h.namespace, format!("{account}-foundry")),
    ] {
        let role: Role = Api::namespaced(admin.clone(), namespace)
            .get(&role)
            .await
            .unwrap();
        granted.extend(grants(
            role.rules.as_deref().unwrap_or_default(),
            Some(namespace),
        ));
    }
    let used = |(group, resource, verb, namespace): &(String, String, String, Option<String>)| {
        seen.iter().any(|s| {
            // A server-side apply that creates its object (201) is authorized as create too.
            let as_verb =
                s.verb == *verb || (verb == "create" && s.verb == "patch" && s.status == 201);
            &s.group == group
                && &s.resource == resource
                && as_verb
                && (namespace.is_none() || s.namespace == *namespace)
                && s.status != 0
        })
    };
    let mut unused = Vec::new();
    for grant in &granted {
        let excused = NOT_EXERCISED
            .iter()
            .any(|(g, r, v, _)| grant.0 == *g && grant.1 == *r && (grant.2 == *v || *v == "*"));
        if !used(grant) && !excused {
            unused.push(grant.clone());
        }
    }
    let distinct: BTreeSet<(&str, &str, &str)> = seen
        .iter()
        .map(|s| (s.group.as_str(), s.resource.as_str(), s.verb.as_str()))
        .collect();
    eprintln!(
        "RBAC: {} (group, resource, verb, scope) grants, {} used, {} not exercisable here; {} requests, {} distinct (group, resource, verb); {} audited writes",
        granted.len(),
        granted.iter().filter(|g| used(g)).count(),
        NOT_EXERCISED.len(),
        seen.len(),
        distinct.len(),
        writes.len()
    );
    assert!(
        unused.is_empty(),
        "granted but never used: {unused:#?}\nused: {distinct:#?}"
    );

    // Upgrade: new values roll out; the foundry namespace's Role goes when the namespace leaves
    // the list.
    let upgraded = helm(
        &helm_bin,
        &[
            "upgrade",
            &release,
            chart().to_str().unwrap(),
            "--namespace",
            &release_ns,
            "--skip-crds",
            "--set",
            "foundryNamespaces=null",
            "--set",
            "logFilter=debug",
        ],
    );
    succeeded("helm upgrade", &upgraded);
    let after_upgrade = labelled(&admin, &release).await;
    assert!(
        !after_upgrade
            .iter()
            .any(|o| o.contains(&format!(" {}/", h.namespace))),
        "objects left in the namespace the upgrade dropped: {after_upgrade:#?}"
    );
    assert!(
        after_upgrade.iter().any(|o| o.starts_with("ClusterRole /")),
        "{after_upgrade:#?}"
    );

    // Uninstall: nothing labelled with the release is left, in any namespace or cluster-wide.
    succeeded(
        "helm uninstall",
        &helm(
            &helm_bin,
            &[
                "uninstall",
                &release,
                "-n",
                &release_ns,
                "--wait",
                "--timeout",
                "90s",
            ],
        ),
    );
    let left = labelled(&admin, &release).await;
    assert!(left.is_empty(), "left after helm uninstall: {left:#?}");
}

#[tokio::test]
async fn helm_install_refuses_unsafe_values_before_touching_the_cluster() {
    let Some(helm_bin) = common::required_tool("helm") else {
        return;
    };
    let Some(client) = cluster::client().await else {
        return;
    };
    let namespace = cluster::namespace(&client, "vfo-unsafe").await;
    for (bad, complaint) in [
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        (
            "securityContext.readOnlyRootFilesystem=false",
            "readOnlyRootFilesystem",
        ),
        (
            "securityContext.allowPrivilegeEscalation=true",
            "allowPrivilegeEscalation",
        ),
        ("image.digest=latest", "digest"),
        ("foundryNamespaces={Bad_Namespace}", "foundryNamespaces"),
        ("networkPolicy.egress[0].ports[0]=70000", "ports"),
        ("replicas=10", "replicas"),
        ("rbac.clusterWideSecrets=true", "rbac"),
    ] {
        let release = release_name();
        let output = helm(
            &helm_bin,
            &[
                "install",
                &release,
                chart().to_str().unwrap(),
                "--namespace",
                &namespace,
                "--skip-crds",
                "--set",
                bad,
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {bad} was installed");
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "--set {bad}: {stderr}"
        );
        assert!(
            stderr.contains(complaint),
            "--set {bad}: the error does not name {complaint}: {stderr}"
        );
        let status = helm(&helm_bin, &["status", &release, "-n", &namespace]);
        assert!(
            !status.status.success(),
            "--set {bad} left a release behind"
        );
    }
}

/// Whether the API server serves ValidatingAdmissionPolicy (v1, or v1beta1 on 1.28-1.29).
async fn admission_policy_served(client: &Client) -> bool {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    ["v1", "v1beta1"].iter().any(|version| {
        let gvk = kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            version,
            "ValidatingAdmissionPolicy",
        );
        discovery.resolve_gvk(&gvk).is_some()
    })
}

fn worker_pod(name: &str, spec: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"videofoundry.dev/role": "worker", "videofoundry.dev/foundry": "studio"}},
        "spec": {"runtimeClassName": "gvisor", "automountServiceAccountToken": false,
                 "containers": [{"name": "worker", "image": "vf.local/busybox:1.35"}]}
    });
    if let Value::Object(fields) = spec {
        for (key, value) in fields {
            pod["spec"][key] = value;
        }
    }
    pod
}

/// Creates `object` in `namespace` (dry run unless `persist`): the API server's answer.
async fn create(
    client: &Client,
    namespace: &str,
    object: &Value,
    persist: bool,
) -> Result<(), String> {
    let params = PostParams {
        dry_run: !persist,
        ..Default::default()
    };
    let result = match object["kind"].as_str().unwrap() {
        "Pod" => Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
            .create(&params, &serde_json::from_value(object.clone()).unwrap())
            .await
            .map(drop),
        _ => Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), namespace)
            .create(&params, &serde_json::from_value(object.clone()).unwrap())
            .await
            .map(drop),
    };
    result.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_admission_policy_refuses_unsandboxed_workers_in_foundry_namespaces() {
    let Some(helm_bin) = common::required_tool("helm") else {
        return;
    };
    let Some(client) = cluster::client().await else {
        return;
    };
    if !admission_policy_served(&client).await {
        assert!(
            std::env::var_os("VF_TEST_REQUIRE_SERVICES").is_none(),
            "the API server serves no ValidatingAdmissionPolicy API"
        );
        eprintln!(
            "skipping: the API server serves no ValidatingAdmissionPolicy API (1.28-1.29 need the feature gate and admissionregistration.k8s.io/v1beta1)"
        );
        return;
    }
    let release_ns = cluster::namespace(&client, "vfo-vap").await;
    let foundry_ns = cluster::namespace(&client, "vap-foundry").await;
    let other_ns = cluster::namespace(&client, "vap-other").await;
    let release = release_name();
    succeeded(
        "helm install",
        &helm(
            &helm_bin,
            &[
                "install",
                &release,
                chart().to_str().unwrap(),
                "--namespace",
                &release_ns,
                "--skip-crds",
                "--set",
                "admissionPolicy.enabled=true",
                "--set",
                &format!("foundryNamespaces={{{foundry_ns}}}"),
            ],
        ),
    );

    // The API server picks a new policy up within a moment: wait (bounded) until it refuses.
    let unsandboxed = worker_pod("unsandboxed", json!({"runtimeClassName": null}));
    let refused = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            if let Err(message) = create(&client, &foundry_ns, &unsandboxed, false).await {
                return message;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the admission policy refused nothing within 60 s");
    assert!(
        refused.contains("runtimeClassName must be one of gvisor"),
        "{refused}"
    );

    // An existing RuntimeClass that is not a sandbox (the RuntimeClass admission plugin
    // refuses unknown ones before the policy sees them). Cluster-scoped: a name of this test's.
    let runc = format!("{release}-runc");
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": runc}, "handler": "runc"}))
                .unwrap(),
        )
        .await
        .unwrap();
    for (name, spec, complaint) in [
        (
            "runc",
            json!({"runtimeClassName": runc}),
            "runtimeClassName",
        ),
        (
            "token",
            json!({"automountServiceAccountToken": true}),
            "service account token",
        ),
        (
            "token-default",
            json!({"automountServiceAccountToken": null}),
            "service account token",
        ),
        (
            "projected-token",
            json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]}),
            "service account token",
        ),
        (
            "host-network",
            json!({"hostNetwork": true}),
            "host's network",
        ),
        ("host-pid", json!({"hostPID": true}), "host's network, PID"),
        ("host-ipc", json!({"hostIPC": true}), "IPC namespace"),
    ] {
        let error = create(&client, &foundry_ns, &worker_pod(name, spec), false)
            .await
            .expect_err(name);
        assert!(error.contains(complaint), "{name}: {error}");
    }
    // A Job whose pod template is unsandboxed is refused too, before it makes any pod.
    let pod = worker_pod(
        "x",
        json!({"runtimeClassName": null, "restartPolicy": "Never"}),
    );
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
                     "metadata": {"name": "unsandboxed-job", "labels": pod["metadata"]["labels"]},
                     "spec": {"template": {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}}});
    let error = create(&client, &foundry_ns, &job, false)
        .await
        .expect_err("job");
    assert!(error.contains("runtimeClassName"), "{error}");

    // A compliant worker is admitted (created for real); the policy is confined to worker
    // labels and foundry namespaces.
    create(
        &client,
        &foundry_ns,
        &worker_pod("sandboxed", json!({})),
        true,
    )
    .await
    .unwrap();
    let mut unlabelled = unsandboxed.clone();
    unlabelled["metadata"]["labels"] = json!({"app": "not-a-worker"});
    create(&client, &foundry_ns, &unlabelled, false)
        .await
        .unwrap();
    create(&client, &other_ns, &unsandboxed, false)
        .await
        .unwrap();

    classes
        .delete(&runc, &DeleteParams::default())
        .await
        .unwrap();
    succeeded(
        "helm uninstall",
        &helm(
            &helm_bin,
            &["uninstall", &release, "-n", &release_ns, "--wait"],
        ),
    );
    assert!(labelled(&client, &release).await.is_empty());
}
