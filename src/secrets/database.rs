//! Dynamic database credentials: Vault's database secrets engine configured against the
//! foundry's Postgres, with a role that issues short-lived users who are members of the
//! application role (so they inherit its grants and row-level security still applies to them).

use secrecy::{ExposeSecret, SecretString};
use vaultrs::api::database::requests::{PostgreSQLConnectionRequestBuilder, SetRoleRequestBuilder};

use super::error::SecretsError;
use super::layout::FoundryLayout;
use super::vault::VaultSession;

/// What the engine needs to reach the foundry's Postgres. The user must be able to create roles
/// and grant membership in the application role (`CREATEROLE` and, on Postgres 16+, `ADMIN` on
/// the application role).
pub struct DatabaseConnection {
    /// Host as Vault sees it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// The user Vault connects as.
    pub username: String,
    /// Its password. Sent to Vault once; Vault never returns it.
    pub password: SecretString,
    /// `disable`, `require`, `verify-full`, ...
    pub sslmode: String,
}

impl std::fmt::Debug for DatabaseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl DatabaseConnection {
    /// Reads host, port, database, user, password and `sslmode` from a `postgres://` URL.
    pub fn from_url(url: &SecretString) -> Result<Self, SecretsError> {
        let invalid =
            |what: &str| SecretsError::Configuration(format!("the database URL has no {what}"));
        let parsed = url::Url::parse(url.expose_secret()).map_err(|_| invalid("valid syntax"))?;
        let decode = |s: &str| percent_decode(s).ok_or_else(|| invalid("valid percent-encoding"));
        Ok(Self {
            host: parsed.host_str().ok_or_else(|| invalid("host"))?.to_owned(),
            port: parsed.port().unwrap_or(5432),
            database: parsed.path().trim_start_matches('/').to_owned(),
            username: decode(parsed.username())?,
            password: SecretString::from(decode(parsed.password().unwrap_or_default())?),
            sslmode: parsed
                .query_pairs()
                .find(|(k, _)| k == "sslmode")
                .map_or_else(|| "prefer".to_owned(), |(_, v)| v.into_owned()),
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Lifetimes of issued users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialTtl {
    /// Default lease, e.g. `1h`.
    pub default_ttl: String,
    /// Maximum lease, e.g. `24h`.
    pub max_ttl: String,
}

impl Default for CredentialTtl {
    fn default() -> Self {
        Self {
            default_ttl: "1h".to_owned(),
            max_ttl: "24h".to_owned(),
        }
    }
}

/// SQL run by Vault to create a user: it can log in until the lease ends, is a member of the
/// application role (inheriting its grants), and can never bypass row-level security or create
/// anything. `{{name}}`, `{{password}}` and `{{expiration}}` are Vault's template variables.
pub fn build_creation_statements(application_role: &str) -> Vec<String> {
    let app = crate::postgres::quote_ident(application_role);
    vec![format!(
        "CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}' \
         INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS IN ROLE {app};"
    )]
}

/// SQL run by Vault when a lease ends or is revoked: end the user's sessions, then drop it.
pub fn build_revocation_statements() -> Vec<String> {
    vec![
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';"
            .to_owned(),
        "DROP OWNED BY \"{{name}}\";".to_owned(),
        "DROP ROLE IF EXISTS \"{{name}}\";".to_owned(),
    ]
}

/// Configures (idempotently) the engine's connection to the foundry's Postgres and the role
/// that issues users in `application_role`. The engine must be mounted at the layout's
/// `database_mount` (a platform-level step, like enabling the KV mount).
pub async fn ensure_database_engine(
    session: &VaultSession,
    layout: &FoundryLayout,
    connection: &DatabaseConnection,
    application_role: &str,
    ttl: &CredentialTtl,
) -> Result<(), SecretsError> {
    let mount = &layout.database_mount;
    let connection_name = layout.database_connection_name();
    let role = layout.database_role_name();
    let connection_url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode={}",
        connection.host, connection.port, connection.database, connection.sslmode
    );
    let mut options = PostgreSQLConnectionRequestBuilder::default();
    options
        .plugin_name("postgresql-database-plugin")
        .connection_url(connection_url)
        .username(connection.username.clone())
        .password(connection.password.expose_secret().to_owned())
        .allowed_roles(vec![role.clone()])
        .verify_connection(true);
    vaultrs::database::connection::postgres(
        session.client(),
        mount,
        &connection_name,
        Some(&mut options),
    )
    .await
    .map_err(|e| {
        session.error(
            &e,
            "configure database connection",
            &format!("{mount}/config/{connection_name}"),
        )
    })?;

    let mut role_options = SetRoleRequestBuilder::default();
    role_options
        .db_name(connection_name)
        .creation_statements(build_creation_statements(application_role))
        .revocation_statements(build_revocation_statements())
        .default_ttl(ttl.default_ttl.clone())
        .max_ttl(ttl.max_ttl.clone());
    vaultrs::database::role::set(session.client(), mount, &role, Some(&mut role_options))
        .await
        .map_err(|e| session.error(&e, "write database role", &format!("{mount}/roles/{role}")))
}

/// A short-lived Postgres user issued by Vault.
pub struct DynamicCredentials {
    /// The generated user name.
    pub username: String,
    /// Its password.
    pub password: SecretString,
    /// The lease to revoke it by.
    pub lease_id: String,
    /// Seconds until it expires.
    pub lease_duration: u64,
}

impl std::fmt::Debug for DynamicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicCredentials")
            .field("username", &self.username)
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

/// Issues a user from the foundry's database role. Calls the HTTP API directly: vaultrs'
/// `database::role::creds` returns only the username and password and drops the lease id,
/// without which the user cannot be revoked early.
pub async fn issue_credentials(
    session: &VaultSession,
    layout: &FoundryLayout,
) -> Result<DynamicCredentials, SecretsError> {
    let path = format!(
        "{}/creds/{}",
        layout.database_mount,
        layout.database_role_name()
    );
    let envelope = session
        .raw(
            reqwest::Method::GET,
            &path,
            "issue database credentials",
            None,
        )
        .await?;
    let text = |pointer: &str, field: &'static str| {
        envelope
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SecretsError::MissingField {
                path: path.clone(),
                field,
            })
    };
    Ok(DynamicCredentials {
        username: text("/data/username", "username")?,
        password: SecretString::from(text("/data/password", "password")?),
        lease_id: text("/lease_id", "lease_id")?,
        lease_duration: envelope
            .get("lease_duration")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_default(),
    })
}

/// Revokes a lease now; Vault runs the revocation statements, dropping the user. Uses the
/// path form `sys/leases/revoke/<lease id>` (vaultrs has no lease endpoints), which the
/// operator policy grants for its own role's leases only.
pub async fn revoke_credentials(
    session: &VaultSession,
    lease_id: &str,
) -> Result<(), SecretsError> {
    session
        .raw(
            reqwest::Method::PUT,
            &format!("sys/leases/revoke/{lease_id}"),
            "revoke database credentials",
            None,
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_users_join_the_application_role_and_never_bypass_rls() {
        let statements = build_creation_statements("vf_app\"x").join("\n");
        assert!(statements.contains("IN ROLE \"vf_app\"\"x\""));
        assert!(statements.contains("NOBYPASSRLS"));
        assert!(statements.contains("VALID UNTIL '{{expiration}}'"));
        assert!(statements.contains("CREATE ROLE \"{{name}}\""));
    }

    #[test]
    fn the_admin_url_is_parsed_and_its_password_kept_out_of_debug() {
        let connection = DatabaseConnection::from_url(&SecretString::from(
            "postgres://admin:p%40ss@127.0.0.1:5433/vf?sslmode=disable",
        ))
        .unwrap();
        assert_eq!(connection.password.expose_secret(), "p@ss");
        assert_eq!(
            (connection.port, connection.sslmode.as_str()),
            (5433, "disable")
        );
        assert!(!format!("{connection:?}").contains("p@ss"));
    }
}
