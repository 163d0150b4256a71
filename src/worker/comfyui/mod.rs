//! Step 3: ComfyUI, over its HTTP API on 127.0.0.1: readiness (`/system_stats`), node
//! definitions (`/object_info`, for UI-format conversion), submission (`/prompt`) and the outcome
//! (`/history/<id>`). ComfyUI's own refusals and execution errors (node id, type, message) become
//! the failure reason. Every response body is bounded.

pub mod convert;
pub mod process;

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{WorkerError, describe_http};
use super::transfer::read_bounded;

/// Largest `/object_info` accepted (a server with many custom nodes sends several MB).
const MAX_OBJECT_INFO_BYTES: u64 = 64 * 1024 * 1024;
/// Largest other response accepted.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Longest detail quoted from ComfyUI in a reason (the termination message is 4 KiB).
const MAX_DETAIL_CHARS: usize = 300;

/// A ComfyUI server.
#[derive(Clone, Debug)]
pub struct ComfyUi {
    http: reqwest::Client,
    base: url::Url,
}

/// One file ComfyUI reports as an output of the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducedFile {
    /// Node that produced it.
    pub node_id: String,
    /// File name.
    pub filename: String,
    /// Sub-folder of the output folder ("" for none).
    pub subfolder: String,
}

impl ProducedFile {
    /// Path relative to ComfyUI's output folder, with `/` separators.
    pub fn relative_path(&self) -> String {
        if self.subfolder.is_empty() {
            self.filename.clone()
        } else {
            format!("{}/{}", self.subfolder.trim_end_matches('/'), self.filename)
        }
    }
}

/// How a followed prompt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// It succeeded with these files, in ComfyUI's order.
    Success(Vec<ProducedFile>),
}

