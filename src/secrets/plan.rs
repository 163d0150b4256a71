//! Where a foundry's secrets go, decided from its spec (pure), and the `SecretsReady` condition
//! that reports the outcome.

use crate::crd::conditions::ConditionStatus;
use crate::crd::video_foundry::{ExecutionMode, VideoFoundrySpec};

use super::error::SecretsError;
use super::layout::{FoundryLayout, InvalidVaultPath};

/// The relaxation line reported in `SecurityRelaxed` when a Kubernetes Secret is used.
/// (The same wording as [`crate::security_profile::resolve`].)
pub const KUBERNETES_SECRET_RELAXATION: &str =
    "secrets are kept in a Kubernetes Secret, not in Vault";

/// How the operator logs in to Vault, as the spec asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPlan {
    /// Kubernetes auth at `mount` as `role`.
    Kubernetes {
        /// Auth mount.
        mount: String,
        /// Vault role.
        role: String,
    },
    /// A token from the Secret key `secret`/`key` (developer mode only).
    TokenFromSecret {
        /// Secret name.
        secret: String,
        /// Key in the Secret.
        key: String,
    },
}

/// Where the foundry's secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsPlan {
    /// In Vault.
    Vault {
        /// Server address.
        address: String,
        /// The KV layout and derived names.
        layout: FoundryLayout,
        /// The operator's login.
        login: LoginPlan,
    },
    /// Developer mode without Vault: a Kubernetes Secret in the foundry's namespace, with the
    /// same keys as the KV layout (`database`, `jwt`, `aws`, `api-keys.<service>`).
    KubernetesSecret {
        /// The Secret's name.
        secret_name: String,
    },
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Production modes need Vault.
    #[error("{0:?} mode keeps secrets in Vault: set spec.vault")]
    VaultRequired(ExecutionMode),
    /// A Vault token from a Secret outside developer mode.
    #[error("a Vault token from a Secret is only accepted in developer mode: use Kubernetes auth")]
    TokenLoginNotAllowed,
    /// Neither or both login methods.
    #[error("spec.vault.auth must set exactly one of kubernetes and tokenSecretRef")]
    AmbiguousLogin,
    /// The layout is invalid.
    #[error(transparent)]
    Layout(#[from] InvalidVaultPath),
}

/// Decides where the foundry `namespace/name` keeps its secrets.
pub fn plan(
    namespace: &str,
    name: &str,
    spec: &VideoFoundrySpec,
) -> Result<SecretsPlan, PlanError> {
    let developer = spec.execution_mode == ExecutionMode::Developer;
    let Some(vault) = &spec.vault else {
        if !developer {
            return Err(PlanError::VaultRequired(spec.execution_mode));
        }
        let secret_name = spec
            .developer_secret_ref
            .as_ref()
            .map_or_else(|| format!("{name}-secrets"), |r| r.name.clone());
        return Ok(SecretsPlan::KubernetesSecret { secret_name });
    };
    let login = match (&vault.auth.kubernetes, &vault.auth.token_secret_ref) {
        (Some(k8s), None) => LoginPlan::Kubernetes {
            mount: k8s.mount_path.clone(),
            role: k8s.role.clone(),
        },
        (None, Some(_)) if !developer => return Err(PlanError::TokenLoginNotAllowed),
        (None, Some(secret)) => LoginPlan::TokenFromSecret {
            secret: secret.name.clone(),
            key: secret.key.clone(),
        },
        _ => return Err(PlanError::AmbiguousLogin),
    };
    Ok(SecretsPlan::Vault {
        address: vault.address.clone(),
        layout: FoundryLayout::for_foundry(namespace, name, Some(vault))?,
        login,
    })
}

