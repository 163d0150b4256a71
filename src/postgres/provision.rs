//! Provisioning and drift repair for one foundry: compares the catalogs with the desired state
//! of `model`, fixes every difference, and reports what it changed. Safe to re-run at any point;
//! a run against a healthy foundry changes nothing and reports nothing.
//!
//! Order: roles → schema → migrations (as the owner) → owners, RLS flags, privileges, functions
//! and triggers, policies, tenant keys, statistics. Each phase runs in one transaction, so a
//! repair never leaves a window with grants revoked but not yet re-granted; a session advisory
//! lock serialises concurrent runs for the same foundry. Every lock is taken with a timeout: a
//! session that holds one for longer is reported by process id, role and application.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::{Connection as _, PgConnection, PgPool};

use super::catalog::{self, PUBLIC_GRANTEE};
use super::claim::TenantKey;
use super::error::is_lock_timeout;
use super::migrations::run_migrations;
use super::model::{self, Policy, Privilege, RelationSpec, desired_relations};
use super::password::{generate_password, password_clause, scram_sha256_verifier};
use super::sql::qualified;
use super::{Error, FoundryDatabase, RoleNames, quote_ident};

/// What kind of change a provisioning run made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// A role did not exist and was created.
    RoleCreated,
    /// A role's attributes (LOGIN, BYPASSRLS, SUPERUSER, ...) had drifted and were restored.
    RoleAttributesRepaired,
    /// The application role's password was set.
    ApplicationPasswordSet,
    /// A foundry role was a member of another role (or an unexpected role was a member of the
    /// owner); the membership was revoked.
    MembershipRevoked,
    /// The connecting (non-superuser) role was made a member of the owner so it can manage it.
    OwnerMembershipGranted,
    /// Per-role session defaults (`ALTER ROLE ... SET`) were reset.
    RoleSettingsReset,
    /// The application role's defaults were set (`track_activities = off`).
    RoleSettingsSet,
    /// The schema did not exist and was created.
    SchemaCreated,
    /// The schema belonged to another role.
    SchemaOwnerRepaired,
    /// The schema's privileges differed from the desired ones.
    SchemaPrivilegesRepaired,
    /// New functions of the owner were executable by PUBLIC by default.
    DefaultPrivilegesRepaired,
    /// A migration was applied.
    MigrationApplied,
    /// A table belonged to another role.
    TableOwnerRepaired,
    /// Row-level security was disabled.
    RowSecurityEnabled,
    /// Row-level security was not forced (the owner would bypass it).
    RowSecurityForced,
    /// A relation's privileges differed (widened, narrowed, or grantable).
    PrivilegesRepaired,
    /// A function in the schema was executable by someone it should not be (one made by hand,
    /// e.g. `SECURITY DEFINER`, is closed), or not by the application role where it must be.
    FunctionPrivilegesRepaired,
    /// One of the operator's functions (`current_user_id()`, a key guard) was missing, had
    /// another definition or another owner.
    FunctionReplaced,
    /// A key-guard trigger was missing, disabled or changed, or another trigger was found on a
    /// tenant table.
    TriggerRepaired,
    /// A key that signs tenant claims was installed.
    TenantKeyAdded,
    /// A key that signs tenant claims was removed (rotated out).
    TenantKeyRemoved,
    /// Columns of tenant tables were collecting planner statistics (which `EXPLAIN` leaks).
    StatisticsHidden,
    /// Planner statistics holding tenant values were deleted.
    StatisticsCleared,
    /// A policy was missing.
    PolicyCreated,
    /// A policy's definition had changed.
    PolicyReplaced,
    /// A policy that is not part of the desired state was dropped.
    PolicyDropped,
}

/// One change made by a provisioning run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What kind of change.
    pub kind: ChangeKind,
    /// The object changed (role, schema, table, `table.policy`, migration version).
    pub object: String,
    /// What was found, in a few words.
    pub detail: String,
    /// Whether this repaired drift in an object that already existed (as opposed to setting up
    /// an object this run created).
    pub repaired_drift: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.kind, self.object)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The outcome of [`provision`].
#[derive(Debug, Default)]
pub struct ProvisionReport {
    /// Set when the application role was created without a given password: hand it to the
    /// secrets layer; it is not stored anywhere else.
    pub generated_application_password: Option<SecretString>,
    /// Set when no tenant key was given and the foundry had none: the key now installed, to be
    /// kept by the secrets layer (the database keeps only its HMAC pads).
    pub generated_tenant_key: Option<TenantKey>,
    /// Everything created or repaired, in order.
    pub changes: Vec<Change>,
}

