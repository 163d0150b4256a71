//! `videofoundry-operator plan`, the real binary: on `examples/` it shows every object, SQL
//! statement, policy and verdict offline, with no cluster; on hostile input it fails with a
//! clear message and the documented exit code, never a panic; secret values never appear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_videofoundry-operator");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(name)).unwrap()
}

fn plan(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .arg("plan")
        .args(args)
        .current_dir(root())
        // No cluster, no backend: nothing in the environment points at one.
        .env_remove("KUBECONFIG")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A child that stops reading early closes the pipe; that is its right.
        let _ = pipe.write_all(bytes);
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_no_panic(output: &Output) {
    let (_, stderr) = text(output);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn examples_plan_every_layer_and_pass() {
    let output = plan(&["examples/"], None);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for expected in [
        "PLAN OK: 9 files, 2 foundries, 1 ApprovedNodeLists, 2 renders (2 approved, 0 rejected, 0 unresolved), 0 invalid, 13 skipped",
        // Kubernetes objects and checks.
        "ServiceAccount render/studio-worker",
        "NetworkPolicy render/studio-worker-default-deny",
        "NetworkPolicy render/studio-worker-egress",
        "check: RuntimeClass gvisor exists",
        // Database roles, grants and RLS.
        "NOBYPASSRLS",
        "FORCE ROW LEVEL SECURITY",
        "GRANT INSERT, SELECT ON TABLE \"vf_render_studio_955d3aa10f\".\"audit_logs\" TO \"vf_render_studio_955d3aa10f_app\"",
        "CREATE POLICY \"vf_tenant_all\"",
        // Vault policies and auth role.
        "policy videofoundry-render.studio-backend:",
        "policy videofoundry-render.studio-operator:",
        "auth/kubernetes/role/videofoundry-render.studio-backend",
        // Bucket policy.
        "VideoFoundryDenyInsecureTransport",
        "arn:aws:s3:::videofoundry-prod/studio/*",
        // The developer foundry keeps its secrets in a Kubernetes Secret.
        "secrets: Kubernetes Secret render-dev/dev-secrets (developer mode)",
        // Renders: verdict and objects, the ConfigMap one resolved from the input.
        "RenderJob render/trailer-draft-1 (examples/renderjob-inline.yaml#1) on foundry studio: APPROVED",
        "RenderJob render/trailer-final (examples/renderjob-configmap.yaml#2) on foundry studio: APPROVED",
        "creates Secret render/trailer-draft-1-render-inputs",
        "creates Job render/trailer-draft-1-render",
        // The worker image folder is not guessed at.
        "examples/worker/Dockerfile: not a manifest",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("PASSWORD '") || stdout.contains("PASSWORD '<redacted"));
}

#[test]
fn json_output_carries_the_built_objects_with_the_secret_redacted() {
    let output = plan(&["examples", "--output", "json"], None);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["summary"]["ok"], true);
    assert_eq!(json["renders"].as_array().unwrap().len(), 2);
    let render = &json["renders"][0];
    assert_eq!(render["outcome"], "approved");
    assert_eq!(render["vetting"]["verdict"], "Approved");
    let objects = render["kubernetesObjects"].as_array().unwrap();
    let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
    let data = secret["data"].as_object().unwrap();
    assert!(!data.is_empty());
    for (key, value) in data {
        assert!(
            value.as_str().unwrap().starts_with("<redacted: "),
            "{key} is not redacted: {value}"
        );
    }
    let job = objects.iter().find(|o| o["kind"] == "Job").unwrap();
    let pod = &job["spec"]["template"]["spec"];
    // The first render asks for a GPU: the foundry's GPU sandbox class.
    assert_eq!(render["name"], "trailer-final");
    assert_eq!(pod["runtimeClassName"], "gvisor-nvproxy");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let foundry = json["foundries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "studio")
        .unwrap();
    assert_eq!(foundry["secrets"]["store"], "vault");
    assert!(
        foundry["database"]["statements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("ENABLE ROW LEVEL SECURITY"))
    );
    assert_eq!(
        foundry["storage"]["bucketPolicy"]["Version"], "2012-10-17",
        "{foundry}"
    );
    // YAML output is the same plan.
    let output = plan(&["examples", "-o", "yaml"], None);
    let yaml: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    assert_eq!(yaml["summary"], json["summary"]);
}

/// The production foundry, its list, and `render` as one multi-document stream.
fn stream_with(render: &str) -> String {
    [
        example("videofoundry-production.yaml"),
        example("approvednodelist.yaml"),
        render.to_owned(),
    ]
    .join("\n---\n")
}

#[test]
fn a_rejected_render_from_stdin_fails_the_check_with_its_violations() {
    let render = example("renderjob-inline.yaml")
        .replace(
            "\"class_type\": \"VAEDecode\"",
            "\"class_type\": \"EvilLoader\"",
        )
        .replace(
            "\"sampler_name\": \"euler\"",
            "\"sampler_name\": \"https://evil.example/x\"",
        );
    let output = plan(&["-"], Some(stream_with(&render).as_bytes()));
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("PLAN FAILS"), "{stdout}");
    assert!(stdout.contains("on foundry studio: REJECTED"), "{stdout}");
    assert!(
        stdout.contains("node 8 (EvilLoader) [node-not-approved]"),
        "{stdout}"
    );
    assert!(stdout.contains("[url-input]"), "{stdout}");
    assert!(
        !stdout.contains("creates Job render/trailer-draft-1-render"),
        "{stdout}"
    );
}

#[test]
fn a_render_whose_configmap_is_missing_is_not_resolvable_offline() {
    let render = example("renderjob-configmap.yaml");
    let only_render = render.split("\n---\n").nth(1).unwrap();
    let output = plan(&["-"], Some(stream_with(only_render).as_bytes()));
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("UNRESOLVED"), "{stdout}");
    assert!(
        stdout.contains("not resolvable offline: ConfigMap render/trailer-wf is not in the input"),
        "{stdout}"
    );
}

#[test]
fn secret_values_in_the_input_never_reach_the_output() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: pg-admin, namespace: render}\nstringData:\n  url: postgres://admin:SUPERSECRET-pg-password@db:5432/vf?sslmode=require\n";
    let render = example("renderjob-inline.yaml").replace(
        "a lighthouse at dawn, cinematic",
        "PRIVATE-PROMPT-of-the-tenant",
    );
    let input = format!("{}\n---\n{secret}", stream_with(&render));
    for format in ["text", "json", "yaml"] {
        let output = plan(&["-", "--output", format], Some(input.as_bytes()));
        let (stdout, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{format}: {stdout}\n{stderr}"
        );
        for leaked in ["SUPERSECRET-pg-password", "PRIVATE-PROMPT-of-the-tenant"] {
            assert!(
                !stdout.contains(leaked) && !stderr.contains(leaked),
                "{format} output shows {leaked}"
            );
        }
        assert!(
            stdout.contains("Secret (v1) is not a kind the operator reads"),
            "{format}: {stdout}"
        );
    }
}