/// The `SecretsReady` condition for the outcome of the secrets step: status, reason, message.
/// The message is the error's text, which never holds a secret value.
pub fn secrets_ready(
    outcome: &Result<SecretsPlan, SecretsError>,
) -> (ConditionStatus, &'static str, String) {
    match outcome {
        Ok(SecretsPlan::Vault {
            address, layout, ..
        }) => (
            ConditionStatus::True,
            "SecretsStoredInVault",
            format!(
                "secrets, policies and auth role are in place under {}/{} at {address}",
                layout.kv_mount, layout.prefix
            ),
        ),
        Ok(SecretsPlan::KubernetesSecret { secret_name }) => (
            ConditionStatus::True,
            "SecretsInKubernetesSecret",
            format!(
                "developer mode: secrets are kept in the Kubernetes Secret {secret_name} (see SecurityRelaxed)"
            ),
        ),
        Err(error) => (ConditionStatus::False, error.reason(), error.to_string()),
    }
}

/// The same outcome as the VideoFoundry controller's step record (`SecretsReady`), with
/// [`SecretsError::is_transient`] deciding between backoff and waiting for an edit.
pub fn secrets_step(
    outcome: &Result<SecretsPlan, SecretsError>,
) -> crate::provisioning::StepOutcome {
    use crate::crd::conditions::types::SECRETS_READY;
    use crate::provisioning::StepOutcome;
    let (status, reason, message) = secrets_ready(outcome);
    match outcome {
        Ok(_) if status == ConditionStatus::True => {
            StepOutcome::ready(SECRETS_READY, reason, message)
        }
        Ok(_) => StepOutcome::failed(SECRETS_READY, reason, message, false),
        Err(error) => StepOutcome::failed(SECRETS_READY, reason, message, error.is_transient()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crd::test_support::example_spec as example;

    #[test]
    fn production_uses_vault_with_kubernetes_auth() {
        let plan = plan("media", "studio", &example("videofoundry-production.yaml")).unwrap();
        let SecretsPlan::Vault { login, layout, .. } = plan else {
            panic!("{plan:?}")
        };
        assert!(matches!(login, LoginPlan::Kubernetes { .. }));
        assert_eq!(layout.namespace, "media");
    }

    #[test]
    fn developer_mode_without_vault_falls_back_to_a_reported_kubernetes_secret() {
        let spec = example("videofoundry-developer.yaml");
        assert!(spec.vault.is_none());
        let decided = plan("dev", "sandbox", &spec).unwrap();
        assert!(matches!(decided, SecretsPlan::KubernetesSecret { .. }));
        let effective = crate::security_profile::resolve(&spec).unwrap();
        assert!(
            effective
                .relaxations
                .iter()
                .any(|r| r == KUBERNETES_SECRET_RELAXATION)
        );
        let (status, reason, _) = secrets_ready(&Ok(decided));
        assert_eq!(
            (status, reason),
            (ConditionStatus::True, "SecretsInKubernetesSecret")
        );
    }

    #[test]
    fn production_refuses_missing_vault_and_token_login() {
        let mut spec = example("videofoundry-production.yaml");
        let mut token_login = spec.clone();
        if let Some(vault) = token_login.vault.as_mut() {
            vault.auth.kubernetes = None;
            vault.auth.token_secret_ref =
                Some(serde_yaml::from_str("{name: t, key: token}").unwrap());
        }
        assert!(matches!(
            plan("a", "b", &token_login),
            Err(PlanError::TokenLoginNotAllowed)
        ));
        spec.vault = None;
        assert!(matches!(
            plan("a", "b", &spec),
            Err(PlanError::VaultRequired(_))
        ));
    }

    #[test]
    fn failures_become_secrets_ready_false_with_the_error_reason() {
        let outcome = Err(SecretsError::Sealed {
            address: "https://vault:8200".into(),
        });
        let (status, reason, message) = secrets_ready(&outcome);
        assert_eq!((status, reason), (ConditionStatus::False, "VaultSealed"));
        assert!(message.contains("sealed"));
        let step = secrets_step(&outcome);
        assert_eq!(
            (step.condition, step.ready, step.transient),
            ("SecretsReady", false, true)
        );
        let denied = Err(SecretsError::PermissionDenied {
            operation: "read",
            path: "secret/data/x".into(),
        });
        assert!(!secrets_step(&denied).transient);
    }
}
