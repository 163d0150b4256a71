//! Shared test helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod gitops;
pub mod kubelet_stand_in;
pub mod mock_api;
pub mod request_log;
pub mod structural;

/// Reads the address of a real server that `scripts/test.sh` started. Without it the test is
/// skipped with a note, unless `VF_TEST_REQUIRE_SERVICES` is set (as `scripts/test.sh` and CI
/// do), in which case a missing server fails the test.
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var_os("VF_TEST_REQUIRE_SERVICES").is_none(),
                "{var} is not set: start the test servers with scripts/test.sh"
            );
            eprintln!("skipping: {var} is not set (run scripts/test.sh to start the test servers)");
            None
        }
    }
}

/// The shared ComfyUI workflow corpus beside the repository, when it exists.
pub fn corpus_dir() -> Option<std::path::PathBuf> {
    // `VF_CORPUS_DIR` points at the corpus when the work tree is not beside `shared/`.
    let dir = std::env::var_os("VF_CORPUS_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        std::path::PathBuf::from,
    );
    dir.is_dir().then_some(dir)
}

/// Finds a command-line tool that `scripts/setup.sh` installs. Without it the test is skipped
/// with a note, unless `VF_TEST_REQUIRE_SERVICES` is set, in which case it fails.
pub fn required_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("VF_TEST_REQUIRE_SERVICES").is_none(),
            "{name} is not installed: run scripts/setup.sh"
        );
        eprintln!("skipping: {name} is not installed (run scripts/setup.sh)");
    }
    found
}
