//! Provisioning against a real PostgreSQL: roles, schema, RLS, re-runs, drift repair.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_support;

use postgres_support::provisioned;
use videofoundry::postgres::{self, ChangeKind};

#[tokio::test]
async fn provisioning_twice_changes_nothing_the_second_time() {
    let Some(foundry) = provisioned("rerun").await else {
        return;
    };
    let first = &foundry.first_report;
    assert!(
        first
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::SchemaCreated)
    );
    assert!(
        first
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::MigrationApplied)
    );
    assert_eq!(first.repairs().count(), 0, "{:#?}", first.changes);
    let again = postgres::provision(&foundry.admin, &foundry.db, None)
        .await
        .unwrap();
    assert!(again.is_unchanged(), "{:#?}", again.changes);
    assert!(again.generated_application_password.is_none());
}
