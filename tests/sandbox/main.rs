//! Proofs about the sandbox builders (`src/resources`): Kubernetes schema validity, the Pod
//! Security Standards `restricted` profile, NetworkPolicy semantics, golden files, and a real
//! gVisor run of a probe with a worker's restrictions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod builders;
mod fixtures;
mod golden;
mod netpol_evaluator;
mod network;
mod properties;
mod pss;
mod runsc;
mod schema;
mod worker_runsc;
