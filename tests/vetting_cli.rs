#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `vet` and `import-allowlist` commands: exit codes, outputs, and lossless imports.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use videofoundry::crd::ApprovedNodeList;

const BIN: &str = env!("CARGO_BIN_EXE_videofoundry-operator");

const APPROVED_NODES_JSON: &str = r#"{
  "approved_git_repos": ["github.com/your-org/custom-nodes", "gitlab.internal/ai-team/comfyui-nodes"],
  "approved_models": ["huggingface.co/your-org/*", "models.internal/*"],
  "blocked_nodes": ["known-vulnerable-node", "unsafe-file-access"],
  "last_updated": "2025-01-13T00:00:00Z",
  "reviewed_by": "security-team"
}"#;

const WORKFLOW_ALLOWLIST_YAML: &str = r#"# header comment
---
execution_mode: production
nodes:
  - type: "LoadImage"
    version: "1.0"
    approved_by: "security-team"
    approved_at: "2025-11-01T00:00:00Z"
    notes: "Standard image loading node"
  - type: "CustomVideoGenerator"
    repository: "https://github.com/company/comfyui-custom-nodes"
    branch: main
    approved_by: "admin@company.com"
    approved_at: "2025-11-10T00:00:00Z"
models:
  - identifier: "stable-diffusion-v1-5"
    source: "internal-repository"
    checksum: "sha256:31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"
    approved_by: "security-team"
    approved_at: "2025-11-01T00:00:00Z"
    notes: "SD 1.5"
repositories:
  # only comments here
---
execution_mode: self-hosted-production
nodes:
  - type: "SaveImage"
repositories:
  - url: "https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite"
    allowed_branches: ["main"]
---
execution_mode: developer
notes: |
  Developer mode.
"#;

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn policy_file(dir: &Path) -> PathBuf {
    write(
        dir,
        "policy.yaml",
        r#"apiVersion: videofoundry.dev/v1alpha1
kind: ApprovedNodeList
metadata: {name: studio}
spec:
  models:
    - identifier: sd_xl_base_1.0.safetensors
"#,
    )
}

