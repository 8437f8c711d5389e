//! Logging: `tracing` with an env-filter, as text for people or JSON for
//! log collectors.
//!
//! Lines are formatted on the thread that logs them and written to stderr
//! by a thread of their own (tracing-appender's non-blocking writer), so a
//! call never waits for the write: a log reader that stalls (a full pipe to
//! a log shipper) slows nobody. Up to [`MAX_QUEUED_LINES`] lines wait for
//! that thread; past them a line is dropped and counted
//! (`groupd_log_lines_dropped_total`), never waited for.

use std::{fmt as text, io::IsTerminal as _, sync::OnceLock};

use tracing::{
    field::{Field, Visit},
    span::Record,
};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    fmt,
    fmt::{
        FormatFields, FormattedFields,
        format::{JsonFields, Writer},
    },
};

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
            .fmt_fields(SpanFields::default())
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    // `try_init` succeeds once per process, so this is the only set.
    let _ = DROPPED.set(dropped);
    Ok(guard)
}

/// A span's fields as JSON, exactly as tracing-subscriber's `JsonFields`
/// writes them, but for a field recorded after the span was made (a
/// call's `principal`, known once the caller is authenticated): it is
/// added to the end of the object already written. `JsonFields` parses
/// the object and writes it again, which cost about 8,000 instructions
/// of every call, 3% of a GetGroup. A field recorded a second time still
/// takes that way, so that a name appears once with its last value; the
/// line's `span` object is the same either way (its keys are read back
/// into a map when a line is written).
#[derive(Debug, Default)]
struct SpanFields(JsonFields);

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> text::Result {
        self.0.format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> text::Result {
        let mut names = Names(Vec::new());
        fields.record(&mut names);
        let already = |name: &str| {
            // A name of an `r#` field is written without the prefix; such
            // fields take the long way rather than be matched here.
            name.starts_with("r#") || current.fields.contains(&format!("\"{name}\":"))
        };
        if current.fields.len() > 2 && !names.0.iter().any(|name| already(name)) {
            let mut added = String::new();
            self.0.format_fields(Writer::new(&mut added), fields)?;
            if let (Some(rest), true) = (added.strip_prefix('{'), current.fields.ends_with('}')) {
                if rest != "}" {
                    current.fields.pop();
                    current.fields.push(',');
                    current.fields.push_str(rest);
                }
                return Ok(());
            }
        }
        // The fields written so far, merged with the new ones by
        // `JsonFields` (an empty object is replaced by the new fields).
        let mut merged = FormattedFields::<JsonFields>::new(std::mem::take(&mut current.fields));
        let result = self.0.add_fields(&mut merged, fields);
        current.fields = merged.fields;
        result
    }
}

/// The names of the fields a record holds values for.
struct Names(Vec<&'static str>);

impl Visit for Names {
    fn record_debug(&mut self, field: &Field, _: &dyn text::Debug) {
        self.0.push(field.name());
    }
}

/// Log lines dropped because [`MAX_QUEUED_LINES`] were waiting to be
/// written (0 before [`init`], and in processes that never call it).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| {
        u64::try_from(counter.dropped_lines()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::field::Empty;
    use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder, format};

    use super::*;

    /// The lines a subscriber writes, kept for the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The JSON lines `log` writes under the JSON format, with `fields`
    /// as the span's fields formatter.
    fn json_lines<N>(fields: N, log: impl FnOnce()) -> Vec<serde_json::Value>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let subscriber = SubscriberBuilder::default()
            .with_writer(lines.clone())
            .with_ansi(false)
            .without_time()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Spans recorded into in every way the fast path must tell apart.
    fn spans() {
        let call = tracing::info_span!("call", method = "GetGroup", principal = Empty);
        call.record("principal", "user:ann");
        call.in_scope(|| tracing::info!(code = 0, "recorded once"));

        let twice = tracing::info_span!("call", method = "GetGroup", principal = Empty);
        twice.record("principal", "user:ann");
        twice.record("principal", "user:bob");
        twice.in_scope(|| tracing::info!("recorded twice"));

        let lookalike = tracing::info_span!(
            "call",
            method = "a \"principal\": in a value",
            principal = Empty
        );
        lookalike.record("principal", "user:cy");
        lookalike.in_scope(|| tracing::info!("a value that looks like a key"));

        let empty = tracing::info_span!("call", principal = Empty, code = Empty);
        empty.record("principal", "user:dee");
        empty.record("code", 5);
        empty.in_scope(|| tracing::info!("every field recorded later"));

        let none = tracing::info_span!("call", method = "ListGroups", principal = Empty);
        none.in_scope(|| tracing::info!("nothing recorded"));
    }

    #[test]
    fn span_fields_recorded_later_read_as_tracing_subscribers_json_writes_them() {
        let ours = json_lines(SpanFields::default(), spans);
        let reference = json_lines(format::JsonFields::default(), spans);
        assert_eq!(ours.len(), 5, "{ours:?}");
        assert_eq!(ours, reference);
        assert_eq!(ours[0]["span"]["principal"], "user:ann");
        assert_eq!(ours[1]["span"]["principal"], "user:bob");
        assert_eq!(ours[2]["span"]["principal"], "user:cy");
        assert_eq!(ours[3]["span"]["code"], 5);
        assert_eq!(ours[4]["span"].get("principal"), None);
    }
}
