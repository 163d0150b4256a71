//! The worker binary itself under gVisor (`runsc run`), with a worker pod's restrictions (no
//! network, read-only root, user 65532, no capabilities) and its mounts: the render Secret
//! read-only at its production path, models read-only at /models, the binary read-only at
//! /opt/videofoundry/bin, a tmpfs /tmp, and a writable folder for the termination message. A
//! tampered workflow is refused with exit 42; a valid plan passes model hashing inside the
//! sandbox and fails only at starting ComfyUI (there is none in this root file system), exit 44.
//! The test binary is dynamically linked, so the host's libc folders are mounted read-only too
//! (the released binary is static).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common;
use crate::runsc::{log_tails, platform, runsc_command, worker_config};

const BINARY: &str = "/opt/videofoundry/bin/videofoundry-operator";

fn bind(source: &Path, destination: &str, writable: bool) -> Value {
    let mode = if writable { "rw" } else { "ro" };
    json!({"destination": destination, "type": "bind", "source": source, "options": ["rbind", mode]})
}

fn open_up(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the worker in a sandbox; returns (exit code, termination message, output).
fn run_worker(
    dir: &Path,
    name: &str,
    workflow_digest: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let root = dir.join(name);
    let rootfs = root.join("rootfs");
    for sub in [
        "proc",
        "tmp",
        "models",
        "termination",
        "var/run/videofoundry/render",
        "opt/videofoundry/bin",
        "lib",
        "lib64",
        "usr/lib",
    ] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::write(rootfs.join(BINARY.trim_start_matches('/')), b"").unwrap();
    let termination = root.join("termination");
    std::fs::create_dir_all(&termination).unwrap();
    open_up(&termination, 0o777);

    let mut args: Vec<String> = [BINARY, "worker", "--termination-log", "/termination/log"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut config = worker_config(&args);
    config["process"]["env"] = json!([
        "PATH=/opt/videofoundry/bin",
        "HOME=/tmp",
        "TMPDIR=/tmp",
        "VF_RENDER_DIR=/var/run/videofoundry/render",
        "VF_MODELS_DIR=/models",
        "VF_COMFYUI_READY_TIMEOUT=30"
    ]);
    let mounts = config["mounts"].as_array_mut().unwrap();
    // The production tmpfs is noexec; so is this one.
    for (source, destination) in [
        (dir.join("render"), "/var/run/videofoundry/render"),
        (dir.join("models"), "/models"),
        (
            Path::new(env!("CARGO_BIN_EXE_videofoundry-operator")).to_owned(),
            BINARY,
        ),
        (Path::new("/lib").to_owned(), "/lib"),
        (Path::new("/lib64").to_owned(), "/lib64"),
        (Path::new("/usr/lib").to_owned(), "/usr/lib"),
    ] {
        mounts.push(bind(&source, destination, false));
    }
    mounts.push(bind(&termination, "/termination", true));
    std::fs::write(
        root.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();

    let container_id = format!("vf-worker-{name}-{}", std::process::id());
    let output = runsc_command(
        dir,
        &platform(),
        &["run", "--bundle", root.to_str().unwrap(), &container_id],
    )
    .output()
    .unwrap();
    let _ = runsc_command(dir, &platform(), &["delete", "--force", &container_id]).output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let message = std::fs::read_to_string(termination.join("log")).unwrap_or_else(|_| {
        panic!(
            "the worker wrote no termination message under runsc ({}):\n{text}\nrunsc logs:\n{}",
            output.status,
            log_tails(&dir.join("logs"))
        )
    });
    let _ = workflow_digest;
    (output.status.code().unwrap_or(-1), message, text)
}

#[test]
fn the_worker_binary_runs_under_gvisor_and_refuses_a_tampered_workflow() {
    if common::required_tool("runsc").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    open_up(dir.path(), 0o755);
    let render = dir.path().join("render");
    let models = dir.path().join("models/checkpoints");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::create_dir_all(&render).unwrap();
    for folder in [&render, &models, &dir.path().join("models")] {
        open_up(folder, 0o755);
    }
    let model = vec![3u8; 8 * 1024 * 1024];
    std::fs::write(models.join("m.safetensors"), &model).unwrap();
    open_up(&models.join("m.safetensors"), 0o644);
    let workflow = br#"{"1": {"class_type": "SaveImage", "inputs": {}}}"#;
    let digest = hex::encode(Sha256::digest(workflow));
    let prefix = "users/0b7e4a1c-51f2-4c0e-9d55-3f1b8f6a2c10/renders/r1/";
    let write = |vetted: &str| {
        std::fs::write(render.join("workflow.json"), workflow).unwrap();
        let plan = json!({"workflowSha256": vetted, "outputPrefix": prefix,
            "models": [{"identifier": "m.safetensors", "sha256": hex::encode(Sha256::digest(&model))}]});
        std::fs::write(render.join("plan.json"), plan.to_string()).unwrap();
        std::fs::write(
            render.join("storage.json"),
            json!({"inputs": [], "outputs": [], "outputPrefix": prefix}).to_string(),
        )
        .unwrap();
        for file in ["workflow.json", "plan.json", "storage.json"] {
            open_up(&render.join(file), 0o644);
        }
    };

    write(&"0".repeat(64));
    let (code, message, output) = run_worker(dir.path(), "tampered", &digest, &[]);
    assert_eq!(code, 42, "{message}\n{output}");
    assert!(message.starts_with("WorkflowDigestMismatch: "), "{message}");

    // A valid plan: the model is hashed inside the sandbox; ComfyUI's command does not exist
    // in this root file system, so the render stops there with its reason.
    write(&digest);
    let (code, message, output) = run_worker(
        dir.path(),
        "valid",
        &digest,
        &["--comfyui-command", "/opt/comfyui/absent"],
    );
    assert_eq!(code, 44, "{message}\n{output}");
    assert!(
        message.starts_with("RenderFailed: cannot start ComfyUI (/opt/comfyui/absent)"),
        "{message}"
    );
    assert!(
        output.contains("model matches its pin") && output.contains("seconds_per_gb"),
        "{output}"
    );
}