impl ProvisionReport {
    /// Whether the run found the foundry exactly as desired.
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes that repaired drift.
    pub fn repairs(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.repaired_drift)
    }

    /// Records setting up something this run created.
    pub(crate) fn record(
        &mut self,
        kind: ChangeKind,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(kind, object.into(), detail.into(), false);
    }

    /// Records repairing drift in something that already existed.
    pub(crate) fn repaired(
        &mut self,
        kind: ChangeKind,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(kind, object.into(), detail.into(), true);
    }

    /// Records a change that is a repair when `existed`.
    pub(crate) fn changed(
        &mut self,
        existed: bool,
        kind: ChangeKind,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.push(kind, object.into(), detail.into(), existed);
    }

    fn push(&mut self, kind: ChangeKind, object: String, detail: String, repaired_drift: bool) {
        self.changes.push(Change {
            kind,
            object,
            detail,
            repaired_drift,
        });
    }
}

/// How long provisioning waits for any lock before it reports who holds it.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a provisioning run is given besides the foundry's identity.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionInput<'a> {
    /// The application role's password: set when it differs (if the server lets us compare).
    /// Without it, a new application role gets a generated password, returned in the report.
    pub application_password: Option<&'a SecretString>,
    /// Every key that may sign tenant claims: the current one, and during a rotation the pending
    /// and previous ones. The database ends with exactly these. Without keys (or with none), the
    /// database's keys are kept; a foundry that has none gets a generated key, returned in the
    /// report.
    pub tenant_keys: Option<&'a [TenantKey]>,
    /// How long to wait for a lock (another run, or a session holding one on the foundry's
    /// tables) before failing with [`Error::Blocked`].
    pub lock_timeout: Duration,
}

