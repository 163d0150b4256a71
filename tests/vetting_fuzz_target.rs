#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The cargo-fuzz target under `fuzz/` keeps compiling. It is checked on the stable toolchain
//! (`cargo check`); fuzzing itself (`cargo +nightly fuzz run vet`) needs nightly and cargo-fuzz
//! and is not run here (see docs/vetting.md).

use std::process::Command;

#[test]
fn the_fuzz_target_compiles_on_stable() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/Cargo.toml");
    let output = Command::new(cargo)
        .args(["check", "--quiet", "--manifest-path", manifest])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo check of the fuzz target failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
