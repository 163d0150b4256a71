//! Removing a foundry from Vault (deletion with `reclaimPolicy: Delete`), each step idempotent
//! (what is already gone counts as removed) and confined to the foundry's own names: its
//! dynamic database credentials revoked, its database-engine role and connection deleted, its
//! KV tree deleted with every version and the metadata, then its policies and auth role.

use reqwest::Method;

use super::error::SecretsError;
use super::layout::FoundryLayout;
use super::vault::VaultSession;

/// Revokes every lease the foundry's database role issued (Vault runs the revocation
/// statements, ending the users' sessions and dropping them), then deletes the role and the
/// connection so no new credentials can be issued. Needs `update` and `sudo` on
/// `sys/leases/revoke-prefix/<db mount>/creds/videofoundry-*` (config/vault-operator-policy.hcl).
pub async fn delete_database_engine(
    session: &VaultSession,
    layout: &FoundryLayout,
) -> Result<(), SecretsError> {
    let mount = &layout.database_mount;
    let role = layout.database_role_name();
    let revoke = format!("sys/leases/revoke-prefix/{mount}/creds/{role}");
    ignore_absent(
        session
            .raw(Method::PUT, &revoke, "revoke database credentials", None)
            .await,
    )?;
    let role_path = format!("{mount}/roles/{role}");
    ignore_absent(
        session
            .raw(Method::DELETE, &role_path, "delete database role", None)
            .await,
    )?;
    let connection = format!("{mount}/config/{}", layout.database_connection_name());
    ignore_absent(
        session
            .raw(
                Method::DELETE,
                &connection,
                "delete database connection",
                None,
            )
            .await,
    )?;
    Ok(())
}

/// Deletes every secret under the foundry's prefix, all versions and metadata, and returns
/// their paths (below the mount). Lists the tree first, so only keys under the foundry's own
/// prefix are touched (a sibling `videofoundry/ns/studio-b` of `videofoundry/ns/studio` is not
/// below `videofoundry/ns/studio/`).
pub async fn delete_kv_tree(
    session: &VaultSession,
    layout: &FoundryLayout,
) -> Result<Vec<String>, SecretsError> {
    let mount = &layout.kv_mount;
    let mut pending = vec![format!("{}/", layout.prefix)];
    let mut deleted = Vec::new();
    while let Some(folder) = pending.pop() {
        let list = format!("{mount}/metadata/{folder}?list=true");
        let listed = match session.raw(Method::GET, &list, "list secrets", None).await {
            Ok(envelope) => envelope,
            Err(SecretsError::Rejected { status: 404, .. } | SecretsError::MountMissing { .. }) => {
                continue;
            }
            Err(error) => return Err(error),
        };
        let keys = listed
            .pointer("/data/keys")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in keys.iter().filter_map(serde_json::Value::as_str) {
            if key.is_empty() || key.starts_with('/') || key.split('/').any(|s| s == "..") {
                continue;
            }
            let path = format!("{folder}{key}");
            if key.ends_with('/') {
                pending.push(path);
                continue;
            }
            let metadata = format!("{mount}/metadata/{path}");
            ignore_absent(
                session
                    .raw(Method::DELETE, &metadata, "delete secret metadata", None)
                    .await,
            )?;
            deleted.push(path);
        }
    }
    deleted.sort();
    Ok(deleted)
}

/// Ok for success, "not found" and a mount that does not exist (nothing can be left in it).
fn ignore_absent(result: Result<serde_json::Value, SecretsError>) -> Result<(), SecretsError> {
    match result {
        Ok(_)
        | Err(SecretsError::Rejected { status: 404, .. } | SecretsError::MountMissing { .. }) => {
            Ok(())
        }
        Err(error) => Err(error),
    }
}
