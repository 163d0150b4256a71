//! Model globs and repository names, shared by the ApprovedNodeList validator and the vetter so
//! that a list is checked and applied with the same rules.

use globset::{Glob, GlobBuilder, GlobMatcher};

use super::values;

/// Compiles a model pattern: `*` stays within a path segment, `**` crosses segments.
pub fn compile_model_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// A compiled model pattern. It never matches a value that climbs out with `..` or holds a
/// backslash or NUL, and it matches a URL or an absolute path only when the pattern itself is
/// one: `**` approves every name inside the model folders, not every URL.
#[derive(Clone, Debug)]
pub struct ModelGlob {
    matcher: GlobMatcher,
    kind: Option<values::Concern>,
}

impl ModelGlob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, globset::Error> {
        Ok(Self {
            matcher: compile_model_glob(pattern)?.compile_matcher(),
            kind: values::concern(pattern),
        })
    }

    /// True when `value` matches, is of the same kind (name, URL or absolute path) as the
    /// pattern, and does not escape.
    pub fn is_match(&self, value: &str) -> bool {
        !values::climbs(value)
            && !value.contains('\\')
            && !value.contains('\0')
            && values::concern(value) == self.kind
            && self.matcher.is_match(value)
    }
}

/// Normalises a repository to lowercase `host/owner/repo`: a leading `https://` and a trailing
/// `/` or `.git` are ignored. None when it is not of that shape.
pub fn normalize_repository(url: &str) -> Option<String> {
    let trimmed = url
        .strip_prefix("https://")
        .unwrap_or(url)
        .trim_end_matches('/')
        .trim_end_matches(".git");
    let segments: Vec<&str> = trimmed.split('/').collect();
    let well_formed = segments.len() >= 3
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && *segment != "."
                && *segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        && segments[0].contains('.');
    well_formed.then(|| trimmed.to_ascii_lowercase())
}

/// The `owner/repo` that a UI node's `aux_id` would name for a repository, when it is hosted on
/// GitHub (the only host `aux_id` describes).
pub fn github_aux_id(normalized_repository: &str) -> Option<&str> {
    normalized_repository.strip_prefix("github.com/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_in_their_segment_and_never_climb() {
        let glob = ModelGlob::new("huggingface.co/your-org/*").unwrap();
        assert!(glob.is_match("huggingface.co/your-org/model.safetensors"));
        assert!(!glob.is_match("huggingface.co/your-org/sub/model.safetensors"));
        assert!(!glob.is_match("huggingface.co/your-org/../evil/x"));
        assert!(!glob.is_match("huggingface.co/your-org/..\\x"));
        let deep = ModelGlob::new("loras/**").unwrap();
        assert!(deep.is_match("loras/a/b.safetensors"));
        assert!(!deep.is_match("loras/../../etc/passwd"));
        let everything = ModelGlob::new("**").unwrap();
        assert!(everything.is_match("sdxl/base.safetensors"));
        assert!(!everything.is_match("https://civitai.com/api/download/models/1"));
        assert!(!everything.is_match("/etc/passwd"));
        let hub = ModelGlob::new("https://huggingface.co/your-org/**").unwrap();
        assert!(hub.is_match("https://huggingface.co/your-org/m/resolve/main/x.safetensors"));
        assert!(!hub.is_match("https://huggingface.co/other/x"));
        let any = ModelGlob::new("*.safetensors").unwrap();
        assert!(any.is_match("x.safetensors"));
        assert!(!any.is_match("sub/x.safetensors"));
    }

    #[test]
    fn repositories_normalise_to_host_owner_repo() {
        assert_eq!(
            normalize_repository("https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite.git")
                .as_deref(),
            Some("github.com/kosinkadink/comfyui-videohelpersuite")
        );
        assert_eq!(normalize_repository("github.com/org/../other"), None);
        assert_eq!(normalize_repository("not a repo"), None);
        assert_eq!(normalize_repository("org/repo"), None);
    }
}