impl Default for ProvisionInput<'_> {
    fn default() -> Self {
        Self {
            application_password: None,
            tenant_keys: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

/// Provisions (or repairs) the foundry's roles, schema, tables, privileges and policies through
/// `admin`, a pool logged in as a superuser or a role with `CREATEROLE` and `CREATE` on the
/// database. With `application_password`, the application role gets that password (set only
/// when it differs, if the server lets us compare); without it, a new application role gets a
/// generated password, returned in the report. Tenant keys are kept (or generated), see
/// [`provision_with`].
pub async fn provision(
    admin: &PgPool,
    db: &FoundryDatabase,
    application_password: Option<&SecretString>,
) -> Result<ProvisionReport, Error> {
    let input = ProvisionInput {
        application_password,
        ..ProvisionInput::default()
    };
    provision_with(admin, db, &input).await
}

/// [`provision`] with every input: the password, the tenant keys, the lock timeout.
pub async fn provision_with(
    admin: &PgPool,
    db: &FoundryDatabase,
    input: &ProvisionInput<'_>,
) -> Result<ProvisionReport, Error> {
    let mut conn = admin
        .acquire()
        .await
        .map_err(|e| Error::from_sqlx("connecting", e))?
        .detach();
    let timeout = format!(
        "SET lock_timeout = {}",
        input.lock_timeout.as_millis().max(1)
    );
    let mut outcome = match execute(&mut conn, "setting the lock timeout", timeout).await {
        Ok(()) => match lock_foundry(&mut conn, db, input.lock_timeout).await {
            Ok(true) => provision_on(&mut conn, db, input).await,
            Ok(false) => Err(blocked(admin, db, input.lock_timeout).await),
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    // The session (its advisory lock, any SET ROLE left by a failure) ends with the connection.
    let _closed = conn.close().await;
    if let Err(error) = &outcome
        && is_lock_timeout(error)
    {
        outcome = Err(blocked(admin, db, input.lock_timeout).await);
    }
    outcome
}

/// The advisory lock key of a foundry's provisioning runs.
pub(crate) fn provisioning_lock(db: &FoundryDatabase) -> String {
    format!("videofoundry:{}", db.schema)
}

/// How often a run waiting for the foundry's provisioning lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Takes the foundry's provisioning lock (session-level, released with the connection);
/// `false` when another session still holds it after `timeout`. Polls `pg_try_advisory_lock`
/// rather than blocking in `pg_advisory_lock`: a session blocked in a statement holds a
/// snapshot, `CREATE INDEX CONCURRENTLY` (migration 5) waits for every older snapshot in the
/// database, and the holder building the index and a blocked waiter would deadlock.
pub(crate) async fn lock_foundry(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    timeout: Duration,
) -> Result<bool, Error> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(provisioning_lock(db))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| Error::from_sqlx("locking the foundry", e))?;
        if locked {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Who holds the foundry's provisioning lock or a lock on its tables, for [`Error::Blocked`].
/// Read on a fresh connection; never the sessions' SQL text (it may hold secrets).
pub(crate) async fn blocked(admin: &PgPool, db: &FoundryDatabase, timeout: Duration) -> Error {
    #[derive(sqlx::FromRow)]
    struct Holder {
        pid: i32,
        role: String,
        application: String,
        client: String,
        state: String,
        since: String,
        mode: String,
        relation: String,
    }
    let holders: Vec<Holder> = sqlx::query_as(
        "SELECT DISTINCT l.pid, coalesce(a.usename::text, '?') AS role, \
                coalesce(a.application_name, '') AS application, \
                coalesce(host(a.client_addr), 'local') AS client, coalesce(a.state, '?') AS state, \
                coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') AS since, \
                l.mode, coalesce(c.relname::text, '') AS relation \
         FROM pg_locks l \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         LEFT JOIN pg_class c ON c.oid = l.relation \
         WHERE l.granted AND l.pid <> pg_backend_pid() \
           AND ((l.locktype = 'advisory' AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)) \
                OR c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2)) \
         ORDER BY l.pid",
    )
    .bind(provisioning_lock(db))
    .bind(&db.schema)
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    let described: Vec<String> = holders
        .iter()
        .map(|h| {
            let what = if h.relation.is_empty() {
                "the foundry's provisioning lock".to_owned()
            } else {
                format!("{} on {}", h.mode, h.relation)
            };
            let since = if h.since.is_empty() {
                String::new()
            } else {
                format!(" since {}", h.since)
            };
            format!(
                "pid {} (role {}, application '{}', client {}, {}{since}) holding {what}",
                h.pid, h.role, h.application, h.client, h.state
            )
        })
        .collect();
    Error::Blocked {
        waiting_for: format!("a lock on foundry schema {}", db.schema),
        seconds: timeout.as_secs(),
        holders: if described.is_empty() {
            "a session that has released it since".to_owned()
        } else {
            described.join("; ")
        },
    }
}

async fn provision_on(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    input: &ProvisionInput<'_>,
) -> Result<ProvisionReport, Error> {
    let mut report = ProvisionReport::default();
    let superuser = check_provisioner(conn).await?;

    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a transaction", e))?;
    let owner_existed = ensure_roles(
        &mut tx,
        db,
        input.application_password,
        superuser,
        &mut report,
    )
    .await?;
    ensure_schema(&mut tx, db, owner_existed, &mut report).await?;
    tx.commit()
        .await
        .map_err(|e| Error::from_sqlx("committing roles and schema", e))?;

    // Whatever exists before migrating has drifted if it differs; what the migrations create now
    // is being set up.
    let existed: BTreeSet<String> = catalog::relations(conn, &db.schema)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    for version in run_migrations(conn, db, None).await? {
        report.record(ChangeKind::MigrationApplied, version.to_string(), "");
    }

    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::from_sqlx("starting a transaction", e))?;
    ensure_relations(&mut tx, db, &existed, &mut report).await?;
    report.generated_tenant_key =
        super::keys::ensure_tenant_keys(&mut tx, db, input.tenant_keys, &mut report).await?;
    super::statistics::ensure_statistics_hidden(&mut tx, db, superuser, &existed, &mut report)
        .await?;
    tx.commit()
        .await
        .map_err(|e| Error::from_sqlx("committing privileges and policies", e))?;
    Ok(report)
}

/// Fails clearly when the connecting role cannot provision. Returns whether it is a superuser.
pub(crate) async fn check_provisioner(conn: &mut PgConnection) -> Result<bool, Error> {
    let (superuser, createrole): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::from_sqlx("reading the connecting role", e))?;
    if !superuser && !createrole {
        return Err(Error::MissingPrivilege {
            action: "provisioning",
            detail: "the connecting role needs SUPERUSER, or CREATEROLE and CREATE on the database"
                .into(),
        });
    }
    Ok(superuser)
}

pub(crate) async fn execute(
    conn: &mut PgConnection,
    action: &'static str,
    sql: String,
) -> Result<(), Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::from_sqlx(action, e))
}

fn create_schema_sql(db: &FoundryDatabase) -> String {
    format!(
        "CREATE SCHEMA {} AUTHORIZATION {}",
        quote_ident(&db.schema),
        quote_ident(&db.roles.owner)
    )
}

fn schema_usage_sql(db: &FoundryDatabase) -> String {
    let roles = &db.roles;
    let roles_sql = [&roles.application, &roles.admin, &roles.auditor]
        .map(|r| quote_ident(r))
        .join(", ");
    format!(
        "GRANT USAGE ON SCHEMA {} TO {roles_sql}",
        quote_ident(&db.schema)
    )
}

