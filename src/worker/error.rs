//! Why a render failed, the exit code that tells the Job controller whether a retry can help,
//! and the one-line reason the operator shows in the RenderJob's status. No variant carries a
//! presigned URL: transfers are named by their object key.

use crate::resources::worker_job::{
    EXIT_INVALID_INPUT, EXIT_OUTPUTS_UNPLACED, EXIT_REJECTED, EXIT_RENDER_FAILED,
};

/// Exit code of a failure that a retry may cure (network, storage 5xx, scratch I/O).
pub const EXIT_TRANSIENT: i32 = 1;

/// A failed render step.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A file of the render Secret is missing or malformed.
    #[error("{file} in the render Secret is unusable: {message}")]
    Contract {
        /// `workflow.json`, `plan.json` or `storage.json`.
        file: &'static str,
        /// What is wrong (never the file's content).
        message: String,
    },
    /// The workflow is not the one that was vetted.
    #[error("workflow digest {actual} is not the vetted digest {vetted}")]
    WorkflowDigestMismatch {
        /// Digest in plan.json.
        vetted: String,
        /// Digest of workflow.json.
        actual: String,
    },
    /// A pinned model's bytes are not the pinned ones.
    #[error("model {identifier} at {path} has SHA-256 {actual}, pinned {pinned}")]
    ModelDigestMismatch {
        /// The pin's identifier.
        identifier: String,
        /// The file that was hashed.
        path: String,
        /// The pinned digest.
        pinned: String,
        /// The file's digest.
        actual: String,
    },
    /// A model pin that names no file inside the models folders.
    #[error("model pin {identifier:?} is not a plain relative path")]
    ModelPinInvalid {
        /// The pin's identifier.
        identifier: String,
    },
    /// A pinned model is in none of the models folders.
    #[error("pinned model {identifier} is not in the models folders ({searched})")]
    ModelMissing {
        /// The pin's identifier.
        identifier: String,
        /// The folders searched.
        searched: String,
    },
    /// An input that cannot be used: bad key, missing, refused, redirected elsewhere, too big.
    #[error("input {key}: {message}")]
    InputUnusable {
        /// The input's object key.
        key: String,
        /// Why.
        message: String,
    },
    /// ComfyUI did not start, refused the workflow or failed while running it.
    #[error("{0}")]
    Render(String),
    /// A UI-format workflow that this ComfyUI cannot take in the API format.
    #[error("cannot convert the UI-format workflow to the API format: {0}")]
    Conversion(String),
    /// Produced files that have no upload URL, or no file at all.
    #[error("{0}")]
    OutputsUnplaced(String),
    /// A transfer or local I/O failure that a retry may cure.
    #[error("{0}")]
    Transient(String),
}

impl WorkerError {
    /// The process exit code (see docs/worker.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::WorkflowDigestMismatch { .. }
            | Self::ModelDigestMismatch { .. }
            | Self::ModelPinInvalid { .. } => EXIT_REJECTED,
            Self::Contract { .. }
            | Self::ModelMissing { .. }
            | Self::InputUnusable { .. }
            | Self::Conversion(_) => EXIT_INVALID_INPUT,
            Self::Render(_) => EXIT_RENDER_FAILED,
            Self::OutputsUnplaced(_) => EXIT_OUTPUTS_UNPLACED,
            Self::Transient(_) => EXIT_TRANSIENT,
        }
    }

    /// A bounded PascalCase reason, first word of the termination message.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Contract { .. } => "RenderSecretInvalid",
            Self::WorkflowDigestMismatch { .. } => "WorkflowDigestMismatch",
            Self::ModelDigestMismatch { .. } => "ModelDigestMismatch",
            Self::ModelPinInvalid { .. } => "ModelPinInvalid",
            Self::ModelMissing { .. } => "ModelMissing",
            Self::InputUnusable { .. } => "InputUnusable",
            Self::Render(_) => "RenderFailed",
            Self::Conversion(_) => "WorkflowNotConvertible",
            Self::OutputsUnplaced(_) => "OutputsUnplaced",
            Self::Transient(_) => "TransientFailure",
        }
    }
}

/// Describes a reqwest error without its URL (a presigned URL's query is a credential), with
/// the chain of causes.
pub fn describe_http(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_unusable_inputs_have_the_codes_the_pod_failure_policy_knows() {
        let mismatch = WorkerError::WorkflowDigestMismatch {
            vetted: "a".repeat(64),
            actual: "b".repeat(64),
        };
        assert_eq!(mismatch.exit_code(), 42);
        let missing = WorkerError::InputUnusable {
            key: "users/u/uploads/a.png".to_owned(),
            message: "not found (HTTP 404)".to_owned(),
        };
        assert_eq!(missing.exit_code(), 43);
        assert_eq!(WorkerError::Transient(String::new()).exit_code(), 1);
        for retried in [
            WorkerError::Render(String::new()),
            WorkerError::OutputsUnplaced(String::new()),
        ] {
            assert!(![0, 42, 43].contains(&retried.exit_code()));
        }
    }
}
