//! Classification of string values: URLs, paths that escape, and model references.

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
/// itself a URL or a path. The value is judged as a path-taking node would read it
/// ([`as_path`]), so that quoting or padding cannot hide an absolute path.
pub fn concern(value: &str) -> Option<Concern> {
    if value.contains('\0') {
        return Some(Concern::ControlCharacter);
    }
    let path = as_path(value);
    if is_url(path) {
        return Some(Concern::Url);
    }
    if is_absolute(path) {
        return Some(Concern::AbsolutePath);
    }
    if climbs(value) {
        return Some(Concern::Climbs);
    }
    None
}

/// `value` as a path-taking node reads it: custom nodes strip surrounding whitespace (Python's
/// `str.strip`, which also removes the separator controls), other control characters,
/// invisible format characters and quotes before they open the file (VideoHelperSuite's
/// `strip_path` does exactly this), so the vetter judges the stripped form.
pub fn as_path(value: &str) -> &str {
    value.trim_matches(|c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '"' | '\'' | '`' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'
            )
    })
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

/// True when a `/`- or `\\`-separated segment is `..`, also when padded with whitespace,
/// control characters or quotes that a node (or Windows) would strip.
pub fn climbs(value: &str) -> bool {
    value
        .split(['/', '\\'])
        .any(|segment| as_path(segment) == "..")
}

/// True when `value` ends in an extension that ComfyUI (or a custom node pack) loads weights
/// from, in any case; the extensions come from `config/comfyui-model-inputs.json`.
pub fn has_model_extension(value: &str) -> bool {
    super::model_inputs::ModelInputs::builtin().has_model_extension(value)
}

/// The identifier ComfyUI's CLIP tokenizer looks for in prompt text.
const EMBEDDING: &str = "embedding:";

/// The embedding names that prompt text makes ComfyUI load from its `embeddings` folder:
/// `embedding:<name>` at the start of the text or after a character that is not part of a word
/// (ComfyUI splits at spaces, newlines and the brackets of its weight syntax; anything else that
/// is not a letter or digit is taken as a boundary too, to fail closed). The name is the next
/// whitespace-separated word, without the weight syntax (`(embedding:x:1.2)`) and trailing
/// commas, which ComfyUI drops as well.
pub fn embedding_names(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(EMBEDDING).filter_map(move |(at, _)| {
        let boundary = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if !boundary {
            return None;
        }
        let word = text[at + EMBEDDING.len()..].split_whitespace().next()?;
        let word = word.split(['(', ')']).next().unwrap_or_default();
        let word = match word.rsplit_once(':') {
            Some((name, weight)) if weight.parse::<f64>().is_ok() => name,
            _ => word,
        };
        let name = word.trim_end_matches(',');
        (!name.is_empty()).then_some(name)
    })
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// True for input names of custom nodes that look like they name a model file: `ckpt_name`,
/// `lora_name`, `vae_name`, `unet_name`, `clip_name1`, `control_net_name`, `model_name`,
/// `lora_name_1`, `lora2_name` and the like. Built-in nodes are judged by ComfyUI's own
/// definitions instead (`model_inputs`); custom nodes have no such table, so their inputs are
/// judged by name and by extension. `sampler_name` and `scheduler` name algorithms and are not
/// model references.
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
    fn padded_and_quoted_paths_are_judged_as_nodes_read_them() {
        for value in [
            "\"/etc/passwd\"",
            "'/etc/passwd'",
            " \t/etc/passwd",
            "\u{1}/etc/passwd",
            "\u{1f}\"/home/other/secret.mp4\"",
            "\u{feff}/etc/passwd",
            "\u{a0}C:\\x",
            "\"~/x\"",
        ] {
            assert_eq!(concern(value), Some(Concern::AbsolutePath), "{value:?}");
        }
        assert_eq!(concern("\"https://x/y\""), Some(Concern::Url));
        assert_eq!(concern("\"../x\""), Some(Concern::Climbs));
        assert_eq!(concern("a/\u{1}..\u{1}/x"), Some(Concern::Climbs));
        assert_eq!(concern("\"a cat\" on a mat"), None);
    }

    #[test]
    fn embeddings_in_prompt_text_are_found_like_comfyui_finds_them() {
        let names = |text| embedding_names(text).collect::<Vec<_>>();
        assert_eq!(names("embedding:EasyNegative, blurry"), ["EasyNegative"]);
        assert_eq!(names("a cat (embedding:bad_hands:1.2) x"), ["bad_hands"]);
        assert_eq!(names("x\nembedding:a/b.pt"), ["a/b.pt"]);
        assert_eq!(names("an embedding: evil next"), ["evil"]);
        assert_eq!(names("embedding:../../x"), ["../../x"]);
        assert!(names("myembedding:x").is_empty());
        assert!(names("a photo, https://example.com/embedding").is_empty());
        assert!(names("embedding:").is_empty());
    }

    #[test]
    fn model_extensions_are_case_insensitive() {
        assert!(has_model_extension("x.SafeTensors"));
        assert!(has_model_extension("a/b.gguf"));
        assert!(has_model_extension("a/b.pt2"));
        assert!(!has_model_extension("photo.png"));
    }
}