/// What provisioning a new foundry runs, statement by statement, with the application
/// password redacted: roles, schema, the migrations (by name), forced row-level security, the
/// grants and the policies. Pure (no connection): `plan` prints it offline. On an existing
/// database provisioning runs only what differs from this.
pub fn planned_statements(db: &FoundryDatabase) -> Vec<String> {
    let roles = &db.roles;
    let mut statements: Vec<String> = roles
        .all()
        .into_iter()
        .map(|role| {
            let mut sql = format!(
                "CREATE ROLE {} {}",
                quote_ident(role),
                role_attributes(roles, role)
            );
            if role == roles.application {
                sql.push_str(" PASSWORD '<redacted: kept in Vault or the developer Secret>'");
            }
            sql
        })
        .collect();
    statements.push(create_schema_sql(db));
    statements.push(schema_usage_sql(db));
    for migration in super::migrations::MIGRATOR.iter() {
        statements.push(format!(
            "-- migration {} {} (run as {})",
            migration.version,
            migration.description,
            quote_ident(&roles.owner)
        ));
    }
    for spec in desired_relations(&db.schema, roles) {
        let object = qualified(&db.schema, spec.name);
        if spec.row_security {
            statements.push(format!("ALTER TABLE {object} ENABLE ROW LEVEL SECURITY"));
            statements.push(format!("ALTER TABLE {object} FORCE ROW LEVEL SECURITY"));
        }
        let noun = if spec.kind == 'S' {
            "SEQUENCE"
        } else {
            "TABLE"
        };
        let privileges: BTreeSet<Privilege> = spec.privileges.iter().cloned().collect();
        statements.extend(build_grants(noun, &object, &privileges));
        statements.extend(
            spec.policies
                .iter()
                .map(|policy| build_policy(&object, policy)),
        );
    }
    statements
}

/// The attributes each role must have.
fn role_attributes(roles: &RoleNames, role: &str) -> &'static str {
    if role == roles.application {
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    } else {
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    }
}

async fn ensure_roles(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    application_password: Option<&SecretString>,
    superuser: bool,
    report: &mut ProvisionReport,
) -> Result<bool, Error> {
    let roles = &db.roles;
    let names = roles.all();
    let existing = catalog::roles(conn, &names).await?;
    let owner_existed = existing.iter().any(|r| r.rolname == roles.owner);
    for role in names {
        let attributes = role_attributes(roles, role);
        match existing.iter().find(|r| r.rolname == role) {
            None => {
                let mut sql = format!("CREATE ROLE {} {attributes}", quote_ident(role));
                if role == roles.application {
                    let password = match application_password {
                        Some(given) => given.clone(),
                        None => {
                            let generated = generate_password();
                            report.generated_application_password = Some(generated.clone());
                            generated
                        }
                    };
                    sql = format!("{sql} {}", password_clause(&password));
                }
                execute(conn, "creating a role", sql).await?;
                report.record(ChangeKind::RoleCreated, role, attributes);
            }
            Some(found) => {
                let login_expected = role == roles.application;
                let drifted = found.rolsuper
                    || found.rolcreatedb
                    || found.rolcreaterole
                    || found.rolreplication
                    || found.rolbypassrls
                    || found.rolcanlogin != login_expected;
                if drifted {
                    let sql = format!("ALTER ROLE {} {attributes}", quote_ident(role));
                    execute(conn, "repairing role attributes", sql).await?;
                    report.repaired(
                        ChangeKind::RoleAttributesRepaired,
                        role,
                        describe_role(found),
                    );
                }
                if role == roles.application
                    && let Some(given) = application_password
                    && !password_matches(conn, role, given, superuser).await
                {
                    let sql = format!(
                        "ALTER ROLE {} {}",
                        quote_ident(role),
                        password_clause(given)
                    );
                    execute(conn, "setting the application password", sql).await?;
                    // A superuser compared the verifier: the role's password had been changed
                    // (e.g. by the role itself). Otherwise the run cannot tell.
                    if superuser {
                        report.repaired(
                            ChangeKind::ApplicationPasswordSet,
                            role,
                            "the password differed from the given one",
                        );
                    } else {
                        report.record(ChangeKind::ApplicationPasswordSet, role, "");
                    }
                }
            }
        }
    }

    if !superuser {
        let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
            .bind(&roles.owner)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::from_sqlx("checking owner membership", e))?;
        if !member {
            let sql = format!("GRANT {} TO CURRENT_USER", quote_ident(&roles.owner));
            execute(conn, "joining the owner role", sql).await?;
            report.record(ChangeKind::OwnerMembershipGranted, &roles.owner, "");
        }
    }

    for membership in catalog::unexpected_memberships(conn, &names, &roles.owner).await? {
        let sql = format!(
            "REVOKE {} FROM {} CASCADE",
            quote_ident(&membership.role),
            quote_ident(&membership.member)
        );
        execute(conn, "revoking a role membership", sql).await?;
        report.repaired(
            ChangeKind::MembershipRevoked,
            &membership.member,
            format!("was a member of {}", membership.role),
        );
    }

    // The application role runs with `track_activities = off`: its sessions (every tenant's)
    // publish no SQL text in pg_stat_activity for the others to read. Only a superuser may set
    // it (and nobody else may change it); every other per-role default is drift.
    let app_defaults: &[&str] = if superuser { APPLICATION_DEFAULTS } else { &[] };
    let found = catalog::role_settings(conn, &names).await?;
    for setting in &found {
        let is_app_global = setting.role == roles.application && setting.database.is_none();
        let expected: Vec<&str> = if is_app_global {
            app_defaults.to_vec()
        } else {
            vec![]
        };
        let tolerated = is_app_global && !superuser && setting.settings == APPLICATION_DEFAULTS;
        if setting.settings == expected || tolerated {
            continue;
        }
        let mut sql = match &setting.database {
            None => format!("ALTER ROLE {} RESET ALL", quote_ident(&setting.role)),
            Some(database) => format!(
                "ALTER ROLE {} IN DATABASE {} RESET ALL",
                quote_ident(&setting.role),
                quote_ident(database)
            ),
        };
        if is_app_global {
            sql.push_str(&application_defaults_sql(roles, app_defaults));
        }
        execute(conn, "resetting role settings", sql).await?;
        let scope = setting.database.as_deref().unwrap_or("every database");
        report.repaired(
            ChangeKind::RoleSettingsReset,
            &setting.role,
            format!("session defaults in {scope}"),
        );
    }
    let app_has_row = found
        .iter()
        .any(|s| s.role == roles.application && s.database.is_none());
    if !app_has_row && !app_defaults.is_empty() {
        let sql = application_defaults_sql(roles, app_defaults);
        let sql = sql.trim_start_matches("; ").to_owned();
        execute(conn, "setting the application role's defaults", sql).await?;
        report.record(
            ChangeKind::RoleSettingsSet,
            &roles.application,
            app_defaults.join(", "),
        );
    }
    Ok(owner_existed)
}

