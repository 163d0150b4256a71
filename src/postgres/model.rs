//! The desired state of a foundry's schema (pure): which role may do what on which table, and
//! the row-level-security policies that confine the application role to one tenant.
//!
//! Tenant key: `users.id`, and `user_id` on projects, workflows, render_jobs and audit_logs.
//! `segments` has no `user_id`; it is checked through its parent project. `render_jobs` is
//! checked through its own `user_id`, and on write its project and segment must belong to the
//! same tenant, so a tenant cannot attach rows to someone else's project.

use super::RoleNames;
use super::sql::quote_ident;

/// The tables whose rows belong to one tenant: RLS enabled and forced, tenant policies.
pub const TENANT_TABLES: [&str; 6] = [
    "users",
    "projects",
    "workflows",
    "segments",
    "render_jobs",
    "audit_logs",
];

/// Shared, foundry-wide tables: RLS enabled and forced too, readable by the application role,
/// writable by admins only.
pub const SHARED_TABLES: [&str; 1] = ["workflow_allowlist"];

/// The sqlx bookkeeping table: owner only, no RLS (the owner reads it while migrating).
pub(crate) const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The tenant of the current transaction: the user of the signed claim that
/// `"<schema>".current_user_id()` verifies (NULL without a valid claim, which matches no row), in
/// the initplan form `(SELECT ...)` so that PostgreSQL evaluates it once per query rather than
/// once per row.
pub(crate) fn current_tenant(schema: &str) -> String {
    format!(
        "(SELECT {}.current_user_id() AS current_user_id)",
        quote_ident(schema)
    )
}

/// The key table that `current_user_id()` verifies claims against (owner only, no RLS).
pub(crate) const CLAIM_KEYS_TABLE: &str = "tenant_claim_keys";

/// The transaction-local flag the key guard sets while it looks up keys of other tenants; the
/// owner's only policy is conditional on it, so the owner still reads nothing otherwise.
pub(crate) const KEY_GUARD_SETTING: &str = "vf.key_guard";

/// Whether a row of `table`, aliased `t`, belongs to the tenant in the PL/pgSQL variable
/// `tenant` (for the key guard; the same rule as the table's policy).
pub(crate) fn owned_by_tenant(schema: &str, table: &str) -> Option<String> {
    match table {
        "users" => Some("t.id = tenant".to_owned()),
        "projects" | "workflows" | "render_jobs" | "audit_logs" => {
            Some("t.user_id = tenant".to_owned())
        }
        "segments" => Some(format!(
            "EXISTS (SELECT 1 FROM {}.projects p WHERE p.id = t.project_id AND p.user_id = tenant)",
            quote_ident(schema)
        )),
        _ => None,
    }
}

/// A role of the foundry, by function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Grantee {
    Application,
    Admin,
    Auditor,
}

impl Grantee {
    pub(crate) fn role_name(self, roles: &RoleNames) -> &str {
        match self {
            Grantee::Application => &roles.application,
            Grantee::Admin => &roles.admin,
            Grantee::Auditor => &roles.auditor,
        }
    }
}

/// One privilege, on the whole relation or (when `column` is set) on one column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Privilege {
    pub grantee: String,
    pub privilege: String,
    pub column: Option<String>,
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.grantee, self.privilege)?;
        if let Some(column) = &self.column {
            write!(f, "({column})")?;
        }
        Ok(())
    }
}

/// The command a policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyCommand {
    All,
    Select,
    Insert,
}

impl PolicyCommand {
    /// As written in `CREATE POLICY ... FOR` and shown in `pg_policies.cmd`.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            PolicyCommand::All => "ALL",
            PolicyCommand::Select => "SELECT",
            PolicyCommand::Insert => "INSERT",
        }
    }
}

/// A permissive policy for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    pub name: &'static str,
    pub command: PolicyCommand,
    pub role: String,
    pub using: Option<String>,
    pub with_check: Option<String>,
}

/// What one relation of the schema should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelationSpec {
    pub name: &'static str,
    /// `r` for tables, `S` for sequences (as in `pg_class.relkind`).
    pub kind: char,
    pub row_security: bool,
    pub privileges: Vec<Privilege>,
    pub policies: Vec<Policy>,
}

