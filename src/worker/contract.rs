//! The three files of the per-render Secret (`src/resources/render_secret.rs` writes them):
//! `workflow.json` (bytes as vetted), `plan.json` (digest, model pins, output prefix) and
//! `storage.json` (presigned GETs and PUTs). Parse errors name the file and position only: the
//! content holds users' prompts and live URLs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::error::WorkerError;
use crate::resources::render_secret::{PLAN_FILE, PresignedUrl, STORAGE_FILE, WORKFLOW_FILE};

/// Largest file of the Secret the worker reads (a Secret is at most 1 MiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A model the plan pins by digest.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PinnedModel {
    /// Model file name (or path relative to a models folder), as the workflow names it.
    pub identifier: String,
    /// Expected hex SHA-256.
    pub sha256: String,
}

/// `plan.json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Hex SHA-256 of `workflow.json`, as vetting recorded it.
    pub workflow_sha256: String,
    /// Models to verify before ComfyUI may load them.
    #[serde(default)]
    pub models: Vec<PinnedModel>,
    /// Prefix of every output key.
    pub output_prefix: String,
}

/// One presigned transfer: the object key, its URL and the headers signed into it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Object key.
    pub key: String,
    /// Presigned URL (its `Debug` hides the signature).
    #[serde(deserialize_with = "presigned_url")]
    pub url: PresignedUrl,
    /// Headers the request must carry exactly.
    #[serde(default, deserialize_with = "headers")]
    pub headers: BTreeMap<String, String>,
}

/// `storage.json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Downloads.
    #[serde(default)]
    pub inputs: Vec<Transfer>,
    /// Upload slots.
    #[serde(default)]
    pub outputs: Vec<Transfer>,
    /// Prefix of every output key.
    pub output_prefix: String,
    /// When the URLs expire (RFC 3339), for the log.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Everything the render Secret gives the worker.
#[derive(Clone, Debug)]
pub struct RenderContract {
    /// The workflow bytes, exactly as mounted.
    pub workflow: Vec<u8>,
    /// The plan.
    pub plan: Plan,
    /// The storage grant.
    pub storage: Storage,
}

fn presigned_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PresignedUrl, D::Error> {
    let text = String::deserialize(deserializer)?;
    match url::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => {
            Ok(PresignedUrl::new(text))
        }
        // The URL itself is never repeated.
        _ => Err(serde::de::Error::custom(
            "a url is not an absolute http(s) URL",
        )),
    }
}

fn headers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl RenderContract {
    /// Reads and checks the three files in `dir`.
    pub fn read(dir: &Path) -> Result<Self, WorkerError> {
        let workflow = read_file(dir, WORKFLOW_FILE)?;
        let plan: Plan = parse(&read_file(dir, PLAN_FILE)?, PLAN_FILE)?;
        let storage: Storage = parse(&read_file(dir, STORAGE_FILE)?, STORAGE_FILE)?;
        let contract = Self {
            workflow,
            plan,
            storage,
        };
        contract.check()?;
        Ok(contract)
    }

    /// Consistency the operator guarantees; checked again because a wrong key would send an
    /// output somewhere the user did not ask for.
    fn check(&self) -> Result<(), WorkerError> {
        let invalid = |file, message: String| Err(WorkerError::Contract { file, message });
        if self.plan.output_prefix != self.storage.output_prefix {
            return invalid(
                STORAGE_FILE,
                "outputPrefix differs from plan.json's".to_owned(),
            );
        }
        if !self.plan.output_prefix.ends_with('/') {
            return invalid(PLAN_FILE, "outputPrefix must end with '/'".to_owned());
        }
        for output in &self.storage.outputs {
            let name = output.key.strip_prefix(&self.storage.output_prefix);
            if name.is_none_or(|name| name.is_empty()) {
                return invalid(
                    STORAGE_FILE,
                    format!("output key {} is not under outputPrefix", output.key),
                );
            }
        }
        Ok(())
    }
}