#[test]
fn malformed_yaml_is_a_usage_error_naming_the_document() {
    let output = plan(&["-"], Some(b"apiVersion: v1\nkind: [unclosed\n"));
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: -: document 1: not valid YAML"),
        "{stderr}"
    );
    assert_no_panic(&output);
}

#[test]
fn a_yaml_bomb_is_refused_without_expanding_it() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut previous = 'a';
    for name in 'b'..='j' {
        bomb.push_str(&format!(
            "{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"
        ));
        previous = name;
    }
    let output = plan(&["-"], Some(bomb.as_bytes()));
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not valid YAML"), "{stderr}");
    assert_no_panic(&output);
}

#[test]
fn huge_binary_and_missing_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    let output = plan(&[huge.to_str().unwrap()], None);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is larger than 16777216 bytes"), "{stderr}");

    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let output = plan(&[binary.to_str().unwrap()], None);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not UTF-8 text"), "{stderr}");

    let output = plan(&["/nonexistent/manifests"], None);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/manifests"),
        "{stderr}"
    );

    let output = plan(&[], None);
    assert_eq!(output.status.code(), Some(2));
    assert_no_panic(&output);
}

#[test]
fn unknown_kinds_are_skipped_and_invalid_objects_fail() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\njust a string\n---\n\
apiVersion: videofoundry.dev/v1alpha1\nkind: RenderJob\nmetadata: {name: broken, namespace: render}\nspec: {foundryRef: 7}\n";
    let output = plan(&["-"], Some(input.as_bytes()));
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("-#1: Deployment (apps/v1) is not a kind the operator reads"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-#2: not a Kubernetes object (no kind)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("INVALID RenderJob broken (-#3):"),
        "{stdout}"
    );
    assert_no_panic(&output);
}

#[test]
fn the_readme_starts_with_plan_on_the_examples() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = readme
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .nth(1)
        .unwrap();
    assert!(first.contains("cargo run -- plan examples/"), "{first}");
}
