//! The functions and triggers provisioning keeps in the foundry's schema, all owned by the owner
//! role, `SECURITY DEFINER` with `search_path = pg_catalog, pg_temp` and every name qualified:
//!
//! - `current_user_id()`: the verified user of the transaction's signed claim (see `claim`);
//!   the policies call it once per query. The application role may execute it; nobody may
//!   alter it or read the keys it uses.
//! - `vf_key_guard_<table>()`, fired `BEFORE INSERT OR UPDATE` on every tenant table with a
//!   unique key: refuses a key value that another tenant's row already holds *before*
//!   PostgreSQL resolves the conflict, so `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE <expr>`
//!   never evaluates `<expr>` on another tenant's row (PostgreSQL evaluates that WHERE before
//!   the row-security check of the conflicting row). Keys without a column default (values a
//!   tenant could guess, such as an e-mail address) are also serialised with a transaction
//!   advisory lock, so a concurrent insert of the same value cannot slip in between the check and
//!   the conflict resolution.

use std::collections::BTreeSet;

use sqlx::PgConnection;

use super::claim::verify_function_body;
use super::model::{CLAIM_KEYS_TABLE, KEY_GUARD_SETTING, TENANT_TABLES, owned_by_tenant};
use super::provision::{ChangeKind, ProvisionReport, execute};
use super::sql::qualified;
use super::{Error, FoundryDatabase, quote_ident};

/// The setting every function runs with.
const SEARCH_PATH: &str = "search_path=pg_catalog, pg_temp";
/// The name of the key-guard trigger on each table.
pub(crate) const KEY_GUARD_TRIGGER: &str = "vf_key_guard";

/// One column of a unique key, as read from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct KeyColumn {
    pub relation: String,
    pub index_name: String,
    pub column_name: String,
    /// A column with a default (a generated UUID, a sequence) is not guessable.
    pub has_default: bool,
}

/// A function the schema must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionSpec {
    pub name: String,
    pub returns: &'static str,
    pub volatility: &'static str,
    pub body: String,
    /// Roles that may execute it (besides its owner).
    pub executors: Vec<String>,
}

impl FunctionSpec {
    fn create(&self, schema: &str) -> String {
        format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS {} LANGUAGE plpgsql {} SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS $vf_body${}$vf_body$",
            qualified(schema, &self.name),
            self.returns,
            self.volatility,
            self.body
        )
    }
}

/// The name of the key guard of `table`.
pub(crate) fn guard_name(table: &str) -> String {
    format!("vf_key_guard_{table}")
}

/// Every function the schema must contain, given the unique keys of its tenant tables.
pub(crate) fn desired_functions(db: &FoundryDatabase, keys: &[KeyColumn]) -> Vec<FunctionSpec> {
    let schema = &db.schema;
    let mut functions = vec![FunctionSpec {
        name: "current_user_id".to_owned(),
        returns: "uuid",
        volatility: "STABLE",
        body: verify_function_body(&qualified(schema, CLAIM_KEYS_TABLE)),
        executors: vec![db.roles.application.clone()],
    }];
    for table in TENANT_TABLES {
        let Some(owned) = owned_by_tenant(schema, table) else {
            continue;
        };
        let table_keys: Vec<&KeyColumn> = keys.iter().filter(|k| k.relation == table).collect();
        if table_keys.is_empty() {
            continue;
        }
        functions.push(FunctionSpec {
            name: guard_name(table),
            returns: "trigger",
            volatility: "VOLATILE",
            body: guard_body(schema, table, &owned, &table_keys),
            executors: vec![],
        });
    }
    functions
}

