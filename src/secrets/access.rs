//! Least privilege in Vault: the foundry's ACL policies and the Kubernetes auth role that binds
//! the platform backend's service account to its policy.
//!
//! The session that calls these needs `sys/policy/videofoundry-*` and
//! `auth/<mount>/role/videofoundry-*` (the operator's platform-level policy, see
//! docs/secrets.md); the foundry policies themselves grant nothing outside the foundry.

use vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequestBuilder;

use super::error::SecretsError;
use super::layout::FoundryLayout;
use super::vault::VaultSession;

/// The platform backend's Kubernetes identity and token lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendIdentity {
    /// Namespace of the backend's service account.
    pub namespace: String,
    /// Name of the backend's service account.
    pub service_account: String,
    /// Lifetime of the tokens it gets, e.g. `1h`.
    pub token_ttl: String,
}

/// The platform-level policy of the identity that writes the foundries' policies and auth roles
/// (the operator's bootstrap login, or a platform pipeline). It is confined by name to
/// `videofoundry-*` objects, but an identity that can write policies can grant any path through
/// one, so it is the most sensitive Vault identity here: keep its login separate from the
/// per-foundry tokens, which carry [`FoundryLayout::build_operator_policy`] only.
pub fn build_provisioner_policy(auth_mount: &str) -> String {
    format!(
        r#"# Writes the VideoFoundry policies and Kubernetes auth roles, nothing else.
path "sys/policies/acl/videofoundry-*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
# The same policies through the older endpoint, which vaultrs uses.
path "sys/policy/videofoundry-*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
path "auth/{auth_mount}/role/videofoundry-*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
"#
    )
}

/// Writes (or overwrites, idempotently) the backend and operator policies of the foundry.
pub async fn ensure_policies(
    session: &VaultSession,
    layout: &FoundryLayout,
) -> Result<(), SecretsError> {
    for (name, policy) in [
        (layout.backend_policy_name(), layout.build_backend_policy()),
        (
            layout.operator_policy_name(),
            layout.build_operator_policy(),
        ),
    ] {
        vaultrs::sys::policy::set(session.client(), &name, &policy)
            .await
            .map_err(|e| session.error(&e, "write policy", &format!("sys/policy/{name}")))?;
    }
    Ok(())
}

/// The Kubernetes auth role of the platform backend, as written to `auth/<mount>/role/<name>`
/// (`token_max_ttl` equals `token_ttl`, and the default policy is never attached).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendAuthRole {
    /// The role's name.
    pub name: String,
    /// The backend's service account.
    pub bound_service_account_names: Vec<String>,
    /// Its namespace.
    pub bound_service_account_namespaces: Vec<String>,
    /// The backend policy only.
    pub token_policies: Vec<String>,
    /// Lifetime of the tokens.
    pub token_ttl: String,
}

/// The backend's auth role (pure: `plan` prints it offline).
pub fn build_backend_auth_role(
    layout: &FoundryLayout,
    backend: &BackendIdentity,
) -> BackendAuthRole {
    BackendAuthRole {
        name: layout.backend_auth_role_name(),
        bound_service_account_names: vec![backend.service_account.clone()],
        bound_service_account_namespaces: vec![backend.namespace.clone()],
        token_policies: vec![layout.backend_policy_name()],
        token_ttl: backend.token_ttl.clone(),
    }
}

/// Binds the backend's service account to the backend policy through Kubernetes auth at
/// `auth_mount` (idempotent: the role is overwritten with the same content).
pub async fn ensure_backend_auth_role(
    session: &VaultSession,
    auth_mount: &str,
    layout: &FoundryLayout,
    backend: &BackendIdentity,
) -> Result<(), SecretsError> {
    let role = layout.backend_auth_role_name();
    let wanted = build_backend_auth_role(layout, backend);
    let mut options = CreateKubernetesRoleRequestBuilder::default();
    options
        .bound_service_account_names(wanted.bound_service_account_names)
        .bound_service_account_namespaces(wanted.bound_service_account_namespaces)
        .token_policies(wanted.token_policies)
        .token_ttl(wanted.token_ttl.clone())
        .token_max_ttl(wanted.token_ttl)
        .token_no_default_policy(true);
    vaultrs::auth::kubernetes::role::create(session.client(), auth_mount, &role, Some(&mut options))
        .await
        .map_err(|e| {
            session.error(
                &e,
                "write auth role",
                &format!("auth/{auth_mount}/role/{role}"),
            )
        })
}

/// Removes the foundry's policies and auth role (foundry deletion with `reclaimPolicy: Delete`).
/// Already-absent objects count as removed.
pub async fn delete_access(
    session: &VaultSession,
    auth_mount: &str,
    layout: &FoundryLayout,
) -> Result<(), SecretsError> {
    let role = layout.backend_auth_role_name();
    match vaultrs::auth::kubernetes::role::delete(session.client(), auth_mount, &role).await {
        Ok(()) | Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => {}
        Err(e) => {
            return Err(session.error(
                &e,
                "delete auth role",
                &format!("auth/{auth_mount}/role/{role}"),
            ));
        }
    }
    for name in [layout.backend_policy_name(), layout.operator_policy_name()] {
        match vaultrs::sys::policy::delete(session.client(), &name).await {
            Ok(()) | Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => {}
            Err(e) => {
                return Err(session.error(&e, "delete policy", &format!("sys/policy/{name}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provisioner_policy_reaches_only_videofoundry_objects() {
        let policy = build_provisioner_policy("kubernetes");
        for line in policy.lines().filter(|l| l.starts_with("path ")) {
            assert!(line.contains("/videofoundry-*\""), "{line}");
        }
        assert!(!policy.contains("secret/"));
    }
}
