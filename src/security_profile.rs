//! The effective security settings of a foundry: the execution mode's defaults with the spec's
//! field-by-field overrides applied, every weakening listed as a relaxation (DESIGN.md §2).
//! Pure: the VideoFoundry status, the worker builders and vetting all read it from here.

use crate::crd::video_foundry::{
    AuditLogLevel, CustomNodePolicy, EffectiveSecurity, EgressMode, EncryptionMode, ExecutionMode,
    SandboxType, SecretsBackend, VettingMode, VideoFoundrySpec,
};

/// A setting that no mode allows, or a value this operator does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// An enum value from a newer API version.
    #[error("unknown value of {field}; this operator version does not understand it")]
    UnknownValue {
        /// The field, e.g. `spec.network.egress`.
        field: &'static str,
    },
    /// A requirement of the mode is not met.
    #[error("{mode:?} mode requires {requirement}")]
    Requirement {
        /// The mode.
        mode: ExecutionMode,
        /// What is missing.
        requirement: &'static str,
    },
}

/// What an execution mode sets when the spec leaves a field unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeDefaults {
    /// Worker egress.
    pub egress: EgressMode,
    /// Whether workers may query cluster DNS.
    pub allow_dns: bool,
    /// Workflow vetting.
    pub vetting: VettingMode,
    /// Audit log detail.
    pub audit_log: AuditLogLevel,
    /// Custom node policy.
    pub custom_nodes: CustomNodePolicy,
}

/// The defaults of `mode` (an unknown mode gets production's, the strictest).
pub fn defaults(mode: ExecutionMode) -> ModeDefaults {
    match mode {
        ExecutionMode::SelfHostedProduction => ModeDefaults {
            egress: EgressMode::Restricted,
            ..defaults(ExecutionMode::Production)
        },
        ExecutionMode::Developer => ModeDefaults {
            egress: EgressMode::Open,
            allow_dns: true,
            vetting: VettingMode::Warn,
            audit_log: AuditLogLevel::Basic,
            custom_nodes: CustomNodePolicy::Any,
        },
        ExecutionMode::Production | ExecutionMode::Unknown => ModeDefaults {
            egress: EgressMode::Blocked,
            allow_dns: false,
            vetting: VettingMode::Strict,
            audit_log: AuditLogLevel::Full,
            custom_nodes: CustomNodePolicy::Pinned,
        },
    }
}

