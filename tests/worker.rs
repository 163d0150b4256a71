//! The render worker (`videofoundry-operator worker`), run as the real binary against the
//! ComfyUI test double (tests/common/comfyui_double.rs), the real Ceph RGW (presigned URLs made
//! by the operator's storage code) and, for hostile cases no real store produces, a small
//! named object server that redirects, sends too much or records uploads. Each test checks the
//! exit code, the termination message and that no presigned signature reaches the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/comfyui_double.rs"]
mod comfyui_double;
mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use comfyui_double::{Behaviour, ComfyUiDouble};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const USER_A: &str = "0b7e4a1c-51f2-4c0e-9d55-3f1b8f6a2c10";
const USER_B: &str = "7d3f9e20-6a4b-4c8d-8e1f-2b5c7a9d0e31";
const SIGNATURE: &str = "0123456789abcdef-test-signature";

fn prefix() -> String {
    format!("users/{USER_A}/renders/r1/")
}

/// LoadImage(ref.png) → ImageInvert → SaveImage(render).
fn api_workflow() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "render"}}
    }))
    .unwrap()
}

/// The same graph as the editor saves it.
fn ui_workflow() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "last_node_id": 3, "last_link_id": 2, "version": 0.4,
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
             "widgets_values": ["ref.png", "image"]},
            {"id": 2, "type": "ImageInvert", "mode": 0,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}], "widgets_values": []},
            {"id": 3, "type": "SaveImage", "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
             "widgets_values": ["clips/render"]},
            {"id": 4, "type": "Note", "mode": 0, "widgets_values": ["reviewed by the studio"]}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]
    }))
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A render Secret's files, a scratch folder, a models folder and the termination log.
struct Pod {
    _root: tempfile::TempDir,
    render: PathBuf,
    work: PathBuf,
    models: PathBuf,
    termination: PathBuf,
}

impl Pod {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let pod = Self {
            render: root.path().join("render"),
            work: root.path().join("work"),
            models: root.path().join("models"),
            termination: root.path().join("termination-log"),
            _root: root,
        };
        for dir in [&pod.render, &pod.work, &pod.models.join("checkpoints")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        // The double needs the folders before the worker creates them.
        std::fs::create_dir_all(pod.work.join("input")).unwrap();
        std::fs::create_dir_all(pod.work.join("output")).unwrap();
        pod
    }

    fn write(&self, workflow: &[u8], vetted: &str, models: Value, storage: Value) {
        std::fs::write(self.render.join("workflow.json"), workflow).unwrap();
        let plan = json!({"workflowSha256": vetted, "models": models, "outputPrefix": prefix()});
        std::fs::write(self.render.join("plan.json"), plan.to_string()).unwrap();
        std::fs::write(self.render.join("storage.json"), storage.to_string()).unwrap();
    }

    async fn run(&self, extra: &[&str]) -> Outcome {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_videofoundry-operator"));
        command
            .arg("worker")
            .arg("--render-dir")
            .arg(&self.render)
            .arg("--work-dir")
            .arg(&self.work)
            .arg("--models-dir")
            .arg(&self.models)
            .arg("--termination-log")
            .arg(&self.termination)
            .args(["--ready-timeout-seconds", "5"])
            .args(extra)
            .env_remove("VF_MODELS_DIR")
            .env_remove("VF_RENDER_DIR")
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("the worker did not finish within 120 s")
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let message = std::fs::read_to_string(&self.termination).unwrap_or_default();
        assert!(
            !log.contains(SIGNATURE) && !message.contains(SIGNATURE),
            "a signature leaked:\n{log}\n{message}"
        );
        assert!(
            !log.contains("X-Amz-Signature=") && !message.contains("X-Amz-Signature="),
            "a presigned URL leaked:\n{log}\n{message}"
        );
        Outcome {
            code: output.status.code(),
            message,
            log,
        }
    }
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    message: String,
    log: String,
}

impl Outcome {
    fn expect(&self, code: i32, reason_part: &str) {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert!(
            self.message.contains(reason_part),
            "termination message {:?} lacks {reason_part:?}\nlog:\n{}",
            self.message,
            self.log
        );
        assert!(!self.message.contains('\n'), "{:?}", self.message);
    }
}

// ---------------------------------------------------------------------------------------------
// A named object server for what a real store never does: redirect elsewhere, send too much.
// It also records uploads, to show what was (not) uploaded.