#[test]
fn vet_exits_0_when_approved_1_when_rejected_2_when_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path());
    let policy = policy.to_str().unwrap();
    let good = write(
        dir.path(),
        "good.json",
        r#"{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}"#,
    );
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"1": {"class_type": "EvilNode", "inputs": {"url": "https://evil.example/x"}}}"#,
    );

    let out = run(&["vet", good.to_str().unwrap(), "--approved", policy]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("APPROVED"));

    let out = run(&["vet", bad.to_str().unwrap(), "--approved", policy]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("REJECTED"), "{text}");
    assert!(
        text.contains("node 1 (EvilNode) [node-not-approved]"),
        "{text}"
    );
    assert!(text.contains("[url-input]"), "{text}");
    assert!(text.contains("spec.nodes"), "hint missing: {text}");

    let out = run(&[
        "vet",
        bad.to_str().unwrap(),
        "--approved",
        policy,
        "--mode",
        "warn",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("APPROVED WITH WARNINGS"));

    let out = run(&[
        "vet",
        bad.to_str().unwrap(),
        "--approved",
        policy,
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "Rejected");
    assert_eq!(report["violations"][0]["nodeId"], "1");
    assert_eq!(report["workflowSha256"].as_str().unwrap().len(), 64);

    // Unreadable workflow, missing policy, broken policy, usage errors: exit 2.
    let missing = dir.path().join("missing.json");
    assert_eq!(
        run(&["vet", missing.to_str().unwrap(), "--approved", policy])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "vet",
            good.to_str().unwrap(),
            "--approved",
            missing.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    let broken = write(dir.path(), "broken.yaml", "kind: Something\n");
    assert_eq!(
        run(&[
            "vet",
            good.to_str().unwrap(),
            "--approved",
            broken.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    let invalid = write(
        dir.path(),
        "invalid.yaml",
        "kind: ApprovedNodeList\napiVersion: videofoundry.dev/v1alpha1\nmetadata: {name: x}\nspec: {nodes: [{classType: Custom}]}\n",
    );
    assert_eq!(
        run(&[
            "vet",
            good.to_str().unwrap(),
            "--approved",
            invalid.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(run(&["vet", good.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(
        run(&[
            "vet",
            good.to_str().unwrap(),
            "--approved",
            policy,
            "--mode",
            "lenient"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn vet_never_crashes_on_garbage_and_rejects_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path());
    for (name, bytes) in [
        ("empty.json", Vec::new()),
        ("binary.json", vec![0xff, 0x00, 0x12, 0x80]),
        ("deep.json", "[".repeat(1_000_000).into_bytes()),
        ("big.json", vec![b' '; 2 * 1024 * 1024]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(&[
            "vet",
            path.to_str().unwrap(),
            "--approved",
            policy.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
    }
}

#[test]
fn vet_accepts_the_legacy_formats_as_policies() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(dir.path(), "approved_nodes.json", APPROVED_NODES_JSON);
    let yaml = write(
        dir.path(),
        "workflow_allowlist.yaml",
        WORKFLOW_ALLOWLIST_YAML,
    );
    let workflow = write(
        dir.path(),
        "wf.json",
        r#"{"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}}, "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable-diffusion-v1-5"}}}"#,
    );
    let out = run(&[
        "vet",
        workflow.to_str().unwrap(),
        "--approved",
        json.to_str().unwrap(),
        yaml.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn import(file: &Path, extra: &[&str]) -> (Option<i32>, ApprovedNodeList, String) {
    let mut args = vec![
        "import-allowlist",
        file.to_str().unwrap(),
        "--name",
        "imported",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let list = serde_yaml::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (out.status.code(), list, stderr)
}

#[test]
fn import_approved_nodes_json_carries_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "approved_nodes.json", APPROVED_NODES_JSON);
    let (code, list, stderr) = import(&file, &["--namespace", "studio"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(list.metadata.name.as_deref(), Some("imported"));
    assert_eq!(list.metadata.namespace.as_deref(), Some("studio"));
    let spec = &list.spec;
    assert_eq!(spec.reviewed_by.as_deref(), Some("security-team"));
    assert_eq!(spec.last_updated.as_deref(), Some("2025-01-13T00:00:00Z"));
    let repos: Vec<&str> = spec.repositories.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        repos,
        [
            "github.com/your-org/custom-nodes",
            "gitlab.internal/ai-team/comfyui-nodes"
        ]
    );
    let patterns: Vec<&str> = spec
        .models
        .iter()
        .map(|m| m.pattern.as_deref().unwrap())
        .collect();
    assert_eq!(patterns, ["huggingface.co/your-org/*", "models.internal/*"]);
    assert_eq!(
        spec.blocked_nodes,
        ["known-vulnerable-node", "unsafe-file-access"]
    );
}

#[test]
fn import_workflow_allowlist_picks_the_mode_and_carries_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "workflow_allowlist.yaml",
        WORKFLOW_ALLOWLIST_YAML,
    );
    let (code, list, stderr) = import(&file, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let spec = &list.spec;
    assert_eq!(spec.nodes.len(), 2);
    let load = &spec.nodes[0];
    assert_eq!(load.class_type, "LoadImage");
    assert_eq!(load.version.as_deref(), Some("1.0"));
    assert_eq!(load.approved_by.as_deref(), Some("security-team"));
    assert_eq!(load.approved_at.as_deref(), Some("2025-11-01T00:00:00Z"));
    assert_eq!(load.notes.as_deref(), Some("Standard image loading node"));
    let custom = &spec.nodes[1];
    assert_eq!(
        custom.repository.as_deref(),
        Some("https://github.com/company/comfyui-custom-nodes")
    );
    assert_eq!(custom.branch.as_deref(), Some("main"));
    let model = &spec.models[0];
    assert_eq!(model.identifier.as_deref(), Some("stable-diffusion-v1-5"));
    assert_eq!(model.source.as_deref(), Some("internal-repository"));
    assert_eq!(
        model.sha256.as_deref(),
        Some("31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b")
    );
    assert_eq!(model.notes.as_deref(), Some("SD 1.5"));
    assert!(
        spec.repositories.is_empty(),
        "a comment-only repositories key is null"
    );
    assert_eq!(
        list.metadata.annotations.unwrap()["videofoundry.dev/imported-from"],
        "workflow_allowlist.yaml#production"
    );

    let (code, list, _) = import(&file, &["--mode", "self-hosted-production"]);
    assert_eq!(code, Some(0));
    assert_eq!(list.spec.repositories[0].allowed_refs, ["main"]);
    let (code, list, _) = import(&file, &["--mode", "developer"]);
    assert_eq!(code, Some(0));
    assert_eq!(list.spec.notes.as_deref(), Some("Developer mode.\n"));
}

#[test]
fn import_refuses_what_it_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "unknown_field.json",
            r#"{"approved_git_repos": [], "approved_models": [], "owner": "x"}"#,
        ),
        (
            "bad_checksum.yaml",
            "execution_mode: production\nmodels:\n  - identifier: m\n    checksum: md5:abc\n",
        ),
        (
            "unknown_node_field.yaml",
            "execution_mode: production\nnodes:\n  - type: X\n    hash: abc\n",
        ),
        ("no_such_mode.yaml", "execution_mode: developer\n"),
        (
            "duplicate_key.json",
            r#"{"approved_git_repos": [], "approved_git_repos": ["github.com/evil/x"]}"#,
        ),
    ] {
        let file = write(dir.path(), name, text);
        let out = run(&["import-allowlist", file.to_str().unwrap(), "--name", "x"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    let missing = dir.path().join("missing.json");
    assert_eq!(
        run(&["import-allowlist", missing.to_str().unwrap(), "--name", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn the_shipped_legacy_files_import() {
    let Some(corpus) = common::corpus_dir() else {
        eprintln!("skipping: ../shared/corpus is not present");
        return;
    };
    let (code, list, _) = import(&corpus.join("legacy/approved_nodes.json"), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(list.spec.repositories.len(), 2);
    for mode in ["production", "self-hosted-production", "developer"] {
        let (code, _, stderr) = import(
            &corpus.join("legacy/workflow_allowlist.yaml"),
            &["--mode", mode],
        );
        assert_eq!(code, Some(0), "{mode}: {stderr}");
    }
    // The production document's placeholder checksums are carried and reported, not dropped.
    let (_, list, stderr) = import(&corpus.join("legacy/workflow_allowlist.yaml"), &[]);
    assert_eq!(
        list.spec.models[0].sha256.as_deref(),
        Some("abc123def456...")
    );
    assert!(
        stderr.contains("sha256 must be 64 lowercase hex digits"),
        "{stderr}"
    );
}
