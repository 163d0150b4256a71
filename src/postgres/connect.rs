//! Connecting as the provisioning (admin) role: a direct probe first, so a failure carries its
//! real reason rather than "pool timed out", then a small pool; the foundry's database is created
//! when it does not exist yet.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, PgPool};

use super::{Error, quote_ident};

/// Parses an admin connection URL. The error never repeats the URL (it may hold a password).
pub fn parse_url(url: &SecretString) -> Result<PgConnectOptions, Error> {
    PgConnectOptions::from_str(url.expose_secret()).map_err(|_| {
        Error::InvalidFoundry(
            "the database connection URL does not parse (expected postgres://user:password@host:port/database)"
                .to_owned(),
        )
    })
}

/// One direct connection, bounded by `timeout`.
pub async fn probe(options: &PgConnectOptions, timeout: Duration) -> Result<PgConnection, Error> {
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(connected) => connected.map_err(|e| Error::from_sqlx("connecting", e)),
        Err(_elapsed) => Err(Error::Unreachable(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", timeout.as_secs()),
        )))),
    }
}

/// A pool of at most two admin connections to `database` (created first if missing), for one
/// provisioning run.
pub async fn connect_admin(
    options: &PgConnectOptions,
    database: &str,
    timeout: Duration,
) -> Result<PgPool, Error> {
    let mut server = probe(options, timeout).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(database)
            .fetch_one(&mut server)
            .await
            .map_err(|e| Error::from_sqlx("looking up the foundry's database", e))?;
    if !exists {
        let create = format!("create database {}", quote_ident(database));
        // The only dynamic part is the quoted identifier of a name the CRD schema restricts.
        let created = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut server)
            .await;
        // Another replica may have created it meanwhile: only a still-missing database fails.
        // A concurrent CREATE DATABASE fails with duplicate_database (42P04) or, when both pass
        // the catalog check at once, with unique_violation (23505) on pg_database.
        if let Err(error) = created {
            let duplicate = matches!(&error, sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("42P04" | "23505")));
            if !duplicate {
                return Err(Error::from_sqlx("creating the foundry's database", error));
            }
        }
    }
    let _closed = server.close().await;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        // Provisioning re-asserts objects with IF NOT EXISTS; their "already exists, skipping"
        // notices would be logged by sqlx on every reconcile.
        .connect_with(
            options
                .clone()
                .database(database)
                .options([("client_min_messages", "warning")]),
        )
        .await
        .map_err(|e| Error::from_sqlx("connecting", e))
}
