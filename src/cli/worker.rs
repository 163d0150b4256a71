//! `worker`: the render entrypoint inside the worker pod, and `install-worker`: the init
//! container's copy of this (static) binary into the pod, so that any ComfyUI image can run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::LogFormat;
use crate::resources::worker_job::RENDER_DIR;
use crate::telemetry;
use crate::worker::{self, ComfyUiSource, WorkerSettings, termination};

/// ComfyUI's start command when the foundry sets none (the example image's layout).
pub const DEFAULT_COMFYUI_COMMAND: &str = "python3 /opt/comfyui/main.py";

/// Flags of `worker`. The operator's Job sets them through the environment.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// The mounted render Secret (workflow.json, plan.json, storage.json).
    #[arg(long, env = "VF_RENDER_DIR", default_value = RENDER_DIR, value_name = "DIR")]
    pub render_dir: PathBuf,

    /// Read-only models folders, comma-separated; pinned models are verified in each.
    #[arg(long, env = "VF_MODELS_DIR", value_delimiter = ',', value_name = "DIR")]
    pub models_dir: Vec<PathBuf>,

    /// Scratch folder for ComfyUI's input, output, temp and user folders.
    #[arg(
        long,
        env = "VF_WORK_DIR",
        default_value = "/tmp/videofoundry",
        value_name = "DIR"
    )]
    pub work_dir: PathBuf,

    /// Command that starts ComfyUI, split on whitespace; the worker adds `--listen 127.0.0.1`,
    /// the port, the folders and the model paths.
    #[arg(long, env = "VF_COMFYUI_COMMAND", default_value = DEFAULT_COMFYUI_COMMAND)]
    pub comfyui_command: String,

    /// Port of ComfyUI on 127.0.0.1.
    #[arg(long, env = "VF_COMFYUI_PORT", default_value_t = 8188)]
    pub comfyui_port: u16,

    /// Use an already running ComfyUI that shares the work folder instead of starting one
    /// (tests and debugging only).
    #[arg(long, env = "VF_COMFYUI_URL", value_name = "URL")]
    pub comfyui_url: Option<url::Url>,

    /// Seconds ComfyUI may take to become ready.
    #[arg(long, env = "VF_COMFYUI_READY_TIMEOUT", default_value_t = 600)]
    pub ready_timeout_seconds: u64,

    /// Largest input accepted, in bytes (default 4 GiB).
    #[arg(long, env = "VF_MAX_INPUT_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub max_input_bytes: u64,

    /// PEM file with a private CA of the storage endpoint.
    #[arg(long, env = "VF_STORAGE_CA_FILE", value_name = "FILE")]
    pub storage_ca_file: Option<PathBuf>,

    /// Where the termination message goes (the container's `terminationMessagePath`).
    #[arg(
        long,
        env = "VF_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,

    /// Log format.
    #[arg(long, env = "VF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax.
    #[arg(long, env = "VF_LOG", default_value = "info")]
    pub log_filter: String,
}

/// Flags of `install-worker`.
#[derive(Clone, Debug, clap::Args)]
pub struct InstallWorkerArgs {
    /// Folder to copy this binary into (an emptyDir shared with the worker container).
    pub dir: PathBuf,
}

/// Runs the render and exits with the step's code (docs/worker.md).
pub async fn execute(args: WorkerArgs) -> ExitCode {
    if let Err(error) = telemetry::init(args.log_format, &args.log_filter) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let outcome = match settings(&args) {
        Ok(settings) => worker::run(&settings).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(summary) => {
            let message = termination::success_message(summary);
            tracing::info!(summary = %message, "render succeeded");
            termination::write(&args.termination_log, &message);
            ExitCode::SUCCESS
        }
        Err(error) => {
            let message = termination::failure_message(&error);
            tracing::error!(
                reason = error.reason(),
                code = error.exit_code(),
                "{message}"
            );
            termination::write(&args.termination_log, &message);
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

fn settings(args: &WorkerArgs) -> Result<WorkerSettings, worker::error::WorkerError> {
    let storage_ca_pem = match &args.storage_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            worker::error::WorkerError::Transient(format!(
                "cannot read the storage CA file {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    let comfyui = match &args.comfyui_url {
        Some(url) => ComfyUiSource::Running(url.clone()),
        None => ComfyUiSource::Start {
            command: args.comfyui_command.clone(),
            port: args.comfyui_port,
        },
    };
    Ok(WorkerSettings {
        render_dir: args.render_dir.clone(),
        models_dirs: args.models_dir.clone(),
        work_dir: args.work_dir.clone(),
        comfyui,
        ready_timeout: Duration::from_secs(args.ready_timeout_seconds),
        max_input_bytes: args.max_input_bytes,
        storage_ca_pem,
        progress_every: Duration::from_secs(15),
    })
}

/// Name of the binary in the shared folder.
pub const INSTALLED_NAME: &str = "videofoundry-operator";

/// Copies this binary into `dir`, read-only and executable.
pub fn install(args: &InstallWorkerArgs) -> ExitCode {
    match copy_self(&args.dir) {
        Ok(path) => {
            println!("installed {}", path.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn copy_self(dir: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let target = dir.join(INSTALLED_NAME);
    std::fs::copy(&me, &target)
        .map_err(|e| format!("cannot copy {} to {}: {e}", me.display(), target.display()))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| format!("cannot make {} executable: {e}", target.display()))?;
    Ok(target)
}
