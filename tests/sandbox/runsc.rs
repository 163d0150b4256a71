//! Local sandbox conformance: a probe built from `tests/fixtures/sandbox/probe.c` runs under
//! gVisor (`runsc run`, an OCI bundle generated here) with a worker's restrictions (no network,
//! read-only root, user 65532, no capabilities, no new privileges) and reports from inside; the
//! same probe run directly on the host is the control.
//!
//! Needs `runsc` (scripts/install/runsc.sh) and a C compiler with a static libc. Missing tools
//! skip the test (fail under `VF_TEST_REQUIRE_SERVICES`); an installed runsc that cannot start a
//! sandbox always fails, with runsc's own message, because then the machine cannot prove the
//! sandbox works. The platform is `ptrace` (works without KVM and in nested containers);
//! override with `VF_RUNSC_PLATFORM` (e.g. `kvm`).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::{common, fixtures};

pub const WORKER_UID: u32 = 65532;
/// Bound on one `runsc` call (the probe itself takes well under a second).
const RUNSC_TIMEOUT_SECONDS: u32 = 120;

fn compile_probe(out: &Path) {
    let source = fixtures::fixture_dir().join("probe.c");
    let output = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cc -static failed (a static libc, libc6-dev, is needed):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An OCI runtime config with the restrictions of a worker pod.
pub fn worker_config(args: &[String]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": WORKER_UID, "gid": WORKER_UID},
            "args": args,
            "env": ["PATH=/", "HOME=/tmp"],
            "cwd": "/",
            "capabilities": {"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "worker",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m"]}
        ],
        "linux": {"namespaces": [
            {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
        ]}
    })
}

fn report(output: &Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: bad report {stdout:?}: {e}"))
}

#[test]
fn a_probe_in_gvisor_has_no_network_no_writable_root_no_root_and_no_capabilities() {
    if common::required_tool("runsc").is_none() || common::required_tool("cc").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    for sub in ["proc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    compile_probe(&rootfs.join("probe"));
    // World-writable root directory: only the read-only root mount can stop the write, so the
    // probe's EROFS proves that restriction rather than plain file permissions.
    std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o777)).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let args = vec!["/probe".to_owned(), "127.0.0.1".to_owned(), port.clone()];

    // Control: outside the sandbox the probe reaches the listener.
    let control = report(
        &Command::new(rootfs.join("probe"))
            .args(&args[1..])
            .output()
            .unwrap(),
        "the probe on the host",
    );
    assert_eq!(
        control["connect"], "ok",
        "control must reach the listener: {control}"
    );

    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&worker_config(&args)).unwrap(),
    )
    .unwrap();
    let platform = platform();
    let container_id = format!("vf-probe-{}", std::process::id());
    let logs = dir.path().join("logs");
    let runsc = |args: &[&str]| runsc_command(dir.path(), &platform, args);
    let output = runsc(&["run", "--bundle", bundle.to_str().unwrap(), &container_id])
        .output()
        .unwrap();
    if !output.status.success() {
        // Best effort: do not leave a half-started sandbox behind.
        let _ = runsc(&["delete", "--force", &container_id]).output();
        let why = match output.status.code() {
            Some(124) => format!("runsc did not finish within {RUNSC_TIMEOUT_SECONDS}s"),
            Some(code) => format!("runsc exited with status {code}"),
            None => "runsc was killed by a signal".to_owned(),
        };
        panic!(
            "runsc is installed but cannot start a sandbox on this machine: {why} (platform {platform}, uid {}).\nstderr: {}\nstdout: {}\nrunsc logs:\n{}",
            nix_uid(),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
            log_tails(&logs),
        );
    }
    let inside = report(&output, "the probe under runsc");

    assert_ne!(
        inside["connect"], "ok",
        "the sandbox reached the host's loopback: {inside}"
    );
    assert_eq!(
        inside["root_write"], "EROFS",
        "root filesystem must be read-only: {inside}"
    );
    assert_eq!(inside["uid"], WORKER_UID, "{inside}");
    assert_eq!(inside["euid"], WORKER_UID, "{inside}");
    assert_eq!(inside["gid"], WORKER_UID, "{inside}");
    assert_eq!(
        inside["cap_eff"], "0000000000000000",
        "no capabilities: {inside}"
    );
    assert_ne!(
        inside["kernel"], control["kernel"],
        "gVisor reports its own kernel, not the host's: {inside}"
    );
    drop(listener);
}

pub fn platform() -> String {
    std::env::var("VF_RUNSC_PLATFORM").unwrap_or_else(|_| "ptrace".to_owned())
}

/// `runsc` with its state and debug logs under `dir`, no network, bounded in time.
pub fn runsc_command(dir: &Path, platform: &str, args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command
        .arg(RUNSC_TIMEOUT_SECONDS.to_string())
        .arg("runsc")
        .arg("--root")
        .arg(dir.join("state"))
        .arg(format!("--debug-log={}/", dir.join("logs").display()))
        .arg(format!("--platform={platform}"))
        .arg("--network=none")
        .args(args);
    command
}

fn nix_uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The last lines of each runsc debug log, where runsc explains why a sandbox did not start.
pub fn log_tails(logs: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return "(no logs written)".to_owned();
    };
    let mut out = String::new();
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("== {}\n", entry.path().display()));
        for line in &lines[lines.len().saturating_sub(12)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
