//! Prometheus metrics: calls, their codes and their latency, per transport
//! and method, recorded once per call by the gRPC service (through which the
//! HTTP gateway also passes) and rendered for `/metrics`.

use std::{fmt, sync::Arc, time::Duration};

use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric as _, LabelValueEncoder,
        text::encode,
    },
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::Gauge,
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};
use tonic::Code;

use crate::{feed::BufferMetrics, index::IndexMetrics};

/// The Content-Type of `render()`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: from a cached read
/// (half a millisecond) to a large membership write on a busy database.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the buckets of writes per SQLite group commit: one write
/// alone up to the most one commit holds (64).
const GROUP_COMMIT_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// What SQLite's group commit (`store::group_commit`) counts: the
/// transactions it committed, how many writes each held, and the guarded
/// writes that were written and that had to be done again. Cheap to
/// clone (shared inside); the store records, `/metrics` shows.
#[derive(Debug, Clone)]
pub struct GroupCommitMetrics {
    commits: Counter,
    writes: Histogram,
    guarded_written: Counter,
    guarded_redone: Counter,
}

impl Default for GroupCommitMetrics {
    fn default() -> Self {
        Self {
            commits: Counter::default(),
            writes: Histogram::new(GROUP_COMMIT_BUCKETS),
            guarded_written: Counter::default(),
            guarded_redone: Counter::default(),
        }
    }
}

impl GroupCommitMetrics {
    /// Records one committed transaction that held `writes` writes.
    pub fn record(&self, writes: usize) {
        self.commits.inc();
        self.writes
            .observe(f64::from(u32::try_from(writes).unwrap_or(u32::MAX)));
    }

    /// The transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    /// Records a guarded write whose guard held (`true`) or that is to be
    /// done again (`false`).
    pub fn record_guarded(&self, written: bool) {
        if written {
            self.guarded_written.inc();
        } else {
            self.guarded_redone.inc();
        }
    }
}

/// Which face of the service a call came through.
///
/// The HTTP gateway marks its synthetic gRPC requests with `Transport::Http`
/// in their extensions; a request without the mark came over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A gRPC call.
    Grpc,
    /// A call through the HTTP/JSON gateway.
    Http,
}

impl Transport {
    /// The transport's label value: `grpc` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The labels of `groupd_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    transport: Transport,
    method: String,
    code: &'static str,
}

/// The labels of `groupd_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DurationLabels {
    transport: Transport,
    method: String,
}

/// The labels of `groupd_membership_answers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// The labels of `groupd_database_statements`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// The labels of `groupd_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The service's metrics registry. Cheap to clone (shared inside).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    statements: Family<MethodLabels, Counter>,
    inflight_bytes: Gauge,
    watch_streams: Gauge,
    feed_head: Gauge,
    watch_buffer: BufferMetrics,
    index: IndexMetrics,
}

impl Metrics {
    /// A registry holding every groupd metric, with no calls recorded yet.
    pub fn new() -> Self {
        Self::with_group_commits(GroupCommitMetrics::default())
    }

    /// Like [`Self::new`], showing the group commits of the store that
    /// recorded them in `group_commits` (see `Store::group_commit_metrics`).
    pub fn with_group_commits(group_commits: GroupCommitMetrics) -> Self {
        let mut registry = Registry::with_prefix("groupd");

        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Calls finished, by transport, method and gRPC status code",
            requests.clone(),
        );

        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register_with_unit(
            "request_duration",
            "Time from the start of a call to its response or error, by transport and method",
            Unit::Seconds,
            durations.clone(),
        );