const READ_WRITE: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// Every relation the migrations create, with its privileges and policies.
pub(crate) fn desired_relations(schema: &str, roles: &RoleNames) -> Vec<RelationSpec> {
    let current = current_tenant(schema);
    let tenant = current.as_str();
    let projects = format!("{}.projects", quote_ident(schema));
    let segments = format!("{}.segments", quote_ident(schema));
    let own_project = format!("(SELECT p.id FROM {projects} p WHERE (p.user_id = {tenant}))");
    let own_segment = format!(
        "(SELECT s.id FROM ({segments} s JOIN {projects} p ON ((p.id = s.project_id))) \
         WHERE (p.user_id = {tenant}))"
    );
    let by_user = format!("(user_id = {tenant})");
    let grant = |grantee: Grantee, privileges: &[&str], column: Option<&str>| -> Vec<Privilege> {
        privileges
            .iter()
            .map(|p| Privilege {
                grantee: grantee.role_name(roles).to_owned(),
                privilege: (*p).to_owned(),
                column: column.map(str::to_owned),
            })
            .collect()
    };
    let tenant_all = |key: String, check: String| Policy {
        name: "vf_tenant_all",
        command: PolicyCommand::All,
        role: roles.application.clone(),
        using: Some(key),
        with_check: Some(check),
    };
    let admin_all = Policy {
        name: "vf_admin_all",
        command: PolicyCommand::All,
        role: roles.admin.clone(),
        using: Some("true".into()),
        with_check: Some("true".into()),
    };
    let auditor_select = Policy {
        name: "vf_auditor_select",
        command: PolicyCommand::Select,
        role: roles.auditor.clone(),
        using: Some("true".into()),
        with_check: None,
    };
    // The key guard (a SECURITY DEFINER trigger owned by the owner) must see other tenants'
    // keys; the owner sees rows only while the guard's transaction-local flag is on.
    let owner_key_guard = Policy {
        name: "vf_owner_key_guard",
        command: PolicyCommand::Select,
        role: roles.owner.clone(),
        using: Some(format!(
            "(current_setting('{KEY_GUARD_SETTING}', true) = 'on')"
        )),
        with_check: None,
    };
    let table = |name: &'static str, privileges: Vec<Privilege>, tenant_policies: Vec<Policy>| {
        let mut policies = tenant_policies;
        policies.push(admin_all.clone());
        policies.push(auditor_select.clone());
        if owned_by_tenant(schema, name).is_some() {
            policies.push(owner_key_guard.clone());
        }
        RelationSpec {
            name,
            kind: 'r',
            row_security: true,
            privileges,
            policies,
        }
    };
    let staff = |mut privileges: Vec<Privilege>, admin: &[&str]| {
        privileges.extend(grant(Grantee::Admin, admin, None));
        privileges.extend(grant(Grantee::Auditor, &["SELECT"], None));
        privileges
    };
    let tenant_read_write = || staff(grant(Grantee::Application, &READ_WRITE, None), &READ_WRITE);

    // users: a tenant may not promote itself through `users.role` (data the platform may show),
    // so its INSERT and UPDATE are limited to the columns it owns.
    let mut user_privileges = grant(Grantee::Application, &["SELECT", "DELETE"], None);
    for column in ["id", "email", "name"] {
        user_privileges.extend(grant(Grantee::Application, &["INSERT"], Some(column)));
    }
    for column in ["email", "name", "updated_at"] {
        user_privileges.extend(grant(Grantee::Application, &["UPDATE"], Some(column)));
    }
    let own_user = format!("(id = {tenant})");

    let render_job_check = format!(
        "((user_id = {tenant}) AND ((project_id IS NULL) OR (project_id IN {own_project})) \
         AND ((segment_id IS NULL) OR (segment_id IN {own_segment})))"
    );
    let segment_key = format!("(project_id IN {own_project})");

    vec![
        table(
            "users",
            staff(user_privileges, &READ_WRITE),
            vec![tenant_all(own_user.clone(), own_user)],
        ),
        table(
            "projects",
            tenant_read_write(),
            vec![tenant_all(by_user.clone(), by_user.clone())],
        ),
        table(
            "workflows",
            tenant_read_write(),
            vec![tenant_all(by_user.clone(), by_user.clone())],
        ),
        table(
            "segments",
            tenant_read_write(),
            vec![tenant_all(segment_key.clone(), segment_key)],
        ),
        table(
            "render_jobs",
            tenant_read_write(),
            vec![tenant_all(by_user.clone(), render_job_check)],
        ),
        // audit_logs: the application inserts and reads its own tenant's rows, nothing else;
        // admins may delete (retention) but nobody may update.
        table(
            "audit_logs",
            staff(
                grant(Grantee::Application, &["SELECT", "INSERT"], None),
                &["SELECT", "INSERT", "DELETE"],
            ),
            vec![
                Policy {
                    name: "vf_tenant_select",
                    command: PolicyCommand::Select,
                    role: roles.application.clone(),
                    using: Some(by_user.clone()),
                    with_check: None,
                },
                Policy {
                    name: "vf_tenant_insert",
                    command: PolicyCommand::Insert,
                    role: roles.application.clone(),
                    using: None,
                    with_check: Some(by_user),
                },
            ],
        ),
        table(
            "workflow_allowlist",
            staff(grant(Grantee::Application, &["SELECT"], None), &READ_WRITE),
            vec![Policy {
                name: "vf_application_select",
                command: PolicyCommand::Select,
                role: roles.application.clone(),
                using: Some("true".into()),
                with_check: None,
            }],
        ),
        RelationSpec {
            name: "audit_logs_id_seq",
            kind: 'S',
            row_security: false,
            privileges: [
                grant(Grantee::Application, &["USAGE"], None),
                grant(Grantee::Admin, &["USAGE", "SELECT", "UPDATE"], None),
            ]
            .concat(),
            policies: vec![],
        },
        RelationSpec {
            name: "workflow_allowlist_id_seq",
            kind: 'S',
            row_security: false,
            privileges: grant(Grantee::Admin, &["USAGE", "SELECT", "UPDATE"], None),
            policies: vec![],
        },
        RelationSpec {
            name: CLAIM_KEYS_TABLE,
            kind: 'r',
            row_security: false,
            privileges: vec![],
            policies: vec![],
        },
        RelationSpec {
            name: MIGRATIONS_TABLE,
            kind: 'r',
            row_security: false,
            privileges: vec![],
            policies: vec![],
        },
    ]
}

