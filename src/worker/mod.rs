//! The render worker (`videofoundry-operator worker`), the entrypoint of a render's pod. It reads
//! the render Secret and, in order: verifies the plan (workflow digest, model pins), downloads
//! the inputs, runs the workflow in the image's ComfyUI on 127.0.0.1, and uploads what it
//! produced through the presigned PUTs. Each step fails with its own exit code and a one-line
//! reason in the termination message; see docs/worker.md.

pub mod comfyui;
pub mod contract;
pub mod error;
pub mod inputs;
pub mod outputs;
pub mod termination;
pub mod transfer;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use comfyui::ComfyUi;
use comfyui::Finished;
use comfyui::convert;
use comfyui::process::{self, Folders};
use contract::RenderContract;
use error::WorkerError;
use termination::Summary;

/// Where ComfyUI is.
#[derive(Clone, Debug)]
pub enum ComfyUiSource {
    /// Start it with this command (the worker adds the listen, folder and model flags).
    Start {
        /// Program and arguments, split on whitespace.
        command: String,
        /// Port on 127.0.0.1.
        port: u16,
    },
    /// Use a server that is already running and shares the work folder (tests, debugging).
    Running(url::Url),
}

/// Everything the worker needs besides the render Secret.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// The mounted render Secret.
    pub render_dir: PathBuf,
    /// Read-only models folders (pins are verified in all of them).
    pub models_dirs: Vec<PathBuf>,
    /// Scratch folder for ComfyUI's input, output, temp and user folders.
    pub work_dir: PathBuf,
    /// ComfyUI.
    pub comfyui: ComfyUiSource,
    /// How long ComfyUI may take to answer `/system_stats`.
    pub ready_timeout: Duration,
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
    /// A private CA of the storage endpoint (PEM), added to the system roots.
    pub storage_ca_pem: Option<Vec<u8>>,
    /// How often progress is logged while the prompt runs.
    pub progress_every: Duration,
}

/// Runs the render; the summary on success.
pub async fn run(settings: &WorkerSettings) -> Result<Summary, WorkerError> {
    let contract = RenderContract::read(&settings.render_dir)?;
    tracing::info!(
        workflow_bytes = contract.workflow.len(),
        models = contract.plan.models.len(),
        inputs = contract.storage.inputs.len(),
        output_slots = contract.storage.outputs.len(),
        urls_expire = contract.storage.expires_at.as_deref().unwrap_or("?"),
        "render Secret read"
    );

    // 1. The plan.
    verify::verify_workflow(&contract.workflow, &contract.plan.workflow_sha256)?;
    let roots = settings.models_dirs.clone();
    let pins = contract.plan.models.clone();
    let verified = tokio::task::spawn_blocking(move || verify::verify_models(&roots, &pins))
        .await
        .map_err(|e| WorkerError::Transient(format!("model verification stopped: {e}")))??;
    let workflow: serde_json::Value =
        serde_json::from_slice(&contract.workflow).map_err(|e| WorkerError::Contract {
            file: crate::resources::render_secret::WORKFLOW_FILE,
            message: format!("not JSON (line {} column {})", e.line(), e.column()),
        })?;

    // 2. Inputs.
    let folders = Folders::create(&settings.work_dir)?;
    let storage = transfer::storage_client(settings.storage_ca_pem.as_deref())?;
    let downloaded = inputs::download_all(
        &storage,
        &contract.storage.inputs,
        &folders.input,
        settings.max_input_bytes,
    )
    .await?;

    // 3. ComfyUI.
    let (client, mut child) = match &settings.comfyui {
        ComfyUiSource::Running(url) => (ComfyUi::new(url.clone())?, None),
        ComfyUiSource::Start { command, port } => {
            let extra = write_extra_model_paths(settings)?;
            let args = process::command_line(command, *port, &folders, extra.as_deref())?;
            let child = process::start(&args, &settings.work_dir)?;
            let url = url::Url::parse(&format!("http://127.0.0.1:{port}/"))
                .map_err(|e| WorkerError::Render(format!("ComfyUI URL: {e}")))?;
            (ComfyUi::new(url)?, Some(child))
        }
    };
    let mut exited = || child.as_mut().and_then(process::exited);
    client
        .wait_ready(settings.ready_timeout, &mut exited)
        .await?;
    let prompt = if convert::is_ui_format(&workflow) {
        let info = client.object_info().await?;
        let api = convert::ui_to_api(&workflow, &info)?;
        tracing::info!(
            nodes = api.as_object().map_or(0, |n| n.len()),
            "UI-format workflow converted with this ComfyUI's /object_info"
        );
        api
    } else {
        workflow
    };
    let client_id = uuid::Uuid::new_v4().to_string();
    let prompt_id = client.submit(&prompt, &client_id).await?;
    tracing::info!(%prompt_id, "workflow submitted");
    let Finished::Success(produced) = client
        .follow(&prompt_id, settings.progress_every, &mut exited)
        .await?;

    // 4. Outputs.
    let placements = outputs::place(&produced, &contract.storage)?;
    let uploaded = outputs::upload_all(&storage, &placements, &folders.output).await?;
    Ok(Summary {
        outputs: uploaded,
        omitted: 0,
        models_verified: verified.len(),
        inputs: downloaded.len(),
    })
}

fn write_extra_model_paths(settings: &WorkerSettings) -> Result<Option<PathBuf>, WorkerError> {
    if settings.models_dirs.is_empty() {
        return Ok(None);
    }
    let path = settings.work_dir.join("extra_model_paths.yaml");
    std::fs::write(&path, process::extra_model_paths(&settings.models_dirs))
        .map_err(|e| WorkerError::Transient(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(path))
}
