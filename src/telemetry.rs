//! Logging: `tracing` with an env-filter, as text for people or JSON for
//! log collectors.
//!
//! Lines are formatted on the thread that logs them and written to stderr
//! by a thread of their own (tracing-appender's non-blocking writer), so a
//! call never waits for the write: a log reader that stalls (a full pipe to
//! a log shipper) slows nobody. Up to [`MAX_QUEUED_LINES`] lines wait for
//! that thread; past them a line is dropped and counted
//! (`groupd_log_lines_dropped_total`), never waited for.

use std::{
    fmt::{self as text, Write as _},
    io::IsTerminal as _,
    sync::OnceLock,
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span::Record,
};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    fmt,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::{Format, Json, JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
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
            .fmt_fields(SpanFields::default())
            .event_format(JsonLines::default())
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
/// takes that way, so that a name appears once with its last value
/// ([`JsonLines`] copies the object into each line as it is).
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

/// Lines as tracing-subscriber's JSON format writes them with the event's
/// fields flattened into the line and the current span's fields under
/// `span` (not also the list of every span the line is in, which repeats
/// it): `{"timestamp":…,"level":…,<fields>,"target":…,"span":{…,"name":…}}`.
///
/// The span's fields are copied from the JSON object [`SpanFields`] keeps
/// for the span. tracing-subscriber's formatter parses that object into a
/// map and writes the map again, for every line, and writes the rest
/// through serde_json's serializer: a GetGroup took 250,700 instructions
/// with it and takes 232,800 with this (callgrind). Written
/// here, the span's keys keep the order they were recorded in rather than
/// the map's alphabetical order; the object holds each key once either
/// way. Events of the `log` crate, whose target and location
/// tracing-subscriber reads from their fields, are written by its own
/// formatter.
#[derive(Debug)]
struct JsonLines {
    fallback: Format<Json, SystemTime>,
}

impl Default for JsonLines {
    fn default() -> Self {
        Self {
            fallback: fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> text::Result {
        let meta = event.metadata();
        if meta.fields().field("log.target").is_some() {
            return self.fallback.format_event(ctx, writer, event);
        }
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        let extensions = span.as_ref().map(|span| span.extensions());
        // The span's object without its closing brace.
        let stored = match &extensions {
            Some(extensions) => match extensions.get::<FormattedFields<N>>() {
                Some(fields) => match fields.fields.strip_suffix('}') {
                    Some(open) if open.starts_with('{') => Ok(Some(open)),
                    _ => Err(()),
                },
                // No fields written for the span: only its name.
                None => Ok(Some("{")),
            },
            None => Ok(None),
        };
        let Ok(stored) = stored else {
            // Not an object, which SpanFields never writes: the formatter's
            // own way, which says so in the line (once the span's
            // extensions are let go, for it reads them too).
            drop(extensions);
            return self.fallback.format_event(ctx, writer, event);
        };
        // RFC 3339 in UTC: nothing in it to escape.
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = EventFields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":\"")?;
        write_escaped(&mut writer, meta.target())?;
        writer.write_char('"')?;
        if let (Some(span), Some(open)) = (&span, stored) {
            writer.write_str(",\"span\":")?;
            writer.write_str(open)?;
            if open.len() > 1 {
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":\"")?;
            write_escaped(&mut writer, span.name())?;
            writer.write_str("\"}")?;
        }
        writer.write_str("}\n")
    }
}

/// An event's fields as `,"name":value` entries, valued as tracing-serde
/// values them (numbers and booleans as JSON, the rest as strings).
struct EventFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: text::Result,
}

impl EventFields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> text::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.writer.write_str(",\"")?;
                write_escaped(self.writer, field.name())?;
                self.writer.write_str("\":")?;
                value(self.writer)
            })();
        }
    }
}