fn guard_body(schema: &str, table: &str, owned: &str, keys: &[&KeyColumn]) -> String {
    let relation = qualified(schema, table);
    let columns: BTreeSet<&str> = keys.iter().map(|k| k.column_name.as_str()).collect();
    let unchanged = columns
        .iter()
        .map(|c| format!("NEW.{0} IS NOT DISTINCT FROM OLD.{0}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut indexes: Vec<&str> = keys.iter().map(|k| k.index_name.as_str()).collect();
    indexes.dedup();
    let mut locks = String::new();
    let mut checks = Vec::new();
    for index in indexes {
        let parts: Vec<&&KeyColumn> = keys.iter().filter(|k| k.index_name == index).collect();
        let matches = parts
            .iter()
            .map(|k| format!("t.{0} = NEW.{0}", quote_ident(&k.column_name)))
            .collect::<Vec<_>>()
            .join(" AND ");
        checks.push(format!(
            "EXISTS (SELECT 1 FROM {relation} t WHERE {matches} AND NOT coalesce({owned}, false))"
        ));
        if parts.iter().all(|k| !k.has_default) {
            let value = parts
                .iter()
                .map(|k| format!("NEW.{}::text", quote_ident(&k.column_name)))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let label = format!("vf-key|{schema}|{table}|{index}|").replace('\'', "''");
            locks.push_str(&format!(
                "    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('{label}' || {value}, 0));\n"
            ));
        }
    }
    format!(
        r#"
DECLARE
    tenant uuid := {current}();
BEGIN
    -- Without a verified tenant, row security already refuses the application's writes; the
    -- staff roles see every row anyway.
    IF tenant IS NULL OR (TG_OP = 'UPDATE' AND {unchanged}) THEN
        RETURN NEW;
    END IF;
{locks}    PERFORM pg_catalog.set_config('{KEY_GUARD_SETTING}', 'on', true);
    IF {checks} THEN
        RAISE EXCEPTION 'duplicate key value: the key belongs to another tenant'
            USING ERRCODE = 'unique_violation';
    END IF;
    PERFORM pg_catalog.set_config('{KEY_GUARD_SETTING}', '', true);
    RETURN NEW;
END
"#,
        current = qualified(schema, "current_user_id"),
        checks = checks.join("\n       OR "),
    )
}

/// A function as the catalog shows it.
#[derive(Debug, sqlx::FromRow)]
struct FunctionRow {
    name: String,
    signature: String,
    owner: String,
    source: String,
    security_definer: bool,
    config: Option<Vec<String>>,
    volatility: String,
    result: String,
    language: String,
}

/// A trigger on a table of the schema.
#[derive(Debug, sqlx::FromRow)]
struct TriggerRow {
    relation: String,
    name: String,
    function: String,
    enabled: String,
    kind: i16,
}

/// `BEFORE INSERT OR UPDATE ... FOR EACH ROW` in `pg_trigger.tgtype` bits.
const ROW_BEFORE_INSERT_UPDATE: i16 = 1 | 2 | 4 | 16;

/// The columns of every unique index of the tenant tables.
pub(crate) async fn unique_keys(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<KeyColumn>, Error> {
    sqlx::query_as(
        "SELECT c.relname::text AS relation, i.relname::text AS index_name, \
                a.attname::text AS column_name, \
                a.atthasdef AS has_default \
         FROM pg_index x \
         JOIN pg_class c ON c.oid = x.indrelid \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, position) \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
         WHERE n.nspname = $1 AND c.relname = ANY($2) AND x.indisunique \
         ORDER BY 1, 2, k.position",
    )
    .bind(schema)
    .bind(TENANT_TABLES)
    .fetch_all(conn)
    .await
    .map_err(|e| Error::from_sqlx("reading unique keys", e))
}

/// Creates or repairs the desired functions (definition, owner, EXECUTE) and the key-guard
/// triggers; closes every other function of the schema to all but its owner.
pub(crate) async fn ensure_functions(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let keys = unique_keys(conn, &db.schema).await?;
    let desired = desired_functions(db, &keys);
    let found: Vec<FunctionRow> = sqlx::query_as(
        "SELECT p.proname::text AS name, p.oid::regprocedure::text AS signature, \
                pg_get_userbyid(p.proowner)::text AS owner, p.prosrc AS source, \
                p.prosecdef AS security_definer, p.proconfig AS config, \
                p.provolatile::text AS volatility, pg_get_function_result(p.oid) AS result, \
                l.lanname::text AS language \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_language l ON l.oid = p.prolang \
         WHERE n.nspname = $1 AND p.pronargs = 0",
    )
    .bind(&db.schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading functions", e))?;

    let mut created = BTreeSet::new();
    for function in &desired {
        let row = found.iter().find(|r| r.name == function.name);
        if row.is_none() {
            created.insert(function.name.clone());
        }
        let volatility = &function.volatility[..1].to_lowercase();
        let in_shape = row.is_some_and(|r| {
            r.source == function.body
                && r.security_definer
                && r.config.as_deref() == Some(&[SEARCH_PATH.to_owned()][..])
                && &r.volatility == volatility
                && r.result == function.returns
                && r.language == "plpgsql"
        });
        let object = format!("{}()", function.name);
        if let Some(row) = row
            && row.owner != db.roles.owner
        {
            let sql = format!(
                "ALTER FUNCTION {} OWNER TO {}",
                row.signature,
                quote_ident(&db.roles.owner)
            );
            execute(conn, "repairing a function owner", sql).await?;
            report.repaired(
                ChangeKind::FunctionReplaced,
                &object,
                format!("was owned by {}", row.owner),
            );
        }
        if !in_shape {
            // As the owner, so the function is the owner's (a superuser would own it otherwise).
            let sql = format!(
                "SET LOCAL ROLE {}; {}; RESET ROLE",
                quote_ident(&db.roles.owner),
                function.create(&db.schema)
            );
            execute(conn, "creating a function", sql).await?;
            report.changed(
                row.is_some(),
                ChangeKind::FunctionReplaced,
                &object,
                if row.is_some() {
                    "definition differed"
                } else {
                    "function was missing"
                },
            );
        }
    }
    ensure_function_privileges(conn, db, &desired, &created, report).await?;
    ensure_triggers(conn, db, &desired, report).await
}

/// EXECUTE exactly as desired: the listed roles for our functions, nobody for any other.
async fn ensure_function_privileges(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    desired: &[FunctionSpec],
    created: &BTreeSet<String>,
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let found = super::catalog::function_privileges(conn, &db.schema).await?;
    let mut signatures: BTreeSet<String> = found.iter().map(|r| r.relation.clone()).collect();
    for function in desired {
        signatures.insert(format!(
            "{}.{}()",
            quote_ident_if_needed(&db.schema),
            function.name
        ));
    }
    for signature in signatures {
        let rows: Vec<_> = found.iter().filter(|r| r.relation == signature).collect();
        let ours = desired
            .iter()
            .find(|f| signature.ends_with(&format!(".{}()", f.name)));
        let wanted: BTreeSet<String> = ours
            .map(|f| f.executors.iter().cloned().collect())
            .unwrap_or_default();
        let actual: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.privilege == "EXECUTE" && !r.grantable)
            .map(|r| r.grantee.clone())
            .collect();
        if actual == wanted && rows.len() == actual.len() {
            continue;
        }
        // `signature` is PostgreSQL's own regprocedure text: qualified and quoted as needed.
        let mut sql = format!(
            "REVOKE ALL ON FUNCTION {signature} FROM {} CASCADE",
            super::provision::revoke_list(&db.roles, rows.iter().map(|r| r.grantee.as_str()))
        );
        for role in &wanted {
            sql.push_str(&format!(
                "; GRANT EXECUTE ON FUNCTION {signature} TO {}",
                quote_ident(role)
            ));
        }
        execute(conn, "repairing function privileges", sql).await?;
        let holders: Vec<String> = rows.iter().map(|r| r.privilege().to_string()).collect();
        let new = ours.is_some_and(|f| created.contains(&f.name));
        report.changed(
            !new,
            ChangeKind::FunctionPrivilegesRepaired,
            signature,
            format!("had: [{}]", holders.join(", ")),
        );
    }
    Ok(())
}

/// How `regprocedure` prints a schema name: quoted only when it must be. Foundry schemas are
/// `[a-z0-9_]` and never need quotes, but a keyword would.
fn quote_ident_if_needed(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

async fn ensure_triggers(
    conn: &mut PgConnection,
    db: &FoundryDatabase,
    desired: &[FunctionSpec],
    report: &mut ProvisionReport,
) -> Result<(), Error> {
    let found: Vec<TriggerRow> = sqlx::query_as(
        "SELECT c.relname::text AS relation, t.tgname::text AS name, p.proname::text AS function, \
                t.tgenabled::text AS enabled, t.tgtype AS kind \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE n.nspname = $1 AND NOT t.tgisinternal AND c.relname = ANY($2)",
    )
    .bind(&db.schema)
    .bind(TENANT_TABLES)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::from_sqlx("reading triggers", e))?;

    for row in &found {
        let wanted = row.name == KEY_GUARD_TRIGGER
            && desired.iter().any(|f| f.name == guard_name(&row.relation));
        let in_shape = wanted
            && row.function == guard_name(&row.relation)
            && row.enabled == "O"
            && row.kind == ROW_BEFORE_INSERT_UPDATE;
        if !in_shape {
            let sql = format!(
                "DROP TRIGGER {} ON {}",
                quote_ident(&row.name),
                qualified(&db.schema, &row.relation)
            );
            execute(conn, "dropping a trigger", sql).await?;
            report.repaired(
                ChangeKind::TriggerRepaired,
                format!("{}.{}", row.relation, row.name),
                format!("{} (enabled {}) was dropped", row.function, row.enabled),
            );
        }
    }
    for table in TENANT_TABLES {
        let function = guard_name(table);
        if !desired.iter().any(|f| f.name == function) {
            continue;
        }
        let present = found.iter().any(|r| {
            r.relation == table
                && r.name == KEY_GUARD_TRIGGER
                && r.function == function
                && r.enabled == "O"
                && r.kind == ROW_BEFORE_INSERT_UPDATE
        });
        if present {
            continue;
        }
        let sql = format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            quote_ident(KEY_GUARD_TRIGGER),
            qualified(&db.schema, table),
            qualified(&db.schema, &function)
        );
        execute(conn, "creating a trigger", sql).await?;
        let existed = found.iter().any(|r| r.relation == table);
        report.changed(
            existed,
            ChangeKind::TriggerRepaired,
            format!("{table}.{KEY_GUARD_TRIGGER}"),
            "key guard was missing",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(table: &str, index: &str, column: &str, has_default: bool) -> KeyColumn {
        KeyColumn {
            relation: table.into(),
            index_name: index.into(),
            column_name: column.into(),
            has_default,
        }
    }

    #[test]
    fn guards_check_every_unique_key_and_lock_only_guessable_ones() {
        let db = FoundryDatabase::for_schema("vf_t").unwrap();
        let keys = [
            key("users", "users_pkey", "id", true),
            key("users", "users_email_key", "email", false),
            key(
                "render_jobs",
                "render_jobs_kubernetes_uid_key",
                "kubernetes_uid",
                false,
            ),
        ];
        let functions = desired_functions(&db, &keys);
        let names: Vec<_> = functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "current_user_id",
                "vf_key_guard_users",
                "vf_key_guard_render_jobs"
            ]
        );
        let users = &functions[1].body;
        assert!(users.contains("t.\"id\" = NEW.\"id\" AND NOT coalesce(t.id = tenant, false)"));
        assert!(users.contains("t.\"email\" = NEW.\"email\""));
        assert_eq!(users.matches("pg_advisory_xact_lock").count(), 1);
        assert!(users.contains("users_email_key"));
        assert!(functions[0].executors == [db.roles.application.clone()]);
        assert!(functions[1].executors.is_empty());
        assert!(
            functions[1]
                .create(&db.schema)
                .contains("SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
        );
    }
}
