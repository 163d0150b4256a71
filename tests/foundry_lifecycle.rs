//! A foundry's whole life on the real control plane with the real PostgreSQL, OpenBao and Ceph
//! RGW (issue 13): two foundries sharing one database, one Vault KV and database mount and one
//! bucket; one deleted with `Retain` (everything kept, named in an Event) and re-created (its
//! data adopted), then deleted with `Delete` (nothing of it left in `pg_roles`, `pg_namespace`,
//! Vault's KV metadata, policies, auth and database roles, or the bucket policy; the other
//! foundry untouched); deletion with a backend down (finalizer kept, step named) and up again;
//! the admin's way out; immutable fields refused by the API server; the namespace quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/foundry_cluster_harness.rs"]
mod harness;
#[path = "common/vault_harness.rs"]
mod vault_harness;

use std::str::FromStr;
use std::sync::Arc;

use common::cluster::{wait_for, wait_for_event, wait_gone};
use harness::Operator;
use k8s_openapi::api::core::v1::{ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Connection as _;
use videofoundry::crd::VideoFoundry;
use videofoundry::postgres::{FoundryDatabase, quote_ident};
use videofoundry::secrets::FoundryLayout;
use videofoundry::storage::{S3Connection, S3Storage};

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

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

async fn put_secret(client: &Client, namespace: &str, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    api.patch(
        name,
        &PatchParams::apply("videofoundry-tests").force(),
        &Patch::Apply(&secret),
    )
    .await
    .unwrap();
}

/// The admin Secrets the foundries read, in `namespace`.
async fn put_credentials(client: &Client, namespace: &str, backends: &Backends) {
    put_secret(
        client,
        namespace,
        "pg-admin",
        json!({"url": backends.postgres_url}),
    )
    .await;
    put_secret(
        client,
        namespace,
        "s3-admin",
        json!({"accessKeyId": backends.s3_key_id, "secretAccessKey": backends.s3_secret,
               "ca.crt": backends.s3_ca}),
    )
    .await;
}

fn admin_storage(backends: &Backends) -> S3Storage {
    S3Storage::new(&S3Connection {
        endpoint: backends.s3_endpoint.clone(),
        region: "us-east-1".to_owned(),
        force_path_style: true,
        access_key_id: backends.s3_key_id.clone(),
        secret_access_key: SecretString::from(backends.s3_secret.clone()),
        extra_ca_pem: Some(backends.s3_ca.clone().into_bytes()),
    })
    .unwrap()
}

/// A developer-mode foundry (plain-text Postgres and Vault are allowed there).
fn foundry(name: &str, database: &str, storage: Value, extra: Value) -> VideoFoundry {
    let mut spec = json!({
        "executionMode": "developer",
        "database": {"connectionSecretRef": {"name": "pg-admin", "key": "url"},
                     "databaseName": database},
        "storage": storage,
        "workers": {"image": "registry.example/worker@sha256:4f6e3b0c1d2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"},
    });
    merge(&mut spec, extra);
    serde_json::from_value(json!({
        "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
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

fn is_ready(foundry: &VideoFoundry) -> bool {
    condition(foundry, "Ready").is_some_and(|(status, _, _)| status == "True")
}

/// A connection to `database` as the admin.
async fn database(backends: &Backends, database: &str) -> sqlx::PgConnection {
    let options = sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url)
        .unwrap()
        .database(database);
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

async fn roles_present(conn: &mut sqlx::PgConnection, db: &FoundryDatabase) -> Vec<String> {
    let roles: Vec<String> = db.roles.all().iter().map(|r| (*r).to_owned()).collect();
    sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1")
        .bind(&roles)
        .fetch_all(conn)
        .await
        .unwrap()
}

async fn schema_present(conn: &mut sqlx::PgConnection, db: &FoundryDatabase) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(&db.schema)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The bucket policy's statements whose `Sid` starts with `id`.
async fn statements_of(storage: &S3Storage, bucket: &str, id: &str) -> Vec<Value> {
    let policy = storage.bucket_policy(bucket).await.unwrap();
    policy
        .and_then(|p| p.get("Statement").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["Sid"].as_str().is_some_and(|sid| sid.starts_with(id)))
        .collect()
}

async fn object_exists(storage: &S3Storage, bucket: &str, key: &str) -> bool {
    storage
        .client()
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

async fn put_object(storage: &S3Storage, bucket: &str, key: &str) {
    storage
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"frame"))
        .send()
        .await
        .unwrap();
}

/// Everything Vault holds for a foundry, as a list of what exists (empty when all is gone).
async fn vault_leftovers(bao: &vault_harness::Bao, layout: &FoundryLayout) -> Vec<String> {
    let root = bao.root.client();
    let mut left = Vec::new();
    if let Ok(keys) = vaultrs::kv2::list(root, &layout.kv_mount, &layout.prefix).await
        && !keys.is_empty()
    {
        left.push(format!(
            "KV {}/{}: {keys:?}",
            layout.kv_mount, layout.prefix
        ));
    }
    for policy in [layout.backend_policy_name(), layout.operator_policy_name()] {
        if vaultrs::sys::policy::read(root, &policy).await.is_ok() {
            left.push(format!("policy {policy}"));
        }
    }
    let role = layout.backend_auth_role_name();
    if vaultrs::auth::kubernetes::role::read(root, "kubernetes", &role)
        .await
        .is_ok()
    {
        left.push(format!("auth role {role}"));
    }
    let db_role = layout.database_role_name();
    if vaultrs::database::role::read(root, &layout.database_mount, &db_role)
        .await
        .is_ok()
    {
        left.push(format!("database role {db_role}"));
    }
    let connection = layout.database_connection_name();
    if vaultrs::database::connection::read(root, &layout.database_mount, &connection)
        .await
        .is_ok()
    {
        left.push(format!("database connection {connection}"));
    }
    left
}

async fn labelled_children(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let selector = format!("videofoundry.dev/foundry={name}");
    let params = ListParams::default().labels(&selector);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let mut found: Vec<String> = policies
        .list(&params)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| format!("NetworkPolicy {}", p.metadata.name.unwrap_or_default()))
        .collect();
    found.extend(
        accounts
            .list(&params)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|a| format!("ServiceAccount {}", a.metadata.name.unwrap_or_default())),
    );
    found
}

async fn event_note(client: &Client, namespace: &str, reason: &str) -> String {
    wait_for_event(client, namespace, reason)
        .await
        .note
        .unwrap_or_default()
}

/// Deletes the foundries left in `namespace` with the skip annotation, so a failed test does not
/// leave the namespace stuck behind their finalizers.
async fn let_go(client: &Client, namespace: &str) {
    let api: Api<VideoFoundry> = Api::namespaced(client.clone(), namespace);
    for foundry in api.list(&ListParams::default()).await.unwrap().items {
        let name = foundry.metadata.name.unwrap_or_default();
        let patch = json!({"metadata": {"finalizers": null}});
        let _ = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
}

#[tokio::test]
async fn two_foundries_share_backends_retain_is_adopted_and_delete_removes_only_its_own() {
    let Some(backends) = backends() else { return };
    let Some(cluster) = harness::cluster().await else {
        return;
    };
    videofoundry::install_crypto_provider();
    let Some(bao) = vault_harness::bao().await else {
        return;
    };
    let Some(tenant_a) = common::service_env("VF_TEST_S3_TENANT_A_ARN") else {
        return;
    };
    let Some(tenant_b) = common::service_env("VF_TEST_S3_TENANT_B_ARN") else {
        return;
    };
    let namespace = cluster.namespace("life").await;
    let ns = namespace.name.as_str();
    let client = cluster.client.clone();
    put_credentials(&client, ns, &backends).await;

    // The operator logs in to OpenBao with a token carrying exactly the shipped operator policy.
    bao.ensure_secrets_engine("database", "database").await;
    bao.ensure_auth_method("kubernetes", "kubernetes").await;
    let policy_name = format!("videofoundry-operator-{ns}");
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/vault-operator-policy.hcl"
    ))
    .unwrap();
    vaultrs::sys::policy::set(bao.root.client(), &policy_name, &policy)
        .await
        .unwrap();
    let (_session, token) = bao
        .session_with_policies(std::slice::from_ref(&policy_name))
        .await;
    use secrecy::ExposeSecret as _;
    put_secret(
        &client,
        ns,
        "vault-token",
        json!({"token": token.expose_secret()}),
    )
    .await;

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "watchNamespace: {ns}\nleaderElection: {{enabled: false}}\nreconcile: {{requeueSeconds: 30}}\n"
    );
    let operator = Operator::start(&cluster, &dir, "lifecycle", &config);

    let id = unique();
    let db_name = format!("vf_life_{id}");
    let bucket = format!("vf-life-{id}");
    let vault = json!({"vault": {"address": bao.addr, "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
                                 "backendServiceAccount": "studio-backend"}});
    let storage = |prefix: &str, principal: &str| {
        json!({"endpoint": backends.s3_endpoint, "bucket": bucket, "prefix": prefix,
               "forcePathStyle": true, "credentialsSecretRef": {"name": "s3-admin"},
               "tenantPrincipal": principal})
    };
    let api: Api<VideoFoundry> = Api::namespaced(client.clone(), ns);
    // B first: it creates the shared bucket; A then shares it.
    let b = foundry(
        "studio-b",
        &db_name,
        storage("studio-b/", &tenant_b),
        merge_all(
            vault.clone(),
            json!({"database": {"reclaimPolicy": "Delete"}}),
        ),
    );
    api.create(&PostParams::default(), &b).await.unwrap();
    wait_for(&api, "studio-b", "Ready", is_ready).await;
    let a = foundry(
        "studio-a",
        &db_name,
        storage("studio-a/", &tenant_a),
        vault.clone(),
    );
    api.create(&PostParams::default(), &a).await.unwrap();
    let ready_a = wait_for(&api, "studio-a", "Ready", is_ready).await;
    assert!(
        ready_a
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&"videofoundries.videofoundry.dev/cleanup".to_owned())),
        "{:?}",
        ready_a.metadata.finalizers
    );

    let db_a = FoundryDatabase::for_foundry(ns, "studio-a").unwrap();
    let db_b = FoundryDatabase::for_foundry(ns, "studio-b").unwrap();
    let layout_a = FoundryLayout::for_foundry(ns, "studio-a", ready_a.spec.vault.as_ref()).unwrap();
    let layout_b = FoundryLayout::for_foundry(ns, "studio-b", ready_a.spec.vault.as_ref()).unwrap();
    let id_a = videofoundry::storage::foundry::foundry_id(ns, "studio-a");
    let id_b = videofoundry::storage::foundry::foundry_id(ns, "studio-b");
    let s3 = admin_storage(&backends);

    // Tenant data of both: a row, an object, the Vault secrets the operator wrote.
    let mut admin = database(&backends, &db_name).await;
    let user = uuid::Uuid::new_v4();
    for db in [&db_a, &db_b] {
        let insert = format!(
            "INSERT INTO {}.users (id, email) VALUES ($1, $2)",
            quote_ident(&db.schema)
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(user)
            .bind(format!("{}@example.com", db.schema))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let key_a = format!("studio-a/users/{user}/uploads/a.png");
    let key_b = format!("studio-b/users/{user}/uploads/b.png");
    put_object(&s3, &bucket, &key_a).await;
    put_object(&s3, &bucket, &key_b).await;
    let secret_a = videofoundry::secrets::kv::read_latest(
        &bao.root,
        &layout_a.kv_mount,
        &format!("{}/database", layout_a.prefix),
    )
    .await
    .unwrap()
    .unwrap();
    let statements_a = statements_of(&s3, &bucket, &id_a).await;
    let statements_b = statements_of(&s3, &bucket, &id_b).await;
    assert!(!statements_a.is_empty() && !statements_b.is_empty());
    assert!(vault_leftovers(&bao, &layout_b).await.len() >= 5);

    // Retain: everything stays, and the Event says what and where.
    api.delete("studio-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&api, "studio-a").await;
    let note = event_note(&client, ns, "Retained").await;
    for kept in [
        db_a.schema.as_str(),
        db_a.roles.application.as_str(),
        &format!("{}/{}/", layout_a.kv_mount, layout_a.prefix),
        &layout_a.backend_policy_name(),
        &layout_a.backend_auth_role_name(),
        &bucket,
        "studio-a/",
    ] {
        assert!(note.contains(kept), "{kept} missing from: {note}");
    }
    assert_eq!(roles_present(&mut admin, &db_a).await.len(), 4);
    assert!(schema_present(&mut admin, &db_a).await);
    assert_eq!(vault_leftovers(&bao, &layout_a).await.len(), 6);
    assert_eq!(statements_of(&s3, &bucket, &id_a).await, statements_a);
    assert!(object_exists(&s3, &bucket, &key_a).await);

    // Re-created under the same name: adopted, not provisioned afresh. This time with Delete,
    // objects included.
    let again = foundry(
        "studio-a",
        &db_name,
        merge_all(
            storage("studio-a/", &tenant_a),
            json!({"objectReclaimPolicy": "Delete"}),
        ),
        merge_all(
            vault.clone(),
            json!({"database": {"reclaimPolicy": "Delete"}}),
        ),
    );
    api.create(&PostParams::default(), &again).await.unwrap();
    wait_for(&api, "studio-a", "Ready", is_ready).await;
    let adopted = videofoundry::secrets::kv::read_latest(
        &bao.root,
        &layout_a.kv_mount,
        &format!("{}/database", layout_a.prefix),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        adopted.version, secret_a.version,
        "the password was not regenerated"
    );
    let read = format!(
        "SELECT count(*) FROM {}.users WHERE id = $1",
        quote_ident(&db_a.schema)
    );
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(read.clone()))
        .bind(user)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the retained row is there after adoption");

    // A dynamic user issued by Vault, and an open session of A's application role.
    let dynamic = videofoundry::secrets::database::issue_credentials(&bao.root, &layout_a)
        .await
        .unwrap();
    let app_password = adopted.fields.get("password").unwrap().clone();
    let app_options = sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url)
        .unwrap()
        .database(&db_name)
        .username(&db_a.roles.application)
        .password(app_password.expose_secret());
    let mut app_session = sqlx::PgConnection::connect_with(&app_options)
        .await
        .unwrap();
    sqlx::query("SELECT 1")
        .execute(&mut app_session)
        .await
        .unwrap();

    // Delete: nothing of A is left; B is untouched.
    let rows_b_before: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.users",
        quote_ident(&db_b.schema)
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    api.delete("studio-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&api, "studio-a").await;
    let note = event_note(&client, ns, "Reclaimed").await;
    assert!(note.contains(&db_a.schema), "{note}");
    assert!(roles_present(&mut admin, &db_a).await.is_empty());
    assert!(!schema_present(&mut admin, &db_a).await);
    let dynamic_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&dynamic.username)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(
        !dynamic_left,
        "the dynamic user {} was revoked",
        dynamic.username
    );
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut app_session)
            .await
            .is_err(),
        "the application role's session was ended"
    );
    assert_eq!(vault_leftovers(&bao, &layout_a).await, Vec::<String>::new());
    assert!(statements_of(&s3, &bucket, &id_a).await.is_empty());
    assert!(!object_exists(&s3, &bucket, &key_a).await);
    assert!(labelled_children(&client, ns, "studio-a").await.is_empty());

    assert_eq!(statements_of(&s3, &bucket, &id_b).await, statements_b);
    assert!(object_exists(&s3, &bucket, &key_b).await);
    assert_eq!(roles_present(&mut admin, &db_b).await.len(), 4);
    let rows_b: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.users",
        quote_ident(&db_b.schema)
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(rows_b, rows_b_before);
    assert_eq!(vault_leftovers(&bao, &layout_b).await.len(), 6);
    assert!(!labelled_children(&client, ns, "studio-b").await.is_empty());
    let b_now = api.get("studio-b").await.unwrap();
    assert!(is_ready(&b_now), "{:#?}", b_now.status);

    // B goes too, so the namespace is left clean.
    api.delete("studio-b", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&api, "studio-b").await;
    assert!(roles_present(&mut admin, &db_b).await.is_empty());
    assert_eq!(vault_leftovers(&bao, &layout_b).await, Vec::<String>::new());
    assert!(statements_of(&s3, &bucket, &id_b).await.is_empty());
    assert!(
        object_exists(&s3, &bucket, &key_b).await,
        "objects stay unless objectReclaimPolicy is Delete"
    );
    let _ = admin.close().await;
    let_go(&client, ns).await;
    operator.stop().await;
    drop_database(&backends, &db_name).await;
}