/// The application role's session defaults, as `pg_db_role_setting` lists them.
const APPLICATION_DEFAULTS: &[&str] = &["track_activities=off"];

/// `; ALTER ROLE app SET name = value` for each default.
fn application_defaults_sql(roles: &RoleNames, defaults: &[&str]) -> String {
    defaults
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(name, value)| {
            format!(
                "; ALTER ROLE {} SET {name} = {value}",
                quote_ident(&roles.application)
            )
        })
        .collect()
}

fn describe_role(found: &catalog::RoleRow) -> String {
    let flags = [
        (found.rolsuper, "SUPERUSER"),
        (found.rolcreatedb, "CREATEDB"),
        (found.rolcreaterole, "CREATEROLE"),
        (found.rolreplication, "REPLICATION"),
        (found.rolbypassrls, "BYPASSRLS"),
        (found.rolcanlogin, "LOGIN"),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    format!("had [{}]", set.join(" "))
}

/// Compares a password with the stored SCRAM verifier (readable by superusers only).
async fn password_matches(
    conn: &mut PgConnection,
    role: &str,
    password: &SecretString,
    superuser: bool,
) -> bool {
    if !superuser {
        return false;
    }
    let Some(stored) = catalog::stored_verifier(conn, role).await else {
        return false;
    };
    let Some(salt) = verifier_salt(&stored) else {
        return false;
    };
    stored.starts_with("SCRAM-SHA-256$4096:") && scram_sha256_verifier(password, &salt) == stored
}

fn verifier_salt(verifier: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (_, after_iterations) = rest.split_once(':')?;
    let (salt, _) = after_iterations.split_once('$')?;
    base64::engine::general_purpose::STANDARD.decode(salt).ok()
}

async fn ensure_schema(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    owner_existed: bool,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let roles = &db.roles;
    let schema = quote_ident(&db.schema);
    let found_owner = catalog::schema_owner(conn, &db.schema).await?;
    let schema_existed = found_owner.is_some();
    match found_owner {
        None => {
            execute(conn, "creating the schema", create_schema_sql(db)).await?;
            report.record(ChangeKind::SchemaCreated, &db.schema, "");
        }
        Some(owner) if owner != roles.owner => {
            let sql = format!(
                "ALTER SCHEMA {schema} OWNER TO {}",
                quote_ident(&roles.owner)
            );
            execute(conn, "repairing the schema owner", sql).await?;
            report.repaired(
                ChangeKind::SchemaOwnerRepaired,
                &db.schema,
                format!("was owned by {owner}"),
            );
        }
        Some(_) => {}
    }

    let desired: BTreeSet<Privilege> = [&roles.application, &roles.admin, &roles.auditor]
        .into_iter()
        .map(|role| Privilege {
            grantee: role.clone(),
            privilege: "USAGE".to_owned(),
            column: None,
        })
        .collect();
    let found = catalog::schema_privileges(conn, &db.schema).await?;
    let actual: BTreeSet<Privilege> = found.iter().map(|row| row.privilege()).collect();
    if actual != desired || found.iter().any(|row| row.grantable) {
        let grantees = revoke_list(roles, found.iter().map(|row| row.grantee.as_str()));
        let sql = format!(
            "REVOKE ALL ON SCHEMA {schema} FROM {grantees} CASCADE; {}",
            schema_usage_sql(db)
        );
        execute(conn, "repairing schema privileges", sql).await?;
        report.changed(
            schema_existed,
            ChangeKind::SchemaPrivilegesRepaired,
            &db.schema,
            describe_difference(&actual, &desired),
        );
    }

    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::from_sqlx("reading the database name", e))?;
    // CONNECT only, when missing; not reported (the database may be shared by many foundries,
    // and PUBLIC usually has it). The transaction lock serialises foundries provisioned at the
    // same time, which would otherwise update the same pg_database row concurrently.
    for role in [&roles.application, &roles.admin, &roles.auditor] {
        let can_connect: bool =
            sqlx::query_scalar("SELECT has_database_privilege($1, current_database(), 'CONNECT')")
                .bind(role)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| Error::from_sqlx("checking CONNECT", e))?;
        if can_connect {
            continue;
        }
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('videofoundry:database', 0))")
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::from_sqlx("locking the database privileges", e))?;
        let sql = format!(
            "GRANT CONNECT ON DATABASE {} TO {}",
            quote_ident(&database),
            quote_ident(role)
        );
        execute(conn, "granting CONNECT", sql).await?;
    }

    if !catalog::owner_function_defaults_revoked(conn, &roles.owner).await? {
        let sql = format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
            quote_ident(&roles.owner)
        );
        execute(conn, "revoking default function privileges", sql).await?;
        report.changed(
            owner_existed,
            ChangeKind::DefaultPrivilegesRepaired,
            &roles.owner,
            "new functions were executable by PUBLIC",
        );
    }
    Ok(())
}