impl Storage {
    /// The output name of a slot: its key relative to the output prefix.
    pub fn output_name<'a>(&self, output: &'a Transfer) -> &'a str {
        output
            .key
            .strip_prefix(&self.output_prefix)
            .unwrap_or(&output.key)
    }
}

fn read_file(dir: &Path, file: &'static str) -> Result<Vec<u8>, WorkerError> {
    let path = dir.join(file);
    let unusable = |message: String| WorkerError::Contract { file, message };
    let size = std::fs::metadata(&path)
        .map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(unusable(format!(
            "{size} bytes, more than a Secret can hold"
        )));
    }
    std::fs::read(&path).map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    file: &'static str,
) -> Result<T, WorkerError> {
    serde_json::from_slice(bytes).map_err(|e| WorkerError::Contract {
        file,
        // serde_json's messages can quote a value; only the category and position are safe.
        message: format!(
            "invalid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "users/u1/renders/r1/";

    fn write(dir: &Path, plan: &str, storage: &str) {
        std::fs::write(dir.join(WORKFLOW_FILE), b"{}").unwrap();
        std::fs::write(dir.join(PLAN_FILE), plan).unwrap();
        std::fs::write(dir.join(STORAGE_FILE), storage).unwrap();
    }

    fn plan() -> String {
        format!(
            r#"{{"workflowSha256":"{}","models":[],"outputPrefix":"{PREFIX}"}}"#,
            "a".repeat(64)
        )
    }

    #[test]
    fn reads_the_operator_format_with_and_without_headers() {
        let dir = tempfile::tempdir().unwrap();
        let storage = format!(
            r#"{{"inputs":[{{"key":"users/u1/uploads/a.png","url":"https://s3/b/users/u1/uploads/a.png?X-Amz-Signature=s3cr3t"}}],
                "outputs":[{{"key":"{PREFIX}video.mp4","url":"https://s3/b/{PREFIX}video.mp4?X-Amz-Signature=s3cr3t","headers":{{"x-amz-server-side-encryption":"aws:kms"}}}}],
                "outputPrefix":"{PREFIX}","expiresAt":"2026-01-01T00:00:00Z"}}"#
        );
        write(dir.path(), &plan(), &storage);
        let contract = RenderContract::read(dir.path()).unwrap();
        assert!(contract.storage.inputs[0].headers.is_empty());
        assert_eq!(
            contract.storage.outputs[0].headers["x-amz-server-side-encryption"],
            "aws:kms"
        );
        assert_eq!(
            contract.storage.output_name(&contract.storage.outputs[0]),
            "video.mp4"
        );
        assert!(!format!("{contract:?}").contains("s3cr3t"));
    }

    #[test]
    fn malformed_files_are_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let storage = format!(
            r#"{{"inputs":[{{"key":"k","url":"ftp://s3/x?X-Amz-Signature=s3cr3t"}}],"outputs":[],"outputPrefix":"{PREFIX}"}}"#
        );
        write(dir.path(), &plan(), &storage);
        let error = RenderContract::read(dir.path()).unwrap_err();
        assert_eq!(error.exit_code(), 43);
        let text = error.to_string();
        assert!(
            text.contains("storage.json") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn an_output_key_outside_the_prefix_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = format!(
            r#"{{"outputs":[{{"key":"users/u2/renders/r1/video.mp4","url":"https://s3/x"}}],"outputPrefix":"{PREFIX}"}}"#
        );
        write(dir.path(), &plan(), &storage);
        let error = RenderContract::read(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("not under outputPrefix"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_unusable_input() {
        let dir = tempfile::tempdir().unwrap();
        let error = RenderContract::read(dir.path()).unwrap_err();
        assert_eq!(error.exit_code(), 43);
        assert!(error.to_string().contains("workflow.json"), "{error}");
    }
}