/// Drops a test's database (its foundries' roles are gone already).
async fn drop_database(backends: &Backends, name: &str) {
    let options = sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url).unwrap();
    let mut server = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut server)
        .await
        .unwrap();
    let _ = server.close().await;
}

fn merge_all(mut base: Value, extra: Value) -> Value {
    merge(&mut base, extra);
    base
}

#[tokio::test]
async fn a_backend_down_keeps_the_finalizer_and_names_the_step_until_it_is_back_or_waived() {
    let Some(backends) = backends() else { return };
    let Some(cluster) = harness::cluster().await else {
        return;
    };
    videofoundry::install_crypto_provider();
    let namespace = cluster.namespace("life-down").await;
    let ns = namespace.name.as_str();
    let client = cluster.client.clone();
    put_credentials(&client, ns, &backends).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "watchNamespace: {ns}\nleaderElection: {{enabled: false}}\nreconcile: {{requeueSeconds: 30}}\n"
    );
    let operator = Operator::start(&cluster, &dir, "down", &config);

    let id = unique();
    let db_name = format!("vf_down_{id}");
    let api: Api<VideoFoundry> = Api::namespaced(client.clone(), ns);
    for name in ["studio-c", "studio-d"] {
        let spec_storage = json!({"endpoint": backends.s3_endpoint, "bucket": format!("vf-down-{id}"),
            "prefix": format!("{name}/"), "forcePathStyle": true,
            "credentialsSecretRef": {"name": "s3-admin"}});
        let extra = json!({"database": {"reclaimPolicy": "Delete"},
                           "quota": {"otherPods": 3, "gpus": 2}});
        api.create(
            &PostParams::default(),
            &foundry(name, &db_name, spec_storage, extra),
        )
        .await
        .unwrap();
    }
    wait_for(&api, "studio-c", "Ready", is_ready).await;
    wait_for(&api, "studio-d", "Ready", is_ready).await;

    // The quota option: pods = maxConcurrentRenders (20) + otherPods, GPUs capped.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let quota = quotas.get("studio-c-workers").await;
    let quota = match quota {
        Ok(quota) => quota,
        Err(_) => {
            let names: Vec<String> = quotas
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|q| q.metadata.name.unwrap_or_default())
                .collect();
            panic!("no quota named studio-c-workers; found {names:?}");
        }
    };
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["pods"].0, "23");
    assert_eq!(hard["requests.nvidia.com/gpu"].0, "2");
    // Enforced by the API server (once the quota controller has counted the namespace): a pod
    // asking for more GPUs than the cap is refused, whoever creates it.
    wait_for(
        &quotas,
        "studio-c-workers",
        "the quota counted",
        |q: &ResourceQuota| q.status.as_ref().and_then(|s| s.hard.as_ref()).is_some(),
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let greedy = serde_json::from_value(json!({
        "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/x:1",
            "resources": {"requests": {"nvidia.com/gpu": "3"}, "limits": {"nvidia.com/gpu": "3"}}}]}
    }))
    .unwrap();
    let refused = pods
        .create(&PostParams::default(), &greedy)
        .await
        .expect_err("a pod over the GPU cap was admitted");
    assert!(refused.to_string().contains("exceeded quota"), "{refused}");

    // The database "goes down": the admin URL points at a closed port.
    let closed = harness::free_address();
    let broken = backends.postgres_url.replacen(
        &url_host_port(&backends.postgres_url),
        &format!("127.0.0.1:{}", closed.port()),
        1,
    );
    put_secret(&client, ns, "pg-admin", json!({"url": broken})).await;
    api.delete("studio-c", &DeleteParams::default())
        .await
        .unwrap();
    api.delete("studio-d", &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_for(&api, "studio-c", "Reclaimed=False naming the step", |f| {
        condition(f, "Reclaimed")
            .is_some_and(|(status, reason, _)| status == "False" && reason == "DatabaseFailed")
    })
    .await;
    let (_, _, message) = condition(&blocked, "Reclaimed").unwrap();
    assert!(message.contains("step Database failed"), "{message}");
    assert!(
        message
            .contains("kubectl annotate videofoundry studio-c videofoundry.dev/skip-reclaim=true"),
        "{message}"
    );
    let password = url_password(&backends.postgres_url);
    assert!(!message.contains(&password), "no secret in the status");
    let warning = wait_for_event(&client, ns, "ReclaimBlocked").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let db_c = FoundryDatabase::for_foundry(ns, "studio-c").unwrap();
    let db_d = FoundryDatabase::for_foundry(ns, "studio-d").unwrap();

    // The admin accepts the loss for D: it goes, and the Event names what was left.
    let skip = json!({"metadata": {"annotations": {"videofoundry.dev/skip-reclaim": "true"}}});
    api.patch("studio-d", &PatchParams::default(), &Patch::Merge(&skip))
        .await
        .unwrap();
    wait_gone(&api, "studio-d").await;
    let skipped = event_note(&client, ns, "ReclaimSkipped").await;
    assert!(skipped.contains("Database"), "{skipped}");
    assert!(
        api.get_opt("studio-c").await.unwrap().is_some(),
        "C still waits"
    );

    // The database is back: C's reclaim completes.
    put_secret(
        &client,
        ns,
        "pg-admin",
        json!({"url": backends.postgres_url}),
    )
    .await;
    wait_gone(&api, "studio-c").await;
    let mut admin = database(&backends, &db_name).await;
    assert!(roles_present(&mut admin, &db_c).await.is_empty());
    assert!(!schema_present(&mut admin, &db_c).await);
    // D's were left behind, as its Event said: removed here by hand.
    assert_eq!(roles_present(&mut admin, &db_d).await.len(), 4);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::postgres::PgConnectOptions::from_str(&backends.postgres_url)
                .unwrap()
                .database(&db_name),
        )
        .await
        .unwrap();
    videofoundry::postgres::deprovision(&pool, &db_d)
        .await
        .unwrap();
    assert!(roles_present(&mut admin, &db_d).await.is_empty());
    assert!(
        quotas
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "the quotas went with their foundries"
    );
    let _ = admin.close().await;
    pool.close().await;
    let_go(&client, ns).await;
    operator.stop().await;
    drop_database(&backends, &db_name).await;
}

