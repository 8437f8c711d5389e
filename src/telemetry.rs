//! Logging: `tracing` with an env-filter, as text for people or JSON for
//! log collectors.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber. `filter` uses env-filter syntax
/// (`info,groupd=debug`).
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // When stderr breaks (a log shipper died), tracing-subscriber would
        // report it with eprintln!, which panics on the same broken stderr
        // and takes the server down. Losing log lines is the lesser harm.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))
}
