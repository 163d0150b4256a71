//! `migrate`: apply the embedded migrations and provision one foundry's roles, schema, grants
//! and row-level-security policies from the command line (the same code the operator runs).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Connection as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::postgres::{self, Error, FoundryDatabase, ProvisionInput, ProvisionReport, TenantKey};

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("foundry").required(true).args(["name", "schema", "all_foundries"])))]
pub struct MigrateArgs {
    /// PostgreSQL URL of a superuser, or of a role with CREATEROLE and CREATE on the database,
    /// e.g. postgres://admin:PASSWORD@db:5432/videofoundry. Never printed.
    #[arg(long, env = "VF_DATABASE_URL", hide_env_values = true, value_name = "URL", value_parser = parse_secret)]
    pub database_url: SecretString,

    /// Namespace of the VideoFoundry (with --name).
    #[arg(long, requires = "name", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Name of the VideoFoundry (with --namespace); the schema and roles are derived from both.
    #[arg(long, requires = "namespace", value_name = "NAME")]
    pub name: Option<String>,

    /// Use this schema (and roles named after it) instead of deriving them from a VideoFoundry.
    #[arg(long, conflicts_with_all = ["namespace", "name"], value_name = "SCHEMA")]
    pub schema: Option<String>,

    /// Upgrade every foundry in the database ahead of the operator: apply the pending embedded
    /// migrations to each foundry schema (one with a migrations table and an `<schema>_owner`
    /// role), nothing else. Grants and policies for what a migration adds follow at the
    /// foundry's next reconcile.
    #[arg(long, conflicts_with_all = ["namespace", "name", "schema", "application_password_file", "tenant_key_file"])]
    pub all_foundries: bool,

    /// File holding the application role's password. When it exists, that password is set on
    /// the role; when it does not, a new password is generated, set, and written there (mode
    /// 0600). Without this option a new application role gets a password that is not shown.
    #[arg(long, value_name = "FILE")]
    pub application_password_file: Option<PathBuf>,

    /// File holding the key that signs tenant claims (64 hex characters; the `claimKey` field of
    /// the foundry's `database` secret). When it exists, the database accepts exactly that key;
    /// when it does not, a new key is generated, installed, and written there (mode 0600).
    /// Without this option the database keeps its keys, and a foundry with none gets a generated
    /// key that is not shown.
    #[arg(long, value_name = "FILE")]
    pub tenant_key_file: Option<PathBuf>,