/// `host:port` of a postgres URL.
fn url_host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    after_at.split('/').next().unwrap_or_default().to_owned()
}

fn url_password(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|auth| auth.split(':').nth(1))
        .unwrap_or("no-password-in-url")
        .to_owned()
}

#[tokio::test]
async fn fields_that_locate_tenant_data_are_immutable_and_the_api_server_says_what_to_do() {
    let Some(client) = common::cluster::client().await else {
        return;
    };
    common::cluster::install_crds(&client).await;
    let ns = common::cluster::namespace(&client, "life-immutable").await;
    let api: Api<VideoFoundry> = Api::namespaced(client.clone(), &ns);
    let storage = json!({"endpoint": "http://127.0.0.1:9", "bucket": "vf-immutable",
                         "prefix": "studio/", "credentialsSecretRef": {"name": "s3-admin"}});
    let vault = json!({"vault": {"address": "http://127.0.0.1:8200",
                                 "auth": {"tokenSecretRef": {"name": "t", "key": "token"}},
                                 "pathPrefix": "videofoundry/a/b"}});
    api.create(
        &PostParams::default(),
        &foundry("studio", "vf_immutable", storage, vault),
    )
    .await
    .unwrap();

    for (patch, says) in [
        (
            json!({"spec": {"database": {"databaseName": "elsewhere"}}}),
            "database.databaseName is immutable",
        ),
        (
            json!({"spec": {"storage": {"bucket": "vf-other"}}}),
            "storage.bucket and storage.prefix are immutable",
        ),
        (
            json!({"spec": {"storage": {"prefix": "other/"}}}),
            "storage.bucket and storage.prefix are immutable",
        ),
        (
            json!({"spec": {"storage": {"prefix": null}}}),
            "storage.bucket and storage.prefix are immutable",
        ),
        (
            json!({"spec": {"vault": {"pathPrefix": "videofoundry/a/c"}}}),
            "vault.kvMount and vault.pathPrefix are immutable",
        ),
        (
            json!({"spec": {"vault": {"kvMount": "kv"}}}),
            "vault.kvMount and vault.pathPrefix are immutable",
        ),
    ] {
        let refused = api
            .patch("studio", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err(&format!("{patch} was accepted"));
        let kube::Error::Api(status) = refused else {
            panic!("{refused}")
        };
        assert_eq!(status.code, 422, "{status:?}");
        assert!(status.message.contains(says), "{}", status.message);
        assert!(
            status.message.contains("create a new VideoFoundry"),
            "{}",
            status.message
        );
    }
    // Mutable fields change freely.
    let mutable = json!({"spec": {"workers": {"maxConcurrentRenders": 3},
                                  "network": {"egress": "blocked"},
                                  "database": {"reclaimPolicy": "Delete"},
                                  "quota": {"gpus": 1}}});
    let changed = api
        .patch("studio", &PatchParams::default(), &Patch::Merge(&mutable))
        .await
        .unwrap();
    assert_eq!(changed.spec.workers.max_concurrent_renders, 3);
    let _ = api.delete("studio", &DeleteParams::default()).await;
}
