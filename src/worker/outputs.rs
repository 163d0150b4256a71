//! Step 4: outputs. Every file ComfyUI reports is placed before anything is uploaded: a file
//! whose path relative to the output folder equals a declared name goes to that name's URL; the
//! others fill the unused generic slots (`output-01` … `output-16`) in ComfyUI's order. A file
//! with no place left fails the render and nothing is uploaded. A reported file must be a
//! regular file inside the output folder (no link out of it: the render Secret is one path
//! away). Uploads stream the file through its presigned PUT with the signed headers, hashing as
//! they go.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::comfyui::ProducedFile;
use super::contract::{Storage, Transfer};
use super::error::{WorkerError, describe_http};

/// Read size of an upload.
const CHUNK: usize = 1024 * 1024;

/// A produced file and the slot it goes to.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// Path relative to the output folder.
    pub file: String,
    /// The upload slot.
    pub slot: &'a Transfer,
    /// The slot's name (its key relative to the output prefix).
    pub name: &'a str,
}

/// One uploaded output, as the termination message reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Uploaded {
    /// Output name (relative to the output prefix).
    pub name: String,
    /// The produced file, when its name differs from `name` (a generic slot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// Whether a slot name is one of the operator's generic slots.
pub fn is_generic_slot(name: &str) -> bool {
    name.strip_prefix("output-")
        .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Places every produced file (duplicates reported twice count once).
pub fn place<'a>(
    produced: &[ProducedFile],
    storage: &'a Storage,
) -> Result<Vec<Placement<'a>>, WorkerError> {
    let mut seen = BTreeSet::new();
    let files: Vec<String> = produced
        .iter()
        .map(ProducedFile::relative_path)
        .filter(|path| seen.insert(path.clone()))
        .collect();
    if files.is_empty() {
        return Err(WorkerError::OutputsUnplaced(
            "the workflow produced no output file".to_owned(),
        ));
    }
    let slots: Vec<(&str, &Transfer)> = storage
        .outputs
        .iter()
        .map(|slot| (storage.output_name(slot), slot))
        .collect();
    let mut used = vec![false; slots.len()];
    let mut placed: Vec<Option<Placement<'a>>> = vec![None; files.len()];
    for (file, place) in files.iter().zip(placed.iter_mut()) {
        if let Some(index) = slots.iter().position(|(name, _)| name == file) {
            used[index] = true;
            *place = Some(Placement {
                file: file.clone(),
                slot: slots[index].1,
                name: slots[index].0,
            });
        }
    }
    let mut unplaced = Vec::new();
    for (file, place) in files.iter().zip(placed.iter_mut()) {
        if place.is_some() {
            continue;
        }
        let free = slots
            .iter()
            .enumerate()
            .position(|(index, (name, _))| !used[index] && is_generic_slot(name));
        match free {
            Some(index) => {
                used[index] = true;
                *place = Some(Placement {
                    file: file.clone(),
                    slot: slots[index].1,
                    name: slots[index].0,
                });
            }
            None => unplaced.push(file.as_str()),
        }
    }
    if !unplaced.is_empty() {
        let declared: Vec<&str> = slots.iter().map(|(name, _)| *name).collect();
        return Err(WorkerError::OutputsUnplaced(format!(
            "{} of {} produced files have no upload URL left, nothing was uploaded: {} (outputs: {})",
            unplaced.len(),
            files.len(),
            clip_list(&unplaced),
            clip_list(&declared)
        )));
    }
    Ok(placed.into_iter().flatten().collect())
}

fn clip_list(items: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut text = items
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

/// The produced file on disk: a regular file, not a link, inside `output_dir`.
pub fn local_path(output_dir: &Path, relative: &str) -> Result<PathBuf, WorkerError> {
    let refuse = |why: &str| {
        Err(WorkerError::OutputsUnplaced(format!(
            "ComfyUI reported output {relative:?}, which {why}"
        )))
    };
    let path = Path::new(relative);
    if relative.is_empty()
        || relative.contains('\\')
        || !path.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return refuse("is not a plain relative path");
    }
    let full = output_dir.join(path);
    let Ok(metadata) = std::fs::symlink_metadata(&full) else {
        return refuse("does not exist");
    };
    if !metadata.file_type().is_file() {
        return refuse("is not a regular file");
    }
    let inside = match (full.canonicalize(), output_dir.canonicalize()) {
        (Ok(file), Ok(dir)) => file.starts_with(dir),
        _ => false,
    };
    if !inside {
        return refuse("lies outside the output folder");
    }
    Ok(full)
}

