//! Postgres tenancy for a VideoFoundry: one schema per foundry, four roles (owner, application,
//! admin, auditor), row-level security that is enabled and forced on every tenant table, drift
//! repair from the catalogs, and the one way to run tenant queries ([`tenant::begin`], with a
//! claim signed by the foundry's [`TenantKey`]).
//!
//! Layout: `names` derives identifiers, `model` is the desired state (pure), `catalog` reads what
//! the server has, `provision` compares and repairs, `deprovision` removes a foundry, `migrations` runs the embedded sqlx
//! migrations inside the foundry's schema, `password` handles the application role's password,
//! `claim` signs and verifies tenant claims, `keys` keeps the keys that verify them, `functions`
//! keeps the verifying function and the key guards, `statistics` keeps planner statistics off
//! tenant tables.

mod catalog;
mod claim;
mod connect;
mod deprovision;
mod error;
mod functions;
mod keys;
mod migrations;
mod model;
mod names;
mod password;
mod provision;
mod sql;
mod statistics;
pub mod tenant;

pub use claim::{CLAIM_SETTING, TENANT_KEY_BYTES, TenantKey};
pub use connect::{connect_admin, parse_url, probe};
pub use deprovision::{DeprovisionReport, deprovision};
pub use error::Error;
pub use keys::add_tenant_keys;
pub use migrations::{MIGRATOR, foundry_schemas, run_migrations, upgrade_all};
pub use model::{SHARED_TABLES, TENANT_TABLES};
pub use names::{FoundryDatabase, RoleNames};
pub use password::{generate_password, scram_sha256_verifier, set_role_password};
pub use provision::{
    Change, ChangeKind, DEFAULT_LOCK_TIMEOUT, ProvisionInput, ProvisionReport, planned_statements,
    provision, provision_with,
};
pub use sql::{quote_ident, quote_literal};
pub use tenant::UserId;