/// Resolves the effective settings. `relaxations` lists, one line each, every override weaker
/// than the mode's default and, in developer mode, every default weaker than production's.
pub fn resolve(spec: &VideoFoundrySpec) -> Result<EffectiveSecurity, ProfileError> {
    let mode = spec.execution_mode;
    if mode == ExecutionMode::Unknown {
        return Err(ProfileError::UnknownValue {
            field: "spec.executionMode",
        });
    }
    let developer = mode == ExecutionMode::Developer;
    let mode_defaults = defaults(mode);
    let production = defaults(ExecutionMode::Production);
    let mut relaxations = Vec::new();
    let mut note = |weaker_than_mode: bool, weaker_than_production: bool, line: String| {
        if weaker_than_mode || (developer && weaker_than_production) {
            relaxations.push(line);
        }
    };

    let secrets_backend = if spec.vault.is_some() {
        SecretsBackend::Vault
    } else if developer {
        SecretsBackend::KubernetesSecret
    } else {
        return Err(ProfileError::Requirement {
            mode,
            requirement: "spec.vault",
        });
    };
    note(
        false,
        secrets_backend != SecretsBackend::Vault,
        "secrets are kept in a Kubernetes Secret, not in Vault".to_owned(),
    );
    if let Some(vault) = &spec.vault
        && vault.auth.token_secret_ref.is_some()
    {
        if !developer {
            return Err(ProfileError::Requirement {
                mode,
                requirement: "Kubernetes auth for Vault (a token from a Secret is for developer mode only)",
            });
        }
        note(
            true,
            true,
            "Vault login uses a token from a Kubernetes Secret".to_owned(),
        );
    }

    // Credentials and tenant data cross these connections: production refuses plain text.
    if let Some(vault) = &spec.vault {
        require_tls(
            developer,
            mode,
            &vault.address,
            "TLS to Vault (an https:// spec.vault.address)",
            "Vault is reached without TLS",
            &mut note,
        )?;
    }
    require_tls(
        developer,
        mode,
        &spec.storage.endpoint,
        "TLS to the S3 endpoint (an https:// spec.storage.endpoint)",
        "the S3 endpoint is reached without TLS",
        &mut note,
    )?;

    let network = spec.network.clone().unwrap_or_default();
    let egress = network.egress.unwrap_or(mode_defaults.egress);
    if egress == EgressMode::Unknown {
        return Err(ProfileError::UnknownValue {
            field: "spec.network.egress",
        });
    }
    note(
        egress > mode_defaults.egress,
        egress > production.egress,
        format!("worker egress is {egress:?}").to_lowercase(),
    );
    // Hosts approved by name are reached through the egress gateway only in `restricted`
    // egress: production must opt into that (reported twice: the egress and the hosts).
    let hosts = network.allowed_hosts.len();
    note(
        egress == EgressMode::Restricted
            && hosts > 0
            && mode_defaults.egress == EgressMode::Blocked,
        egress == EgressMode::Restricted && hosts > 0,
        format!("workers reach {hosts} approved host(s) by name through the egress gateway"),
    );
    let allow_dns = network.allow_dns.unwrap_or(mode_defaults.allow_dns);
    note(
        allow_dns && !mode_defaults.allow_dns,
        allow_dns,
        "workers may query cluster DNS".to_owned(),
    );

    let vetting = spec
        .vetting
        .as_ref()
        .and_then(|v| v.mode)
        .unwrap_or(mode_defaults.vetting);
    if vetting == VettingMode::Unknown {
        return Err(ProfileError::UnknownValue {
            field: "spec.vetting.mode",
        });
    }
    let lax_vetting = vetting == VettingMode::Warn;
    note(
        lax_vetting && mode_defaults.vetting != VettingMode::Warn,
        lax_vetting,
        "workflow vetting only warns".to_owned(),
    );

    let sandbox = spec
        .sandbox
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or(SandboxType::Gvisor);
    match sandbox {
        SandboxType::Unknown => {
            return Err(ProfileError::UnknownValue {
                field: "spec.sandbox.type",
            });
        }
        SandboxType::None if !developer => {
            return Err(ProfileError::Requirement {
                mode,
                requirement: "a sandbox (gvisor or firecracker)",
            });
        }
        _ => {}
    }
    note(
        sandbox == SandboxType::None,
        false,
        "workers run without a sandbox".to_owned(),
    );

    let audit_log = spec.audit_log.unwrap_or(mode_defaults.audit_log);
    if audit_log == AuditLogLevel::Unknown {
        return Err(ProfileError::UnknownValue {
            field: "spec.auditLog",
        });
    }
    let basic = audit_log == AuditLogLevel::Basic;
    note(
        basic && mode_defaults.audit_log != AuditLogLevel::Basic,
        basic,
        "the audit log is basic".to_owned(),
    );

    let custom_nodes = spec.custom_nodes.unwrap_or(mode_defaults.custom_nodes);
    if custom_nodes == CustomNodePolicy::Unknown {
        return Err(ProfileError::UnknownValue {
            field: "spec.customNodes",
        });
    }
    let any = custom_nodes == CustomNodePolicy::Any;
    note(
        any && mode_defaults.custom_nodes != CustomNodePolicy::Any,
        any,
        "any custom node may run".to_owned(),
    );

    let storage = &spec.storage;
    note(
        !storage.require_tls,
        false,
        "storage accepts requests without TLS".to_owned(),
    );
    note(
        !storage.versioning,
        false,
        "storage keeps no object versions".to_owned(),
    );
    note(
        !storage.block_public_access,
        false,
        "storage does not block public access".to_owned(),
    );
    match storage.encryption.as_ref().map(|e| e.mode) {
        Some(EncryptionMode::Unknown) => {
            return Err(ProfileError::UnknownValue {
                field: "spec.storage.encryption.mode",
            });
        }
        Some(EncryptionMode::None) if !developer => {
            return Err(ProfileError::Requirement {
                mode,
                requirement: "storage encryption",
            });
        }
        Some(EncryptionMode::None) => {
            note(true, true, "stored objects are not encrypted".to_owned())
        }
        _ => {}
    }
    if !developer && !spec.workers.image.contains("@sha256:") {
        return Err(ProfileError::Requirement {
            mode,
            requirement: "a worker image pinned by digest (image@sha256:...)",
        });
    }

    Ok(EffectiveSecurity {
        execution_mode: mode,
        secrets_backend,
        egress,
        allow_dns,
        vetting,
        sandbox,
        audit_log,
        custom_nodes,
        storage_require_tls: storage.require_tls,
        storage_versioning: storage.versioning,
        storage_block_public_access: storage.block_public_access,
        relaxations,
    })
}

