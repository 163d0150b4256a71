//! Classification of string values: URLs, paths that escape, and model references.

/// File extensions of model weights; a value ending in one is a model reference wherever it
/// appears.
pub const MODEL_EXTENSIONS: &[&str] = &[
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".onnx",
    ".sft",
    ".pkl",
    ".pickle",
    ".h5",
    ".engine",
    ".tflite",
];

/// URL schemes (and scheme-like prefixes) that make a value a remote reference.
const URL_PREFIXES: &[&str] = &[
    "git@", "file:", "s3:", "gs:", "gcs:", "ftp:", "ftps:", "sftp:", "ssh:", "http:", "https:",
    "hf:", "az:", "abfs:", "smb:", "nfs:", "ws:", "wss:", "data:", "jar:", "git:", "ipfs:",
];

/// Why a string value is a problem by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concern {
    /// A URL or remote reference.
    Url,
    /// An absolute path (POSIX, home-relative, Windows drive or UNC).
    AbsolutePath,
    /// A path that climbs out with `..`.
    Climbs,
    /// A NUL or other control character that truncates or hides part of a path.
    ControlCharacter,
}

impl Concern {
    /// The rule id of the violation.
    pub fn rule(self) -> &'static str {
        match self {
            Concern::Url => "url-input",
            Concern::AbsolutePath => "absolute-path",
            Concern::Climbs => "path-traversal",
            Concern::ControlCharacter => "control-character",
        }
    }
}

/// What is wrong with `value` on its own, if anything. Free text (prompts) passes unless it is
/// itself a URL or a path.
pub fn concern(value: &str) -> Option<Concern> {
    if value.contains('\0') {
        return Some(Concern::ControlCharacter);
    }
    let trimmed = value.trim_start();
    if is_url(trimmed) {
        return Some(Concern::Url);
    }
    if is_absolute(trimmed) {
        return Some(Concern::AbsolutePath);
    }
    if climbs(value) {
        return Some(Concern::Climbs);
    }
    None
}

/// True when `value` starts like a URL: `scheme://`, or a known remote prefix such as `git@`,
/// `file:` or `s3:`, in any case.
pub fn is_url(value: &str) -> bool {
    // `scheme:` must be followed by something other than a space, so that prose such as
    // "data: a chart" is not a URL while `data:image/png;base64,...` is.
    if URL_PREFIXES.iter().any(|prefix| {
        starts_with_ignore_case(value, prefix)
            && (!prefix.ends_with(':')
                || value[prefix.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_whitespace()))
    }) {
        return true;
    }
    // Any `scheme://` (RFC 3986 scheme characters), found without scanning past the scheme.
    let bytes = value.as_bytes();
    let scheme_len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    scheme_len > 0 && bytes[0].is_ascii_alphabetic() && bytes[scheme_len..].starts_with(b"://")
}

/// True for `/x`, `\x`, `~`, `~/x`, `~user/x`, `C:\x`, `C:/x` and `C:`.
fn is_absolute(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes {
        [b'/' | b'\\', ..] => true,
        [b'~', rest @ ..] => {
            let user_len = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                .count();
            matches!(rest.get(user_len), None | Some(b'/' | b'\\'))
        }
        // `C:\x`, `C:/x` or a bare `C:`; not prose such as "A: a cat".
        [drive, b':', rest @ ..] if drive.is_ascii_alphabetic() => {
            matches!(rest.first(), None | Some(b'/' | b'\\'))
        }
        _ => false,
    }
}

/// True when a `/`- or `\\`-separated segment is `..` (also with trailing spaces, which Windows
/// strips).
pub fn climbs(value: &str) -> bool {
    value
        .split(['/', '\\'])
        .any(|segment| segment.trim_end_matches(' ') == "..")
}