#[derive(Default)]
struct ObjectServerState {
    objects: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    uploads: Mutex<Vec<(String, HeaderMap, usize)>>,
    other_origin: Mutex<String>,
}

struct ObjectServer {
    base: String,
    state: Arc<ObjectServerState>,
    _server: tokio::task::JoinHandle<()>,
}

async fn object_get(
    State(state): State<Arc<ObjectServerState>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    match name.as_str() {
        "elsewhere" => {
            let target = format!("{}o/ref.png", state.other_origin.lock().unwrap());
            (StatusCode::FOUND, [("location", target)]).into_response()
        }
        "same-origin" => (StatusCode::FOUND, [("location", "/o/ref.png")]).into_response(),
        "declared-huge" => vec![0u8; 64 * 1024].into_response(),
        "streamed-huge" => {
            let chunks =
                futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![1u8; 1024])));
            Body::from_stream(chunks).into_response()
        }
        _ => match state.objects.lock().unwrap().get(&name) {
            Some(bytes) => bytes.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
    }
}

async fn object_put(
    State(state): State<Arc<ObjectServerState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    state
        .uploads
        .lock()
        .unwrap()
        .push((name, headers, body.len()));
    StatusCode::OK
}

impl ObjectServer {
    async fn start(host: &str) -> Self {
        let state = Arc::new(ObjectServerState::default());
        let app = axum::Router::new()
            .route("/o/{name}", get(object_get).put(object_put))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{host}:{port}/"),
            state,
            _server: server,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}o/{name}?X-Amz-Signature={SIGNATURE}", self.base)
    }
}

fn input(key: &str, url: &str) -> Value {
    json!({"key": key, "url": url})
}

fn storage(inputs: Vec<Value>, outputs: Vec<Value>) -> Value {
    json!({"inputs": inputs, "outputs": outputs, "outputPrefix": prefix(),
           "expiresAt": "2030-01-01T00:00:00Z"})
}

