//! Layers point one way: controllers and the CLI depend on backends and pure modules, never the
//! reverse. A backend that reached into `controller/` (as `storage/` once did for `StepOutcome`)
//! would tie it to one controller and make it impossible to reuse from the CLI or a test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Modules that must not depend on `controller` or `cli`.
const LOWER_LAYERS: &[&str] = &[
    "src/crd",
    "src/postgres",
    "src/resources",
    "src/secrets",
    "src/storage",
    "src/vetting",
    "src/worker",
    "src/provisioning.rs",
    "src/security_profile.rs",
];

/// Paths by which a lower layer could reach an upper one.
const UPPER_LAYERS: &[&str] = &[
    "crate::controller",
    "crate::cli",
    "videofoundry_operator::controller",
];

fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, found);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        found.push(path.to_owned());
    }
}

/// Every `use` or path of an upper layer in `files`, as `file:line: text`.
fn upward_references(files: &[PathBuf]) -> Vec<String> {
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if UPPER_LAYERS.iter().any(|upper| code.contains(upper)) {
                offences.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    offences
}

#[test]
fn backends_and_pure_modules_never_import_a_controller_or_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for layer in LOWER_LAYERS {
        let path = root.join(layer);
        assert!(path.exists(), "{layer} moved: update LOWER_LAYERS");
        rust_files(&path, &mut files);
    }
    assert!(files.len() > 50, "only {} files scanned", files.len());
    let offences = upward_references(&files);
    assert!(
        offences.is_empty(),
        "lower layers import controller/cli; move the shared item down (e.g. to \
         crate::provisioning or crate::vetting):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_check_finds_an_upward_import() {
    let dir = std::env::temp_dir().join(format!("vf-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.rs");
    std::fs::write(
        &file,
        "// crate::controller in a comment is fine\nuse crate::controller::video_foundry::status::StepOutcome;\n",
    )
    .unwrap();
    let offences = upward_references(&[file]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(offences.len(), 1, "{offences:?}");
    assert!(
        offences[0].ends_with(":2: use crate::controller::video_foundry::status::StepOutcome;")
    );
}
