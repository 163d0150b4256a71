//! Reads the manifests `plan` is given: files, folders (recursively, YAML and JSON files only)
//! or standard input, each possibly holding several YAML documents. Documents of the kinds the
//! operator reads (VideoFoundry, ApprovedNodeList, RenderJob, and the ConfigMaps renders take
//! their workflow from) are kept; anything else is reported as skipped, never guessed at.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize as _;
use serde::Serialize;

use crate::crd::{ApprovedNodeList, GROUP, RenderJob, VideoFoundry};

/// Largest file read (a manifest this large is a mistake or an attack).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes read in all.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Most documents read in all.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Deepest folder nesting followed.
const MAX_DEPTH: usize = 16;

/// Why the input could not be read at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path that cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file over the size limit.
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes; refusing to read it")]
    TooLarge {
        /// The path.
        path: String,
    },
    /// Too much input in all.
    #[error("the input is larger than {limit} in all; plan fewer files at once")]
    TooMuch {
        /// What limit.
        limit: String,
    },
    /// A document that is not YAML.
    #[error("{source_name}: document {document}: not valid YAML: {message}")]
    Yaml {
        /// File (or `-`).
        source_name: String,
        /// 1-based document number.
        document: usize,
        /// The parser's message.
        message: String,
    },
    /// Nothing to plan.
    #[error("no input: name files, folders or - for standard input")]
    Empty,
}

/// An object of a kind the operator reads, where it came from.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    /// `file#document`.
    pub source: String,
    /// The object (its namespace defaulted).
    pub object: T,
}

/// Something that was not planned, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// `file` or `file#document`.
    pub source: String,
    /// Why.
    pub reason: String,
}

/// A document of a known kind that does not match its schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// `file#document`.
    pub source: String,
    /// `Kind namespace/name` as far as it could be read.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// Everything read.
#[derive(Debug, Default)]
pub struct Manifests {
    /// VideoFoundries.
    pub foundries: Vec<Sourced<VideoFoundry>>,
    /// ApprovedNodeLists.
    pub lists: Vec<Sourced<ApprovedNodeList>>,
    /// RenderJobs.
    pub renders: Vec<Sourced<RenderJob>>,
    /// ConfigMaps (for workflows).
    pub config_maps: Vec<Sourced<ConfigMap>>,
    /// Files and documents not planned.
    pub skipped: Vec<Skipped>,
    /// Documents of a known kind that do not parse as that kind.
    pub invalid: Vec<Invalid>,
    /// Files read.
    pub files: Vec<String>,
    bytes: u64,
    documents: usize,
}

/// Reads every path (`-` is standard input); objects without a namespace get `namespace`.
pub fn read(paths: &[PathBuf], namespace: &str) -> Result<Manifests, InputError> {
    if paths.is_empty() {
        return Err(InputError::Empty);
    }
    let mut manifests = Manifests::default();
    for path in paths {
        if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| InputError::Read {
                    path: "-".to_owned(),
                    source,
                })?;
            manifests.add_file("-", &bytes, namespace)?;
        } else {
            manifests.add_path(path, namespace, 0)?;
        }
    }
    Ok(manifests)
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

impl Manifests {
    fn add_path(&mut self, path: &Path, namespace: &str, depth: usize) -> Result<(), InputError> {
        let shown = path.display().to_string();
        let read_error = |source| InputError::Read {
            path: shown.clone(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        if metadata.is_dir() {
            if depth >= MAX_DEPTH {
                self.skip(
                    &shown,
                    format!("folders nested deeper than {MAX_DEPTH} are not read"),
                );
                return Ok(());
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_error)?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|source| InputError::Read {
                    path: shown.clone(),
                    source,
                })?;
            entries.sort();
            for entry in entries {
                let is_dir = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir());
                if is_dir || is_manifest(&entry) {
                    self.add_path(&entry, namespace, depth + 1)?;
                } else {
                    self.skip(
                        &entry.display().to_string(),
                        "not a manifest (only .yaml, .yml and .json files are read)".to_owned(),
                    );
                }
            }
            return Ok(());
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(InputError::TooLarge { path: shown });
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(read_error)?;
        self.add_file(&shown, &bytes, namespace)
    }

    fn skip(&mut self, source: &str, reason: String) {
        self.skipped.push(Skipped {
            source: source.to_owned(),
            reason,
        });
    }

    fn add_file(&mut self, name: &str, bytes: &[u8], namespace: &str) -> Result<(), InputError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(InputError::TooLarge {
                path: name.to_owned(),
            });
        }
        self.bytes += bytes.len() as u64;
        if self.bytes > MAX_TOTAL_BYTES {
            return Err(InputError::TooMuch {
                limit: format!("{MAX_TOTAL_BYTES} bytes"),
            });
        }
        self.files.push(name.to_owned());
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(InputError::Yaml {
                source_name: name.to_owned(),
                document: 1,
                message: "not UTF-8 text".to_owned(),
            });
        };
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            self.documents += 1;
            if self.documents > MAX_DOCUMENTS {
                return Err(InputError::TooMuch {
                    limit: format!("{MAX_DOCUMENTS} documents"),
                });
            }
            let source = format!("{name}#{}", index + 1);
            // serde_yaml bounds recursion and alias expansion, so a YAML bomb is an error here.
            let value = serde_yaml::Value::deserialize(document).map_err(|e| InputError::Yaml {
                source_name: name.to_owned(),
                document: index + 1,
                message: e.to_string(),
            })?;
            self.add_document(source, value, namespace);
        }
        Ok(())
    }

    fn add_document(&mut self, source: String, value: serde_yaml::Value, namespace: &str) {
        if value.is_null() {
            return;
        }
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let (api_version, kind) = (text("apiVersion").to_owned(), text("kind").to_owned());
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_owned();
        let ours = api_version == format!("{GROUP}/v1alpha1");
        let invalid = |message: String| Invalid {
            source: source.clone(),
            object: format!("{kind} {name}"),
            message,
        };
        match (ours, kind.as_str(), api_version.as_str()) {
            (true, "VideoFoundry", _) => match typed::<VideoFoundry>(value, namespace) {
                Ok(object) => self.foundries.push(Sourced { source, object }),
                Err(message) => self.invalid.push(invalid(message)),
            },
            (true, "ApprovedNodeList", _) => match typed::<ApprovedNodeList>(value, namespace) {
                Ok(object) => self.lists.push(Sourced { source, object }),
                Err(message) => self.invalid.push(invalid(message)),
            },
            (true, "RenderJob", _) => match typed::<RenderJob>(value, namespace) {
                Ok(object) => self.renders.push(Sourced { source, object }),
                Err(message) => self.invalid.push(invalid(message)),
            },
            (_, "ConfigMap", "v1") => match typed::<ConfigMap>(value, namespace) {
                Ok(object) => self.config_maps.push(Sourced { source, object }),
                Err(message) => self.invalid.push(invalid(message)),
            },
            _ if kind.is_empty() => {
                self.skip(&source, "not a Kubernetes object (no kind)".to_owned())
            }
            _ => self.skip(
                &source,
                format!("{kind} ({api_version}) is not a kind the operator reads"),
            ),
        }
    }
}

/// The document as `K`, its namespace defaulted, its `metadata.name` required.
fn typed<K>(value: serde_yaml::Value, namespace: &str) -> Result<K, String>
where
    K: serde::de::DeserializeOwned + kube::Resource,
{
    let mut object: K = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
    let meta = object.meta_mut();
    if meta.name.as_deref().is_none_or(str::is_empty) {
        return Err("metadata.name is missing".to_owned());
    }
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(namespace.to_owned());
    }
    Ok(object)
}
