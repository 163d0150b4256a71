//! The tenant-scoped key space: `<foundryPrefix>users/<userId>/{uploads,renders/<renderJob>,temp}/...`.
//!
//! Every key handed to S3 on a tenant's behalf is built here, and anything that could name a key
//! outside the user's prefix is refused before a request exists: `..` and `.` segments, empty
//! segments (`//`), absolute paths, backslashes, control characters, percent escapes, and text
//! that Unicode normalisation (NFKC) would change (a fullwidth `．．／` is not `../` to S3, but it
//! is to whatever later decodes or normalises the key, so it is refused too).

use unicode_normalization::UnicodeNormalization;

/// S3's limit on the length of a key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Object tag that marks files under `temp/`; the lifecycle rule expires objects carrying it
/// (S3 lifecycle filters cannot match a per-user prefix such as `users/*/temp/`).
pub const TEMP_TAG: (&str, &str) = ("videofoundry-lifecycle", "temp");

/// Why a key was refused. Carries no key text: keys are tenant data and may be hostile.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key is empty or a segment of it is (`a//b`, trailing `/`).
    #[error("storage key has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("storage key has a `.` or `..` segment")]
    DotSegment,
    /// The key starts with `/`.
    #[error("storage key is absolute")]
    Absolute,
    /// A backslash, which some clients treat as a separator.
    #[error("storage key contains a backslash")]
    Backslash,
    /// A control character (including NUL, CR, LF, DEL and the C1 range).
    #[error("storage key contains a control character")]
    ControlCharacter,
    /// A `%XX` escape, which some layer might decode into `/` or `.`.
    #[error("storage key contains a percent escape")]
    PercentEscape,
    /// Text that NFKC normalisation changes (fullwidth dots and slashes, ligatures, ...).
    #[error("storage key is not in Unicode normal form NFKC")]
    NotNormalized,
    /// Longer than S3 allows once the prefixes are added.
    #[error("storage key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    /// The key does not lie under the user's prefix.
    #[error("storage key is outside the user's prefix")]
    OutsideUserPrefix,
    /// The key is under the user's prefix but not in `uploads/`, `renders/<job>/` or `temp/`.
    #[error("storage key is not under uploads/, renders/<renderJob>/ or temp/")]
    UnknownArea,
    /// The user id is not a canonical lowercase UUID.
    #[error("user id is not a lowercase UUID")]
    InvalidUserId,
    /// The RenderJob name is not a Kubernetes object name.
    #[error("render job name is not a valid Kubernetes name")]
    InvalidRenderJob,
    /// The foundry prefix is not `segment/segment/` of lowercase names (or empty).
    #[error("foundry prefix is not a sequence of lowercase path segments ending in `/`")]
    InvalidFoundryPrefix,
}

/// Checks a relative key path (segments joined by `/`) against every escape the module refuses.
pub fn check_relative_path(path: &str) -> Result<(), KeyError> {
    if path.starts_with('/') {
        return Err(KeyError::Absolute);
    }
    if path.contains('\\') {
        return Err(KeyError::Backslash);
    }
    if path.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    if has_percent_escape(path) {
        return Err(KeyError::PercentEscape);
    }
    if !path.nfkc().eq(path.chars()) {
        return Err(KeyError::NotNormalized);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(KeyError::EmptySegment),
            "." | ".." => return Err(KeyError::DotSegment),
            _ => {}
        }
    }
    if path.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    Ok(())
}

