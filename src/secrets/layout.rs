//! Where a foundry's secrets live in Vault, and the names of its policies and auth role. Pure.
//!
//! KV v2 under `<kvMount>/<prefix>/` (prefix `videofoundry/<namespace>/<name>` by default), with
//! the key names existing Video Foundry backends read:
//!
//! | key | fields |
//! |---|---|
//! | `database` | `password` (the application role's), during a rotation also `pending_password` |
//! | `jwt` | `secret`, after a rotation also `previous_secret` until `previous_valid_until` |
//! | `api-keys/<service>` | `key` |
//! | `aws` | `access_key_id`, `secret_access_key`, `region` |

use crate::crd::video_foundry::VaultSpec;

/// Mount of the database secrets engine when nothing else is configured.
pub const DEFAULT_DATABASE_MOUNT: &str = "database";
/// Mount of the KV v2 engine when nothing else is configured.
pub const DEFAULT_KV_MOUNT: &str = "secret";

/// A prefix, mount or service name that would escape the foundry's place in Vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Vault {what} {value:?}: use segments of letters, digits, '_', '.' or '-' separated by '/'"
)]
pub struct InvalidVaultPath {
    /// Which setting, e.g. `pathPrefix`.
    pub what: &'static str,
    /// The rejected text (a path, never a secret).
    pub value: String,
}

/// One secret of a foundry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKey {
    /// The application role's Postgres password.
    Database,
    /// The platform backend's JWT signing secret.
    Jwt,
    /// An API key for an external service.
    ApiKey(String),
    /// AWS credentials of the platform backend.
    Aws,
}

impl SecretKey {
    /// The key's path below the foundry prefix.
    pub fn relative_path(&self) -> String {
        match self {
            Self::Database => "database".to_owned(),
            Self::Jwt => "jwt".to_owned(),
            Self::ApiKey(service) => format!("api-keys/{service}"),
            Self::Aws => "aws".to_owned(),
        }
    }
}

/// A foundry's place in Vault: mounts, prefix and the names derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundryLayout {
    /// Namespace of the VideoFoundry.
    pub namespace: String,
    /// Name of the VideoFoundry.
    pub name: String,
    /// KV v2 mount, e.g. `secret`.
    pub kv_mount: String,
    /// Path below the KV mount, without slashes at either end.
    pub prefix: String,
    /// Mount of the database secrets engine.
    pub database_mount: String,
}

