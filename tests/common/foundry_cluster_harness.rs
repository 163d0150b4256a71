//! The real control plane of `../shared/k8s/start.sh` for the foundry controller's tests
//! (issue 18): a client from `KUBECONFIG`, the CRDs, a throwaway namespace, the operator binary
//! run with a configuration file, its metrics, and the API server's audit log (one JSON object
//! per request; `VF_K8S_AUDIT_LOG`, else `logs/audit.log` beside the kubeconfig) for counting
//! the operator's writes. Skipped (or failed, with `VF_TEST_REQUIRE_SERVICES`) without them.
//! Interim: the lead's shared Kubernetes helper replaces it at merge.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The operator's User-Agent (what the audit log filters on).
pub const OPERATOR_AGENT: &str = videofoundry::cli::run::USER_AGENT;

/// A connected control plane with an audit log.
pub struct Cluster {
    /// Admin client.
    pub client: Client,
    /// The audit log file.
    pub audit_log: PathBuf,
    /// The kubeconfig the operator gets.
    pub kubeconfig: PathBuf,
}

/// The test control plane (`scripts/services/kubernetes.sh`: `VF_TEST_KUBECONFIG`), or `None`
/// (skip) when there is none (see `common::cluster::client`) or its audit log is missing.
pub async fn cluster() -> Option<Cluster> {
    let client = crate::common::cluster::client().await?;
    let kubeconfig = PathBuf::from(
        std::env::var("VF_TEST_KUBECONFIG")
            .or_else(|_| std::env::var("KUBECONFIG"))
            .ok()?,
    );
    let audit_log = std::env::var_os("VF_TEST_K8S_AUDIT_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            kubeconfig
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("logs/audit.log")
        });
    if !audit_log.is_file() {
        crate::common::service_env("VF_TEST_K8S_AUDIT_LOG")?;
        return None;
    }
    install_crds(&client).await;
    Some(Cluster {
        client,
        audit_log,
        kubeconfig,
    })
}

async fn install_crds(client: &Client) {
    crate::common::cluster::install_crds(client).await;
    // The sandbox check wants gVisor's RuntimeClass (shared by every test; same content).
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    classes
        .patch(
            "gvisor",
            &PatchParams::apply("videofoundry-tests").force(),
            &Patch::Apply(
                json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                "metadata": {"name": "gvisor"}, "handler": "runsc"}),
            ),
        )
        .await
        .unwrap();
}

impl Cluster {
    /// A fresh namespace `f18-<prefix>-<random>` (deleted when the guard drops).
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let name = format!(
            "f18-{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
        TestNamespace {
            name,
            client: self.client.clone(),
        }
    }

    /// The current end of the audit log, to count from.
    pub fn audit_mark(&self) -> u64 {
        std::fs::metadata(&self.audit_log).unwrap().len()
    }

    /// Write requests (create, update, patch, delete) in `namespace` since `mark` whose
    /// User-Agent is the operator's, Leases aside, as `verb resource/name` lines.
    pub fn operator_writes_since(&self, mark: u64, namespace: &str) -> Vec<String> {
        self.writes_since(mark, namespace)
            .into_iter()
            .filter(|(agent, _)| agent == OPERATOR_AGENT)
            .map(|(_, line)| line)
            .collect()
    }

    /// Every write request in `namespace` since `mark` (Leases aside): (User-Agent, line).
    pub fn writes_since(&self, mark: u64, namespace: &str) -> Vec<(String, String)> {
        use std::io::{BufRead, Seek};
        let mut file = std::fs::File::open(&self.audit_log).unwrap();
        file.seek(std::io::SeekFrom::Start(mark)).unwrap();
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
            .filter(|entry| entry["stage"] == "ResponseComplete")
            .filter(|entry| entry["objectRef"]["namespace"] == namespace)
            .filter(|entry| {
                matches!(
                    entry["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete" | "deletecollection")
                )
            })
            .filter(|entry| entry["objectRef"]["resource"] != "leases")
            .map(|entry| {
                let reference = &entry["objectRef"];
                (
                    entry["userAgent"].as_str().unwrap_or_default().to_owned(),
                    format!(
                        "{} {}/{}{}",
                        entry["verb"].as_str().unwrap_or_default(),
                        reference["resource"].as_str().unwrap_or_default(),
                        reference["name"].as_str().unwrap_or_default(),
                        reference["subresource"]
                            .as_str()
                            .map(|s| format!("/{s}"))
                            .unwrap_or_default()
                    ),
                )
            })
            .collect()
    }
}

/// A namespace deleted on drop (in the background; the API server finishes it).
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

/// A running operator process.
pub struct Operator {
    child: tokio::process::Child,
    /// Its metrics address.
    pub http: std::net::SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

/// A free loopback port.
pub fn free_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl Operator {
    /// Starts `videofoundry-operator run` with `config` (YAML; `httpAddress` is added) against
    /// `cluster`, logging to a file in `dir`.
    pub fn start(
        cluster: &Cluster,
        dir: &std::sync::Arc<tempfile::TempDir>,
        label: &str,
        config: &str,
    ) -> Self {
        let http = free_address();
        let config_path = dir.path().join(format!("{label}.yaml"));
        std::fs::write(&config_path, format!("httpAddress: {http}\n{config}")).unwrap();
        let log = dir.path().join(format!("{label}.log"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("VF_LOG", "info,videofoundry=debug")
            .env("POD_NAME", label)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            child,
            http,
            log,
            _dir: dir.clone(),
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the operator did not stop within 20 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}; log:\n{}", self.log_text());
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `reconcile_runs` of `controller` from `/metrics` (0 before the server is up).
    pub async fn reconcile_runs(&self, controller: &str) -> u64 {
        let Ok(response) = reqwest::get(format!("http://{}/metrics", self.http)).await else {
            return 0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.contains("reconcile_runs")
                    && line.contains(&format!("controller=\"{controller}\""))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|value| value as u64)
            .sum()
    }

    /// Waits until `reconcile_runs` of `controller` reaches `count` (the operator's own clock
    /// decides when re-checks happen; this only follows it).
    pub async fn await_reconciles(&self, controller: &str, count: u64, within: Duration) {
        let started = Instant::now();
        while self.reconcile_runs(controller).await < count {
            assert!(
                started.elapsed() < within,
                "fewer than {count} {controller} reconciles within {within:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `within`; returns the value
/// and how long it took.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return (value, started.elapsed());
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
