//! Starting the image's ComfyUI: the configured command plus flags that keep it on 127.0.0.1,
//! put its input, output, temp and user folders on scratch, point it at the read-only models
//! folders, and turn off everything that would open a browser or fetch from the internet.
//! Its output goes to the pod's log (ComfyUI prints its own progress there).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::super::error::WorkerError;

/// ComfyUI's model kinds (folder names under `models/`), mapped onto each models folder.
const MODEL_KINDS: &[&str] = &[
    "checkpoints",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "gligen",
    "hypernetworks",
    "loras",
    "photomaker",
    "style_models",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
    "audio_encoders",
    "model_patches",
];

/// Environment that keeps Python libraries offline and quiet.
const OFFLINE_ENV: &[(&str, &str)] = &[
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("DO_NOT_TRACK", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONUNBUFFERED", "1"),
];

/// The folders ComfyUI works in, all under the scratch volume.
#[derive(Clone, Debug)]
pub struct Folders {
    /// Inputs (downloaded here).
    pub input: PathBuf,
    /// Outputs (uploaded from here).
    pub output: PathBuf,
    /// Previews.
    pub temp: PathBuf,
    /// ComfyUI's user settings and database.
    pub user: PathBuf,
}

impl Folders {
    /// The folders under `work`, created.
    pub fn create(work: &Path) -> Result<Self, WorkerError> {
        let folders = Self {
            input: work.join("input"),
            output: work.join("output"),
            temp: work.join("temp"),
            user: work.join("user"),
        };
        for dir in [
            &folders.input,
            &folders.output,
            &folders.temp,
            &folders.user,
        ] {
            std::fs::create_dir_all(dir).map_err(|e| {
                WorkerError::Transient(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(folders)
    }
}

/// The full command line: the configured command, then the worker's flags.
pub fn command_line(
    command: &str,
    port: u16,
    folders: &Folders,
    extra_model_paths: Option<&Path>,
) -> Result<Vec<String>, WorkerError> {
    let mut args: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    if args.is_empty() {
        return Err(WorkerError::Render(
            "the ComfyUI command is empty".to_owned(),
        ));
    }
    let path = |p: &Path| p.display().to_string();
    args.extend([
        "--listen".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--input-directory".to_owned(),
        path(&folders.input),
        "--output-directory".to_owned(),
        path(&folders.output),
        "--temp-directory".to_owned(),
        path(&folders.temp),
        "--user-directory".to_owned(),
        path(&folders.user),
        // Its default lies in the (read-only) install folder.
        "--database-url".to_owned(),
        format!("sqlite:///{}", folders.user.join("comfyui.db").display()),
        "--disable-auto-launch".to_owned(),
    ]);
    if let Some(config) = extra_model_paths {
        args.extend(["--extra-model-paths-config".to_owned(), path(config)]);
    }
    Ok(args)
}

/// ComfyUI's `extra_model_paths.yaml` for the models folders: every model kind under each.
pub fn extra_model_paths(models_dirs: &[PathBuf]) -> String {
    let mut yaml = String::from("# Written by videofoundry-operator worker.\n");
    for (index, dir) in models_dirs.iter().enumerate() {
        // JSON strings are valid YAML scalars, quoted safely whatever the path holds.
        yaml.push_str(&format!(
            "videofoundry_{index}:\n  base_path: {}\n",
            serde_json::Value::String(dir.display().to_string())
        ));
        for kind in MODEL_KINDS {
            yaml.push_str(&format!("  {kind}: {kind}\n"));
        }
    }
    yaml
}

/// Starts ComfyUI. The child is killed when dropped.
pub fn start(args: &[String], work: &Path) -> Result<Child, WorkerError> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| WorkerError::Render("the ComfyUI command is empty".to_owned()))?;
    tracing::info!(command = %args.join(" "), "starting ComfyUI");
    let mut command = Command::new(program);
    command
        .args(rest)
        .current_dir(work)
        .envs(OFFLINE_ENV.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
        .spawn()
        .map_err(|e| WorkerError::Render(format!("cannot start ComfyUI ({program}): {e}")))
}

/// The exit status of a child that has ended, as text; `None` while it runs.
pub fn exited(child: &mut Child) -> Option<String> {
    match child.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        Ok(None) => None,
        Err(e) => Some(format!("cannot query the process: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comfyui_listens_on_loopback_with_folders_on_scratch() {
        let work = Path::new("/tmp/vf");
        let folders = Folders {
            input: work.join("input"),
            output: work.join("output"),
            temp: work.join("temp"),
            user: work.join("user"),
        };
        let args = command_line(
            "python3 /opt/comfyui/main.py",
            8188,
            &folders,
            Some(Path::new("/tmp/vf/extra.yaml")),
        )
        .unwrap();
        let line = args.join(" ");
        assert!(line.starts_with("python3 /opt/comfyui/main.py --listen 127.0.0.1 --port 8188"));
        assert!(line.contains("--input-directory /tmp/vf/input"));
        assert!(line.contains("--output-directory /tmp/vf/output"));
        assert!(line.contains("--database-url sqlite:////tmp/vf/user/comfyui.db"));
        assert!(line.ends_with("--extra-model-paths-config /tmp/vf/extra.yaml"));
        assert!(command_line("  ", 1, &folders, None).is_err());
    }

    #[test]
    fn extra_model_paths_quote_the_folder() {
        let yaml = extra_model_paths(&[PathBuf::from("/models")]);
        assert!(
            yaml.contains(
                "videofoundry_0:\n  base_path: \"/models\"\n  checkpoints: checkpoints\n"
            )
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["videofoundry_0"]["loras"], "loras");
    }
}
