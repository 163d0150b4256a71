//! The per-render Secret: the vetted workflow, the render plan (digest and model pins) and the
//! presigned storage URLs, as three files. The worker Job mounts it read-only (mode 0400); it is
//! never passed in env or args, so it does not show in `kubectl describe pod` or in process
//! listings. Holders of the built Secret must not log it: its data carries live URLs.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::{Serialize, Serializer};

use super::worker_job::WorkerPlan;
use super::{BuildError, controller_owner_ref, labels, names, shared_namespace};
use crate::crd::{RenderJob, VideoFoundry};

/// File holding the workflow JSON, byte for byte as vetted.
pub const WORKFLOW_FILE: &str = "workflow.json";
/// File holding the render plan: workflow digest, model pins, output prefix.
pub const PLAN_FILE: &str = "plan.json";
/// File holding the presigned URLs ([`StorageGrant`]).
pub const STORAGE_FILE: &str = "storage.json";
/// Annotation on the Secret: when its URLs stop working (Unix seconds), so a re-run can tell
/// whether a Secret left by an interrupted admission is still usable.
pub const EXPIRES_AT_ANNOTATION: &str = "videofoundry.dev/urls-expire-at";

/// A presigned URL. Its query string is a bearer credential, so `Debug` and `Display` show only
/// scheme, host and path; [`PresignedUrl::expose`] gives the full URL to the one place that
/// needs it (the Secret's data).
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl(String);

impl PresignedUrl {
    /// Wraps a presigned URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, signature included. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> &str {
        self.0.split(['?', '#']).next().unwrap_or_default()
    }
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresignedUrl({}?<redacted>)", self.redacted())
    }
}

impl fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}?<redacted>", self.redacted())
    }
}

impl Serialize for PresignedUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// One object key (relative to the foundry's prefix) and its presigned URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedObject {
    /// Key under `users/<userId>/`.
    pub key: String,
    /// GET (inputs) or PUT (outputs) URL.
    pub url: PresignedUrl,
    /// Headers signed into the URL that the request must carry exactly (e.g. the SSE-KMS
    /// headers of an upload); empty for most URLs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// The storage access of one render (DESIGN.md §4.4): presigned URLs scoped to the user's
/// prefix, expiring with the render deadline. Filled by the controller from the S3 backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageGrant {
    /// Download URLs of the render's inputs.
    pub inputs: Vec<PresignedObject>,
    /// Upload URLs of the render's outputs.
    pub outputs: Vec<PresignedObject>,
    /// Prefix the outputs go under (`users/<userId>/renders/<name>/`).
    pub output_prefix: String,
    /// When the URLs expire (RFC 3339).
    pub expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanFile<'a> {
    workflow_sha256: &'a str,
    models: &'a [super::worker_job::ModelPin],
    output_prefix: &'a str,
}

/// Builds the render's Secret. Refuses a workflow whose digest is not the vetted one, and any
/// storage key outside `users/<userId>/`.
pub fn build_render_secret(
    foundry: &VideoFoundry,
    render: &RenderJob,
    plan: &WorkerPlan,
    grant: &StorageGrant,
) -> Result<Secret, BuildError> {
    let namespace = shared_namespace(foundry, render)?;
    check_workflow_digest(plan)?;
    let user_prefix = format!("users/{}/", render.spec.user_id);
    for object in grant.inputs.iter().chain(&grant.outputs) {
        check_key(&object.key, &user_prefix, &render.spec.user_id)?;
    }
    check_key(&grant.output_prefix, &user_prefix, &render.spec.user_id)?;

    let plan_file = PlanFile {
        workflow_sha256: &plan.workflow_sha256,
        models: &plan.model_pins,
        output_prefix: &grant.output_prefix,
    };
    let data = BTreeMap::from([
        (
            WORKFLOW_FILE.to_owned(),
            ByteString(plan.workflow.as_bytes().to_vec()),
        ),
        (
            PLAN_FILE.to_owned(),
            ByteString(to_json(&plan_file, PLAN_FILE)?),
        ),
        (
            STORAGE_FILE.to_owned(),
            ByteString(to_json(grant, STORAGE_FILE)?),
        ),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(names::render_secret(&render.name_any())),
            namespace: Some(namespace),
            labels: Some(labels::worker_labels(
                &foundry.name_any(),
                &render.name_any(),
            )),
            annotations: Some(BTreeMap::from([(
                EXPIRES_AT_ANNOTATION.to_owned(),
                grant
                    .expires_at
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .map(|t| t.as_second().to_string())
                    .unwrap_or_default(),
            )])),
            owner_references: Some(vec![controller_owner_ref(render, "RenderJob")?]),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        string_data: None,
    })
}

/// Lowercase hex SHA-256 of the workflow text: the digest vetting records.
pub fn workflow_sha256(workflow: &str) -> String {
    crate::vetting::workflow_sha256(workflow.as_bytes())
}

fn check_workflow_digest(plan: &WorkerPlan) -> Result<(), BuildError> {
    let actual = workflow_sha256(&plan.workflow);
    if actual.eq_ignore_ascii_case(&plan.workflow_sha256) {
        Ok(())
    } else {
        Err(BuildError::WorkflowDigestMismatch {
            vetted: plan.workflow_sha256.clone(),
            actual,
        })
    }
}

fn check_key(key: &str, user_prefix: &str, user_id: &str) -> Result<(), BuildError> {
    let escapes = key
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
        || key.contains('\\')
        || key.contains("//");
    if key.starts_with(user_prefix) && !escapes {
        Ok(())
    } else {
        Err(BuildError::KeyOutsideUserPrefix {
            key: key.to_owned(),
            user_id: user_id.to_owned(),
        })
    }
}

fn to_json<T: Serialize>(value: &T, file: &'static str) -> Result<Vec<u8>, BuildError> {
    serde_json::to_vec_pretty(value).map_err(|error| BuildError::Serialize {
        file,
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_never_print_their_signature() {
        let url = PresignedUrl::new(
            "https://s3.example/b/users/u/in.png?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA",
        );
        for shown in [format!("{url:?}"), format!("{url}")] {
            assert!(
                !shown.contains("deadbeef") && !shown.contains("AKIA"),
                "{shown}"
            );
            assert!(
                shown.contains("https://s3.example/b/users/u/in.png"),
                "{shown}"
            );
        }
        let object = PresignedObject {
            key: "users/u/in.png".to_owned(),
            url,
            headers: BTreeMap::new(),
        };
        assert!(!format!("{object:?}").contains("deadbeef"));
    }

    #[test]
    fn keys_must_stay_under_the_user_prefix() {
        let prefix = "users/u1/";
        assert!(check_key("users/u1/uploads/a.png", prefix, "u1").is_ok());
        for bad in [
            "users/u2/uploads/a.png",
            "users/u1/../u2/a.png",
            "users/u1/./a.png",
            "users/u1//a.png",
            "users/u1",
            "/users/u1/a.png",
            "users/u1\\..\\u2",
        ] {
            assert!(check_key(bad, prefix, "u1").is_err(), "{bad}");
        }
    }
}