    /// Seconds to wait for a lock (another provisioning run, or a session holding a lock on the
    /// foundry's tables) before failing with the holder's process id, role and application.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub lock_timeout: u64,

    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Runs `migrate` and prints what changed; exits 1 with a clear reason on failure.
pub async fn execute(args: MigrateArgs) -> ExitCode {
    let outcome = if args.all_foundries {
        upgrade_all(&args)
            .await
            .map(|upgraded| print_upgrades(&upgraded))
    } else {
        run(&args).await.map(|report| print_report(&report))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let url = args.database_url.expose_secret();
            eprintln!("error: {}", redact_password(&message, url));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &MigrateArgs) -> Result<ProvisionReport, String> {
    let db = match (&args.namespace, &args.name, &args.schema) {
        (Some(namespace), Some(name), None) => FoundryDatabase::for_foundry(namespace, name),
        (None, None, Some(schema)) => FoundryDatabase::for_schema(schema),
        _ => return Err("give either --namespace and --name, or --schema".into()),
    }
    .map_err(|e| e.to_string())?;
    let (pool, with_server) = connect(args).await?;
    let with_server = |e: Error| with_server(&e);

    let (password, write_to) = match &args.application_password_file {
        None => (None, None),
        Some(path) => match read_password(path)? {
            Some(existing) => (Some(existing), None),
            None => (Some(postgres::generate_password()), Some(path.as_path())),
        },
    };
    if let (Some(path), Some(password)) = (write_to, &password) {
        // Written before the role is changed, so a failure cannot leave a password nobody has.
        write_password(path, password)?;
    }
    let tenant_key = match &args.tenant_key_file {
        None => None,
        Some(path) => match read_password(path)? {
            Some(text) => {
                Some(TenantKey::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => {
                let key = TenantKey::generate();
                // Written before it is installed, like the password.
                write_password(path, &key.to_text())?;
                Some(key)
            }
        },
    };
    let input = ProvisionInput {
        application_password: password.as_ref(),
        tenant_keys: tenant_key.as_ref().map(std::slice::from_ref),
        lock_timeout: Duration::from_secs(args.lock_timeout.max(1)),
    };
    let report = postgres::provision_with(&pool, &db, &input)
        .await
        .map_err(with_server)?;
    pool.close().await;
    Ok(report)
}

/// Connects with `--database-url`; the closure describes an error with the server it came from.
async fn connect(args: &MigrateArgs) -> Result<(PgPool, impl Fn(&Error) -> String), String> {
    let options = PgConnectOptions::from_str(args.database_url.expose_secret())
        .map_err(|e| format!("invalid --database-url: {e}"))?;
    let server = format!(
        "server {}:{}, database {}, user {}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default)"),
        options.get_username()
    );
    let with_server = move |e: &Error| format!("{} ({server})", describe(e));

    // One direct connection first: a pool would hide the reason behind "pool timed out".
    let timeout = Duration::from_secs(args.connect_timeout);
    let probe = postgres::probe(&options, timeout)
        .await
        .map_err(|e| with_server(&e))?;
    let _closed = probe.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|e| with_server(&Error::from_sqlx("connecting", e)))?;

    Ok((pool, with_server))
}

/// `--all-foundries`: the pending migrations of every foundry schema in the database.
async fn upgrade_all(args: &MigrateArgs) -> Result<Vec<(FoundryDatabase, Vec<i64>)>, String> {
    let (pool, with_server) = connect(args).await?;
    let upgraded = postgres::upgrade_all(&pool, Duration::from_secs(args.lock_timeout.max(1)))
        .await
        .map_err(|e| with_server(&e));
    pool.close().await;
    upgraded
}

/// One line per foundry schema: the versions applied, or that it was up to date.
fn print_upgrades(upgraded: &[(FoundryDatabase, Vec<i64>)]) {
    if upgraded.is_empty() {
        println!("no foundry schemas in this database");
    }
    for (db, applied) in upgraded {
        if applied.is_empty() {
            println!("{}: up to date", db.schema);
        } else {
            let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
            println!("{}: applied migrations {}", db.schema, versions.join(", "));
        }
    }
}

/// The error and its causes, one line (the driver's detail explains e.g. a refused connection).
fn describe(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn read_password(path: &Path) -> Result<Option<SecretString>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if trimmed.is_empty() {
                return Err(format!("{} is empty", path.display()));
            }
            Ok(Some(SecretString::from(trimmed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_password(path: &Path, password: &SecretString) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(file, "{}", password.expose_secret())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_report(report: &ProvisionReport) {
    if report.is_unchanged() {
        println!("no changes: the foundry's roles, schema, privileges and policies are as desired");
        return;
    }
    for change in &report.changes {
        let marker = if change.repaired_drift {
            "repaired"
        } else {
            "created"
        };
        println!("{marker}: {change}");
    }
    let repairs = report.repairs().count();
    println!(
        "{} change(s), {repairs} of them repairing drift",
        report.changes.len()
    );
    if report.generated_application_password.is_some() {
        eprintln!(
            "note: the application role was created with a generated password that is not shown; \
             re-run with --application-password-file FILE to set one and keep it"
        );
    }
    if report.generated_tenant_key.is_some() {
        eprintln!(
            "note: the foundry got a generated tenant key that is not shown, so no backend can \
             sign tenant claims yet; re-run with --tenant-key-file FILE to install one and keep it"
        );
    }
}

/// Removes the password of `url` (and the whole URL) from a message.
fn redact_password(message: &str, url: &str) -> String {
    let mut redacted = message.replace(url, "[database URL]");
    if let Some(password) = url_password(url).filter(|p| !p.is_empty()) {
        redacted = redacted.replace(password, "[redacted]");
    }
    redacted
}

fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_removed_from_messages() {
        let url = "postgres://admin:hunter2@db:5432/vf";
        assert_eq!(url_password(url), Some("hunter2"));
        assert_eq!(
            redact_password("bad hunter2 and postgres://admin:hunter2@db:5432/vf", url),
            "bad [redacted] and [database URL]"
        );
        assert_eq!(url_password("postgres://db/vf"), None);
        assert_eq!(url_password("postgres://u:p@ss@db/vf"), Some("p@ss"));
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "videofoundry-operator",
            "migrate",
            "--database-url",
            "postgres://admin:hunter2@db/vf",
            "--schema",
            "vf_studio",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("hunter2"));
    }

    #[test]
    fn a_foundry_or_a_schema_is_required_but_not_both() {
        use clap::Parser as _;
        let base = [
            "videofoundry-operator",
            "migrate",
            "--database-url",
            "postgres://x@db/vf",
        ];
        assert!(crate::cli::Cli::try_parse_from(base).is_err());
        let mut both = base.to_vec();
        both.extend(["--schema", "s", "--namespace", "n", "--name", "x"]);
        assert!(crate::cli::Cli::try_parse_from(both).is_err());
        let mut half = base.to_vec();
        half.extend(["--namespace", "n"]);
        assert!(crate::cli::Cli::try_parse_from(half).is_err());
    }
}
