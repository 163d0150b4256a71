//! The VideoFoundry controller on the real control plane (`../shared/k8s/start.sh`) with the real
//! PostgreSQL, Ceph RGW and OpenBao (issue 18): owned objects deleted or edited are repaired in
//! seconds with a `DriftRepaired` Event; row-level security un-forced is repaired at the
//! configured re-check; at rest, across re-checks and a restart, the operator makes no write
//! (counted in the API server's audit log by its User-Agent); two installations side by side
//! each keep to their own foundries; an operator outside the cluster logs in to Vault with a
//! token it requests for its ServiceAccount.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/foundry_cluster_harness.rs"]
mod harness;
#[path = "common/vault_harness.rs"]
mod vault_harness;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use harness::{Operator, until};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use sqlx::Connection as _;
use videofoundry::crd::VideoFoundry;
use videofoundry::postgres::FoundryDatabase;

const CONTROLLER: &str = "videofoundry";
const SETTLE: Duration = Duration::from_secs(120);

struct Backends {
    postgres_url: String,
    s3_endpoint: String,
    s3_ca: String,
    s3_key_id: String,
    s3_secret: String,
}

fn backends() -> Option<Backends> {
    Some(Backends {
        postgres_url: common::service_env("VF_TEST_POSTGRES_URL")?,
        s3_endpoint: common::service_env("VF_TEST_S3_ENDPOINT")?,
        s3_ca: std::fs::read_to_string(common::service_env("VF_TEST_S3_CA_FILE")?).unwrap(),
        s3_key_id: common::service_env("VF_TEST_S3_ADMIN_ACCESS_KEY_ID")?,
        s3_secret: common::service_env("VF_TEST_S3_ADMIN_SECRET_ACCESS_KEY")?,
    })
}

/// The admin Secrets a foundry reads, in `namespace`.
async fn put_credentials(client: &Client, namespace: &str, backends: &Backends) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, data) in [
        ("pg-admin", json!({"url": backends.postgres_url})),
        (
            "s3-admin",
            json!({"accessKeyId": backends.s3_key_id, "secretAccessKey": backends.s3_secret,
                   "ca.crt": backends.s3_ca}),
        ),
    ] {
        let secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        api.create(&PostParams::default(), &secret).await.unwrap();
    }
}

