//! Logging: `tracing` with text or JSON output and an env-filter.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The directive that silences vaultrs' own error log.
const QUIET_VAULTRS: &str = "vaultrs::api=off";

/// A log filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {source}")]
pub struct TelemetryError {
    filter: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber. Calling it twice keeps the first one (tests may race).
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let mut env_filter = EnvFilter::try_new(filter).map_err(|source| TelemetryError {
        filter: filter.to_owned(),
        source,
    })?;
    if !filter.contains("vaultrs") {
        // vaultrs logs every error answer at ERROR, even the expected 404 of a key not created
        // yet; the operator classifies each answer itself and reports real failures in status
        // and Events. A filter that names vaultrs gets its messages back.
        env_filter =
            env_filter.add_directive(QUIET_VAULTRS.parse().map_err(|source| TelemetryError {
                filter: QUIET_VAULTRS.to_owned(),
                source,
            })?);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
