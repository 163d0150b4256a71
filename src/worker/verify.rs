//! Step 1: the plan. The workflow must be the vetted one, byte for byte, and every pinned model
//! must hash to its pin before ComfyUI starts. Models are streamed through SHA-256 (1 MiB reads)
//! and the rate is reported in seconds per GB, the figure that tells an admin what pinning
//! costs at start-up. The models folders are mounted read-only, so what was hashed is what
//! ComfyUI loads.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::contract::PinnedModel;
use super::error::WorkerError;

/// Folder depth searched for a model (ComfyUI's tree is `models/<kind>/[sub/]<file>`).
const MAX_DEPTH: usize = 6;

/// A file hashed by [`sha256_file`].
#[derive(Clone, Debug, PartialEq)]
pub struct Hashed {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes read.
    pub bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Hashed {
    /// Seconds per 10⁹ bytes; `None` for an empty file.
    pub fn seconds_per_gb(&self) -> Option<f64> {
        (self.bytes > 0).then(|| self.elapsed.as_secs_f64() / (self.bytes as f64 / 1e9))
    }
}

/// A model that matched its pin.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedModel {
    /// The pin's identifier.
    pub identifier: String,
    /// Each file that ComfyUI could load under that identifier.
    pub files: Vec<(PathBuf, Hashed)>,
}