/// `PUBLIC`, the foundry's roles and every other grantee found, ready for `REVOKE ... FROM`.
pub(crate) fn revoke_list<'a>(
    roles: &'a RoleNames,
    found: impl Iterator<Item = &'a str>,
) -> String {
    let mut grantees: BTreeSet<&str> = [
        roles.application.as_str(),
        roles.admin.as_str(),
        roles.auditor.as_str(),
    ]
    .into_iter()
    .collect();
    grantees.extend(found.filter(|g| *g != PUBLIC_GRANTEE));
    std::iter::once("PUBLIC".to_owned())
        .chain(grantees.into_iter().map(quote_ident))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_difference<T: Ord + fmt::Display>(
    actual: &BTreeSet<T>,
    desired: &BTreeSet<T>,
) -> String {
    let list = |items: Vec<&T>| {
        items
            .iter()
            .map(|item| item.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let extra = list(actual.difference(desired).collect());
    let missing = list(desired.difference(actual).collect());
    match (extra.is_empty(), missing.is_empty()) {
        (true, true) => "grantable privileges".to_owned(),
        (false, true) => format!("unexpected: {extra}"),
        (true, false) => format!("missing: {missing}"),
        (false, false) => format!("unexpected: {extra}; missing: {missing}"),
    }
}

async fn ensure_relations(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    existed: &BTreeSet<String>,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let roles = &db.roles;
    let specs = desired_relations(&db.schema, roles);
    let relations = catalog::relations(conn, &db.schema).await?;

    for relation in relations.iter().filter(|r| r.kind != "S") {
        if relation.owner != roles.owner {
            let sql = format!(
                "ALTER TABLE {} OWNER TO {}",
                qualified(&db.schema, &relation.name),
                quote_ident(&roles.owner)
            );
            execute(conn, "repairing a table owner", sql).await?;
            report.repaired(
                ChangeKind::TableOwnerRepaired,
                &relation.name,
                format!("was owned by {}", relation.owner),
            );
        }
    }

    for spec in specs.iter().filter(|s| s.row_security) {
        let Some(found) = relations.iter().find(|r| r.name == spec.name) else {
            continue;
        };
        let table = qualified(&db.schema, spec.name);
        if !found.row_security {
            execute(
                conn,
                "enabling row-level security",
                format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            )
            .await?;
            report.changed(
                existed.contains(spec.name),
                ChangeKind::RowSecurityEnabled,
                spec.name,
                "row-level security was disabled",
            );
        }
        if !found.force_row_security {
            execute(
                conn,
                "forcing row-level security",
                format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
            )
            .await?;
            report.changed(
                existed.contains(spec.name),
                ChangeKind::RowSecurityForced,
                spec.name,
                "row-level security was not forced",
            );
        }
    }

    ensure_privileges(conn, db, &specs, &relations, existed, report).await?;
    super::functions::ensure_functions(conn, db, report).await?;
    ensure_policies(conn, db, &specs, existed, report).await
}

async fn ensure_privileges(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    specs: &[RelationSpec],
    relations: &[catalog::RelationRow],
    existed: &BTreeSet<String>,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let found = catalog::relation_privileges(conn, &db.schema).await?;
    for relation in relations {
        // Relations the migrations did not create keep no privileges at all.
        let desired: BTreeSet<Privilege> = specs
            .iter()
            .find(|s| s.name == relation.name)
            .map(|s| s.privileges.iter().cloned().collect())
            .unwrap_or_default();
        let rows: Vec<_> = found
            .iter()
            .filter(|r| r.relation == relation.name)
            .collect();
        let actual: BTreeSet<Privilege> = rows.iter().map(|r| r.privilege()).collect();
        if actual == desired && rows.iter().all(|r| !r.grantable) {
            continue;
        }
        let object = qualified(&db.schema, &relation.name);
        let noun = if relation.kind == "S" {
            "SEQUENCE"
        } else {
            "TABLE"
        };
        let mut sql = format!(
            "REVOKE ALL ON {noun} {object} FROM {} CASCADE",
            revoke_list(&db.roles, rows.iter().map(|r| r.grantee.as_str()))
        );
        for grant in build_grants(noun, &object, &desired) {
            sql.push_str("; ");
            sql.push_str(&grant);
        }
        execute(conn, "repairing privileges", sql).await?;
        report.changed(
            existed.contains(&relation.name),
            ChangeKind::PrivilegesRepaired,
            &relation.name,
            describe_difference(&actual, &desired),
        );
    }
    Ok(())
}

/// `GRANT` statements for a set of privileges, one per grantee and column set.
fn build_grants(noun: &str, object: &str, privileges: &BTreeSet<Privilege>) -> Vec<String> {
    let mut statements = Vec::new();
    let mut grantees: Vec<&str> = privileges.iter().map(|p| p.grantee.as_str()).collect();
    grantees.dedup();
    for grantee in grantees {
        let mine: Vec<&Privilege> = privileges.iter().filter(|p| p.grantee == grantee).collect();
        let table_level: Vec<&str> = mine
            .iter()
            .filter(|p| p.column.is_none())
            .map(|p| p.privilege.as_str())
            .collect();
        if !table_level.is_empty() {
            statements.push(format!(
                "GRANT {} ON {noun} {object} TO {}",
                table_level.join(", "),
                quote_ident(grantee)
            ));
        }
        let mut column_privileges: Vec<&str> = mine
            .iter()
            .filter(|p| p.column.is_some())
            .map(|p| p.privilege.as_str())
            .collect();
        column_privileges.dedup();
        for privilege in column_privileges {
            let columns: Vec<String> = mine
                .iter()
                .filter(|p| p.privilege == privilege)
                .filter_map(|p| p.column.as_deref().map(quote_ident))
                .collect();
            statements.push(format!(
                "GRANT {privilege} ({}) ON {noun} {object} TO {}",
                columns.join(", "),
                quote_ident(grantee)
            ));
        }
    }
    statements
}

async fn ensure_policies(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    specs: &[RelationSpec],
    existed: &BTreeSet<String>,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let found = catalog::policies(conn, &db.schema).await?;
    for row in &found {
        let wanted = specs
            .iter()
            .find(|s| s.name == row.tablename)
            .is_some_and(|s| s.policies.iter().any(|p| p.name == row.policyname));
        if !wanted {
            let sql = format!(
                "DROP POLICY {} ON {}",
                quote_ident(&row.policyname),
                qualified(&db.schema, &row.tablename)
            );
            execute(conn, "dropping a policy", sql).await?;
            report.repaired(
                ChangeKind::PolicyDropped,
                format!("{}.{}", row.tablename, row.policyname),
                format!("{} {} TO {:?}", row.permissive, row.cmd, row.roles),
            );
        }
    }
    for spec in specs {
        let table = qualified(&db.schema, spec.name);
        for policy in &spec.policies {
            let existing = found
                .iter()
                .find(|r| r.tablename == spec.name && r.policyname == policy.name);
            let object = format!("{}.{}", spec.name, policy.name);
            match existing {
                None => {
                    execute(conn, "creating a policy", build_policy(&table, policy)).await?;
                    report.changed(
                        existed.contains(spec.name),
                        ChangeKind::PolicyCreated,
                        object,
                        "policy was missing",
                    );
                }
                Some(row) if !policy_matches(row, policy, &db.schema) => {
                    let sql = format!(
                        "DROP POLICY {} ON {table}; {}",
                        quote_ident(policy.name),
                        build_policy(&table, policy)
                    );
                    execute(conn, "replacing a policy", sql).await?;
                    report.repaired(
                        ChangeKind::PolicyReplaced,
                        object,
                        format!(
                            "was {} {} TO {:?} USING {:?} WITH CHECK {:?}",
                            row.permissive, row.cmd, row.roles, row.qual, row.with_check
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn build_policy(table: &str, policy: &Policy) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {table} AS PERMISSIVE FOR {} TO {}",
        quote_ident(policy.name),
        policy.command.keyword(),
        quote_ident(&policy.role)
    );
    if let Some(using) = &policy.using {
        sql.push_str(&format!(" USING ({using})"));
    }
    if let Some(check) = &policy.with_check {
        sql.push_str(&format!(" WITH CHECK ({check})"));
    }
    sql
}

fn policy_matches(row: &catalog::PolicyRow, policy: &Policy, schema: &str) -> bool {
    let same_expression = |found: &Option<String>, wanted: &Option<String>| match (found, wanted) {
        (None, None) => true,
        (Some(f), Some(w)) => {
            model::normalise_expression(f, schema) == model::normalise_expression(w, schema)
        }
        _ => false,
    };
    row.permissive == "PERMISSIVE"
        && row.cmd == policy.command.keyword()
        && row.roles == [policy.role.clone()]
        && same_expression(&row.qual, &policy.using)
        && same_expression(&row.with_check, &policy.with_check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privilege(grantee: &str, privilege: &str, column: Option<&str>) -> Privilege {
        Privilege {
            grantee: grantee.into(),
            privilege: privilege.into(),
            column: column.map(Into::into),
        }
    }

    #[test]
    fn grants_are_grouped_per_grantee_and_columns_quoted() {
        let set: BTreeSet<Privilege> = [
            privilege("app", "SELECT", None),
            privilege("app", "INSERT", Some("id")),
            privilege("app", "INSERT", Some("email")),
            privilege("adm", "SELECT", None),
            privilege("adm", "DELETE", None),
        ]
        .into_iter()
        .collect();
        let statements = build_grants("TABLE", "\"s\".\"users\"", &set);
        assert_eq!(
            statements,
            [
                "GRANT DELETE, SELECT ON TABLE \"s\".\"users\" TO \"adm\"",
                "GRANT SELECT ON TABLE \"s\".\"users\" TO \"app\"",
                "GRANT INSERT (\"email\", \"id\") ON TABLE \"s\".\"users\" TO \"app\"",
            ]
        );
    }

    #[test]
    fn revoke_list_always_names_public_and_the_foundry_roles() {
        let db = FoundryDatabase::for_schema("vf_x").unwrap();
        let list = revoke_list(&db.roles, ["public", "intruder\"x"].into_iter());
        assert_eq!(
            list,
            "PUBLIC, \"intruder\"\"x\", \"vf_x_admin\", \"vf_x_app\", \"vf_x_auditor\""
        );
    }

    #[test]
    fn policies_are_created_with_quoted_names_and_explicit_role() {
        let policy = Policy {
            name: "vf_tenant_all",
            command: model::PolicyCommand::All,
            role: "vf_x_app".into(),
            using: Some("(user_id = 1)".into()),
            with_check: Some("(user_id = 1)".into()),
        };
        assert_eq!(
            build_policy("\"vf_x\".\"projects\"", &policy),
            "CREATE POLICY \"vf_tenant_all\" ON \"vf_x\".\"projects\" AS PERMISSIVE FOR ALL TO \"vf_x_app\" USING ((user_id = 1)) WITH CHECK ((user_id = 1))"
        );
    }

    #[test]
    fn verifier_salt_is_parsed() {
        let salt = verifier_salt("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b").unwrap();
        assert_eq!(salt.len(), 16);
        assert!(verifier_salt("md5abc").is_none());
    }
}
