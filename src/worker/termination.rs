//! The container's termination message (`/dev/termination-log`, read by the kubelet, at most
//! 4 KiB), which the operator copies into the RenderJob's status: one line `Reason: message` on
//! failure, a JSON summary of the outputs on success. Both are cut to fit, on a character
//! boundary; the summary drops whole entries and says how many.

use std::path::Path;

use serde::Serialize;

use super::error::WorkerError;
use super::outputs::Uploaded;

/// The kubelet's limit on a termination message.
pub const MAX_BYTES: usize = 4096;

/// The success summary.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Uploaded outputs (possibly cut).
    pub outputs: Vec<Uploaded>,
    /// Outputs left out to fit the limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Models verified against their pins.
    pub models_verified: usize,
    /// Inputs downloaded.
    pub inputs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The failure line: `Reason: message`, on one line, within the limit.
pub fn failure_message(error: &WorkerError) -> String {
    let line = format!("{}: {error}", error.reason());
    let line = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>();
    cut(&line, MAX_BYTES)
}

/// The success summary as JSON within the limit: outputs are dropped from the end until it fits.
pub fn success_message(mut summary: Summary) -> String {
    let text = serde_json::to_string(&summary).unwrap_or_default();
    if text.len() <= MAX_BYTES {
        return text;
    }
    // Estimate how many entries fit from their sizes, then confirm (the omitted count's digits
    // can shift the total by a few bytes).
    let all = std::mem::take(&mut summary.outputs);
    summary.omitted += all.len();
    let mut budget =
        MAX_BYTES.saturating_sub(serde_json::to_string(&summary).map_or(0, |t| t.len()));
    let mut keep = 0;
    for output in &all {
        let size = serde_json::to_string(output).map_or(usize::MAX, |t| t.len() + 1);
        if size > budget {
            break;
        }
        budget -= size;
        keep += 1;
    }
    summary.omitted -= all.len();
    summary.outputs = all;
    loop {
        let dropped = summary.outputs.len() - keep;
        summary.outputs.truncate(keep);
        summary.omitted += dropped;
        let text = serde_json::to_string(&summary).unwrap_or_default();
        if text.len() <= MAX_BYTES || keep == 0 {
            return cut(&text, MAX_BYTES);
        }
        keep -= 1;
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Writes the message; a failure to write is logged, never fatal (the log has the reason too).
pub fn write(path: &Path, message: &str) {
    if let Err(error) = std::fs::write(path, message) {
        tracing::warn!(path = %path.display(), %error, "cannot write the termination message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uploaded(i: usize, name_len: usize) -> Uploaded {
        Uploaded {
            name: format!("{i:04}-{}", "é".repeat(name_len)),
            file: None,
            size: i as u64,
            sha256: "a".repeat(64),
        }
    }

    #[test]
    fn a_failure_is_one_line_with_its_reason() {
        let error = WorkerError::Render("ComfyUI failed at node 3 (KSampler):\nboom".to_owned());
        assert_eq!(
            failure_message(&error),
            "RenderFailed: ComfyUI failed at node 3 (KSampler): boom"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn messages_always_fit(count in 0usize..400, name_len in 0usize..300, noise in ".{0,6000}") {
            let summary = Summary { outputs: (0..count).map(|i| uploaded(i, name_len)).collect(), omitted: 0, models_verified: 1, inputs: 2 };
            let text = success_message(summary);
            prop_assert!(text.len() <= MAX_BYTES);
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            let kept = parsed["outputs"].as_array().unwrap().len();
            prop_assert_eq!(kept + parsed["omitted"].as_u64().unwrap_or(0) as usize, count);
            let failure = failure_message(&WorkerError::Render(noise));
            prop_assert!(failure.len() <= MAX_BYTES && !failure.contains('\n'));
        }
    }
}
