//! Imports of the legacy allowlist formats.
