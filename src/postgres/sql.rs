//! Quoting for the statements PostgreSQL cannot parameterise (DDL, ALTER ROLE ... PASSWORD).

/// Quotes an SQL identifier: always double-quoted, inner quotes doubled. Every identifier the
/// operator puts into SQL text goes through here, even the ones it generated itself.
pub fn quote_ident(identifier: &str) -> String {
    let mut quoted = String::with_capacity(identifier.len() + 2);
    quoted.push('"');
    for c in identifier.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Quotes a string literal the way PostgreSQL's `quote_literal` does: single quotes doubled,
/// and, when a backslash is present, the `E'...'` form with backslashes doubled, so the result
/// means the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    let has_backslash = value.contains('\\');
    let mut quoted = String::with_capacity(value.len() + 3);
    if has_backslash {
        quoted.push('E');
    }
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    quoted
}

/// A schema-qualified relation name, both parts quoted.
pub(crate) fn qualified(schema: &str, relation: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(relation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_inner_quotes_doubled() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE users; --"),
            "\"x\"\"; DROP TABLE users; --\""
        );
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(quote_literal("'; DROP ROLE x; --"), "'''; DROP ROLE x; --'");
    }

    #[test]
    fn qualified_names_quote_both_parts() {
        assert_eq!(qualified("vf_a", "users"), "\"vf_a\".\"users\"");
    }
}