impl Visit for EventFields<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own notation; NaN and the infinities are null.
        self.entry(field, |w| match serde_json::Number::from_f64(value) {
            Some(number) => write!(w, "{number}"),
            None => w.write_str("null"),
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write_escaped(w, value)?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn text::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// Writes `text` as the inside of a JSON string, escaped as serde_json
/// escapes it: the quote, the backslash and the control characters.
fn write_escaped(writer: &mut impl text::Write, text: &str) -> text::Result {
    Escaped(writer).write_str(text)
}

/// A writer that escapes what it is given as the inside of a JSON string.
struct Escaped<'a, W: text::Write>(&'a mut W);

impl<W: text::Write> text::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> text::Result {
        let mut start = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[start..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = at + 1;
        }
        self.0.write_str(&text[start..])
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

    /// The lines `log` writes under the JSON format, with `fields` as the
    /// span's fields formatter, as tracing-subscriber's JSON formatter
    /// writes them or (`ours`) as [`JsonLines`] does.
    fn raw_lines<N>(fields: N, ours: bool, log: impl FnOnce()) -> Vec<String>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let builder = SubscriberBuilder::default()
            .with_writer(lines.clone())
            .with_ansi(false);
        if ours {
            let subscriber = builder
                .fmt_fields(fields)
                .event_format(JsonLines::default())
                .finish();
            tracing::subscriber::with_default(subscriber, log);
        } else {
            let subscriber = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .fmt_fields(fields)
                .finish();
            tracing::subscriber::with_default(subscriber, log);
        }
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// Each line's JSON, without its timestamp.
    fn parsed(lines: &[String]) -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                let stamp = value.as_object_mut().unwrap().remove("timestamp");
                assert!(stamp.is_some_and(|s| s.is_string()), "{line}");
                value
            })
            .collect()
    }

    /// The JSON lines `log` writes under tracing-subscriber's JSON format,
    /// with `fields` as the span's fields formatter, without timestamps.
    fn json_lines<N>(fields: N, log: impl FnOnce()) -> Vec<serde_json::Value>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        parsed(&raw_lines(fields, false, log))
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

    /// Events of every kind of value, in and out of spans.
    fn events() {
        #[derive(Debug)]
        struct Thing {
            #[allow(dead_code)]
            name: &'static str,
        }
        let error = std::io::Error::other("disk \"full\"\n");
        tracing::info!("only a message");
        tracing::warn!(
            signed = -7_i64,
            unsigned = u64::MAX,
            yes = true,
            whole = 1.0_f64,
            tenth = 0.1_f64,
            big = 1e21_f64,
            tiny = 1.5e-7_f64,
            negative_zero = -0.0_f64,
            not_a_number = f64::NAN,
            infinite = f64::INFINITY,
            wide = i128::MAX,
            text = "quote\" backslash\\ newline\n tab\t bell\u{7} back\u{8} feed\u{c} nul\u{0} e\u{301} \u{1f980} del\u{7f}",
            debug = ?Thing { name: "a \"b\"" },
            display = %"shown \"as is\"",
            error = &error as &(dyn std::error::Error + 'static),
            "message with {} and \"quotes\"",
            "arguments",
        );
        tracing::error!(target: "a \"custom\" target", "elsewhere");
        tracing::info!(log.target = "pretend", log.line = 3_u64, "dotted names");

        let outer = tracing::info_span!("outer", kind = "o");
        let inner = tracing::info_span!("in\"ner", request_id = "r-1", principal = Empty);
        inner.record("principal", "user:\"q\"");
        outer.in_scope(|| {
            inner.in_scope(|| tracing::info!(code = "OK", elapsed_ms = 0.25, "call finished"));
            tracing::info!("in the outer span");
        });
        tracing::info!(parent: &inner, "with an explicit parent");
        tracing::info!(parent: None, "with no parent");
        let bare = tracing::info_span!("bare");
        bare.in_scope(|| tracing::info!(n = 1, "in a span without fields"));
    }

    #[test]
    fn json_lines_say_what_tracing_subscribers_json_format_says() {
        let ours = raw_lines(SpanFields::default(), true, events);
        let reference = raw_lines(format::JsonFields::default(), false, events);
        assert_eq!(ours.len(), 9, "{ours:#?}");
        assert_eq!(parsed(&ours), parsed(&reference));
        // Up to the span, byte for byte (past the timestamp): the same keys
        // in the same order, the same numbers and escapes.
        for (ours, reference) in ours.iter().zip(&reference) {
            let after_stamp = |line: &str| {
                let rest = line.strip_prefix("{\"timestamp\":\"").unwrap();
                let (stamp, rest) = rest.split_once('"').unwrap();
                assert_eq!(stamp.len(), "2026-01-01T00:00:00.000000Z".len(), "{line}");
                rest.split(",\"span\":").next().unwrap().to_owned()
            };
            assert_eq!(after_stamp(ours), after_stamp(reference));
        }
        let lines = parsed(&ours);
        assert_eq!(lines[1]["not_a_number"], serde_json::Value::Null);
        assert_eq!(lines[4]["span"]["name"], "in\"ner");
        assert_eq!(lines[4]["span"]["principal"], "user:\"q\"");
        assert_eq!(lines[5]["span"]["name"], "outer");
        assert_eq!(lines[7].get("span"), None);
        assert_eq!(lines[8]["span"], serde_json::json!({"name": "bare"}));
    }

    #[test]
    fn json_lines_give_the_spans_of_span_fields_as_tracing_subscriber_does() {
        let ours = parsed(&raw_lines(SpanFields::default(), true, spans));
        let reference = json_lines(format::JsonFields::default(), spans);
        assert_eq!(ours.len(), 5, "{ours:?}");
        assert_eq!(ours, reference);
    }
}
