//! ComfyUI test double: a small HTTP server on 127.0.0.1 that speaks the four endpoints the
//! worker uses (`/system_stats`, `/object_info`, `/prompt`, `/history/<id>`) with ComfyUI's
//! JSON shapes, and "executes" three node types against real folders: `LoadImage` reads a file
//! from the input folder, `ImageInvert` flips its bytes, `SaveImage` writes
//! `<filename_prefix>_00001_.png` into the output folder (a prefix with `/` makes a subfolder).
//! It can refuse a prompt with node errors, fail a node at execution, or never become ready.
//! What it does not cover is listed in tests/README.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

/// How the double behaves.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Runs prompts.
    Run,
    /// Accepts the prompt, then fails this node at execution.
    FailNode {
        node_id: String,
        node_type: String,
        message: String,
    },
    /// Refuses every prompt with a validation error on this node.
    Refuse { node_id: String, class_type: String },
    /// `/system_stats` always answers 503.
    NeverReady,
}

struct Shared {
    behaviour: Behaviour,
    input_dir: PathBuf,
    output_dir: PathBuf,
    prompts: Mutex<Vec<Value>>,
    history: Mutex<Map<String, Value>>,
    requests: AtomicUsize,
}

/// A running double.
pub struct ComfyUiDouble {
    /// Base URL, e.g. `http://127.0.0.1:41234/`.
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl ComfyUiDouble {
    /// Starts the double on a free port, working in `work/input` and `work/output`.
    pub async fn start(behaviour: Behaviour, work: &std::path::Path) -> Self {
        let shared = Arc::new(Shared {
            behaviour,
            input_dir: work.join("input"),
            output_dir: work.join("output"),
            prompts: Mutex::new(Vec::new()),
            history: Mutex::new(Map::new()),
            requests: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/system_stats", get(system_stats))
            .route("/object_info", get(object_info))
            .route("/prompt", post(prompt))
            .route("/history/{id}", get(history))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    /// The API-format prompts it received.
    pub fn prompts(&self) -> Vec<Value> {
        self.shared.prompts.lock().unwrap().clone()
    }

    /// How many requests it answered.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ComfyUiDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn system_stats(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if matches!(shared.behaviour, Behaviour::NeverReady) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    (
        StatusCode::OK,
        Json(json!({"system": {"os": "posix", "comfyui_version": "double"}, "devices": []})),
    )
}

async fn object_info(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    // Shapes as ComfyUI 0.3 sends them; `input_order` gives the widget order.
    Json(json!({
        "LoadImage": {
            "input": {"required": {"image": [["ref.png"], {"image_upload": true}]}},
            "input_order": {"required": ["image"]},
            "output": ["IMAGE", "MASK"], "name": "LoadImage"
        },
        "ImageInvert": {
            "input": {"required": {"image": ["IMAGE"]}},
            "input_order": {"required": ["image"]},
            "output": ["IMAGE"], "name": "ImageInvert"
        },
        "SaveImage": {
            "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                      "hidden": {"prompt": "PROMPT"}},
            "input_order": {"required": ["images", "filename_prefix"]},
            "output": [], "output_node": true, "name": "SaveImage"
        }
    }))
}

async fn prompt(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let graph = body["prompt"].clone();
    shared.prompts.lock().unwrap().push(graph.clone());
    if let Behaviour::Refuse {
        node_id,
        class_type,
    } = &shared.behaviour
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": {"type": "prompt_outputs_failed_validation",
                          "message": "Prompt outputs failed validation", "details": ""},
                "node_errors": {node_id: {"class_type": class_type, "dependent_outputs": [],
                    "errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                "details": "image: 'missing.png' not in ['ref.png']"}]}}
            })),
        );
    }
    let prompt_id = format!("prompt-{}", shared.prompts.lock().unwrap().len());
    let entry = match &shared.behaviour {
        Behaviour::FailNode {
            node_id,
            node_type,
            message,
        } => failed(node_id, node_type, message),
        _ => execute(&shared, &graph),
    };
    shared
        .history
        .lock()
        .unwrap()
        .insert(prompt_id.clone(), entry);
    (
        StatusCode::OK,
        Json(json!({"prompt_id": prompt_id, "number": 0, "node_errors": {}})),
    )
}

async fn history(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Json<Value> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let history = shared.history.lock().unwrap();
    Json(match history.get(&id) {
        Some(entry) => json!({id: entry}),
        None => json!({}),
    })
}

fn failed(node_id: &str, node_type: &str, message: &str) -> Value {
    json!({"outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [
        ["execution_start", {"prompt_id": "x"}],
        ["execution_error", {"node_id": node_id, "node_type": node_type,
            "exception_type": "RuntimeError", "exception_message": message, "traceback": []}]]}})
}

/// Runs the graph: each SaveImage writes what its chain of LoadImage/ImageInvert yields.
fn execute(shared: &Shared, graph: &Value) -> Value {
    let Some(nodes) = graph.as_object() else {
        return failed("?", "?", "prompt is not an object");
    };
    let mut outputs = Map::new();
    for (id, node) in nodes {
        if node["class_type"] != "SaveImage" {
            continue;
        }
        let image = match evaluate(shared, nodes, &node["inputs"]["images"], 0) {
            Ok(image) => image,
            Err((node_id, node_type, message)) => return failed(&node_id, &node_type, &message),
        };
        let prefix = node["inputs"]["filename_prefix"]
            .as_str()
            .unwrap_or("ComfyUI");
        let (subfolder, stem) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let filename = format!("{stem}_00001_.png");
        let dir = shared.output_dir.join(subfolder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&filename), image).unwrap();
        outputs.insert(
            id.clone(),
            json!({"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}),
        );
    }
    json!({"outputs": outputs, "status": {"status_str": "success", "completed": true, "messages": [
        ["execution_start", {}], ["execution_success", {}]]}})
}

fn evaluate(
    shared: &Shared,
    nodes: &Map<String, Value>,
    link: &Value,
    depth: usize,
) -> Result<Vec<u8>, (String, String, String)> {
    let source = link[0].as_str().unwrap_or_default().to_owned();
    let node = &nodes[&source];
    let class_type = node["class_type"].as_str().unwrap_or_default().to_owned();
    let fail = |message: String| Err((source.clone(), class_type.clone(), message));
    if depth > nodes.len() {
        return fail("cycle".to_owned());
    }
    match class_type.as_str() {
        "LoadImage" => {
            let name = node["inputs"]["image"].as_str().unwrap_or_default();
            std::fs::read(shared.input_dir.join(name))
                .or_else(|e| fail(format!("[Errno 2] {name}: {e}")))
        }
        "ImageInvert" => Ok(
            evaluate(shared, nodes, &node["inputs"]["image"], depth + 1)?
                .into_iter()
                .map(|b| !b)
                .collect(),
        ),
        other => fail(format!("the double cannot run {other}")),
    }
}
