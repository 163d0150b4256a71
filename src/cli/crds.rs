//! `crds`: print or write the generated CustomResourceDefinitions.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::crd;

/// Arguments of `crds`.
#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory (e.g. `crds/`) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub write_to: Option<PathBuf>,
}

/// Prints all CRDs as one YAML stream, or writes them one file each.
pub fn execute(args: &CrdsArgs) -> ExitCode {
    let crds = crd::all();
    let result = match &args.write_to {
        None => crd::to_yaml(&crds)
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| e.to_string()),
        Some(dir) => write_files(dir, &crds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_files(
    dir: &std::path::Path,
    crds: &[k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for one in crds {
        let path = dir.join(crd::file_name(one));
        let yaml = crd::to_yaml(std::slice::from_ref(one)).map_err(|e| e.to_string())?;
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