fn ref_key() -> String {
    format!("users/{USER_A}/uploads/ref.png")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_is_not_the_vetted_one_is_refused_before_comfyui_is_contacted() {
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    let workflow = api_workflow();
    let mut vetted_bytes = workflow.clone();
    vetted_bytes.push(b' ');
    pod.write(
        &workflow,
        &sha256(&vetted_bytes),
        json!([]),
        storage(vec![], vec![]),
    );
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    outcome.expect(42, "WorkflowDigestMismatch: workflow digest");
    assert_eq!(double.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_one_byte_off_is_refused_and_a_matching_one_is_reported() {
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    let model = vec![5u8; 1024 * 1024 + 1];
    let mut off = model.clone();
    *off.last_mut().unwrap() ^= 1;
    std::fs::write(pod.models.join("checkpoints/m.safetensors"), &off).unwrap();
    let workflow = api_workflow();
    let pins = json!([{"identifier": "m.safetensors", "sha256": sha256(&model)}]);
    pod.write(
        &workflow,
        &sha256(&workflow),
        pins.clone(),
        storage(vec![], vec![]),
    );
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    outcome.expect(42, "ModelDigestMismatch: model m.safetensors");
    assert_eq!(double.requests(), 0);

    // Missing altogether: unusable (43), with the folders searched.
    std::fs::remove_file(pod.models.join("checkpoints/m.safetensors")).unwrap();
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    outcome.expect(
        43,
        "ModelMissing: pinned model m.safetensors is not in the models folders",
    );

    // The right bytes pass, with the hashing rate in the log.
    std::fs::write(pod.models.join("checkpoints/m.safetensors"), &model).unwrap();
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    assert!(outcome.log.contains("seconds_per_gb"), "{}", outcome.log);
    // ComfyUI was reached: it fails on the input this render does not have.
    outcome.expect(44, "ComfyUI failed at node 1 (LoadImage)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_unusable() {
    let server = ObjectServer::start("127.0.0.1").await;
    let other = ObjectServer::start("localhost").await;
    *server.state.other_origin.lock().unwrap() = other.base.clone();
    other
        .state
        .objects
        .lock()
        .unwrap()
        .insert("ref.png".to_owned(), b"img".to_vec());
    server
        .state
        .objects
        .lock()
        .unwrap()
        .insert("ref.png".to_owned(), b"img".to_vec());
    let workflow = api_workflow();
    let cases = [
        (
            format!("users/{USER_A}/uploads/.."),
            server.url("ref.png"),
            "does not end in a plain file name",
        ),
        (ref_key(), server.url("missing.png"), "not found (HTTP 404)"),
        (
            ref_key(),
            server.url("elsewhere"),
            "redirected to another host, which is refused",
        ),
        (
            ref_key(),
            server.url("declared-huge"),
            "larger than the limit of 4096 bytes",
        ),
        (
            ref_key(),
            server.url("streamed-huge"),
            "larger than the limit of 4096 bytes",
        ),
    ];
    for (key, url, reason) in cases {
        let pod = Pod::new();
        let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
        pod.write(
            &workflow,
            &sha256(&workflow),
            json!([]),
            storage(vec![input(&key, &url)], vec![]),
        );
        let outcome = pod
            .run(&["--comfyui-url", &double.url, "--max-input-bytes", "4096"])
            .await;
        outcome.expect(43, reason);
        assert_eq!(double.requests(), 0, "{reason}");
        // No partial file is left for ComfyUI.
        assert!(!pod.work.join("input/ref.png").exists(), "{reason}");
    }
    // A redirect within the same origin is followed.
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(
        &workflow,
        &sha256(&workflow),
        json!([]),
        storage(vec![input(&ref_key(), &server.url("same-origin"))], vec![]),
    );
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    assert_eq!(
        std::fs::read(pod.work.join("input/ref.png")).unwrap(),
        b"img"
    );
    outcome.expect(
        45,
        "produced files have no upload URL left, nothing was uploaded: render_00001_.png",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfyuis_own_errors_are_the_failure_reason() {
    let server = ObjectServer::start("127.0.0.1").await;
    server
        .state
        .objects
        .lock()
        .unwrap()
        .insert("ref.png".to_owned(), b"img".to_vec());
    let workflow = api_workflow();
    let cases = [
        (
            Behaviour::FailNode {
                node_id: "2".to_owned(),
                node_type: "ImageInvert".to_owned(),
                message: "CUDA out of memory".to_owned(),
            },
            "RenderFailed: ComfyUI failed at node 2 (ImageInvert): RuntimeError: CUDA out of memory",
        ),
        (
            Behaviour::Refuse {
                node_id: "1".to_owned(),
                class_type: "LoadImage".to_owned(),
            },
            "RenderFailed: ComfyUI refused the workflow (HTTP 400): Prompt outputs failed validation; node 1 (LoadImage): Value not in list: image: 'missing.png' not in ['ref.png']",
        ),
        (
            Behaviour::NeverReady,
            "RenderFailed: ComfyUI was not ready within 5 s",
        ),
    ];
    for (behaviour, reason) in cases {
        let pod = Pod::new();
        let double = ComfyUiDouble::start(behaviour, &pod.work).await;
        pod.write(
            &workflow,
            &sha256(&workflow),
            json!([]),
            storage(vec![input(&ref_key(), &server.url("ref.png"))], vec![]),
        );
        pod.run(&["--comfyui-url", &double.url])
            .await
            .expect(44, reason);
    }
    // A ComfyUI that exits before it is ready: its status is the reason.
    let pod = Pod::new();
    pod.write(
        &workflow,
        &sha256(&workflow),
        json!([]),
        storage(vec![], vec![]),
    );
    pod.run(&["--comfyui-command", "false", "--comfyui-port", "1"])
        .await
        .expect(44, "ComfyUI exited before it was ready (exit status: 1)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_go_to_declared_names_then_generic_slots_and_unplaced_files_upload_nothing() {
    let server = ObjectServer::start("127.0.0.1").await;
    server
        .state
        .objects
        .lock()
        .unwrap()
        .insert("ref.png".to_owned(), b"img".to_vec());
    let slot = |name: &str| {
        json!({"key": format!("{}{name}", prefix()), "url": server.url(&format!("put-{}", name.replace('/', "_"))),
               "headers": {"x-amz-server-side-encryption": "aws:kms"}})
    };
    // The UI-format graph saves clips/render_00001_.png, which is a declared name.
    let workflow = ui_workflow();
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(
        &workflow,
        &sha256(&workflow),
        json!([]),
        storage(
            vec![input(&ref_key(), &server.url("ref.png"))],
            vec![slot("output-01"), slot("clips/render_00001_.png")],
        ),
    );
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    // The double received the API format, converted with its /object_info.
    assert_eq!(
        double.prompts()[0],
        json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "clips/render"}}
        })
    );
    let inverted: Vec<u8> = b"img".iter().map(|b| !b).collect();
    let summary: Value = serde_json::from_str(&outcome.message).unwrap();
    assert_eq!(
        summary,
        json!({"outputs": [{"name": "clips/render_00001_.png", "size": 3, "sha256": sha256(&inverted)}],
               "modelsVerified": 0, "inputs": 1})
    );
    let uploads = server.state.uploads.lock().unwrap().clone();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].0, "put-clips_render_00001_.png");
    assert_eq!(uploads[0].1["x-amz-server-side-encryption"], "aws:kms");
    assert_eq!(uploads[0].2, 3);

    // The API graph saves render_00001_.png: undeclared, so it takes the first generic slot.
    server.state.uploads.lock().unwrap().clear();
    let workflow = api_workflow();
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(
        &workflow,
        &sha256(&workflow),
        json!([]),
        storage(
            vec![input(&ref_key(), &server.url("ref.png"))],
            vec![slot("video.mp4"), slot("output-01"), slot("output-02")],
        ),
    );
    let outcome = pod.run(&["--comfyui-url", &double.url]).await;
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    let summary: Value = serde_json::from_str(&outcome.message).unwrap();
    assert_eq!(summary["outputs"][0]["name"], "output-01");
    assert_eq!(summary["outputs"][0]["file"], "render_00001_.png");
    assert_eq!(server.state.uploads.lock().unwrap()[0].0, "put-output-01");

    // Only a declared name that does not match: the file has no place, nothing is uploaded.
    server.state.uploads.lock().unwrap().clear();
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(
        &workflow,
        &sha256(&workflow),
        json!([]),
        storage(
            vec![input(&ref_key(), &server.url("ref.png"))],
            vec![slot("video.mp4")],
        ),
    );
    pod.run(&["--comfyui-url", &double.url]).await.expect(
        45,
        "OutputsUnplaced: 1 of 1 produced files have no upload URL left, nothing was uploaded: render_00001_.png (outputs: video.mp4)",
    );
    assert!(server.state.uploads.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Against the real Ceph RGW, with URLs the operator's storage code presigns.

mod rgw {
    use super::*;
    use secrecy::SecretString;
    use videofoundry::storage::presign::WorkerAccessRequest;
    use videofoundry::storage::{Area, FoundryStorage, S3Connection, S3Storage, TenantScope};

    pub struct Rgw {
        pub admin: S3Storage,
        pub bucket: String,
        pub ca_file: String,
        pub scope: TenantScope,
    }

    pub async fn setup() -> Option<Rgw> {
        let endpoint = common::service_env("VF_TEST_S3_ENDPOINT")?;
        videofoundry::install_crypto_provider();
        let ca_file = std::env::var("VF_TEST_S3_CA_FILE").unwrap();
        let var = |name: &str| std::env::var(format!("VF_TEST_S3_{name}")).unwrap();
        let admin = S3Storage::new(&S3Connection {
            endpoint,
            region: "us-east-1".to_owned(),
            force_path_style: true,
            access_key_id: var("ADMIN_ACCESS_KEY_ID"),
            secret_access_key: SecretString::from(var("ADMIN_SECRET_ACCESS_KEY")),
            extra_ca_pem: Some(std::fs::read(&ca_file).unwrap()),
        })
        .unwrap();
        let bucket = format!(
            "vf-worker-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let foundry = FoundryStorage::hardened(
            &videofoundry::storage::foundry::foundry_id("tests", "worker"),
            &bucket,
            "us-east-1",
            "",
            Some(&var("TENANT_A_ARN")),
        );
        admin.ensure(&foundry).await.unwrap();
        let scope = TenantScope::new("", USER_A).unwrap();
        Some(Rgw {
            admin,
            bucket,
            ca_file,
            scope,
        })
    }

    impl Rgw {
        pub async fn put(&self, key: &str, body: &[u8]) {
            self.admin
                .client()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap();
        }

        pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
            let object = self
                .admin
                .client()
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(object.body.collect().await.unwrap().into_bytes().to_vec())
        }

        /// storage.json as the operator writes it, from `worker_access`.
        pub async fn storage_json(&self, inputs: &[String], outputs: &[String]) -> Value {
            let access = self
                .admin
                .worker_access(&WorkerAccessRequest {
                    bucket: &self.bucket,
                    scope: &self.scope,
                    render_job: "r1",
                    inputs,
                    outputs,
                    lifetime: Duration::from_secs(600),
                    encryption: None,
                })
                .await
                .unwrap();
            let transfer = |r: &videofoundry::storage::PresignedRequest| {
                let headers: serde_json::Map<String, Value> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                    .collect();
                json!({"key": r.key.as_str(), "url": r.url, "headers": headers})
            };
            assert_eq!(access.output_prefix, prefix());
            json!({
                "inputs": access.inputs.iter().map(transfer).collect::<Vec<_>>(),
                "outputs": access.outputs.iter().map(transfer).collect::<Vec<_>>(),
                "outputPrefix": access.output_prefix,
                "expiresAt": "2030-01-01T00:00:00Z"
            })
        }

        pub fn uploads_key(&self, name: &str) -> String {
            self.scope
                .key(Area::Uploads, name)
                .unwrap()
                .as_str()
                .to_owned()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_moves_its_files_only_through_rgws_presigned_urls() {
    let Some(rgw) = rgw::setup().await else {
        return;
    };
    let input_key = rgw.uploads_key("ref.png");
    let picture = b"\x89PNG not really".to_vec();
    rgw.put(&input_key, &picture).await;
    let generic: Vec<String> = (1..=16).map(|i| format!("output-{i:02}")).collect();
    let storage = rgw
        .storage_json(std::slice::from_ref(&input_key), &generic)
        .await;

    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    let workflow = api_workflow();
    pod.write(&workflow, &sha256(&workflow), json!([]), storage);
    let outcome = pod
        .run(&[
            "--comfyui-url",
            &double.url,
            "--storage-ca-file",
            &rgw.ca_file,
        ])
        .await;
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    let inverted: Vec<u8> = picture.iter().map(|b| !b).collect();
    let summary: Value = serde_json::from_str(&outcome.message).unwrap();
    assert_eq!(
        summary["outputs"],
        json!([{"name": "output-01", "file": "render_00001_.png", "size": inverted.len(), "sha256": sha256(&inverted)}])
    );
    let uploaded = rgw.get(&format!("{}output-01", prefix())).await;
    assert_eq!(uploaded.as_deref(), Some(&inverted[..]));
    assert_eq!(rgw.get(&format!("{}output-02", prefix())).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_refuses_urls_aimed_at_another_users_prefix() {
    let Some(rgw) = rgw::setup().await else {
        return;
    };
    let input_key = rgw.uploads_key("ref.png");
    rgw.put(&input_key, b"img").await;
    let outputs = vec!["output-01".to_owned()];
    let genuine = rgw
        .storage_json(std::slice::from_ref(&input_key), &outputs)
        .await;
    let workflow = api_workflow();

    // The output URL re-aimed at user B's prefix (as a tampered Secret would): RGW answers 403.
    let mut storage = genuine.clone();
    let url = storage["outputs"][0]["url"]
        .as_str()
        .unwrap()
        .replace(USER_A, USER_B);
    storage["outputs"][0]["url"] = json!(url);
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(&workflow, &sha256(&workflow), json!([]), storage);
    pod.run(&[
        "--comfyui-url",
        &double.url,
        "--storage-ca-file",
        &rgw.ca_file,
    ])
    .await
    .expect(
        1,
        "answered HTTP 403 (the URL expired or does not allow this upload)",
    );
    let foreign = format!("users/{USER_B}/renders/r1/output-01");
    assert_eq!(rgw.get(&foreign).await, None);

    // The input URL re-aimed at user B's uploads: refused, an unusable input.
    rgw.put(&format!("users/{USER_B}/uploads/ref.png"), b"not yours")
        .await;
    let mut storage = genuine;
    let url = storage["inputs"][0]["url"]
        .as_str()
        .unwrap()
        .replace(USER_A, USER_B);
    storage["inputs"][0]["url"] = json!(url);
    let pod = Pod::new();
    let double = ComfyUiDouble::start(Behaviour::Run, &pod.work).await;
    pod.write(&workflow, &sha256(&workflow), json!([]), storage);
    pod.run(&[
        "--comfyui-url",
        &double.url,
        "--storage-ca-file",
        &rgw.ca_file,
    ])
    .await
    .expect(
        43,
        "access refused (expired or not this render's URL) (HTTP 403)",
    );
    assert!(!pod.work.join("input/ref.png").exists());
    assert_eq!(double.requests(), 0);
}