/// Normalises a policy expression for comparison with `pg_policies`, which shows PostgreSQL's
/// deparsed form: whitespace, parentheses, double quotes and `::text` casts are not compared,
/// and the foundry's own schema qualification is dropped.
pub(crate) fn normalise_expression(expression: &str, schema: &str) -> String {
    let unqualified = expression
        .replace(&format!("{}.", quote_ident(schema)), "")
        .replace(&format!("{schema}."), "");
    unqualified
        .replace("::text", "")
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '"'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::FoundryDatabase;

    fn foundry() -> FoundryDatabase {
        FoundryDatabase::for_schema("vf_test").unwrap()
    }

    #[test]
    fn every_tenant_and_shared_table_has_forced_rls_and_staff_policies() {
        let db = foundry();
        let relations = desired_relations(&db.schema, &db.roles);
        for name in TENANT_TABLES.iter().chain(SHARED_TABLES.iter()) {
            let spec = relations.iter().find(|r| r.name == *name).unwrap();
            assert!(spec.row_security, "{name}");
            let names: Vec<_> = spec.policies.iter().map(|p| p.name).collect();
            assert!(names.contains(&"vf_admin_all"), "{name}");
            assert!(names.contains(&"vf_auditor_select"), "{name}");
        }
    }

    #[test]
    fn tenant_policies_use_the_initplan_form() {
        let db = foundry();
        for spec in desired_relations(&db.schema, &db.roles) {
            for policy in spec
                .policies
                .iter()
                .filter(|p| p.role == db.roles.application)
            {
                let text = format!(
                    "{}{}",
                    policy.using.as_deref().unwrap_or_default(),
                    policy.with_check.as_deref().unwrap_or_default()
                );
                if text.contains("true") && spec.name == "workflow_allowlist" {
                    continue;
                }
                assert!(
                    text.contains("(SELECT \"vf_test\".current_user_id() AS current_user_id)"),
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn the_application_cannot_update_delete_or_truncate_audit_logs() {
        let db = foundry();
        let relations = desired_relations(&db.schema, &db.roles);
        let audit = relations.iter().find(|r| r.name == "audit_logs").unwrap();
        let app: Vec<_> = audit
            .privileges
            .iter()
            .filter(|p| p.grantee == db.roles.application)
            .map(|p| p.privilege.as_str())
            .collect();
        assert_eq!(app, ["SELECT", "INSERT"]);
        assert!(audit.privileges.iter().all(|p| p.privilege != "UPDATE"));
    }

    #[test]
    fn normalisation_ignores_deparse_noise() {
        let ours = format!("(user_id = {})", current_tenant("vf_test"));
        let deparsed = "(user_id = ( SELECT vf_test.current_user_id() AS current_user_id))";
        assert_eq!(
            normalise_expression(&ours, "vf_test"),
            normalise_expression(deparsed, "vf_test")
        );
        assert_ne!(
            normalise_expression("true", "vf_test"),
            normalise_expression(deparsed, "vf_test")
        );
        assert_eq!(
            normalise_expression("\"vf_test\".projects", "vf_test"),
            normalise_expression("vf_test.projects", "vf_test")
        );
    }
}