/// Uploads every placed file from `output_dir`.
pub async fn upload_all(
    client: &reqwest::Client,
    placements: &[Placement<'_>],
    output_dir: &Path,
) -> Result<Vec<Uploaded>, WorkerError> {
    // Every file is checked before the first byte leaves.
    let paths = placements
        .iter()
        .map(|p| local_path(output_dir, &p.file))
        .collect::<Result<Vec<_>, _>>()?;
    let mut uploaded = Vec::with_capacity(placements.len());
    for (placement, path) in placements.iter().zip(paths) {
        let (size, sha256) = upload(client, placement.slot, &path).await?;
        tracing::info!(key = %placement.slot.key, file = %placement.file, size, sha256 = %sha256, "output uploaded");
        uploaded.push(Uploaded {
            name: placement.name.to_owned(),
            file: (placement.file != placement.name).then(|| placement.file.clone()),
            size,
            sha256,
        });
    }
    Ok(uploaded)
}

async fn upload(
    client: &reqwest::Client,
    slot: &Transfer,
    path: &Path,
) -> Result<(u64, String), WorkerError> {
    let io_error =
        |e: std::io::Error| WorkerError::Transient(format!("cannot read {}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let length = file.metadata().await.map_err(io_error)?.len();
    let hasher = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let sink = hasher.clone();
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; CHUNK];
        let read = file.read(&mut buffer).await?;
        buffer.truncate(read);
        Ok::<_, std::io::Error>((read > 0).then_some((buffer, file)))
    })
    .map_ok(move |chunk| {
        if let Ok(mut state) = sink.lock() {
            state.0.update(&chunk);
            state.1 += chunk.len() as u64;
        }
        chunk
    });
    let mut request = client
        .put(slot.url.expose())
        .header("content-length", length)
        .body(reqwest::Body::wrap_stream(chunks));
    for (name, value) in &slot.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| {
        WorkerError::Transient(format!("upload of {}: {}", slot.key, describe_http(e)))
    })?;
    let status = response.status();
    if !status.is_success() {
        let hint = if status.as_u16() == 403 {
            " (the URL expired or does not allow this upload)"
        } else {
            ""
        };
        return Err(WorkerError::Transient(format!(
            "upload of {} answered HTTP {}{hint}",
            slot.key,
            status.as_u16()
        )));
    }
    let (digest, sent) = match Arc::try_unwrap(hasher).map(Mutex::into_inner) {
        Ok(Ok(state)) => state,
        _ => {
            return Err(WorkerError::Transient(format!(
                "upload of {}: the digest was not finished",
                slot.key
            )));
        }
    };
    if sent != length {
        return Err(WorkerError::Transient(format!(
            "{} changed while it was uploaded",
            path.display()
        )));
    }
    Ok((length, hex::encode(digest.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::render_secret::PresignedUrl;

    const PREFIX: &str = "users/u/renders/r/";

    fn storage(names: &[&str]) -> Storage {
        Storage {
            inputs: Vec::new(),
            outputs: names
                .iter()
                .map(|name| Transfer {
                    key: format!("{PREFIX}{name}"),
                    url: PresignedUrl::new(format!("https://s3/b/{PREFIX}{name}?sig")),
                    headers: Default::default(),
                })
                .collect(),
            output_prefix: PREFIX.to_owned(),
            expires_at: None,
        }
    }

    fn produced(paths: &[&str]) -> Vec<ProducedFile> {
        paths
            .iter()
            .map(|path| {
                let (subfolder, filename) = path.rsplit_once('/').unwrap_or(("", path));
                ProducedFile {
                    node_id: "9".to_owned(),
                    filename: filename.to_owned(),
                    subfolder: subfolder.to_owned(),
                }
            })
            .collect()
    }

    fn names<'a>(placed: &'a [Placement<'a>]) -> Vec<(&'a str, &'a str)> {
        placed.iter().map(|p| (p.file.as_str(), p.name)).collect()
    }

    #[test]
    fn declared_names_win_and_the_rest_fill_generic_slots_in_order() {
        let storage = storage(&["video.mp4", "output-01", "output-02", "frames/0001.png"]);
        let placed = place(
            &produced(&["b.png", "frames/0001.png", "a.png", "video.mp4", "b.png"]),
            &storage,
        )
        .unwrap();
        assert_eq!(
            names(&placed),
            [
                ("b.png", "output-01"),
                ("frames/0001.png", "frames/0001.png"),
                ("a.png", "output-02"),
                ("video.mp4", "video.mp4")
            ]
        );
    }

    #[test]
    fn a_file_with_no_place_fails_and_so_does_nothing_at_all() {
        let storage = storage(&["video.mp4"]);
        let error = place(&produced(&["video.mp4", "extra.png"]), &storage).unwrap_err();
        assert_eq!(error.exit_code(), 45);
        assert!(error.to_string().contains("extra.png"), "{error}");
        assert!(error.to_string().contains("outputs: video.mp4"), "{error}");
        let error = place(&[], &storage).unwrap_err();
        assert!(error.to_string().contains("no output file"), "{error}");
        assert!(
            is_generic_slot("output-16")
                && !is_generic_slot("output-1")
                && !is_generic_slot("output-0a")
        );
    }

    #[test]
    fn a_reported_file_must_be_a_regular_file_inside_the_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("output");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::write(out.join("sub/a.png"), b"png").unwrap();
        std::fs::write(dir.path().join("storage.json"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("storage.json"), out.join("leak.png")).unwrap();
        assert!(local_path(&out, "sub/a.png").is_ok());
        for bad in [
            "leak.png",
            "../storage.json",
            "/etc/passwd",
            "sub",
            "missing.png",
            "",
        ] {
            let error = local_path(&out, bad).unwrap_err();
            assert_eq!(error.exit_code(), 45, "{bad}");
        }
    }
}