impl FoundryLayout {
    /// The layout of foundry `namespace/name`, honouring `spec.vault.kvMount` and
    /// `spec.vault.pathPrefix` when set.
    pub fn for_foundry(
        namespace: &str,
        name: &str,
        vault: Option<&VaultSpec>,
    ) -> Result<Self, InvalidVaultPath> {
        let kv_mount = vault.map_or(DEFAULT_KV_MOUNT, |v| v.kv_mount.as_str());
        let prefix = match vault.and_then(|v| v.path_prefix.as_deref()) {
            Some(prefix) => prefix.trim_matches('/').to_owned(),
            None => format!("videofoundry/{namespace}/{name}"),
        };
        let layout = Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kv_mount: kv_mount.trim_matches('/').to_owned(),
            prefix,
            database_mount: DEFAULT_DATABASE_MOUNT.to_owned(),
        };
        validate_path("kvMount", &layout.kv_mount)?;
        validate_path("pathPrefix", &layout.prefix)?;
        validate_path("database mount", &layout.database_mount)?;
        Ok(layout)
    }

    /// The KV path (below the mount) of `key`.
    pub fn path(&self, key: &SecretKey) -> Result<String, InvalidVaultPath> {
        if let SecretKey::ApiKey(service) = key {
            validate_segment("api-keys service", service)?;
        }
        Ok(format!("{}/{}", self.prefix, key.relative_path()))
    }

    /// A stable base for Vault object names: `videofoundry-<namespace>.<name>`. A namespace is a
    /// DNS label (no dots), so the first dot separates the two and no two foundries share a base
    /// (with a `-` separator, `a-b/c` and `a/b-c` would).
    fn name_base(&self) -> String {
        format!("videofoundry-{}.{}", self.namespace, self.name)
    }

    /// True when one foundry's prefix contains the other's (or they are equal): their operator
    /// policies would then reach each other's secrets, so the controller must refuse the second.
    pub fn overlaps(&self, other: &Self) -> bool {
        let nested = |a: &str, b: &str| a == b || b.starts_with(&format!("{a}/"));
        self.kv_mount == other.kv_mount
            && (nested(&self.prefix, &other.prefix) || nested(&other.prefix, &self.prefix))
    }

    /// ACL policy of the platform backend (reads its own secrets only).
    pub fn backend_policy_name(&self) -> String {
        format!("{}-backend", self.name_base())
    }

    /// ACL policy of the operator for this foundry (its own prefix only).
    pub fn operator_policy_name(&self) -> String {
        format!("{}-operator", self.name_base())
    }

    /// Kubernetes auth role the backend's service account logs in with.
    pub fn backend_auth_role_name(&self) -> String {
        format!("{}-backend", self.name_base())
    }

    /// Database secrets engine connection for the foundry's Postgres.
    pub fn database_connection_name(&self) -> String {
        self.name_base()
    }

    /// Database secrets engine role issuing short-lived users in the application role.
    pub fn database_role_name(&self) -> String {
        format!("{}-app", self.name_base())
    }

    /// The backend's ACL policy: read its own keys, and issue dynamic database credentials.
    pub fn build_backend_policy(&self) -> String {
        let data = format!("{}/data/{}", self.kv_mount, self.prefix);
        let db = &self.database_mount;
        let role = self.database_role_name();
        format!(
            r#"# Platform backend of VideoFoundry {ns}/{name}: reads its own secrets only.
path "{data}/database" {{
  capabilities = ["read"]
}}
path "{data}/jwt" {{
  capabilities = ["read"]
}}
path "{data}/aws" {{
  capabilities = ["read"]
}}
path "{data}/api-keys/*" {{
  capabilities = ["read"]
}}
path "{db}/creds/{role}" {{
  capabilities = ["read"]
}}
"#,
            ns = self.namespace,
            name = self.name,
        )
    }

    /// The operator's ACL policy for this foundry: manage its own prefix (data, metadata and
    /// destroying old versions after a rotation's grace period), its own database connection and
    /// role, and revoke the leases that role issued. Nothing outside the foundry.
    pub fn build_operator_policy(&self) -> String {
        let kv = &self.kv_mount;
        let prefix = &self.prefix;
        let db = &self.database_mount;
        let connection = self.database_connection_name();
        let role = self.database_role_name();
        format!(
            r#"# Operator, for VideoFoundry {ns}/{name} only.
path "{kv}/data/{prefix}/*" {{
  capabilities = ["create", "read", "update", "patch", "delete"]
}}
path "{kv}/metadata/{prefix}/*" {{
  capabilities = ["read", "list", "update", "delete"]
}}
path "{kv}/destroy/{prefix}/*" {{
  capabilities = ["update"]
}}
path "{db}/config/{connection}" {{
  capabilities = ["create", "read", "update", "delete"]
}}
path "{db}/roles/{role}" {{
  capabilities = ["create", "read", "update", "delete"]
}}
path "{db}/creds/{role}" {{
  capabilities = ["read"]
}}
path "sys/leases/revoke/{db}/creds/{role}/*" {{
  capabilities = ["update"]
}}
"#,
            ns = self.namespace,
            name = self.name,
        )
    }
}

fn validate_segment(what: &'static str, value: &str) -> Result<(), InvalidVaultPath> {
    let valid = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(InvalidVaultPath {
            what,
            value: value.to_owned(),
        })
    }
}

