//! Logging: `tracing` with an env-filter, as text for people or JSON for
//! log collectors.
//!
//! Lines are formatted on the thread that logs them and written to stderr
//! by a thread of their own (tracing-appender's non-blocking writer), so a
//! call never waits for the write: a log reader that stalls (a full pipe to
//! a log shipper) slows nobody. Up to [`MAX_QUEUED_LINES`] lines wait for
//! that thread; past them a line is dropped and counted
//! (`groupd_log_lines_dropped_total`), never waited for.

use std::{io::IsTerminal as _, sync::OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Most lines waiting to be written. A line is a few hundred bytes (at
/// most about 3 KiB: an error message and a cause are clipped), so the
/// queue holds at most a few MiB, inside the memory budget.
pub const MAX_QUEUED_LINES: usize = 4096;

/// Bytes the writer thread gathers before a write to stderr; it also
/// writes whenever it has taken every queued line.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The dropped-line count of the installed writer.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the global subscriber. `filter` uses env-filter syntax
/// (`info,groupd=debug`). Keep the returned guard until the process ends:
/// dropping it writes the lines still queued.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<WorkerGuard> {
    let filter = EnvFilter::try_new(filter)?;
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(MAX_QUEUED_LINES)
        .lossy(true)
        .thread_name("groupd-log")
        .finish(std::io::BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            stderr,
        ));
    let dropped = writer.error_counter();
    let builder = fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, not in files or
        // collected logs.
        .with_ansi(ansi)
        .with_writer(writer)
        // When stderr breaks (a log shipper died), tracing-subscriber would
        // report it with eprintln!, which panics on the same broken stderr
        // and takes the server down. Losing log lines is the lesser harm.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The call's span under `span`; not also the list of every
            // span the line is in, which repeats it.
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    // `try_init` succeeds once per process, so this is the only set.
    let _ = DROPPED.set(dropped);
    Ok(guard)
}

/// Log lines dropped because [`MAX_QUEUED_LINES`] were waiting to be
/// written (0 before [`init`], and in processes that never call it).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| {
        u64::try_from(counter.dropped_lines()).unwrap_or(u64::MAX)
    })
}
