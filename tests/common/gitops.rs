//! How GitOps tools read an object's health, for tests on live objects:
//! - [`kstatus`]: the rules of kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus/status`), which Flux's
//!   `wait: true` and health checks use, written from its documented behaviour (generic
//!   properties, then the `Ready` fallback, for a kind without built-in rules);
//! - [`argo_health`]: an Argo CD Lua health script run by a real Lua 5.1 interpreter with `obj`
//!   set as Argo CD sets it (the object as a Lua table).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use serde_json::Value;

/// kstatus's result for a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KStatus {
    /// Reconciled: the latest generation observed and nothing in progress.
    Current,
    /// Still on its way (a Flux wait keeps waiting).
    InProgress,
    /// `Stalled=True` (a Flux wait with fail-fast stops with an error).
    Failed,
    /// Being deleted.
    Terminating,
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// kstatus's `Compute` for a custom resource, with the message it gives.
pub fn kstatus(obj: &Value) -> (KStatus, String) {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return (
            KStatus::Terminating,
            "Resource scheduled for deletion".into(),
        );
    }
    // Generation: only when status.observedGeneration is present.
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return (
            KStatus::InProgress,
            format!("LatestGenerationNotObserved: generation {generation}, observed {observed}"),
        );
    }
    // The abnormal-true conditions, in list order; the first one that is True decides.
    if let Some(conditions) = obj["status"]["conditions"].as_array() {
        for c in conditions {
            if c["status"] == "True" && c["type"] == "Reconciling" {
                return (
                    KStatus::InProgress,
                    c["message"].as_str().unwrap_or_default().into(),
                );
            }
            if c["status"] == "True" && c["type"] == "Stalled" {
                return (
                    KStatus::Failed,
                    c["message"].as_str().unwrap_or_default().into(),
                );
            }
        }
    }
    // No built-in rules for a custom kind: the widely used Ready condition, if any.
    if let Some(ready) = condition(obj, "Ready") {
        let message = ready["message"].as_str().unwrap_or_default().to_owned();
        return match ready["status"].as_str() {
            Some("True") => (KStatus::Current, "Resource is Ready".into()),
            Some("False" | "Unknown") => (KStatus::InProgress, message),
            _ => (KStatus::Current, "Resource is current".into()),
        };
    }
    (KStatus::Current, "Resource is current".into())
}

/// A JSON value as a Lua 5.1 table constructor (objects keyed by string, arrays from 1, `null`
/// as `nil`, as Argo CD hands `obj` to its Lua scripts).
pub fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// A Lua string literal: every byte that is not plain printable ASCII as a decimal escape.
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

/// Argo CD's verdict: `(hs.status, hs.message)`.
pub type Health = (String, String);

/// Runs the health `script` on `obj` with `lua` (a Lua 5.1 interpreter) the way Argo CD does:
/// `obj` is a global table and the script's chunk returns `hs`.
pub fn argo_health(lua: &Path, script: &str, obj: &Value) -> Health {
    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("health.lua");
    std::fs::write(&script_path, script).unwrap();
    let runner = format!(
        "obj = {}\nlocal check = assert(loadfile({}))\nlocal hs = check()\n\
         assert(type(hs) == 'table', 'the script returned no table')\n\
         assert(type(hs.status) == 'string', 'hs.status is not a string')\n\
         io.write(hs.status, '\\n', tostring(hs.message or ''))\n",
        lua_literal(obj),
        lua_string(&script_path.to_string_lossy())
    );
    let mut file = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
    file.write_all(runner.as_bytes()).unwrap();
    let output = std::process::Command::new(lua)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// The health scripts shipped for Argo CD, by kind (from the `argocd-cm` patch).
pub fn argo_scripts() -> std::collections::BTreeMap<String, String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gitops/argocd/argocd-cm-health.yaml"
    );
    let patch: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    patch["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, script)| {
            let kind = key
                .strip_prefix("resource.customizations.health.videofoundry.dev_")
                .unwrap_or_else(|| panic!("unexpected key {key}"));
            (kind.to_owned(), script.as_str().unwrap().to_owned())
        })
        .collect()
}