/// Streams a file through SHA-256.
pub fn sha256_file(path: &Path) -> std::io::Result<Hashed> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok(Hashed {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// The workflow must hash to the vetted digest.
pub fn verify_workflow(workflow: &[u8], vetted: &str) -> Result<(), WorkerError> {
    let actual = hex::encode(Sha256::digest(workflow));
    if actual.eq_ignore_ascii_case(vetted) {
        Ok(())
    } else {
        Err(WorkerError::WorkflowDigestMismatch {
            vetted: vetted.to_owned(),
            actual,
        })
    }
}

/// Hashes every file that matches a pin in the models folders. A pin matches a file whose path
/// relative to a models folder equals the identifier, or, for a bare file name, any file of
/// that name (ComfyUI resolves names in every model kind's folder, so each candidate must
/// match). Blocking: run it on a blocking thread.
pub fn verify_models(
    roots: &[PathBuf],
    pins: &[PinnedModel],
) -> Result<Vec<VerifiedModel>, WorkerError> {
    let mut verified = Vec::with_capacity(pins.len());
    for pin in pins {
        let wanted = pin_path(&pin.identifier)?;
        let mut candidates = Vec::new();
        for root in roots {
            find(root, root, &wanted, 0, &mut candidates).map_err(|e| {
                WorkerError::Transient(format!("cannot search {}: {e}", root.display()))
            })?;
        }
        if candidates.is_empty() {
            return Err(WorkerError::ModelMissing {
                identifier: pin.identifier.clone(),
                searched: if roots.is_empty() {
                    "no models folder is mounted".to_owned()
                } else {
                    roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        let mut files = Vec::with_capacity(candidates.len());
        for path in candidates {
            let hashed = sha256_file(&path).map_err(|e| {
                WorkerError::Transient(format!("cannot read model {}: {e}", path.display()))
            })?;
            if !hashed.sha256.eq_ignore_ascii_case(&pin.sha256) {
                return Err(WorkerError::ModelDigestMismatch {
                    identifier: pin.identifier.clone(),
                    path: path.display().to_string(),
                    pinned: pin.sha256.to_ascii_lowercase(),
                    actual: hashed.sha256,
                });
            }
            tracing::info!(
                model = %pin.identifier,
                path = %path.display(),
                bytes = hashed.bytes,
                seconds = hashed.elapsed.as_secs_f64(),
                seconds_per_gb = hashed.seconds_per_gb().unwrap_or(0.0),
                "model matches its pin"
            );
            files.push((path, hashed));
        }
        verified.push(VerifiedModel {
            identifier: pin.identifier.clone(),
            files,
        });
    }
    Ok(verified)
}

/// A pin's identifier as a relative path of plain components.
fn pin_path(identifier: &str) -> Result<PathBuf, WorkerError> {
    let path = Path::new(identifier);
    let plain = !identifier.is_empty()
        && !identifier.contains('\\')
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(path.to_owned())
    } else {
        Err(WorkerError::ModelPinInvalid {
            identifier: identifier.to_owned(),
        })
    }
}

fn find(
    root: &Path,
    dir: &Path,
    wanted: &Path,
    depth: usize,
    found: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        Err(e) => return Err(e),
    };
    let bare_name = wanted.components().count() == 1;
    let mut entries = entries.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Directories are not followed through links (no loops); files are (model stores
        // often link blobs).
        if entry.file_type()?.is_dir() {
            if depth + 1 < MAX_DEPTH {
                find(root, &path, wanted, depth + 1, found)?;
            }
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let matches =
            relative == wanted || (bare_name && path.file_name() == Some(wanted.as_os_str()));
        if matches && std::fs::metadata(&path)?.is_file() {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(identifier: &str, content: &[u8]) -> PinnedModel {
        PinnedModel {
            identifier: identifier.to_owned(),
            sha256: hex::encode(Sha256::digest(content)),
        }
    }

    #[test]
    fn a_workflow_one_byte_off_is_refused() {
        let workflow = br#"{"1":{"class_type":"SaveImage","inputs":{}}}"#;
        let vetted = hex::encode(Sha256::digest(workflow));
        verify_workflow(workflow, &vetted.to_ascii_uppercase()).unwrap();
        let mut changed = workflow.to_vec();
        changed.push(b' ');
        let error = verify_workflow(&changed, &vetted).unwrap_err();
        assert_eq!(error.exit_code(), 42);
        assert_eq!(error.reason(), "WorkflowDigestMismatch");
    }

    #[test]
    fn models_are_found_in_any_kind_folder_and_must_all_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join("checkpoints")).unwrap();
        std::fs::create_dir_all(root.join("loras/sub")).unwrap();
        let model = vec![7u8; 3 * 1024 * 1024 + 5];
        std::fs::write(root.join("checkpoints/m.safetensors"), &model).unwrap();
        let verified =
            verify_models(std::slice::from_ref(&root), &[pin("m.safetensors", &model)]).unwrap();
        assert_eq!(verified[0].files.len(), 1);
        assert_eq!(verified[0].files[0].1.bytes, model.len() as u64);
        assert!(verified[0].files[0].1.seconds_per_gb().is_some());

        // The same name elsewhere, one byte off: ComfyUI might load that one, so it is refused.
        let mut off = model.clone();
        off[0] ^= 1;
        std::fs::write(root.join("loras/sub/m.safetensors"), &off).unwrap();
        let error = verify_models(std::slice::from_ref(&root), &[pin("m.safetensors", &model)])
            .unwrap_err();
        assert_eq!(error.exit_code(), 42);
        assert!(
            error.to_string().contains("loras/sub/m.safetensors"),
            "{error}"
        );

        // A relative path pin names exactly one file.
        verify_models(
            std::slice::from_ref(&root),
            &[pin("checkpoints/m.safetensors", &model)],
        )
        .unwrap();
    }

    #[test]
    fn a_missing_model_and_a_climbing_pin_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().to_owned()];
        let error = verify_models(&roots, &[pin("absent.safetensors", b"x")]).unwrap_err();
        assert_eq!(error.exit_code(), 43);
        let error = verify_models(&[], &[pin("absent.safetensors", b"x")]).unwrap_err();
        assert!(error.to_string().contains("no models folder"), "{error}");
        for climbing in ["../etc/passwd", "/etc/passwd", "a/../../b", "", "a\\..\\b"] {
            let error = verify_models(&roots, &[pin(climbing, b"x")]).unwrap_err();
            assert_eq!(error.reason(), "ModelPinInvalid", "{climbing}");
        }
    }
}