/// True when `value` ends in a model-weight extension (any case).
pub fn has_model_extension(value: &str) -> bool {
    let value = value.trim_end().as_bytes();
    MODEL_EXTENSIONS.iter().any(|ext| {
        value.len() >= ext.len()
            && value[value.len() - ext.len()..].eq_ignore_ascii_case(ext.as_bytes())
    })
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// True for input names that ComfyUI resolves against a model folder: `ckpt_name`,
/// `lora_name`, `vae_name`, `unet_name`, `clip_name1`, `control_net_name`, `model_name`,
/// `lora_name_1`, `lora2_name` and the like. `sampler_name` and `scheduler` name algorithms and
/// are not model references.
pub fn is_model_input(name: &str) -> bool {
    const STEMS: &[&str] = &[
        "ckpt",
        "checkpoint",
        "lora",
        "vae",
        "unet",
        "clip",
        "clip_vision",
        "control_net",
        "controlnet",
        "model",
        "style_model",
        "gligen",
        "hypernetwork",
        "upscale_model",
        "audio_encoder",
        "embedding",
        "ipadapter",
        "text_encoder",
        "diffusion_model",
    ];
    // `clip_name1`, `lora_name_1` → `clip_name`, `lora_name`.
    let without_number = name
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('_');
    let Some(stem) = without_number.strip_suffix("_name") else {
        return false;
    };
    let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    STEMS.contains(&stem)
}

/// True for values that ComfyUI loaders use to mean "no model".
pub fn is_no_model(value: &str) -> bool {
    matches!(value, "" | "None" | "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_any_case_and_scheme_are_found() {
        for url in [
            "https://civitai.com/api/download/models/1",
            "HTTP://x",
            " http://leading.space",
            "git@github.com:o/r.git",
            "file:///etc/passwd",
            "s3://bucket/key",
            "gs://b/k",
            "ftp://h/f",
            "custom+scheme://h",
            "hf://org/model",
        ] {
            assert_eq!(concern(url), Some(Concern::Url), "{url}");
        }
        assert_eq!(concern("a photo of a cat, 4k"), None);
        assert_eq!(concern("a cat: https is a protocol"), None);
    }

    #[test]
    fn escaping_paths_are_found() {
        for (value, expected) in [
            ("/etc/passwd", Concern::AbsolutePath),
            ("\\\\server\\share\\m.ckpt", Concern::AbsolutePath),
            ("C:\\models\\m.ckpt", Concern::AbsolutePath),
            ("c:/models/m.ckpt", Concern::AbsolutePath),
            ("~/models/m.ckpt", Concern::AbsolutePath),
            ("~root/.ssh/id_rsa", Concern::AbsolutePath),
            ("../../secrets", Concern::Climbs),
            ("loras/..\\..\\x.safetensors", Concern::Climbs),
            ("ok\0/../x", Concern::ControlCharacter),
        ] {
            assert_eq!(concern(value), Some(expected), "{value:?}");
        }
        for fine in [
            "sd_xl_base_1.0.safetensors",
            "SDXL/juggernaut.safetensors",
            "ComfyUI",
            "a cat.. and a dog",
            "(masterpiece:1.2), \\(artist\\)",
            "~*~oil painting~*~ in the style of Frank Bowling",
            "~ a tilde",
            "A: a cat on a mat",
            "Q:what",
            "data: a chart of sales",
        ] {
            assert_eq!(concern(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn model_inputs_are_named_but_samplers_are_not() {
        for name in [
            "ckpt_name",
            "lora_name",
            "vae_name",
            "unet_name",
            "clip_name",
            "clip_name1",
            "clip_name4",
            "control_net_name",
            "model_name",
            "style_model_name",
            "lora_name_1",
            "lora2_name",
        ] {
            assert!(is_model_input(name), "{name}");
        }
        for name in [
            "sampler_name",
            "scheduler",
            "filename_prefix",
            "config_name",
            "text",
            "image",
        ] {
            assert!(!is_model_input(name), "{name}");
        }
    }

    #[test]
    fn model_extensions_are_case_insensitive() {
        assert!(has_model_extension("x.SafeTensors"));
        assert!(has_model_extension("a/b.gguf"));
        assert!(!has_model_extension("photo.png"));
    }
}
