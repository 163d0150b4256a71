//! Errors of the Postgres layer. None of them carries a password or a connection URL.

/// What went wrong while provisioning, migrating or running tenant queries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The VideoFoundry's namespace, name or schema cannot be turned into identifiers.
    #[error("invalid foundry identity: {0}")]
    InvalidFoundry(String),
    /// A tenant user id that is not a canonical, non-nil UUID. The rejected text is not repeated.
    #[error(
        "invalid tenant user id: expected a canonical UUID such as 7f1c0e1a-1b2c-4d3e-8f90-a1b2c3d4e5f6"
    )]
    InvalidUserId,
    /// A tenant key that is not 64 hex characters. The text is not repeated.
    #[error("invalid tenant key: expected 64 hex characters (256 bits)")]
    InvalidTenantKey,
    /// Another session holds a lock provisioning needs, for longer than the lock timeout.
    #[error("blocked for {seconds} s waiting for {waiting_for}; held by {holders}")]
    Blocked {
        /// What provisioning waited for.
        waiting_for: String,
        /// The lock timeout.
        seconds: u64,
        /// The sessions holding it: process id, role, application, client, state, since when.
        holders: String,
    },
    /// A role name that cannot be used.
    #[error("invalid role name: {0}")]
    InvalidRole(String),
    /// The server could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach the PostgreSQL server: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// The server refused the credentials.
    #[error("the PostgreSQL server rejected the credentials (wrong user name or password)")]
    AuthenticationFailed(#[source] sqlx::Error),
    /// The database named in the URL does not exist.
    #[error("the database does not exist on the PostgreSQL server")]
    DatabaseMissing(#[source] sqlx::Error),
    /// The connecting role lacks a privilege it needs.
    #[error("missing privilege while {action}: {detail}")]
    MissingPrivilege {
        /// What the operator was doing.
        action: &'static str,
        /// The server's explanation.
        detail: String,
    },
    /// Applying the embedded migrations failed.
    #[error("applying migrations failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error while {action}: {source}")]
    Database {
        /// What the operator was doing.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    /// A bounded PascalCase name for conditions, Events and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidFoundry(_) => "InvalidFoundry",
            Error::InvalidUserId => "InvalidUserId",
            Error::InvalidRole(_) => "InvalidRole",
            Error::InvalidTenantKey => "InvalidTenantKey",
            Error::Blocked { .. } => "DatabaseBlocked",
            Error::Unreachable(_) => "DatabaseUnreachable",
            Error::AuthenticationFailed(_) => "DatabaseAuthenticationFailed",
            Error::DatabaseMissing(_) => "DatabaseMissing",
            Error::MissingPrivilege { .. } => "DatabasePrivilegeMissing",
            Error::Migrate(_) => "DatabaseMigrationFailed",
            Error::Database { .. } => "DatabaseError",
        }
    }

    /// Whether retrying without a change to the input cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::InvalidFoundry(_)
                | Error::InvalidUserId
                | Error::InvalidRole(_)
                | Error::InvalidTenantKey
        )
    }

    /// Classifies a driver error by its SQLSTATE, so that callers get a clear reason.
    pub(crate) fn from_sqlx(action: &'static str, source: sqlx::Error) -> Error {
        let code = match &source {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => return Error::Unreachable(source),
            _ => None,
        };
        match code.as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01") | Some("28000") => Error::AuthenticationFailed(source),
            // invalid_catalog_name
            Some("3D000") => Error::DatabaseMissing(source),
            // cannot_connect_now, too_many_connections, admin_shutdown
            Some("57P03") | Some("53300") | Some("57P01") => Error::Unreachable(source),
            // insufficient_privilege
            Some("42501") => Error::MissingPrivilege {
                action,
                detail: database_message(&source),
            },
            _ => Error::Database { action, source },
        }
    }
}

fn database_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Whether a driver error is a lock wait that exceeded `lock_timeout` (SQLSTATE 55P03).
pub(crate) fn is_lock_timeout(error: &Error) -> bool {
    let source = match error {
        Error::Database { source, .. } => source,
        _ => return false,
    };
    matches!(source, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(source) => {
                Error::from_sqlx("applying migrations", source)
            }
            other => Error::Migrate(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_unreachable_and_transient() {
        let error = Error::from_sqlx("connecting", sqlx::Error::PoolTimedOut);
        assert_eq!(error.category(), "DatabaseUnreachable");
        assert!(!error.is_permanent());
    }

    #[test]
    fn invalid_input_is_permanent() {
        assert!(Error::InvalidUserId.is_permanent());
        assert!(Error::InvalidFoundry("x".into()).is_permanent());
    }
}
