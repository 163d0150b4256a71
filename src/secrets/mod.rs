//! Foundry secrets in Vault (or OpenBao): the KV v2 layout, check-and-set writes, strong
//! generation, least-privilege policies and Kubernetes auth, dynamic database credentials,
//! rotation, the `SecretsReady` condition, and the developer-mode Kubernetes-Secret fallback.
//! See docs/secrets.md.

pub mod access;
pub mod database;
pub mod database_rotation;
pub mod developer_secret;
pub mod error;
pub mod generate;
pub mod kv;
pub mod layout;
pub mod plan;
pub mod reclaim;
pub mod rotation;
pub mod tenant_key;
pub mod vault;

pub use error::SecretsError;
pub use layout::{FoundryLayout, SecretKey};
pub use vault::{ServiceAccountJwt, VaultLogin, VaultSession};
