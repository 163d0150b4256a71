//! Operator settings: process flags (clap, also read from the environment) and the operator
//! configuration file (`config/operator.yaml`), which rejects unknown keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Flags of `run`. Each can also be set by the environment variable shown in `--help`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Operator configuration file (YAML; unknown keys are rejected). Built-in defaults when unset.
    #[arg(long, env = "VF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "VF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,videofoundry=debug`.
    #[arg(long, env = "VF_LOG", default_value = "info")]
    pub log_filter: String,

    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`; overrides the file.
    #[arg(long, env = "VF_HTTP_ADDRESS", value_name = "ADDR")]
    pub http_address: Option<SocketAddr>,

    /// Watch only this namespace instead of the whole cluster; overrides the file.
    #[arg(long, env = "VF_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Identity of this replica in leader election (the pod name); defaults to the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,

    /// Namespace of the leader-election Lease (the operator's own namespace); overrides the file.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,
}

/// The operator configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    /// Address of the HTTP server.
    #[serde(default = "default_http_address")]
    pub http_address: SocketAddr,
    /// Namespace to watch; the whole cluster when unset.
    #[serde(default)]
    pub watch_namespace: Option<String>,
    /// Leader election.
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    /// Reconcile timing.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    /// Render workers.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Which foundries this installation reconciles (one owner per foundry).
    #[serde(default)]
    pub installation: InstallationConfig,
    /// Where the operator gets the JWT it logs in to Vault with (Kubernetes auth).
    #[serde(default)]
    pub vault: VaultLoginConfig,
}

/// Render workers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerConfig {
    /// Image whose static `videofoundry-operator` binary an init container copies into every
    /// worker pod (the render entrypoint): the operator's own image. Pin it by digest. It also
    /// runs each foundry's egress gateway (docs/egress.md).
    #[serde(default = "default_worker_binary_image")]
    pub binary_image: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            binary_image: default_worker_binary_image(),
        }
    }
}

/// The installation's class: like `ingressClassName`, a foundry names the installation that
/// reconciles it in `spec.className`; every other installation leaves it alone.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallationConfig {
    /// This installation's class name (a DNS label).
    #[serde(default = "default_class_name")]
    pub class_name: String,
    /// Also reconcile foundries without `spec.className` (unless another installation already
    /// claimed them in `status.claimedBy`). Exactly one installation per cluster should.
    #[serde(default = "default_true")]
    pub default_class: bool,
}

/// The source of the service-account JWT for Vault's Kubernetes auth. Inside a pod nothing needs
/// setting (the mounted token is used); outside a cluster set one of `tokenFile` and
/// `serviceAccount`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultLoginConfig {
    /// A file holding the JWT, re-read at each login (a projected token rotates).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Request a token for this ServiceAccount through the TokenRequest API of the cluster the
    /// operator talks to (needs `create` on `serviceaccounts/token` for it).
    #[serde(default)]
    pub service_account: Option<ServiceAccountName>,
    /// Audiences of a requested token (the Vault role's `audience`); the API server's default
    /// audience when empty.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Lifetime of a requested token, at least 600; a new one is requested when less than a
    /// fifth of it remains.
    #[serde(default = "default_token_expiration")]
    pub token_expiration_seconds: i64,
}

/// A ServiceAccount by namespace and name.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Leader election settings: one replica reconciles at a time.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// Turn leader election off only when exactly one replica can ever run.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Name of the Lease.
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// Namespace of the Lease; the pod's namespace (`POD_NAMESPACE`) when unset.
    #[serde(default)]
    pub lease_namespace: Option<String>,
    /// How long a lease is held without renewal before another replica may take it.
    #[serde(default = "default_lease_duration")]
    pub lease_duration_seconds: u64,
    /// How long before expiry the holder renews; must be less than the duration.
    #[serde(default = "default_lease_grace")]
    pub renew_grace_seconds: u64,
}

/// Reconcile timing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Re-check interval of healthy objects, for drift that cannot be watched.
    #[serde(default = "default_requeue")]
    pub requeue_seconds: u64,
    /// First retry delay after a transient error; doubles per failure.
    #[serde(default = "default_backoff_min")]
    pub backoff_min_seconds: u64,
    /// Longest retry delay after repeated transient errors.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: u64,
}

fn default_true() -> bool {
    true
}
fn default_http_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_lease_name() -> String {
    "videofoundry-operator".to_owned()
}
fn default_lease_duration() -> u64 {
    15
}
fn default_lease_grace() -> u64 {
    5
}
fn default_worker_binary_image() -> String {
    format!(
        "ghcr.io/videofoundry/videofoundry-operator:{}",
        env!("CARGO_PKG_VERSION")
    )
}
fn default_requeue() -> u64 {
    300
}
fn default_backoff_min() -> u64 {
    5
}
fn default_backoff_max() -> u64 {
    300
}
fn default_class_name() -> String {
    "videofoundry".to_owned()
}
fn default_token_expiration() -> i64 {
    3600
}

impl Default for VaultLoginConfig {
    fn default() -> Self {
        Self {
            token_file: None,
            service_account: None,
            audiences: Vec::new(),
            token_expiration_seconds: default_token_expiration(),
        }
    }
}

impl Default for InstallationConfig {
    fn default() -> Self {
        Self {
            class_name: default_class_name(),
            default_class: true,
        }
    }
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_name: default_lease_name(),
            lease_namespace: None,
            lease_duration_seconds: default_lease_duration(),
            renew_grace_seconds: default_lease_grace(),
        }
    }
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            requeue_seconds: default_requeue(),
            backoff_min_seconds: default_backoff_min(),
            backoff_max_seconds: default_backoff_max(),
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            http_address: default_http_address(),
            watch_namespace: None,
            leader_election: LeaderElectionConfig::default(),
            reconcile: ReconcileConfig::default(),
            worker: WorkerConfig::default(),
            installation: InstallationConfig::default(),
            vault: VaultLoginConfig::default(),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for the configuration, or has unknown keys.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl OperatorConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The file (when given) with the flags applied on top.
    pub fn load(args: &RunArgs) -> Result<Self, ConfigError> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(address) = args.http_address {
            config.http_address = address;
        }
        if let Some(namespace) = &args.watch_namespace {
            config.watch_namespace = Some(namespace.clone());
        }
        if let Some(namespace) = &args.lease_namespace {
            config.leader_election.lease_namespace = Some(namespace.clone());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let lease = &self.leader_election;
        if lease.lease_duration_seconds == 0
            || lease.renew_grace_seconds == 0
            || lease.renew_grace_seconds >= lease.lease_duration_seconds
        {
            return Err(ConfigError::Invalid(
                "leaderElection: need 0 < renewGraceSeconds < leaseDurationSeconds".to_owned(),
            ));
        }
        let reconcile = &self.reconcile;
        if reconcile.requeue_seconds == 0
            || reconcile.backoff_min_seconds == 0
            || reconcile.backoff_min_seconds > reconcile.backoff_max_seconds
        {
            return Err(ConfigError::Invalid(
                "reconcile: need requeueSeconds > 0 and 0 < backoffMinSeconds <= backoffMaxSeconds"
                    .to_owned(),
            ));
        }
        if self.worker.binary_image.trim().is_empty()
            || self.worker.binary_image.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::Invalid(
                "worker.binaryImage must be an image reference".to_owned(),
            ));
        }
        if !is_dns_label(&self.installation.class_name) {
            return Err(ConfigError::Invalid(format!(
                "installation.className {:?} must be a DNS label (a-z, 0-9 and '-', at most 63)",
                self.installation.class_name
            )));
        }
        let vault = &self.vault;
        if vault.token_file.is_some() && vault.service_account.is_some() {
            return Err(ConfigError::Invalid(
                "vault: set at most one of tokenFile and serviceAccount".to_owned(),
            ));
        }
        if vault.token_expiration_seconds < 600 {
            return Err(ConfigError::Invalid(
                "vault.tokenExpirationSeconds must be at least 600 (the API server's minimum)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Re-check interval of healthy objects.
    pub fn requeue_after(&self) -> Duration {
        Duration::from_secs(self.reconcile.requeue_seconds)
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_files_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("operator"))
            {
                OperatorConfig::from_file(&path).unwrap();
                seen += 1;
            }
        }
        assert!(seen >= 1, "config/operator*.yaml must exist");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_yaml::from_str::<OperatorConfig>(
            "httpAddress: 0.0.0.0:8080\nleaderElections: {}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("leaderElections"), "{err}");
    }

    #[test]
    fn the_worker_binary_image_defaults_to_this_version_and_must_be_set() {
        let config: OperatorConfig = serde_yaml::from_str("{}").unwrap();
        assert!(
            config
                .worker
                .binary_image
                .ends_with(concat!(":", env!("CARGO_PKG_VERSION")))
        );
        let config: OperatorConfig = serde_yaml::from_str("worker: {binaryImage: ' '}").unwrap();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn lease_grace_must_be_shorter_than_duration() {
        let config: OperatorConfig =
            serde_yaml::from_str("leaderElection: {leaseDurationSeconds: 5, renewGraceSeconds: 5}")
                .unwrap();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn installation_and_vault_login_settings_are_checked() {
        let config: OperatorConfig =
            serde_yaml::from_str("installation: {className: Team_A}").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("installation.className"), "{err}");

        let both: OperatorConfig =
            serde_yaml::from_str("vault: {tokenFile: /t, serviceAccount: {namespace: a, name: b}}")
                .unwrap();
        assert!(
            both.validate()
                .unwrap_err()
                .to_string()
                .contains("at most one")
        );

        let short: OperatorConfig =
            serde_yaml::from_str("vault: {tokenExpirationSeconds: 60}").unwrap();
        assert!(short.validate().unwrap_err().to_string().contains("600"));

        let fine: OperatorConfig = serde_yaml::from_str(
            "installation: {className: team-a, defaultClass: false}\nvault: {serviceAccount: {namespace: ops, name: vfo}, audiences: [vault]}",
        )
        .unwrap();
        fine.validate().unwrap();
        assert_eq!(fine.installation.class_name, "team-a");
        assert!(!fine.installation.default_class);
    }

    #[test]
    fn requeue_and_backoff_settings_are_range_checked_and_used() {
        let config: OperatorConfig =
            serde_yaml::from_str("reconcile: {requeueSeconds: 7}").unwrap();
        config.validate().unwrap();
        assert_eq!(config.requeue_after(), Duration::from_secs(7));
        for bad in [
            "reconcile: {requeueSeconds: 0}",
            "reconcile: {backoffMinSeconds: 10, backoffMaxSeconds: 5}",
        ] {
            let config: OperatorConfig = serde_yaml::from_str(bad).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
    }
}