/// Accepts `a/b/c` with safe segments; refuses empty segments, `..`, globs (`*`, `+`) and
/// anything a policy path could read as a wildcard.
fn validate_path(what: &'static str, value: &str) -> Result<(), InvalidVaultPath> {
    if value.is_empty() || value.len() > 512 {
        return Err(InvalidVaultPath {
            what,
            value: value.to_owned(),
        });
    }
    value
        .split('/')
        .try_for_each(|segment| validate_segment(what, segment))
        .map_err(|_| InvalidVaultPath {
            what,
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn studio() -> FoundryLayout {
        FoundryLayout::for_foundry("media", "studio", None).unwrap()
    }

    #[test]
    fn default_layout_uses_the_documented_prefix_and_key_names() {
        let layout = studio();
        assert_eq!(layout.kv_mount, "secret");
        assert_eq!(
            layout.path(&SecretKey::Database).unwrap(),
            "videofoundry/media/studio/database"
        );
        assert_eq!(
            layout.path(&SecretKey::Jwt).unwrap(),
            "videofoundry/media/studio/jwt"
        );
        assert_eq!(
            layout.path(&SecretKey::ApiKey("openai".into())).unwrap(),
            "videofoundry/media/studio/api-keys/openai"
        );
        assert_eq!(
            layout.path(&SecretKey::Aws).unwrap(),
            "videofoundry/media/studio/aws"
        );
    }

    #[test]
    fn a_configured_prefix_and_mount_are_honoured() {
        let spec: VaultSpec = serde_yaml::from_str(
            "address: https://vault:8200\nauth: {kubernetes: {role: op}}\nkvMount: kv/\npathPrefix: /teams/a/\n",
        )
        .unwrap();
        let layout = FoundryLayout::for_foundry("media", "studio", Some(&spec)).unwrap();
        assert_eq!(layout.kv_mount, "kv");
        assert_eq!(layout.path(&SecretKey::Jwt).unwrap(), "teams/a/jwt");
        assert!(
            layout
                .build_operator_policy()
                .contains(r#"path "kv/data/teams/a/*""#)
        );
    }

    #[test]
    fn paths_that_could_escape_or_glob_are_refused() {
        for prefix in ["a/../b", "a//b", "a/*", "a/b+", "a b", ""] {
            let spec = VaultSpec {
                path_prefix: Some(prefix.into()),
                ..serde_yaml::from_str("address: http://v\nauth: {kubernetes: {role: r}}\n")
                    .unwrap()
            };
            assert!(
                FoundryLayout::for_foundry("ns", "n", Some(&spec)).is_err(),
                "{prefix:?} accepted"
            );
        }
        assert!(studio().path(&SecretKey::ApiKey("../jwt".into())).is_err());
    }

    #[test]
    fn the_backend_policy_reads_only_its_own_keys() {
        let policy = studio().build_backend_policy();
        assert!(policy.contains(r#"path "secret/data/videofoundry/media/studio/database""#));
        assert!(policy.contains(r#"path "database/creds/videofoundry-media.studio-app""#));
        assert!(!policy.contains("metadata"));
        assert!(!policy.contains("\"update\""));
        assert!(!policy.contains("videofoundry/media/studio/*"));
    }

    #[test]
    fn the_operator_policy_stays_inside_the_foundry() {
        let policy = studio().build_operator_policy();
        for line in policy.lines().filter(|l| l.starts_with("path ")) {
            assert!(
                line.contains("videofoundry/media/studio/")
                    || line.contains("videofoundry-media.studio"),
                "{line}"
            );
        }
    }

    #[test]
    fn names_of_different_foundries_never_collide_and_nested_prefixes_are_detected() {
        let a = FoundryLayout::for_foundry("a-b", "c", None).unwrap();
        let b = FoundryLayout::for_foundry("a", "b-c", None).unwrap();
        assert_ne!(a.operator_policy_name(), b.operator_policy_name());
        assert!(!a.overlaps(&b));
        let spec: VaultSpec = serde_yaml::from_str(
            "address: http://v\nauth: {kubernetes: {role: r}}\npathPrefix: videofoundry/a-b/c/inner\n",
        )
        .unwrap();
        let nested = FoundryLayout::for_foundry("x", "y", Some(&spec)).unwrap();
        assert!(a.overlaps(&nested) && nested.overlaps(&a));
        let sibling = FoundryLayout::for_foundry("a-b", "cd", None).unwrap();
        assert!(!a.overlaps(&sibling));
    }
}