/// A developer-mode foundry (plain-text Postgres and Vault are allowed there, and reported).
fn foundry(
    name: &str,
    backends: &Backends,
    class: Option<&str>,
    vault: Option<serde_json::Value>,
) -> VideoFoundry {
    let unique = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut spec = json!({
        "executionMode": "developer",
        "database": {"connectionSecretRef": {"name": "pg-admin", "key": "url"},
                     "databaseName": format!("vf_f18_{unique}"), "reclaimPolicy": "Delete"},
        "storage": {"endpoint": backends.s3_endpoint, "bucket": format!("vf-f18-{unique}"),
                    "forcePathStyle": true, "credentialsSecretRef": {"name": "s3-admin"}},
        "workers": {"image": "registry.example/worker@sha256:4f6e3b0c1d2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"},
    });
    if let Some(class) = class {
        spec["className"] = json!(class);
    }
    if let Some(vault) = vault {
        spec["vault"] = vault;
    }
    serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn condition(foundry: &VideoFoundry, type_: &str) -> Option<(String, String, String)> {
    foundry
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits for `Ready=True` and returns the foundry.
async fn await_ready(api: &Api<VideoFoundry>, name: &str, operator: &Operator) -> VideoFoundry {
    let started = std::time::Instant::now();
    loop {
        let foundry = api.get(name).await.unwrap();
        if condition(&foundry, "Ready").is_some_and(|(status, _, _)| status == "True") {
            return foundry;
        }
        assert!(
            started.elapsed() < SETTLE,
            "{name} not Ready within {SETTLE:?}: {:#?}\nlog:\n{}",
            foundry.status,
            operator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn events_with_reason(client: &Client, namespace: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some(reason))
        .collect()
}

/// A connection to the foundry's database as the admin.
async fn database(backends: &Backends, foundry: &VideoFoundry) -> sqlx::PgConnection {
    let options = sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url)
        .unwrap()
        .database(&foundry.spec.database.database_name);
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

#[tokio::test]
async fn drift_is_repaired_at_once_or_at_the_recheck_and_nothing_is_written_at_rest() {
    let Some(backends) = backends() else { return };
    let Some(cluster) = harness::cluster().await else {
        return;
    };
    videofoundry::install_crypto_provider();
    let namespace = cluster.namespace("drift").await;
    let ns = namespace.name.as_str();
    put_credentials(&cluster.client, ns, &backends).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let requeue = 4;
    let config = format!(
        "watchNamespace: {ns}\nleaderElection: {{enabled: false}}\nreconcile: {{requeueSeconds: {requeue}}}\n"
    );
    let mark = cluster.audit_mark();
    let operator = Operator::start(&cluster, &dir, "drift-1", &config);

    let api: Api<VideoFoundry> = Api::namespaced(cluster.client.clone(), ns);
    api.create(
        &PostParams::default(),
        &foundry("studio", &backends, None, None),
    )
    .await
    .unwrap();
    let ready = await_ready(&api, "studio", &operator).await;
    assert_eq!(
        ready.status.as_ref().unwrap().claimed_by.as_deref(),
        Some("videofoundry")
    );

    // Every write while provisioning carried the operator's User-Agent.
    let provisioning = cluster.operator_writes_since(mark, ns);
    assert!(
        provisioning
            .iter()
            .any(|w| w.starts_with("patch videofoundries/studio/status")),
        "{provisioning:?}"
    );
    // The Ready transition has its own Event (published just after the status write).
    until("Ready Event", Duration::from_secs(10), || {
        let client = cluster.client.clone();
        async move {
            let events = events_with_reason(&client, ns, "Ready").await;
            events
                .iter()
                .any(|e| {
                    e.note
                        .as_deref()
                        .is_some_and(|n| n.starts_with("Ready is True (Provisioned)"))
                })
                .then_some(())
        }
    })
    .await;
    assert!(
        !events_with_reason(&cluster.client, ns, "DatabaseReady")
            .await
            .is_empty()
    );

    // A deleted NetworkPolicy comes back within seconds (watch), with a DriftRepaired Event.
    let policies: Api<NetworkPolicy> = Api::namespaced(cluster.client.clone(), ns);
    let names: Vec<String> = policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let deny = names
        .iter()
        .find(|n| n.contains("deny"))
        .unwrap_or_else(|| panic!("no default-deny policy among {names:?}"))
        .clone();
    policies
        .delete(&deny, &DeleteParams::default())
        .await
        .unwrap();
    let (_, deleted_repair) = until(
        "deleted NetworkPolicy restored",
        Duration::from_secs(30),
        || {
            let policies = policies.clone();
            let deny = deny.clone();
            async move { policies.get_opt(&deny).await.unwrap() }
        },
    )
    .await;
    until("DriftRepaired Event", Duration::from_secs(10), || {
        let client = cluster.client.clone();
        let deny = deny.clone();
        async move {
            let events = events_with_reason(&client, ns, "DriftRepaired").await;
            events
                .iter()
                .any(|e| e.note.as_deref().is_some_and(|n| n.contains(&deny)))
                .then_some(())
        }
    })
    .await;

    // An edited one (its pod selector emptied) is restored as well.
    let original = policies.get(&deny).await.unwrap().spec.unwrap();
    policies
        .patch(
            &deny,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"podSelector": {"matchLabels": null}}})),
        )
        .await
        .unwrap();
    let (_, edited_repair) = until(
        "edited NetworkPolicy restored",
        Duration::from_secs(30),
        || {
            let policies = policies.clone();
            let deny = deny.clone();
            let original = original.clone();
            async move {
                let now = policies.get(&deny).await.unwrap().spec.unwrap();
                (now.pod_selector == original.pod_selector).then_some(())
            }
        },
    )
    .await;

    // A deleted worker ServiceAccount too.
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), ns);
    let worker = accounts
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=videofoundry-operator"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|a| a.metadata.name)
        .expect("the worker ServiceAccount");
    accounts
        .delete(&worker, &DeleteParams::default())
        .await
        .unwrap();
    let (_, account_repair) = until(
        "worker ServiceAccount restored",
        Duration::from_secs(30),
        || {
            let accounts = accounts.clone();
            let worker = worker.clone();
            async move { accounts.get_opt(&worker).await.unwrap() }
        },
    )
    .await;

    // Row-level security un-forced behind the operator's back, once the repairs above settled:
    // repaired at the next re-check (nothing watchable changes).
    let settled = operator.reconcile_runs(CONTROLLER).await;
    operator
        .await_reconciles(
            CONTROLLER,
            settled + 2,
            Duration::from_secs(requeue * 4 + 30),
        )
        .await;
    let schema = FoundryDatabase::for_foundry(ns, "studio").unwrap().schema;
    let mut db = database(&backends, &ready).await;
    let table: String = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relkind = 'r' and c.relforcerowsecurity order by 1 limit 1",
    )
    .bind(&schema)
    .fetch_one(&mut db)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter table \"{schema}\".\"{table}\" no force row level security"
    )))
    .execute(&mut db)
    .await
    .unwrap();
    let (_, rls_repair) = until(
        "row-level security forced again",
        Duration::from_secs(requeue * 3 + 20),
        || {
            let options = sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url)
                .unwrap()
                .database(&ready.spec.database.database_name);
            let (schema, table) = (schema.clone(), table.clone());
            async move {
                let mut db = sqlx::PgConnection::connect_with(&options).await.ok()?;
                let forced: bool = sqlx::query_scalar(
                    "select c.relforcerowsecurity from pg_class c join pg_namespace n \
                     on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2",
                )
                .bind(&schema)
                .bind(&table)
                .fetch_one(&mut db)
                .await
                .ok()?;
                forced.then_some(())
            }
        },
    )
    .await;
    db.close().await.unwrap();

    // The bucket policy deleted behind the operator's back: put back at the next re-check.
    let s3 =
        videofoundry::storage::S3Storage::new(&videofoundry::storage::S3Connection::from_spec(
            &ready.spec.storage,
            backends.s3_key_id.clone(),
            backends.s3_secret.clone().into(),
            Some(backends.s3_ca.clone().into_bytes()),
        ))
        .unwrap();
    let bucket = ready.spec.storage.bucket.clone();
    assert!(s3.bucket_policy(&bucket).await.unwrap().is_some());
    s3.client()
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let (_, policy_repair) = until(
        "bucket policy restored",
        Duration::from_secs(requeue * 3 + 20),
        || {
            let (s3, bucket) = (&s3, bucket.clone());
            async move { s3.bucket_policy(&bucket).await.ok().flatten() }
        },
    )
    .await;
    eprintln!(
        "repair times: NetworkPolicy deleted {deleted_repair:?}, edited {edited_repair:?}; \
         ServiceAccount deleted {account_repair:?}; RLS un-forced {rls_repair:?}; bucket \
         policy deleted {policy_repair:?} (requeueSeconds {requeue})"
    );
    assert!(
        deleted_repair < Duration::from_secs(10),
        "{deleted_repair:?}"
    );
    assert!(edited_repair < Duration::from_secs(10), "{edited_repair:?}");
    assert!(
        account_repair < Duration::from_secs(10),
        "{account_repair:?}"
    );

    // At rest: once the repairs' own status updates are over, three more re-checks.
    let settled = operator.reconcile_runs(CONTROLLER).await;
    operator
        .await_reconciles(
            CONTROLLER,
            settled + 2,
            Duration::from_secs(requeue * 3 + 30),
        )
        .await;
    let rest = cluster.audit_mark();
    let runs = operator.reconcile_runs(CONTROLLER).await;
    let resting = std::time::Instant::now();
    operator
        .await_reconciles(CONTROLLER, runs + 3, Duration::from_secs(requeue * 5 + 30))
        .await;
    eprintln!(
        "3 re-checks at rest took {:?} (requeueSeconds {requeue})",
        resting.elapsed()
    );
    let at_rest = cluster.operator_writes_since(rest, ns);
    assert!(
        at_rest.is_empty(),
        "writes at rest across 3 re-checks: {at_rest:?}"
    );

    // No PostgreSQL notice spam per reconcile ("relation ... already exists, skipping").
    let log = operator.log_text();
    assert!(!log.contains("already exists, skipping"), "{log}");

    // Across a restart: the new process re-reads everything and writes nothing either.
    operator.stop().await;
    let restart = cluster.audit_mark();
    let operator = Operator::start(&cluster, &dir, "drift-2", &config);
    operator
        .await_reconciles(CONTROLLER, 3, Duration::from_secs(requeue * 4 + 60))
        .await;
    let after_restart = cluster.operator_writes_since(restart, ns);
    assert!(
        after_restart.is_empty(),
        "writes after a restart and two re-checks: {after_restart:?}"
    );
    eprintln!(
        "writes by the operator: {} while provisioning and repairing, 0 at rest over 3 re-checks, 0 after a restart and 2 re-checks",
        cluster.operator_writes_since(mark, ns).len()
    );
    operator.stop().await;
}

