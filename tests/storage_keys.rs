//! The tenant-scoped key API refuses every escape from the user's prefix before any request is
//! made: the storage here points at an endpoint nothing listens on, so a refusal that came from
//! the network would read `EndpointUnreachable`, not `InvalidKey`. No server needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proptest::prelude::*;
use secrecy::SecretString;
use videofoundry::storage::presign::WorkerAccessRequest;
use videofoundry::storage::{Area, KeyError, S3Connection, S3Storage, StorageError, TenantScope};

const USER: &str = "0b7e4a1c-51f2-4c0e-9d55-3f1b8f6a2c10";
const OTHER_USER: &str = "7d3f9e20-6a4b-4c8d-8e1f-2b5c7a9d0e31";

/// Every way of spelling a step outside a directory that the module must refuse.
const ESCAPES: &[&str] = &[
    "..",
    ".",
    "",
    "%2e%2e",
    "%2E%2E",
    "%2e",
    "..%2f",
    "%2f",
    "%5c",
    "%00",
    "\\..",
    "..\\",
    "\u{ff0e}\u{ff0e}",
    "\u{ff0f}",
    "\u{2024}\u{2024}",
    "\u{fe52}\u{fe52}",
    "\u{ff3c}",
    "\0",
    "\n",
    "\r",
    "\t",
    "\u{7f}",
    "\u{85}",
    "\u{2028}\u{0}",
];

fn unreachable_storage() -> S3Storage {
    S3Storage::new(&S3Connection {
        endpoint: "https://127.0.0.1:1".to_owned(),
        region: "us-east-1".to_owned(),
        force_path_style: true,
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: SecretString::from("unused".to_owned()),
        extra_ca_pem: None,
    })
    .unwrap()
}

async fn access_for(inputs: &[String], outputs: &[String], job: &str) -> StorageError {
    let scope = TenantScope::new("studio-a/", USER).unwrap();
    unreachable_storage()
        .worker_access(&WorkerAccessRequest {
            bucket: "renders",
            scope: &scope,
            render_job: job,
            inputs,
            outputs,
            lifetime: Duration::from_secs(60),
            encryption: None,
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn escapes_are_refused_before_any_request() {
    let mut cases: Vec<String> = Vec::new();
    for escape in ESCAPES {
        cases.push(format!("{escape}/x.png"));
        cases.push(format!("a/{escape}/x.png"));
        cases.push(format!("a/{escape}"));
    }
    cases.extend(
        [
            "/etc/passwd",
            "//x",
            "a//b",
            "a/",
            "a\\b",
            "C:\\x",
            "e\u{301}",
        ]
        .map(str::to_owned),
    );
    for case in &cases {
        let as_output = access_for(&[], std::slice::from_ref(case), "job-1").await;
        assert_eq!(
            as_output.reason(),
            "InvalidKey",
            "output {case:?}: {as_output}"
        );
        let input = format!("users/{USER}/uploads/{case}");
        let as_input = access_for(&[input], &[], "job-1").await;
        assert_eq!(
            as_input.reason(),
            "InvalidKey",
            "input {case:?}: {as_input}"
        );
    }
    for input in [
        format!("users/{OTHER_USER}/uploads/a.png"),
        format!("users/{USER}/../{OTHER_USER}/uploads/a.png"),
        format!("/users/{USER}/uploads/a.png"),
        format!("studio-a/users/{USER}/uploads/a.png"),
        format!("users/{}/uploads/a.png", USER.to_uppercase()),
        format!("users/{USER}/secrets/a.png"),
        format!("users/{USER}%2fuploads/a.png"),
    ] {
        let error = access_for(std::slice::from_ref(&input), &[], "job-1").await;
        assert_eq!(error.reason(), "InvalidKey", "{input}: {error}");
    }
    for job in ["..", ".", "", "a/b", "Job", "job/..", "%2e%2e"] {
        let error = access_for(&[], &["x.png".to_owned()], job).await;
        assert_eq!(error.reason(), "InvalidKey", "job {job:?}: {error}");
    }
    // A valid request does reach the network (and fails there): the checks above are not
    // refusing everything.
    let reached = access_for(
        &[format!("users/{USER}/uploads/a.png")],
        &["x.png".to_owned()],
        "job-1",
    )
    .await;
    assert_eq!(reached.reason(), "EndpointUnreachable", "{reached}");
}

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_-][a-zA-Z0-9._ -]{0,12}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

proptest! {
    #[test]
    fn any_key_with_an_escape_is_refused(
        before in proptest::collection::vec(segment(), 0..3),
        escape in proptest::sample::select(ESCAPES),
        after in proptest::collection::vec(segment(), 0..3),
        glue in proptest::sample::select(&["/", ""][..]),
    ) {
        let scope = TenantScope::new("studio-a/", USER).unwrap();
        let mut path = before.join("/");
        if !path.is_empty() { path.push_str(glue); }
        path.push_str(escape);
        if !after.is_empty() { path.push('/'); path.push_str(&after.join("/")); }
        // Gluing an escape onto a segment ("name.." or "a%2e%2e") can yield a harmless name;
        // only whole-segment dots are escapes.
        let harmless = matches!(escape, "." | ".." | "") && glue.is_empty() && !before.is_empty();
        let result = scope.key(Area::Uploads, &path);
        if harmless {
            prop_assert!(result.is_ok() || result == Err(KeyError::EmptySegment), "{path:?}");
        } else {
            prop_assert!(result.is_err(), "accepted {path:?}");
        }
        if let Ok(key) = result {
            prop_assert!(key.as_str().starts_with(scope.user_prefix()));
        }
    }

    #[test]
    fn every_accepted_key_stays_under_the_user_prefix(path in "\\PC{0,40}") {
        let scope = TenantScope::new("studio-a/", USER).unwrap();
        for area in [Area::Uploads, Area::Temp, Area::Renders("job-1")] {
            if let Ok(key) = scope.key(area, &path) {
                let key = key.as_str();
                prop_assert!(key.starts_with(scope.user_prefix()));
                prop_assert!(!key.split('/').any(|s| s == ".." || s == "." || s.is_empty()));
                prop_assert!(!key.contains('\\') && !key.chars().any(char::is_control));
            }
        }
        if let Ok(key) = scope.resolve(&path) {
            prop_assert!(key.as_str().starts_with(scope.user_prefix()));
        }
    }
}
