//! Video Foundry Operator: runs untrusted ComfyUI video workflows for many tenants on one
//! Kubernetes cluster, isolated at every layer (database, object store, secrets, network, kernel).

pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod http;
pub mod metrics;
pub mod telemetry;