/// Refuses a plain-text `url` outside developer mode; reports it as a relaxation in developer
/// mode.
fn require_tls(
    developer: bool,
    mode: ExecutionMode,
    url: &str,
    requirement: &'static str,
    relaxation: &str,
    note: &mut impl FnMut(bool, bool, String),
) -> Result<(), ProfileError> {
    if is_tls_url(url) {
        return Ok(());
    }
    if !developer {
        return Err(ProfileError::Requirement { mode, requirement });
    }
    note(true, true, relaxation.to_owned());
    Ok(())
}

/// Whether `url` is an `https://` URL.
pub fn is_tls_url(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// The relaxation line of a database connection that does not require TLS.
pub const DATABASE_PLAINTEXT_RELAXATION: &str = "the database connection does not require TLS (sslmode is not require, verify-ca or verify-full)";

/// Whether a PostgreSQL connection URL requires TLS: `sslmode` (or `ssl-mode`) is `require`,
/// `verify-ca` or `verify-full`, or the host is a local Unix socket. libpq's default, `prefer`,
/// silently falls back to plain text, so it does not count.
pub fn database_url_requires_tls(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let mut socket = parsed.host_str().is_none_or(str::is_empty);
    let mut tls = false;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" => {
                tls = matches!(
                    value.to_ascii_lowercase().as_str(),
                    "require" | "verify-ca" | "verify-full"
                );
            }
            "host" => socket = value.starts_with('/'),
            _ => {}
        }
    }
    tls || socket
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crd::test_support::example_spec as example;

    #[test]
    fn production_defaults_are_the_strictest_and_relax_nothing() {
        let effective = resolve(&example("videofoundry-production.yaml")).unwrap();
        assert_eq!(effective.egress, EgressMode::Blocked);
        assert!(!effective.allow_dns);
        assert_eq!(effective.vetting, VettingMode::Strict);
        assert_eq!(effective.sandbox, SandboxType::Gvisor);
        assert_eq!(effective.secrets_backend, SecretsBackend::Vault);
        assert_eq!(effective.custom_nodes, CustomNodePolicy::Pinned);
        assert!(
            effective.relaxations.is_empty(),
            "{:?}",
            effective.relaxations
        );
    }

    #[test]
    fn every_developer_relaxation_is_listed() {
        let effective = resolve(&example("videofoundry-developer.yaml")).unwrap();
        let text = effective.relaxations.join("\n");
        for expected in [
            "secrets are kept in a Kubernetes Secret",
            "worker egress is open",
            "workers may query cluster DNS",
            "workflow vetting only warns",
            "the audit log is basic",
            "any custom node may run",
            "storage accepts requests without TLS",
            "stored objects are not encrypted",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
        assert_eq!(effective.sandbox, SandboxType::Gvisor);
    }

    #[test]
    fn overrides_weaker_than_the_mode_are_reported_and_stronger_ones_are_not() {
        let mut spec = example("videofoundry-production.yaml");
        spec.network.get_or_insert_default().egress = Some(EgressMode::Restricted);
        spec.vetting = Some(crate::crd::video_foundry::VettingSpec {
            mode: Some(VettingMode::Warn),
        });
        spec.storage.versioning = false;
        let effective = resolve(&spec).unwrap();
        assert_eq!(
            effective.relaxations,
            [
                "worker egress is restricted",
                "workflow vetting only warns",
                "storage keeps no object versions"
            ]
        );

        let mut self_hosted = example("videofoundry-production.yaml");
        self_hosted.execution_mode = ExecutionMode::SelfHostedProduction;
        self_hosted.network.get_or_insert_default().egress = None;
        assert_eq!(
            resolve(&self_hosted).unwrap().egress,
            EgressMode::Restricted
        );
        assert!(resolve(&self_hosted).unwrap().relaxations.is_empty());
        self_hosted.network.get_or_insert_default().egress = Some(EgressMode::Blocked);
        assert!(resolve(&self_hosted).unwrap().relaxations.is_empty());
    }

    #[test]
    fn the_egress_gateway_is_the_self_hosted_default_and_a_reported_relaxation_elsewhere() {
        let host = crate::crd::video_foundry::AllowedHost {
            host: "huggingface.co".to_owned(),
            ports: vec![],
            internal_cidrs: vec![],
        };
        let line = "workers reach 1 approved host(s) by name through the egress gateway";
        let mut spec = example("videofoundry-production.yaml");
        spec.network.get_or_insert_default().allowed_hosts = vec![host];
        // Production keeps egress blocked: the hosts are not used, nothing is relaxed.
        assert!(resolve(&spec).unwrap().relaxations.is_empty());
        spec.network.get_or_insert_default().egress = Some(EgressMode::Restricted);
        assert_eq!(
            resolve(&spec).unwrap().relaxations,
            ["worker egress is restricted", line]
        );
        spec.execution_mode = ExecutionMode::SelfHostedProduction;
        assert!(resolve(&spec).unwrap().relaxations.is_empty());
        spec.execution_mode = ExecutionMode::Developer;
        spec.vault = None;
        assert!(
            resolve(&spec)
                .unwrap()
                .relaxations
                .contains(&line.to_owned())
        );
    }

    #[test]
    fn hard_requirements_of_production_cannot_be_overridden() {
        let mut no_vault = example("videofoundry-production.yaml");
        no_vault.vault = None;
        assert!(matches!(
            resolve(&no_vault),
            Err(ProfileError::Requirement { .. })
        ));

        let mut no_sandbox = example("videofoundry-production.yaml");
        no_sandbox.sandbox.get_or_insert_default().type_ = Some(SandboxType::None);
        assert!(
            resolve(&no_sandbox)
                .unwrap_err()
                .to_string()
                .contains("a sandbox")
        );

        let mut tag_image = example("videofoundry-production.yaml");
        tag_image.workers.image = "registry.example/worker:latest".into();
        assert!(
            resolve(&tag_image)
                .unwrap_err()
                .to_string()
                .contains("digest")
        );
    }

    #[test]
    fn unknown_enum_values_from_newer_apis_are_refused() {
        let mut spec = example("videofoundry-production.yaml");
        spec.network.get_or_insert_default().egress = Some(EgressMode::Unknown);
        assert_eq!(
            resolve(&spec),
            Err(ProfileError::UnknownValue {
                field: "spec.network.egress"
            })
        );
    }

    #[test]
    fn production_refuses_plain_text_vault_and_s3_and_developer_mode_reports_them() {
        let mut vault = example("videofoundry-production.yaml");
        if let Some(v) = vault.vault.as_mut() {
            v.address = "http://vault.vault.svc:8200".into();
        }
        let error = resolve(&vault).unwrap_err().to_string();
        assert!(error.contains("TLS to Vault"), "{error}");

        let mut s3 = example("videofoundry-production.yaml");
        s3.storage.endpoint = "http://rgw:7480".into();
        assert!(
            resolve(&s3)
                .unwrap_err()
                .to_string()
                .contains("S3 endpoint")
        );

        let mut developer = vault.clone();
        developer.execution_mode = ExecutionMode::Developer;
        let relaxed = resolve(&developer).unwrap().relaxations;
        assert!(
            relaxed.iter().any(|r| r == "Vault is reached without TLS"),
            "{relaxed:?}"
        );
        assert!(is_tls_url("HTTPS://vault:8200"));
    }

    #[test]
    fn a_database_url_requires_tls_only_when_it_says_so() {
        for url in [
            "postgres://u:p@db:5432/x?sslmode=require",
            "postgres://u:p@db/x?sslmode=verify-full",
            "postgres://u:p@db/x?ssl-mode=VERIFY-CA",
            "postgres:///x?host=/var/run/postgresql",
        ] {
            assert!(database_url_requires_tls(url), "{url}");
        }
        for url in [
            "postgres://u:p@db:5432/x",
            "postgres://u:p@db/x?sslmode=prefer",
            "postgres://u:p@db/x?sslmode=disable",
            "not a url",
        ] {
            assert!(!database_url_requires_tls(url), "{url}");
        }
    }
}