impl ComfyUi {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8188/`).
    pub fn new(base: url::Url) -> Result<Self, WorkerError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| WorkerError::Transient(format!("HTTP client: {}", describe_http(e))))?;
        Ok(Self { http, base })
    }

    fn url(&self, path: &str) -> Result<url::Url, WorkerError> {
        self.base
            .join(path)
            .map_err(|e| WorkerError::Render(format!("ComfyUI URL {path}: {e}")))
    }

    async fn get_bytes(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let url = self.url(path).map_err(|e| e.to_string())?;
        let response = self.http.get(url).send().await.map_err(describe_http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {path} answered HTTP {}", status.as_u16()));
        }
        read_bounded(response, limit)
            .await
            .map_err(|e| format!("GET {path}: {e}"))
    }

    async fn get_json(&self, path: &str, limit: u64) -> Result<Value, String> {
        let body = self.get_bytes(path, limit).await?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: not JSON ({e})"))
    }

    /// Whether the server answers `/system_stats` with JSON.
    pub async fn is_ready(&self) -> bool {
        self.get_json("system_stats", MAX_RESPONSE_BYTES)
            .await
            .is_ok_and(|stats| stats.is_object())
    }

    /// Polls `/system_stats` until it answers, `timeout` passes, or `exited` reports that the
    /// server's process ended (then its status is the reason).
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        mut exited: impl FnMut() -> Option<String>,
    ) -> Result<(), WorkerError> {
        let started = Instant::now();
        loop {
            if self.is_ready().await {
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "ComfyUI is ready"
                );
                return Ok(());
            }
            if let Some(status) = exited() {
                return Err(WorkerError::Render(format!(
                    "ComfyUI exited before it was ready ({status})"
                )));
            }
            if started.elapsed() >= timeout {
                return Err(WorkerError::Render(format!(
                    "ComfyUI was not ready within {} s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The server's node definitions.
    pub async fn object_info(&self) -> Result<convert::ObjectInfo, WorkerError> {
        let body = self
            .get_bytes("object_info", MAX_OBJECT_INFO_BYTES)
            .await
            .map_err(|e| WorkerError::Render(format!("ComfyUI /object_info: {e}")))?;
        convert::ObjectInfo::parse(&body)
    }

    /// Submits an API-format prompt; returns its id. A refusal names each failing node.
    pub async fn submit(&self, prompt: &Value, client_id: &str) -> Result<String, WorkerError> {
        let url = self.url("prompt")?;
        let body = json!({"prompt": prompt, "client_id": client_id});
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| WorkerError::Render(format!("ComfyUI /prompt: {}", describe_http(e))))?;
        let status = response.status();
        let body = read_bounded(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| WorkerError::Render(format!("ComfyUI /prompt: {e}")))?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(WorkerError::Render(refusal(status.as_u16(), &answer)));
        }
        answer
            .get("prompt_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                WorkerError::Render("ComfyUI /prompt answered without a prompt_id".to_owned())
            })
    }

    /// Polls `/history/<id>` until the prompt finished, logging progress every `log_every`;
    /// `exited` reports a dead server.
    pub async fn follow(
        &self,
        prompt_id: &str,
        log_every: Duration,
        mut exited: impl FnMut() -> Option<String>,
    ) -> Result<Finished, WorkerError> {
        let started = Instant::now();
        let mut last_log = Instant::now();
        let path = format!("history/{prompt_id}");
        loop {
            match self.get_bytes(&path, MAX_RESPONSE_BYTES).await {
                Ok(body) => {
                    if let Some(finished) = parse_history(&body, prompt_id)? {
                        tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            "prompt finished"
                        );
                        return Ok(finished);
                    }
                }
                Err(error) => tracing::warn!(%error, "ComfyUI /history did not answer"),
            }
            if let Some(status) = exited() {
                return Err(WorkerError::Render(format!(
                    "ComfyUI exited while running the workflow ({status})"
                )));
            }
            if last_log.elapsed() >= log_every {
                last_log = Instant::now();
                tracing::info!(
                    prompt_id,
                    seconds = started.elapsed().as_secs(),
                    "prompt running (ComfyUI's own progress is in this log)"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// ComfyUI's answer to a refused `/prompt`, as one line.
fn refusal(status: u16, answer: &Value) -> String {
    let error = &answer["error"];
    let mut text = format!(
        "ComfyUI refused the workflow (HTTP {status}): {}",
        clip(
            error["message"]
                .as_str()
                .or_else(|| error.as_str())
                .unwrap_or("no reason given")
        )
    );
    if let Some(details) = error["details"].as_str().filter(|d| !d.is_empty()) {
        text.push_str(&format!(" ({})", clip(details)));
    }
    if let Some(nodes) = answer["node_errors"].as_object() {
        for (node_id, node) in nodes {
            let class_type = node["class_type"].as_str().unwrap_or("?");
            for problem in node["errors"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "; node {node_id} ({class_type}): {}",
                    clip(problem["message"].as_str().unwrap_or("error"))
                ));
                if let Some(details) = problem["details"].as_str().filter(|d| !d.is_empty()) {
                    text.push_str(&format!(": {}", clip(details)));
                }
            }
        }
    }
    text
}

fn clip(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((end, _)) => format!("{}…", &one_line[..end]),
        None => one_line,
    }
}

#[derive(Debug, Deserialize)]
struct HistoryEntry {
    #[serde(default)]
    outputs: Ordered<Ordered<Value>>,
    #[serde(default)]
    status: Option<HistoryStatus>,
}

#[derive(Debug, Deserialize)]
struct HistoryStatus {
    #[serde(default)]
    status_str: Option<String>,
    #[serde(default)]
    completed: bool,
    #[serde(default)]
    messages: Vec<(String, Value)>,
}

impl HistoryEntry {
    /// `None` while running; the files on success; the execution error as the reason.
    fn finished(&self, prompt_id: &str) -> Result<Option<Finished>, WorkerError> {
        let Some(status) = &self.status else {
            return Ok(None);
        };
        let failed = status.status_str.as_deref() == Some("error");
        if !failed && !status.completed {
            return Ok(None);
        }
        if failed || status.status_str.as_deref() != Some("success") {
            return Err(WorkerError::Render(execution_error(prompt_id, status)));
        }
        Ok(Some(Finished::Success(self.produced())))
    }

    fn produced(&self) -> Vec<ProducedFile> {
        let mut files = Vec::new();
        for (node_id, outputs) in &self.outputs.0 {
            for (_kind, items) in &outputs.0 {
                for item in items.as_array().into_iter().flatten() {
                    let (Some(filename), Some("output")) =
                        (item["filename"].as_str(), item["type"].as_str())
                    else {
                        // Previews (`temp`) and text outputs are not render outputs.
                        continue;
                    };
                    files.push(ProducedFile {
                        node_id: node_id.clone(),
                        filename: filename.to_owned(),
                        subfolder: item["subfolder"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        files
    }
}

fn execution_error(prompt_id: &str, status: &HistoryStatus) -> String {
    for (event, data) in &status.messages {
        match event.as_str() {
            "execution_error" => {
                return format!(
                    "ComfyUI failed at node {} ({}): {}: {}",
                    data["node_id"].as_str().unwrap_or("?"),
                    data["node_type"].as_str().unwrap_or("?"),
                    data["exception_type"].as_str().unwrap_or("error"),
                    clip(data["exception_message"].as_str().unwrap_or(""))
                );
            }
            "execution_interrupted" => {
                return format!(
                    "ComfyUI interrupted the prompt at node {} ({})",
                    data["node_id"].as_str().unwrap_or("?"),
                    data["node_type"].as_str().unwrap_or("?"),
                );
            }
            _ => {}
        }
    }
    format!(
        "ComfyUI ended prompt {prompt_id} with status {}",
        status.status_str.as_deref().unwrap_or("unknown")
    )
}

/// A JSON object's members in the order the server wrote them (`serde_json::Map` sorts them).
#[derive(Debug, Default)]
pub(crate) struct Ordered<T>(pub(crate) Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// Parses a `/history/<id>` body: `None` while the prompt runs, its files in order on
/// success, the execution error as the failure.
pub fn parse_history(body: &[u8], prompt_id: &str) -> Result<Option<Finished>, WorkerError> {
    let mut history: Ordered<HistoryEntry> = serde_json::from_slice(body)
        .map_err(|e| WorkerError::Render(format!("ComfyUI /history: unexpected body ({e})")))?;
    match history.0.iter().position(|(id, _)| id == prompt_id) {
        Some(index) => history.0.swap_remove(index).1.finished(prompt_id),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_comfyuis_order_and_skip_previews() {
        let body = br#"{"p1": {"outputs": {
            "9": {"images": [{"filename": "b.png", "subfolder": "", "type": "output"},
                             {"filename": "prev.png", "subfolder": "", "type": "temp"}]},
            "10": {"gifs": [{"filename": "a.mp4", "subfolder": "clips", "type": "output"}],
                   "text": ["hello"]}},
            "status": {"status_str": "success", "completed": true, "messages": []}}}"#;
        let Some(Finished::Success(files)) = parse_history(body, "p1").unwrap() else {
            panic!("not finished")
        };
        let paths: Vec<_> = files.iter().map(ProducedFile::relative_path).collect();
        assert_eq!(paths, ["b.png", "clips/a.mp4"]);
    }

    #[test]
    fn an_execution_error_names_the_node() {
        let body = br#"{"p1": {"outputs": {}, "status": {"status_str": "error", "completed": false,
            "messages": [["execution_start", {}], ["execution_error", {"node_id": "3",
            "node_type": "KSampler", "exception_type": "RuntimeError",
            "exception_message": "CUDA out of memory"}]]}}}"#;
        let error = parse_history(body, "p1").unwrap_err();
        assert_eq!(
            error.to_string(),
            "ComfyUI failed at node 3 (KSampler): RuntimeError: CUDA out of memory"
        );
        assert_eq!(error.exit_code(), 44);
        assert!(parse_history(br#"{}"#, "p1").unwrap().is_none());
        let running = br#"{"p1": {"outputs": {}, "status": {"status_str": null, "completed": false, "messages": []}}}"#;
        assert!(parse_history(running, "p1").unwrap().is_none());
    }

    #[test]
    fn a_refusal_lists_each_node_error_on_one_line() {
        let answer = json!({"error": {"type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation", "details": ""},
            "node_errors": {"4": {"class_type": "CheckpointLoaderSimple", "errors": [
                {"message": "Value not in list", "details": "ckpt_name: 'x' not in\n['a']"}]}}});
        let text = refusal(400, &answer);
        assert_eq!(
            text,
            "ComfyUI refused the workflow (HTTP 400): Prompt outputs failed validation; node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'x' not in ['a']"
        );
        assert!(clip(&"x".repeat(5000)).chars().count() <= MAX_DETAIL_CHARS + 1);
    }
}