        let statements = Family::<MethodLabels, Counter>::default();
        registry.register(
            "database_statements",
            "Statements calls sent to the database, by method (a transaction's BEGIN and COMMIT \
             included)",
            statements.clone(),
        );

        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels describe the running build",
            build_info,
        );

        let inflight_bytes = Gauge::default();
        registry.register(
            "inflight_bytes",
            "Bytes of request bodies and replies held now, counted against --max-inflight-bytes",
            inflight_bytes.clone(),
        );

        let watch_streams = Gauge::default();
        registry.register(
            "watch_streams",
            "WatchGroupChanges streams open now",
            watch_streams.clone(),
        );
        let feed_head = Gauge::default();
        registry.register(
            "change_feed_position",
            "The newest change feed position this replica has read",
            feed_head.clone(),
        );
        let watch_buffer = BufferMetrics::default();
        registry.register(
            "watch_buffer_changes",
            "Recent changes this server keeps in memory for its change streams (at most --watch-buffer)",
            watch_buffer.changes.clone(),
        );
        registry.register(
            "watch_buffer_bytes",
            "Bytes of memory the recent changes kept for the change streams hold (at most 8 MiB)",
            watch_buffer.bytes.clone(),
        );

        let index = IndexMetrics::default();
        registry.register(
            "membership_index_ready",
            "1 while CheckMembership and ListMemberGroups are answered from the membership index",
            index.ready.clone(),
        );
        registry.register(
            "membership_index_memberships",
            "Direct memberships the membership index holds",
            index.memberships.clone(),
        );
        registry.register(
            "membership_index_groups",
            "Groups the membership index holds",
            index.groups.clone(),
        );
        let answers = Family::<SourceLabels, Counter>::default();
        registry.register(
            "membership_answers",
            "CheckMembership and ListMemberGroups calls, by where they were answered from",
            answers.clone(),
        );
        // One statement each: a family's guard lives to the end of its
        // statement, and a second `get_or_create` within it would wait
        // for the first guard forever.
        let from_index = answers
            .get_or_create(&SourceLabels { source: "index" })
            .clone();
        let from_database = answers
            .get_or_create(&SourceLabels { source: "database" })
            .clone();
        let index = IndexMetrics {
            from_index,
            from_database,
            ..index
        };

        registry.register(
            "sqlite_group_commits",
            "SQLite transactions committed for a group of writes (zero on PostgreSQL)",
            group_commits.commits,
        );
        registry.register(
            "sqlite_group_commit_writes",
            "Writes each SQLite group commit made durable together",
            group_commits.writes,
        );
        registry.register(
            "sqlite_guarded_writes",
            "SQLite writes of a group's row made without reading in the group's transaction, \
             written because the group had not changed since read",
            group_commits.guarded_written,
        );
        registry.register(
            "sqlite_guarded_writes_redone",
            "SQLite writes of a group's row made without reading in the group's transaction, \
             done again the ordinary way (the group had changed since read, or the statement \
             holding them failed)",
            group_commits.guarded_redone,
        );

        registry.register_collector(Box::new(LogLinesDropped(crate::telemetry::dropped_lines)));

        Self {
            registry: Arc::new(registry),
            requests,
            durations,
            statements,
            inflight_bytes,
            watch_streams,
            feed_head,
            watch_buffer,
            index,
        }
    }

    /// Records one finished call.
    ///
    /// `method` must come from a fixed set (the RPC names, or `unmatched` for
    /// HTTP requests that matched no route): each distinct value is a new
    /// time series, kept for the life of the process.
    pub fn record(&self, transport: Transport, method: &str, code: Code, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                transport,
                method: method.to_owned(),
                code: code_label(code),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels {
                transport,
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the statements one call of `method` (from the same fixed
    /// set as in [`Self::record`]) sent to the database.
    pub fn record_statements(&self, method: &'static str, statements: u32) {
        self.statements
            .get_or_create(&MethodLabels { method })
            .inc_by(u64::from(statements));
    }

    /// The gauge of in-flight bytes, which the in-flight budget keeps up
    /// to date.
    pub fn inflight_bytes(&self) -> Gauge {
        self.inflight_bytes.clone()
    }

    /// The gauge of open WatchGroupChanges streams.
    pub fn watch_streams(&self) -> Gauge {
        self.watch_streams.clone()
    }

    /// The gauge of the newest change feed position read.
    pub fn feed_head(&self) -> Gauge {
        self.feed_head.clone()
    }

    /// The gauges of the change streams' buffer of recent changes.
    pub fn watch_buffer(&self) -> BufferMetrics {
        self.watch_buffer.clone()
    }

    /// The membership index's metrics.
    pub fn membership_index(&self) -> IndexMetrics {
        self.index.clone()
    }

    /// The metrics in the Prometheus/OpenMetrics text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail and our label values always
        // encode, so an error here would be a bug in the encoder; report it
        // rather than fail the scrape.
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `groupd_log_lines_dropped_total`: read from its source at each scrape,
/// as the log writer counts its drops itself.
#[derive(Debug)]
struct LogLinesDropped(fn() -> u64);

impl Collector for LogLinesDropped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counter = ConstCounter::new((self.0)());
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because too many were waiting to be written to stderr",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// The code's name as the gRPC specification spells it, e.g. `NOT_FOUND`.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Asserts that the rendering of `metrics` holds every line of
    /// `expected`, and returns its lines.
    fn assert_renders(metrics: &Metrics, expected: &[&str]) -> Vec<String> {
        let text = metrics.render();
        for line in expected {
            assert!(text.lines().any(|l| l == *line), "no {line:?} in:\n{text}");
        }
        text.lines().map(str::to_owned).collect()
    }

    /// Records one call of `method` that took `millis` milliseconds.
    fn record(metrics: &Metrics, transport: Transport, method: &str, code: Code, millis: u64) {
        metrics.record(transport, method, code, Duration::from_millis(millis));
    }

    #[test]
    fn a_call_is_counted_under_its_transport_method_and_code() {
        let metrics = Metrics::new();
        record(&metrics, Transport::Grpc, "GetGroup", Code::Ok, 3);
        record(&metrics, Transport::Http, "UpdateGroup", Code::NotFound, 40);

        let lines = assert_renders(
            &metrics,
            &[
                r#"groupd_requests_total{transport="grpc",method="GetGroup",code="OK"} 1"#,
                r#"groupd_requests_total{transport="http",method="UpdateGroup",code="NOT_FOUND"} 1"#,
            ],
        );
        let counters = lines
            .iter()
            .filter(|l| l.starts_with("groupd_requests_total{"));
        assert_eq!(counters.count(), 2, "{lines:#?}");
    }

    #[test]
    fn repeated_calls_add_up() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            record(&metrics, Transport::Grpc, "ListGroups", Code::Ok, 1);
        }
        assert_renders(
            &metrics,
            &[r#"groupd_requests_total{transport="grpc",method="ListGroups",code="OK"} 3"#],
        );
    }

    #[test]
    fn latency_is_observed_per_transport_and_method() {
        let metrics = Metrics::new();
        record(&metrics, Transport::Http, "GetGroup", Code::Ok, 3);
        record(&metrics, Transport::Http, "GetGroup", Code::Internal, 300);

        assert_renders(
            &metrics,
            &[
                "# TYPE groupd_request_duration_seconds histogram",
                "# UNIT groupd_request_duration_seconds seconds",
                r#"groupd_request_duration_seconds_count{transport="http",method="GetGroup"} 2"#,
                r#"groupd_request_duration_seconds_bucket{le="0.0025",transport="http",method="GetGroup"} 0"#,
                r#"groupd_request_duration_seconds_bucket{le="0.005",transport="http",method="GetGroup"} 1"#,
                r#"groupd_request_duration_seconds_bucket{le="0.5",transport="http",method="GetGroup"} 2"#,
                r#"groupd_request_duration_seconds_bucket{le="+Inf",transport="http",method="GetGroup"} 2"#,
            ],
        );
    }

    #[test]
    fn metrics_carry_help_and_the_build_version() {
        let metrics = Metrics::new();
        record(&metrics, Transport::Grpc, "GetGroup", Code::Ok, 1);
        let build_info = format!(
            r#"groupd_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        );
        let lines = assert_renders(
            &metrics,
            &[
                "# TYPE groupd_requests counter",
                "# TYPE groupd_build_info gauge",
                &build_info,
            ],
        );
        for name in [
            "groupd_requests",
            "groupd_request_duration_seconds",
            "groupd_build_info",
        ] {
            let help = format!("# HELP {name} ");
            assert!(
                lines.iter().any(|l| l.starts_with(&help)),
                "no help for {name}"
            );
        }
    }

    #[test]
    fn before_the_first_call_only_the_build_info_is_rendered() {
        let text = Metrics::new().render();
        assert!(!text.contains("groupd_request"), "{text}");
        assert!(text.contains("groupd_build_info{"), "{text}");
    }

    #[test]
    fn dropped_log_lines_are_read_from_their_source_at_each_scrape() {
        static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut registry = Registry::with_prefix("groupd");
        registry.register_collector(Box::new(LogLinesDropped(|| {
            DROPPED.load(std::sync::atomic::Ordering::Relaxed)
        })));
        let render = || {
            let mut text = String::new();
            encode(&mut text, &registry).unwrap();
            text
        };
        assert!(render().contains("\ngroupd_log_lines_dropped_total 0\n"));
        DROPPED.store(7, std::sync::atomic::Ordering::Relaxed);
        let text = render();
        assert!(
            text.contains("# TYPE groupd_log_lines_dropped counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\ngroupd_log_lines_dropped_total 7\n"),
            "{text}"
        );
        // The service's registry holds it, read from the log writer.
        assert!(
            Metrics::new()
                .render()
                .contains("\ngroupd_log_lines_dropped_total 0\n")
        );
    }

    #[test]
    fn the_rendering_ends_with_the_openmetrics_eof_marker() {
        let metrics = Metrics::new();
        assert!(metrics.render().ends_with("# EOF\n"));
        record(&metrics, Transport::Grpc, "GetGroup", Code::Ok, 1);
        assert!(metrics.render().ends_with("# EOF\n"));
    }

    #[test]
    fn clones_share_one_registry() {
        let metrics = Metrics::default();
        record(
            &metrics.clone(),
            Transport::Grpc,
            "DeleteGroup",
            Code::Aborted,
            0,
        );
        assert!(
            metrics
                .render()
                .contains(r#"{transport="grpc",method="DeleteGroup",code="ABORTED"} 1"#)
        );
    }

    #[test]
    fn every_code_has_its_own_upper_snake_case_name() {
        let names: Vec<&str> = (0..=16).map(|n| code_label(Code::from(n))).collect();
        assert_eq!(
            names,
            [
                "OK",
                "CANCELLED",
                "UNKNOWN",
                "INVALID_ARGUMENT",
                "DEADLINE_EXCEEDED",
                "NOT_FOUND",
                "ALREADY_EXISTS",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS",
                "UNAUTHENTICATED",
            ]
        );
        assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 17);
        for name in &names {
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn transports_render_in_lower_case() {
        assert_eq!(Transport::Grpc.as_str(), "grpc");
        assert_eq!(Transport::Http.as_str(), "http");
    }
}
