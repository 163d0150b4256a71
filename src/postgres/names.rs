//! Deterministic, collision-safe identifiers for a foundry's schema and roles.

use super::Error;

/// PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;
/// The longest role suffix (`_auditor`); the schema name leaves room for it.
const LONGEST_ROLE_SUFFIX: &str = "_auditor";
/// Hex characters of the SHA-256 of `namespace/name` that make two foundries' names distinct
/// even when their readable parts sanitise or truncate to the same text.
const HASH_CHARS: usize = 10;
/// Kubernetes object names are at most 253 bytes (DNS subdomain).
const MAX_KUBERNETES_NAME: usize = 253;

/// The roles of one foundry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNames {
    /// Owns the schema and every table; cannot log in; has no policy, so under `FORCE ROW LEVEL
    /// SECURITY` it reads nothing.
    pub owner: String,
    /// The login role of the platform's backend and the operator's tenant queries: `NOBYPASSRLS`,
    /// not the owner, sees only the rows of the tenant set in the transaction.
    pub application: String,
    /// Group role: its members see and manage every tenant's rows, through policies granted to the
    /// role (never through a session setting).
    pub admin: String,
    /// Group role: read-only access to every row, for audits.
    pub auditor: String,
}

impl RoleNames {
    /// The four roles in a fixed order.
    pub fn all(&self) -> [&str; 4] {
        [&self.owner, &self.application, &self.admin, &self.auditor]
    }
}

/// Where a foundry lives in a database: its schema and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundryDatabase {
    /// The schema holding the foundry's tables (and its `_sqlx_migrations`).
    pub schema: String,
    /// The foundry's roles.
    pub roles: RoleNames,
}

impl FoundryDatabase {
    /// Names for the VideoFoundry `namespace/name`: `vf_<namespace>_<name>_<hash>`, lower-case,
    /// `[a-z0-9_]` only, truncated to fit, with a hash of the exact `namespace/name` so that two
    /// foundries never share a name.
    pub fn for_foundry(namespace: &str, name: &str) -> Result<Self, Error> {
        validate_kubernetes_name("namespace", namespace)?;
        validate_kubernetes_name("name", name)?;
        let digest = crate::crd::foundry_digest(namespace, name);
        let hash = &digest[..HASH_CHARS];
        let readable_budget =
            MAX_IDENTIFIER_BYTES - LONGEST_ROLE_SUFFIX.len() - "vf_".len() - "_".len() - HASH_CHARS;
        let mut readable = format!("{}_{}", sanitise(namespace), sanitise(name));
        readable.truncate(readable_budget);
        let readable = readable.trim_end_matches('_');
        Self::for_schema(&format!("vf_{readable}_{hash}"))
    }

    /// Names for an explicit schema (e.g. an existing deployment): the roles are the schema name
    /// with `_owner`, `_app`, `_admin` and `_auditor` appended.
    pub fn for_schema(schema: &str) -> Result<Self, Error> {
        validate_schema(schema)?;
        Ok(FoundryDatabase {
            schema: schema.to_owned(),
            roles: RoleNames {
                owner: format!("{schema}_owner"),
                application: format!("{schema}_app"),
                admin: format!("{schema}_admin"),
                auditor: format!("{schema}{LONGEST_ROLE_SUFFIX}"),
            },
        })
    }
}

fn validate_kubernetes_name(what: &str, value: &str) -> Result<(), Error> {
    let valid_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if value.is_empty() || value.len() > MAX_KUBERNETES_NAME || !valid_chars {
        return Err(Error::InvalidFoundry(format!(
            "the {what} must be 1 to {MAX_KUBERNETES_NAME} characters of a-z, 0-9, '-' and '.'"
        )));
    }
    Ok(())
}

fn validate_schema(schema: &str) -> Result<(), Error> {
    let budget = MAX_IDENTIFIER_BYTES - LONGEST_ROLE_SUFFIX.len();
    let mut bytes = schema.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_valid = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !starts_well || !rest_valid || schema.len() > budget || schema.starts_with("pg_") {
        return Err(Error::InvalidFoundry(format!(
            "the schema must be 1 to {budget} characters of a-z, 0-9 and '_', start with a letter \
             or '_', and not start with 'pg_'"
        )));
    }
    Ok(())
}

fn sanitise(part: &str) -> String {
    part.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_readable_and_fit() {
        let a = FoundryDatabase::for_foundry("studio-a", "prod.eu").unwrap();
        let again = FoundryDatabase::for_foundry("studio-a", "prod.eu").unwrap();
        assert_eq!(a, again);
        assert!(a.schema.starts_with("vf_studio_a_prod_eu_"), "{}", a.schema);
        assert_eq!(a.roles.application, format!("{}_app", a.schema));
        for role in a.roles.all() {
            assert!(role.len() <= MAX_IDENTIFIER_BYTES);
        }
    }

    #[test]
    fn names_that_sanitise_alike_do_not_collide() {
        let one = FoundryDatabase::for_foundry("a-b", "c").unwrap();
        let two = FoundryDatabase::for_foundry("a", "b-c").unwrap();
        let three = FoundryDatabase::for_foundry("a.b", "c").unwrap();
        assert_ne!(one.schema, two.schema);
        assert_ne!(one.schema, three.schema);
    }

    #[test]
    fn long_names_are_truncated_but_stay_distinct() {
        let long = "x".repeat(253);
        let one = FoundryDatabase::for_foundry(&"n".repeat(63), &long).unwrap();
        let two = FoundryDatabase::for_foundry(&"n".repeat(63), &format!("{long}y")[1..]).unwrap();
        assert_ne!(one.schema, two.schema);
        for db in [&one, &two] {
            assert!(
                db.roles.auditor.len() <= MAX_IDENTIFIER_BYTES,
                "{}",
                db.roles.auditor
            );
            assert!(!db.schema.contains("__"));
        }
    }

    #[test]
    fn hostile_names_are_rejected() {
        for (ns, name) in [
            ("", "x"),
            ("ns", ""),
            ("NS", "x"),
            ("ns", "x\"; drop schema public; --"),
            ("ns", "x y"),
            ("ns", "é"),
        ] {
            assert!(
                FoundryDatabase::for_foundry(ns, name).is_err(),
                "{ns}/{name}"
            );
        }
        for schema in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "pg_catalog",
            "a\"b",
            &"a".repeat(56),
        ] {
            assert!(FoundryDatabase::for_schema(schema).is_err(), "{schema}");
        }
        assert!(FoundryDatabase::for_schema(&"a".repeat(55)).is_ok());
    }
}
