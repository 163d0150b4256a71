//! Video Foundry Operator: runs untrusted ComfyUI video workflows for many tenants on one
//! Kubernetes cluster, isolated at every layer (database, object store, secrets, network, kernel).

pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod egress;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod postgres;
pub mod provisioning;
pub mod resources;
pub mod secrets;
pub mod security_profile;
pub mod storage;
pub mod telemetry;
pub mod vetting;
pub mod worker;

/// Selects rustls' ring provider for the whole process. Several TLS stacks are linked (kube,
/// sqlx, vaultrs, the AWS SDK), which leaves rustls unable to choose one by itself; call this
/// before creating any client. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