fn has_percent_escape(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

fn is_lowercase_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| {
            group.len() == len
                && group
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// A Kubernetes object name (DNS-1123 subdomain), which can never be `.` or `..`.
fn is_object_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Checks a foundry prefix: empty, or lowercase segments each followed by `/` (as the CRD
/// pattern `^([a-z0-9][a-z0-9._-]*/)*$` says).
pub fn check_foundry_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let Some(body) = prefix.strip_suffix('/') else {
        return Err(KeyError::InvalidFoundryPrefix);
    };
    let valid = body.split('/').all(|segment| {
        let bytes = segment.as_bytes();
        !bytes.is_empty()
            && segment != "."
            && segment != ".."
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    });
    if valid {
        Ok(())
    } else {
        Err(KeyError::InvalidFoundryPrefix)
    }
}

/// A full object key that lies under one user's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key as S3 sees it (including the foundry prefix).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The part of a user's space a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area<'a> {
    /// `uploads/`: inputs the user uploaded.
    Uploads,
    /// `renders/<renderJob>/`: outputs of one render.
    Renders(&'a str),
    /// `temp/`: scratch files, expired by lifecycle.
    Temp,
}

/// One user's key space in one foundry. The only way to build an [`ObjectKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantScope {
    /// `<foundryPrefix>users/<userId>/`.
    user_prefix: String,
    /// `users/<userId>/`, the form RenderJob inputs are written in.
    relative_user_prefix: String,
}

impl TenantScope {
    /// The scope of `user_id` (a lowercase UUID) in a foundry whose keys start with
    /// `foundry_prefix` (empty for a dedicated bucket).
    pub fn new(foundry_prefix: &str, user_id: &str) -> Result<Self, KeyError> {
        check_foundry_prefix(foundry_prefix)?;
        if !is_lowercase_uuid(user_id) {
            return Err(KeyError::InvalidUserId);
        }
        let relative_user_prefix = format!("users/{user_id}/");
        Ok(Self {
            user_prefix: format!("{foundry_prefix}{relative_user_prefix}"),
            relative_user_prefix,
        })
    }

    /// `<foundryPrefix>users/<userId>/`.
    pub fn user_prefix(&self) -> &str {
        &self.user_prefix
    }

    /// The prefix of an area, ending in `/`.
    pub fn area_prefix(&self, area: Area<'_>) -> Result<String, KeyError> {
        Ok(match area {
            Area::Uploads => format!("{}uploads/", self.user_prefix),
            Area::Temp => format!("{}temp/", self.user_prefix),
            Area::Renders(job) => {
                if !is_object_name(job) {
                    return Err(KeyError::InvalidRenderJob);
                }
                format!("{}renders/{job}/", self.user_prefix)
            }
        })
    }

    /// The key of `path` (relative, `a/b.png`) in `area`.
    pub fn key(&self, area: Area<'_>, path: &str) -> Result<ObjectKey, KeyError> {
        check_relative_path(path)?;
        let key = format!("{}{path}", self.area_prefix(area)?);
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        Ok(ObjectKey(key))
    }

    /// Resolves a key as a RenderJob or the platform writes it, relative to the foundry prefix
    /// (`users/<userId>/uploads/clip.mp4`), refusing anything outside this user's areas.
    pub fn resolve(&self, key: &str) -> Result<ObjectKey, KeyError> {
        check_relative_path(key)?;
        let rest = key
            .strip_prefix(&self.relative_user_prefix)
            .ok_or(KeyError::OutsideUserPrefix)?;
        let (area, path) = rest.split_once('/').ok_or(KeyError::UnknownArea)?;
        match area {
            "uploads" => self.key(Area::Uploads, path),
            "temp" => self.key(Area::Temp, path),
            "renders" => {
                let (job, path) = path.split_once('/').ok_or(KeyError::UnknownArea)?;
                self.key(Area::Renders(job), path)
            }
            _ => Err(KeyError::UnknownArea),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "0b7e4a1c-51f2-4c0e-9d55-3f1b8f6a2c10";

    fn scope() -> TenantScope {
        TenantScope::new("studio-a/", USER).unwrap()
    }

    #[test]
    fn builds_keys_under_the_user_prefix() {
        let scope = scope();
        assert_eq!(
            scope.key(Area::Uploads, "clips/a.mp4").unwrap().as_str(),
            format!("studio-a/users/{USER}/uploads/clips/a.mp4")
        );
        assert_eq!(
            scope
                .key(Area::Renders("job-1"), "out.mp4")
                .unwrap()
                .as_str(),
            format!("studio-a/users/{USER}/renders/job-1/out.mp4")
        );
        assert_eq!(
            scope
                .resolve(&format!("users/{USER}/renders/job-1/frames/0001.png"))
                .unwrap()
                .as_str(),
            format!("studio-a/users/{USER}/renders/job-1/frames/0001.png")
        );
    }

    #[test]
    fn refuses_each_escape() {
        let scope = scope();
        let cases = [
            ("../x", KeyError::DotSegment),
            ("a/../../x", KeyError::DotSegment),
            ("./x", KeyError::DotSegment),
            ("a//b", KeyError::EmptySegment),
            ("a/", KeyError::EmptySegment),
            ("", KeyError::EmptySegment),
            ("/etc/passwd", KeyError::Absolute),
            ("a\\..\\b", KeyError::Backslash),
            ("a\0b", KeyError::ControlCharacter),
            ("a\nb", KeyError::ControlCharacter),
            ("a\u{85}b", KeyError::ControlCharacter),
            ("%2e%2e/x", KeyError::PercentEscape),
            ("a%2Fb", KeyError::PercentEscape),
            ("\u{ff0e}\u{ff0e}\u{ff0f}x", KeyError::NotNormalized),
            ("\u{2024}\u{2024}/x", KeyError::NotNormalized),
            ("e\u{301}.png", KeyError::NotNormalized),
        ];
        for (path, expected) in cases {
            assert_eq!(scope.key(Area::Uploads, path), Err(expected), "{path:?}");
        }
        assert_eq!(
            scope.resolve("users/00000000-0000-0000-0000-000000000000/uploads/a"),
            Err(KeyError::OutsideUserPrefix)
        );
        assert_eq!(
            scope.resolve(&format!("users/{USER}/secrets/a")),
            Err(KeyError::UnknownArea)
        );
        assert_eq!(
            scope.key(Area::Renders(".."), "a"),
            Err(KeyError::InvalidRenderJob)
        );
        assert_eq!(
            TenantScope::new("studio-a/", "../x"),
            Err(KeyError::InvalidUserId)
        );
        assert_eq!(
            TenantScope::new("../", USER),
            Err(KeyError::InvalidFoundryPrefix)
        );
    }

    #[test]
    fn a_lone_percent_sign_is_plain_text() {
        assert!(scope().key(Area::Uploads, "100%.png").is_ok());
    }
}
