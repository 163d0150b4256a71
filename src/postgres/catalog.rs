//! Reads what the server actually has, from the system catalogs, for drift detection.

use sqlx::{FromRow, PgConnection};

use super::Error;
use super::model::Privilege;

/// How `aclexplode` grantee 0 (PUBLIC) is named here. `public` can never be a role name.
pub(crate) const PUBLIC_GRANTEE: &str = "public";

#[derive(Debug, Clone, FromRow)]
pub(crate) struct RoleRow {
    pub rolname: String,
    pub rolsuper: bool,
    pub rolcreatedb: bool,
    pub rolcreaterole: bool,
    pub rolcanlogin: bool,
    pub rolreplication: bool,
    pub rolbypassrls: bool,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct MembershipRow {
    pub role: String,
    pub member: String,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct RoleSettingRow {
    pub role: String,
    /// `None` for settings that apply in every database.
    pub database: Option<String>,
    /// `name=value` entries.
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct RelationRow {
    pub name: String,
    pub kind: String,
    pub owner: String,
    pub row_security: bool,
    pub force_row_security: bool,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct AclRow {
    pub relation: String,
    pub grantee: String,
    pub privilege: String,
    pub column_name: Option<String>,
    pub grantable: bool,
}

impl AclRow {
    pub(crate) fn privilege(&self) -> Privilege {
        Privilege {
            grantee: self.grantee.clone(),
            privilege: self.privilege.clone(),
            column: self.column_name.clone(),
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct PolicyRow {
    pub tablename: String,
    pub policyname: String,
    pub permissive: String,
    pub roles: Vec<String>,
    pub cmd: String,
    pub qual: Option<String>,
    pub with_check: Option<String>,
}

fn failed(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::from_sqlx(action, e)
}

pub(crate) async fn roles(conn: &mut PgConnection, names: &[&str]) -> Result<Vec<RoleRow>, Error> {
    sqlx::query_as(
        "SELECT rolname::text AS rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, \
                rolreplication, rolbypassrls \
         FROM pg_roles WHERE rolname = ANY($1)",
    )
    .bind(names)
    .fetch_all(conn)
    .await
    .map_err(failed("reading role attributes"))
}

/// Memberships held by the foundry's roles (none are expected), and members of the owner role
/// other than the connecting role (which needs it to provision unless it is a superuser).
pub(crate) async fn unexpected_memberships(
    conn: &mut PgConnection,
    names: &[&str],
    owner: &str,
) -> Result<Vec<MembershipRow>, Error> {
    sqlx::query_as(
        "SELECT r.rolname::text AS role, m.rolname::text AS member \
         FROM pg_auth_members am \
         JOIN pg_roles r ON r.oid = am.roleid \
         JOIN pg_roles m ON m.oid = am.member \
         WHERE m.rolname = ANY($1) OR (r.rolname = $2 AND m.rolname <> current_user) \
         ORDER BY 1, 2",
    )
    .bind(names)
    .bind(owner)
    .fetch_all(conn)
    .await
    .map_err(failed("reading role memberships"))
}

pub(crate) async fn role_settings(
    conn: &mut PgConnection,
    names: &[&str],
) -> Result<Vec<RoleSettingRow>, Error> {
    sqlx::query_as(
        "SELECT r.rolname::text AS role, d.datname::text AS database, \
                coalesce(s.setconfig, '{}') AS settings \
         FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole \
         LEFT JOIN pg_database d ON d.oid = s.setdatabase \
         WHERE r.rolname = ANY($1) ORDER BY 1, 2",
    )
    .bind(names)
    .fetch_all(conn)
    .await
    .map_err(failed("reading role settings"))
}

/// The schema's owner, or `None` when the schema does not exist.
pub(crate) async fn schema_owner(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
    )
    .bind(schema)
    .fetch_optional(conn)
    .await
    .map_err(failed("reading the schema"))
}

/// Privileges on the schema held by anyone but its owner.
pub(crate) async fn schema_privileges(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<AclRow>, Error> {
    sqlx::query_as(
        "SELECT n.nspname::text AS relation, \
                CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END AS grantee, \
                a.privilege_type AS privilege, NULL::text AS column_name, a.is_grantable AS grantable \
         FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a \
         WHERE n.nspname = $1 AND a.grantee <> n.nspowner",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(failed("reading schema privileges"))
}

pub(crate) async fn relations(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<RelationRow>, Error> {
    sqlx::query_as(
        "SELECT c.relname::text AS name, c.relkind::text AS kind, \
                pg_get_userbyid(c.relowner)::text AS owner, \
                c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') \
         ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(failed("reading the schema's relations"))
}

/// Table- and column-level privileges held by anyone but each relation's owner.
pub(crate) async fn relation_privileges(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<AclRow>, Error> {
    sqlx::query_as(
        "WITH rels AS ( \
             SELECT c.oid, c.relname, c.relowner, c.relacl FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')) \
         SELECT r.relname::text AS relation, \
                CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END AS grantee, \
                a.privilege_type AS privilege, NULL::text AS column_name, a.is_grantable AS grantable \
         FROM rels r CROSS JOIN LATERAL aclexplode(r.relacl) a WHERE a.grantee <> r.relowner \
         UNION ALL \
         SELECT r.relname::text, \
                CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END, \
                a.privilege_type, att.attname::text, a.is_grantable \
         FROM rels r \
         JOIN pg_attribute att ON att.attrelid = r.oid AND att.attnum > 0 AND NOT att.attisdropped \
         CROSS JOIN LATERAL aclexplode(att.attacl) a WHERE a.grantee <> r.relowner",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(failed("reading table privileges"))
}

/// EXECUTE (and any other) privileges on the schema's functions held by anyone but each
/// function's owner; a function never granted explicitly is executable by PUBLIC.
pub(crate) async fn function_privileges(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<AclRow>, Error> {
    sqlx::query_as(
        "SELECT p.oid::regprocedure::text AS relation, \
                CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END AS grantee, \
                a.privilege_type AS privilege, NULL::text AS column_name, a.is_grantable AS grantable \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
         WHERE n.nspname = $1 AND a.grantee <> p.proowner ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(failed("reading function privileges"))
}

pub(crate) async fn policies(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<PolicyRow>, Error> {
    sqlx::query_as(
        "SELECT tablename::text AS tablename, policyname::text AS policyname, permissive, \
                roles::text[] AS roles, cmd, qual, with_check \
         FROM pg_policies WHERE schemaname = $1 ORDER BY tablename, policyname",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(failed("reading row-level-security policies"))
}

/// Whether the owner role already withholds EXECUTE on new functions from PUBLIC.
pub(crate) async fn owner_function_defaults_revoked(
    conn: &mut PgConnection,
    owner: &str,
) -> Result<bool, Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_default_acl d \
                        WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1) \
                          AND d.defaclnamespace = 0 AND d.defaclobjtype = 'f' \
                          AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = 0))",
    )
    .bind(owner)
    .fetch_one(conn)
    .await
    .map_err(failed("reading default privileges"))
}

/// The stored password verifier of a role, when the connecting role may read it (superuser).
pub(crate) async fn stored_verifier(conn: &mut PgConnection, role: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_optional(conn)
        .await
        .ok()
        .flatten()
        .flatten()
}
