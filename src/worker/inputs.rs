//! Step 2: inputs. Each input is fetched by its presigned GET into ComfyUI's input folder under
//! the last segment of its key (never a name the server suggests), with a size cap. A missing,
//! refused, redirected-elsewhere or oversized input is unusable (exit 43); a connection failure
//! or a 5xx may be cured by a retry.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::contract::Transfer;
use super::error::{WorkerError, describe_http};
use super::transfer::{BodyError, copy_bounded, is_cross_origin_redirect};

/// A downloaded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// Its object key.
    pub key: String,
    /// Its file in the input folder.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// The file name of an input: the key's last segment, which must be a plain name.
pub fn file_name(key: &str) -> Result<&str, WorkerError> {
    let name = key.rsplit('/').next().unwrap_or_default();
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '\\' || c.is_control())
        && name.len() <= 255;
    if plain {
        Ok(name)
    } else {
        Err(WorkerError::InputUnusable {
            key: key.to_owned(),
            message: "the key does not end in a plain file name".to_owned(),
        })
    }
}

/// Downloads every input into `dir` (which must exist), each at most `limit` bytes.
pub async fn download_all(
    client: &reqwest::Client,
    inputs: &[Transfer],
    dir: &Path,
    limit: u64,
) -> Result<Vec<Downloaded>, WorkerError> {
    let mut names = BTreeSet::new();
    for input in inputs {
        let name = file_name(&input.key)?;
        if !names.insert(name) {
            return Err(WorkerError::InputUnusable {
                key: input.key.clone(),
                message: format!("another input is also named {name}"),
            });
        }
    }
    let mut downloaded = Vec::with_capacity(inputs.len());
    for input in inputs {
        let path = dir.join(file_name(&input.key)?);
        let result = download(client, input, &path, limit).await;
        if result.is_err() {
            // Best effort: no partial file for ComfyUI to find.
            let _ = std::fs::remove_file(&path);
        }
        let (bytes, sha256) = result?;
        tracing::info!(key = %input.key, bytes, sha256 = %sha256, "input downloaded");
        downloaded.push(Downloaded {
            key: input.key.clone(),
            path,
            bytes,
            sha256,
        });
    }
    Ok(downloaded)
}

async fn download(
    client: &reqwest::Client,
    input: &Transfer,
    path: &Path,
    limit: u64,
) -> Result<(u64, String), WorkerError> {
    let unusable = |message: String| WorkerError::InputUnusable {
        key: input.key.clone(),
        message,
    };
    let mut request = client.get(input.url.expose());
    for (name, value) in &input.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| {
        if is_cross_origin_redirect(&e) {
            unusable("the storage endpoint redirected to another host, which is refused".to_owned())
        } else {
            WorkerError::Transient(format!("input {}: {}", input.key, describe_http(e)))
        }
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(unusable(format!(
            "unexpected redirect (HTTP {})",
            status.as_u16()
        )));
    }
    if status.is_server_error() {
        return Err(WorkerError::Transient(format!(
            "input {}: the storage endpoint answered HTTP {}",
            input.key,
            status.as_u16()
        )));
    }
    if !status.is_success() {
        let what = match status.as_u16() {
            404 => "not found",
            403 => "access refused (expired or not this render's URL)",
            _ => "refused",
        };
        return Err(unusable(format!("{what} (HTTP {})", status.as_u16())));
    }
    // create_new: never follow or overwrite something already in the folder.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| WorkerError::Transient(format!("cannot create {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let bytes = copy_bounded(response, limit, |chunk| {
        hasher.update(chunk);
        file.write_all(chunk)
    })
    .await
    .map_err(|e| match e {
        BodyError::TooLarge { limit } => {
            unusable(format!("larger than the limit of {limit} bytes"))
        }
        BodyError::Http(message) => {
            WorkerError::Transient(format!("input {}: {message}", input.key))
        }
        BodyError::Io(e) => WorkerError::Transient(format!("cannot write {}: {e}", path.display())),
    })?;
    file.sync_all()
        .map_err(|e| WorkerError::Transient(format!("cannot write {}: {e}", path.display())))?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_key_and_never_climb() {
        assert_eq!(file_name("users/u/uploads/ref.png").unwrap(), "ref.png");
        for bad in [
            "users/u/uploads/",
            "users/u/uploads/..",
            "users/u/uploads/.",
            "users/u/uploads/.hidden",
            "users/u/uploads/a\\..\\b.png",
            "users/u/uploads/a\nb.png",
        ] {
            let error = file_name(bad).unwrap_err();
            assert_eq!(error.exit_code(), 43, "{bad}");
        }
    }
}