#[tokio::test]
async fn two_installations_side_by_side_keep_to_their_own_foundries() {
    let Some(backends) = backends() else { return };
    let Some(cluster) = harness::cluster().await else {
        return;
    };
    videofoundry::install_crypto_provider();
    let namespace = cluster.namespace("two").await;
    let ns = namespace.name.as_str();
    put_credentials(&cluster.client, ns, &backends).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Both are configured as the default class (a mistake the claim must survive), with
    // different Leases, so both run at once.
    let config = |class: &str| {
        format!(
            "watchNamespace: {ns}\nleaderElection: {{leaseName: vf-{class}, leaseNamespace: {ns}}}\n\
             reconcile: {{requeueSeconds: 4}}\ninstallation: {{className: {class}, defaultClass: true}}\n"
        )
    };
    let api: Api<VideoFoundry> = Api::namespaced(cluster.client.clone(), ns);
    // The unnamed foundry is created before either operator runs, so both see it unclaimed.
    api.create(
        &PostParams::default(),
        &foundry("shared", &backends, None, None),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &foundry("blue", &backends, Some("team-b"), None),
    )
    .await
    .unwrap();
    let a = Operator::start(&cluster, &dir, "team-a", &config("team-a"));
    let b = Operator::start(&cluster, &dir, "team-b", &config("team-b"));

    let shared = await_ready(&api, "shared", &a).await;
    let blue = await_ready(&api, "blue", &b).await;
    let owner = shared.status.as_ref().unwrap().claimed_by.clone().unwrap();
    assert!(owner == "team-a" || owner == "team-b", "{owner}");
    assert_eq!(
        blue.status.as_ref().unwrap().claimed_by.as_deref(),
        Some("team-b")
    );

    // Each holds its own configured Lease in the configured namespace.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), ns);
    for (lease, holder) in [("vf-team-a", "team-a"), ("vf-team-b", "team-b")] {
        let held = leases.get(lease).await.unwrap();
        assert_eq!(
            held.spec.and_then(|s| s.holder_identity).as_deref(),
            Some(holder)
        );
    }

    // Both at rest for three re-checks of the shared foundry's owner (the other installation
    // never re-checks a foundry it does not claim): not one write, so no tug of war.
    let keeper = if owner == "team-a" { &a } else { &b };
    let runs = keeper.reconcile_runs(CONTROLLER).await;
    keeper
        .await_reconciles(CONTROLLER, runs + 2, Duration::from_secs(60))
        .await;
    let rest = cluster.audit_mark();
    let runs = keeper.reconcile_runs(CONTROLLER).await;
    keeper
        .await_reconciles(CONTROLLER, runs + 3, Duration::from_secs(60))
        .await;
    let writes = cluster.operator_writes_since(rest, ns);
    assert!(
        writes.is_empty(),
        "two installations wrote at rest: {writes:?}"
    );
    let shared_now = api.get("shared").await.unwrap();
    assert_eq!(
        shared_now.status.as_ref().unwrap().claimed_by.as_deref(),
        Some(owner.as_str()),
        "the first claimant keeps the foundry"
    );

    // Handing a foundry over: naming the other class moves it, once.
    let other = if owner == "team-a" {
        "team-b"
    } else {
        "team-a"
    };
    api.patch(
        "shared",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"className": other}})),
    )
    .await
    .unwrap();
    until("handed over", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let foundry = api.get("shared").await.unwrap();
            (foundry.status?.claimed_by.as_deref() == Some(other)).then_some(())
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_operator_outside_the_cluster_logs_in_to_vault_with_a_requested_token() {
    let Some(backends) = backends() else { return };
    let Some(cluster) = harness::cluster().await else {
        return;
    };
    videofoundry::install_crypto_provider();
    let Some(bao) = vault_harness::bao().await else {
        return;
    };
    let namespace = cluster.namespace("vault").await;
    let ns = namespace.name.as_str();
    put_credentials(&cluster.client, ns, &backends).await;

    // The operator's identity: a ServiceAccount allowed to review tokens (OpenBao reviews the
    // login JWT with the JWT itself), bound in OpenBao to the shipped operator policy.
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "vf-operator"}})).unwrap(),
        )
        .await
        .unwrap();
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
        Api::all(cluster.client.clone());
    let binding = format!("{ns}-auth-delegator");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": binding},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
                "subjects": [{"kind": "ServiceAccount", "name": "vf-operator", "namespace": ns}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let mount = ns.to_owned();
    bao.ensure_auth_method(&mount, "kubernetes").await;
    bao.ensure_secrets_engine("database", "database").await;
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster.kubeconfig).unwrap()).unwrap();
    let cluster_entry = &kubeconfig["clusters"][0]["cluster"];
    use base64::Engine as _;
    let ca = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(
                cluster_entry["certificate-authority-data"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let mut auth_config =
        vaultrs::api::auth::kubernetes::requests::ConfigureKubernetesAuthRequest::builder();
    auth_config
        .kubernetes_ca_cert(ca)
        .disable_local_ca_jwt(true);
    vaultrs::auth::kubernetes::configure(
        bao.root.client(),
        &mount,
        cluster_entry["server"].as_str().unwrap(),
        Some(&mut auth_config),
    )
    .await
    .unwrap();
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/vault-operator-policy.hcl"
    ))
    .unwrap()
    .replace("auth/kubernetes/", &format!("auth/{mount}/"));
    let policy_name = format!("videofoundry-operator-{ns}");
    vaultrs::sys::policy::set(bao.root.client(), &policy_name, &policy)
        .await
        .unwrap();
    let mut role =
        vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequestBuilder::default();
    role.bound_service_account_names(vec!["vf-operator".to_owned()])
        .bound_service_account_namespaces(vec![ns.to_owned()])
        .token_policies(vec![policy_name])
        .token_ttl("15m");
    vaultrs::auth::kubernetes::role::create(
        bao.root.client(),
        &mount,
        "videofoundry-operator",
        Some(&mut role),
    )
    .await
    .unwrap();

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "watchNamespace: {ns}\nleaderElection: {{enabled: false}}\n\
         reconcile: {{requeueSeconds: 4}}\n\
         vault: {{serviceAccount: {{namespace: {ns}, name: vf-operator}}}}\n"
    );
    let mark = cluster.audit_mark();
    let operator = Operator::start(&cluster, &dir, "vault", &config);
    let vault = json!({
        "address": bao.addr,
        "auth": {"kubernetes": {"role": "videofoundry-operator", "mountPath": mount}},
        "backendServiceAccount": "studio-backend",
    });
    let api: Api<VideoFoundry> = Api::namespaced(cluster.client.clone(), ns);
    api.create(
        &PostParams::default(),
        &foundry("studio", &backends, None, Some(vault)),
    )
    .await
    .unwrap();
    let ready = await_ready(&api, "studio", &operator).await;
    let (_, reason, _) = condition(&ready, "SecretsReady").unwrap();
    assert_eq!(reason, "SecretsStoredInVault");
    let relaxed = condition(&ready, "SecurityRelaxed").unwrap().2;
    assert!(
        relaxed.contains("Vault is reached without TLS"),
        "{relaxed}"
    );

    // The backend's role went to the operator's own login mount, not to `kubernetes`.
    let layout =
        videofoundry::secrets::FoundryLayout::for_foundry(ns, "studio", ready.spec.vault.as_ref())
            .unwrap();
    let role = vaultrs::auth::kubernetes::role::read(
        bao.root.client(),
        &mount,
        &layout.backend_auth_role_name(),
    )
    .await
    .unwrap();
    assert_eq!(role.bound_service_account_names, ["studio-backend"]);

    // One TokenRequest, reused by the logins of later re-checks.
    let runs = operator.reconcile_runs(CONTROLLER).await;
    operator
        .await_reconciles(CONTROLLER, runs + 2, Duration::from_secs(60))
        .await;
    let requests: Vec<String> = cluster
        .operator_writes_since(mark, ns)
        .into_iter()
        .filter(|w| w.starts_with("create serviceaccounts/vf-operator/token"))
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    // The Vault keys not created yet answered 404 on the first pass: expected, so not logged as
    // errors (vaultrs' own ERROR line is filtered out).
    let log = operator.log_text();
    assert!(!log.contains("Detected errors in API response"), "{log}");
    operator.stop().await;
    let _ = bindings.delete(&binding, &DeleteParams::default()).await;
}
