//! `import-allowlist`: converts `approved_nodes.json` or one document of
//! `workflow_allowlist.yaml` into an ApprovedNodeList manifest on standard output.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::vetting::approved_list::validate;
use crate::vetting::import::{read_lists, to_manifest};

/// Arguments of `import-allowlist`.
#[derive(Debug, clap::Args)]
pub struct ImportAllowlistArgs {
    /// `approved_nodes.json` or `workflow_allowlist.yaml`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// `metadata.name` of the ApprovedNodeList.
    #[arg(long)]
    pub name: String,

    /// `metadata.namespace` of the ApprovedNodeList (omitted when not given).
    #[arg(long)]
    pub namespace: Option<String>,

    /// Which document of a `workflow_allowlist.yaml` to import (its `execution_mode`).
    #[arg(long, value_name = "EXECUTION_MODE", default_value = "production")]
    pub mode: String,
}

/// Prints the manifest. Exit 0 when written (problems that will keep the list from becoming
/// Ready are printed to stderr), 1 when the file cannot be converted without losing something,
/// 2 when it cannot be read.
pub fn execute(args: &ImportAllowlistArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let file_name = args.file.display().to_string();
    let lists = match read_lists(&text, &file_name, &args.mode) {
        Ok(lists) => lists,
        Err(error) => {
            eprintln!("error: {}: {error}", args.file.display());
            return ExitCode::from(1);
        }
    };
    let [list] = lists.as_slice() else {
        eprintln!(
            "error: {} holds {} ApprovedNodeLists; import-allowlist converts one legacy list",
            args.file.display(),
            lists.len()
        );
        return ExitCode::from(1);
    };
    for problem in validate(&list.spec).problems {
        eprintln!("warning: the imported list will not be Ready until fixed: {problem}");
    }
    match to_manifest(&args.name, args.namespace.as_deref(), list) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot render the manifest: {error}");
            ExitCode::from(1)
        }
    }
}
