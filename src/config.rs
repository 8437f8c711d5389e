//! Command line and environment configuration. Every flag has an environment
//! twin (`--grpc-addr` / `GROUPD_GRPC_ADDR`), so the same binary is configured
//! by flags on a laptop and by environment in Kubernetes.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::{Limits, filter::FilterBudget};

mod auth;
mod dev;

pub use auth::{AuthMode, AuthSettings, JwksLocation, is_loopback, parse_http_url};
pub use dev::{DevKeysArgs, DevTokenArgs};

/// groupd: a gRPC group-management service.
#[derive(Debug, Clone, Parser)]
#[command(name = "groupd", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings shared by every command.
    #[command(flatten)]
    pub settings: Settings,
}

/// The commands of the `groupd` binary.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve gRPC and HTTP/JSON (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document of the HTTP/JSON API and exit.
    Openapi,
    /// For development only: write a fresh signing key and a JWKS holding
    /// its public half, for `--jwt-jwks-file` and `groupd dev-token`.
    DevKeys(DevKeysArgs),
    /// For development only: print a JWT signed with a key of
    /// `groupd dev-keys`.
    DevToken(DevTokenArgs),
}

/// The output format of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting of the service, each a flag with an environment twin.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Database URL: `sqlite://PATH` (created when missing) or
    /// `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "GROUPD_DATABASE_URL",
        default_value = "sqlite://groupd.db",
        // The URL may hold a password: never echo it in --help.
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// Address the gRPC server listens on; port 0 picks a free port.
    #[arg(
        long,
        env = "GROUPD_GRPC_ADDR",
        default_value = "0.0.0.0:50051",
        global = true
    )]
    pub grpc_addr: SocketAddr,

    /// Address the HTTP server (HTTP/JSON API, `/metrics`,
    /// `/openapi.json`) listens on; port 0 picks a free port.
    #[arg(
        long,
        env = "GROUPD_HTTP_ADDR",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub http_addr: SocketAddr,

    /// Log format.
    #[arg(
        long,
        env = "GROUPD_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter in `tracing` env-filter syntax, e.g. `info,groupd=debug`.
    #[arg(long, env = "GROUPD_LOG", default_value = "info", value_parser = parse_log_filter, global = true)]
    pub log_filter: String,

    /// Do not apply migrations when `serve` starts (run `groupd migrate`
    /// separately, e.g. as a Kubernetes Job).
    #[arg(long, env = "GROUPD_SKIP_MIGRATIONS", global = true)]
    pub skip_migrations: bool,

    /// Maximum number of pooled database connections (at least 1).
    #[arg(long, env = "GROUPD_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub db_max_connections: u32,

    /// How long opening a new database connection may take.
    #[arg(long, env = "GROUPD_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration, global = true)]
    pub db_connect_timeout: Duration,

    /// How long a call waits for a free pooled connection before it is
    /// answered UNAVAILABLE.
    #[arg(long, env = "GROUPD_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// The longest one SQL statement may run: PostgreSQL's
    /// `statement_timeout` (the statement is cancelled and the call answered
    /// DEADLINE_EXCEEDED); on SQLite, the longest a statement waits for
    /// another writer's lock (busy timeout).
    #[arg(long, env = "GROUPD_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration, global = true)]
    pub db_statement_timeout: Duration,

    /// How often the database is pinged; health is NOT_SERVING while it
    /// does not answer.
    #[arg(long, env = "GROUPD_DB_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_positive_duration, global = true)]
    pub db_health_interval: Duration,

    /// The longest any call may run; a client's shorter `grpc-timeout`
    /// wins. A call past its deadline is answered DEADLINE_EXCEEDED, its
    /// transaction rolled back, and a statement of it still running in the
    /// database stopped.
    #[arg(long, env = "GROUPD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration, global = true)]
    pub request_timeout: Duration,

    /// The longest a client may take to send a request's headers, on both
    /// ports: a new connection must send its HTTP/2 preface (or its first
    /// HTTP/1.1 request's headers) within it, and an HTTP/1.1 connection
    /// kept alive is closed when its next request's headers do not arrive
    /// within it.
    #[arg(long, env = "GROUPD_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration, global = true)]
    pub http_header_timeout: Duration,

    /// The longest a request body, or a gRPC request message, may take to
    /// arrive, bounded by the call's deadline. Beyond it the request is
    /// answered DEADLINE_EXCEEDED (HTTP 408) and what it sent is freed.
    #[arg(long, env = "GROUPD_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration, global = true)]
    pub body_read_timeout: Duration,

    /// How long a connection may stay open with no call in flight before it
    /// is closed (HTTP/2: with GOAWAY, so that clients reconnect cleanly).
    #[arg(long, env = "GROUPD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration, global = true)]
    pub idle_timeout: Duration,

    /// Most connections each port holds open at once. Beyond it, new
    /// connections wait in the listen queue until one closes. Both ports'
    /// together must fit in the process's file limit.
    #[arg(long, env = "GROUPD_MAX_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Most bytes of request bodies and replies held in memory at once,
    /// over both ports. A request that would go beyond it is answered
    /// RESOURCE_EXHAUSTED (HTTP 503) without the rest of it being read. At
    /// least twice `--max-message-bytes`.
    #[arg(long, env = "GROUPD_MAX_INFLIGHT_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = parse_message_bytes, global = true)]
    pub max_inflight_bytes: usize,

    /// How long, after a shutdown signal, health reports NOT_SERVING before
    /// the server stops accepting calls (lets load balancers drain).
    #[arg(long, env = "GROUPD_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration, global = true)]
    pub shutdown_delay: Duration,

    /// How long in-flight calls may run once the server has stopped
    /// accepting; calls still running then are cut. Kubernetes'
    /// `terminationGracePeriodSeconds` must exceed the shutdown delay plus
    /// this.
    #[arg(long, env = "GROUPD_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration, global = true)]
    pub drain_timeout: Duration,

    /// Most principals one AddGroupMembers, RemoveGroupMembers or
    /// UpdateGroup request may carry.
    #[arg(long, env = "GROUPD_MAX_MEMBERS_PER_REQUEST", default_value_t = 10_000, value_parser = parse_positive_count, global = true)]
    pub max_members_per_request: usize,

    /// Most direct members a group may have.
    #[arg(long, env = "GROUPD_MAX_MEMBERS_PER_GROUP", default_value_t = 100_000, value_parser = parse_positive_count, global = true)]
    pub max_members_per_group: usize,

    /// Largest gRPC message, or HTTP/JSON body, accepted, in bytes (at
    /// least 1024).
    #[arg(long, env = "GROUPD_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = parse_message_bytes, global = true)]
    pub max_message_bytes: usize,

    /// Most comparisons one ListGroups filter may hold.
    #[arg(long, env = "GROUPD_MAX_FILTER_TERMS", default_value_t = FilterBudget::DEFAULT.terms, value_parser = parse_positive_count, global = true)]
    pub max_filter_terms: usize,

    /// Most negations (`NOT`, `-`, `!=`) one ListGroups filter may hold.
    #[arg(long, env = "GROUPD_MAX_FILTER_NEGATIONS", default_value_t = FilterBudget::DEFAULT.negations, value_parser = parse_count, global = true)]
    pub max_filter_negations: usize,

    /// Most substring matches (`field:value`) one ListGroups filter may
    /// hold.
    #[arg(long, env = "GROUPD_MAX_FILTER_SUBSTRING_MATCHES", default_value_t = FilterBudget::DEFAULT.substring_matches, value_parser = parse_count, global = true)]
    pub max_filter_substring_matches: usize,

    /// Most ListGroups calls with a filter running at once, each holding a
    /// pooled connection. Beyond it a call waits up to
    /// `--db-acquire-timeout` (within its deadline), then is answered
    /// RESOURCE_EXHAUSTED. Default: a third of the pool (at least 1).
    #[arg(long, env = "GROUPD_MAX_FILTERED_LISTINGS", value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub max_filtered_listings: Option<u32>,

    /// Most walks up the group hierarchy running at once (CheckMembership,
    /// transitive ListMemberGroups), each holding a pooled connection.
    /// Together with `--max-filtered-listings` below
    /// `--db-max-connections`, so that other calls always find one. Beyond
    /// it a call waits up to `--db-acquire-timeout`, then is answered
    /// RESOURCE_EXHAUSTED. Default: a third of the pool (at least 1).
    #[arg(long, env = "GROUPD_MAX_MEMBERSHIP_WALKS", value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub max_membership_walks: Option<u32>,

    /// How long the change feed (WatchGroupChanges) keeps a change; a
    /// stream from an older cursor is refused with OUT_OF_RANGE
    /// (`CURSOR_EXPIRED`). The per-group history (ListGroupChanges) is
    /// kept regardless.
    #[arg(long, env = "GROUPD_CHANGE_RETENTION", default_value = "7d", value_parser = parse_positive_duration, global = true)]
    pub change_retention: Duration,

    /// How often the change feed is read when nothing announced a change:
    /// the backstop for a notification lost between replicas.
    #[arg(long, env = "GROUPD_CHANGE_POLL_INTERVAL", default_value = "1s", value_parser = parse_positive_duration, global = true)]
    pub change_poll_interval: Duration,

    /// Most WatchGroupChanges streams open at once on this server; beyond
    /// it a new stream is refused with RESOURCE_EXHAUSTED
    /// (`TOO_MANY_WATCHES`).
    #[arg(long, env = "GROUPD_MAX_WATCH_STREAMS", default_value_t = 1000, value_parser = parse_positive_count, global = true)]
    pub max_watch_streams: usize,

    /// Most changes this server keeps in memory for its streams (and at
    /// most 8 MiB of memory held by them). A stream that falls further
    /// behind the newest change is ended with RESOURCE_EXHAUSTED (`WATCH_TOO_SLOW`)
    /// and resumes from its cursor.
    #[arg(long, env = "GROUPD_WATCH_BUFFER", default_value_t = 16_384, value_parser = parse_positive_count, global = true)]
    pub watch_buffer: usize,

    /// Answer CheckMembership and ListMemberGroups from an in-memory index
    /// of every membership and `member_of` edge, kept up to date from the
    /// change feed (`true`), or from the database on every call (`false`).
    #[arg(long, env = "GROUPD_MEMBERSHIP_INDEX", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", global = true)]
    pub membership_index: bool,

    /// Certificate chain (PEM) both ports serve TLS with, the server's own
    /// certificate first. With `--tls-key`; without either, both ports
    /// speak plaintext. Reloaded when the file changes.
    #[arg(long, env = "GROUPD_TLS_CERT", value_name = "PEM", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    /// Reloaded when the file changes.
    #[arg(long, env = "GROUPD_TLS_KEY", value_name = "PEM", global = true)]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM bundle) client certificates are verified
    /// against. A client certificate is then optional at the TLS level: one
    /// that does not verify is refused at the handshake; a verified one
    /// names the caller (its SPIFFE URI SAN, else its first DNS SAN, else
    /// its subject's CN) to authentication, which decides whether a
    /// connection without one may call. Needs `--tls-cert`. Reloaded when
    /// the file changes.
    #[arg(long, env = "GROUPD_TLS_CLIENT_CA", value_name = "PEM", global = true)]
    pub tls_client_ca: Option<PathBuf>,

    /// How often the TLS files are read again; a change is served to new
    /// connections, and a file that does not load keeps the last good
    /// configuration (with a warning).
    #[arg(long, env = "GROUPD_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_positive_duration, global = true)]
    pub tls_reload_interval: Duration,

    /// Address of a plaintext gRPC port serving only `grpc.health.v1` (the
    /// same health as the gRPC port), for probes that cannot speak TLS,
    /// such as Kubernetes' gRPC probes. None by default.
    #[arg(long, env = "GROUPD_PROBE_ADDR", global = true)]
    pub probe_addr: Option<SocketAddr>,

    /// How callers authenticate (`--auth` and the flags of each mode).
    #[command(flatten)]
    pub auth: AuthSettings,
}

impl Settings {
    /// Parses settings from command-line arguments (the first is the program
    /// name) and the environment, as the binary does.
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let settings = Cli::try_parse_from(args)?.settings;
        settings.check()?;
        Ok(settings)
    }

    /// Checks what one flag's parser cannot: the database URL's scheme, and
    /// that the two servers do not ask for the same address.
    pub fn check(&self) -> Result<(), clap::Error> {
        use clap::{CommandFactory as _, error::ErrorKind};
        let invalid = |kind, message: String| Err(Cli::command().error(kind, message));
        match url::Url::parse(&self.database_url) {
            Ok(url) if matches!(url.scheme(), "sqlite" | "postgres" | "postgresql") => {}
            Ok(url) => {
                return invalid(
                    ErrorKind::ValueValidation,
                    format!(
                        "invalid value for '--database-url <DATABASE_URL>': the scheme `{}` is not \
                         supported; use sqlite:// or postgres://",
                        url.scheme()
                    ),
                );
            }
            // The error names the problem but the URL is not echoed: it may
            // hold a password.
            Err(error) => {
                return invalid(
                    ErrorKind::ValueValidation,
                    format!("invalid value for '--database-url <DATABASE_URL>': {error}"),
                );
            }
        }
        if self.max_inflight_bytes < 2 * self.max_message_bytes {
            return invalid(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{}' for '--max-inflight-bytes': it must be at least twice \
                     --max-message-bytes ({}), so that a largest message fits beside the others",
                    self.max_inflight_bytes, self.max_message_bytes
                ),
            );
        }
        if let Err(message) =
            crate::serve::limits::check_file_limit(self.max_connections, self.db_max_connections)
        {
            return invalid(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{}' for '--max-connections': {message}",
                    self.max_connections
                ),
            );
        }
        if let Err(problem) = self.check_expensive_reads() {
            return invalid(ErrorKind::ArgumentConflict, problem);
        }
        if self.grpc_addr == self.http_addr && self.grpc_addr.port() != 0 {
            return invalid(
                ErrorKind::ArgumentConflict,
                format!(
                    "'--grpc-addr' and '--http-addr' are both {}; each server needs its own port",
                    self.grpc_addr
                ),
            );
        }
        if let Err(problem) = self.limits().check() {
            return invalid(ErrorKind::ArgumentConflict, problem);
        }
        if let Err(problem) = self.check_tls() {
            return invalid(ErrorKind::ArgumentConflict, problem);
        }
        if let Err(problem) = self.auth.check() {
            return invalid(ErrorKind::ArgumentConflict, problem);
        }
        if self.auth.has(AuthMode::Mtls) && self.tls_client_ca.is_none() {
            return invalid(
                ErrorKind::ArgumentConflict,
                "'--auth mtls' needs '--tls-client-ca' (and TLS): without a CA to verify them \
                 against, no client certificate names a caller"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Checks that the TLS files come as a certificate and its key, a
    /// client CA only with them, and that the probe port is a port of its
    /// own.
    fn check_tls(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err("'--tls-cert' is set without '--tls-key': TLS needs both".to_owned());
            }
            (None, Some(_)) => {
                return Err("'--tls-key' is set without '--tls-cert': TLS needs both".to_owned());
            }
            _ => {}
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err(
                "'--tls-client-ca' needs '--tls-cert' and '--tls-key': client certificates \
                 are only asked for over TLS"
                    .to_owned(),
            );
        }
        if let Some(probe) = self.probe_addr
            && probe.port() != 0
            && (probe == self.grpc_addr || probe == self.http_addr)
        {
            return Err(format!(
                "'--probe-addr' is {probe}, the address of another server; the probe port \
                 needs its own"
            ));
        }
        Ok(())
    }

    /// The TLS files, when both ports serve TLS.
    pub fn tls_files(&self) -> Option<crate::serve::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::serve::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// Logs the effective configuration as two lines, the service's and
    /// authentication's, the database password redacted.
    pub fn log_effective(&self) {
        tracing::info!(
            database_url = %redact_database_url(&self.database_url),
            grpc_addr = %self.grpc_addr,
            http_addr = %self.http_addr,
            log_format = ?self.log_format,
            log_filter = %self.log_filter,
            skip_migrations = self.skip_migrations,
            db_max_connections = self.db_max_connections,
            db_connect_timeout = ?self.db_connect_timeout,
            db_acquire_timeout = ?self.db_acquire_timeout,
            db_statement_timeout = ?self.db_statement_timeout,
            db_health_interval = ?self.db_health_interval,
            request_timeout = ?self.request_timeout,
            http_header_timeout = ?self.http_header_timeout,
            body_read_timeout = ?self.body_read_timeout,
            idle_timeout = ?self.idle_timeout,
            max_connections = self.max_connections,
            max_inflight_bytes = self.max_inflight_bytes,
            shutdown_delay = ?self.shutdown_delay,
            drain_timeout = ?self.drain_timeout,
            max_members_per_request = self.max_members_per_request,
            max_members_per_group = self.max_members_per_group,
            max_message_bytes = self.max_message_bytes,
            max_filter_terms = self.max_filter_terms,
            max_filter_negations = self.max_filter_negations,
            max_filter_substring_matches = self.max_filter_substring_matches,
            max_filtered_listings = self.filtered_listings(),
            max_membership_walks = self.membership_walks(),
            change_retention = ?self.change_retention,
            change_poll_interval = ?self.change_poll_interval,
            max_watch_streams = self.max_watch_streams,
            watch_buffer = self.watch_buffer,
            membership_index = self.membership_index,
            tls_cert = ?self.tls_cert,
            tls_key = ?self.tls_key,
            tls_client_ca = ?self.tls_client_ca,
            tls_reload_interval = ?self.tls_reload_interval,
            probe_addr = ?self.probe_addr,
            "effective configuration"
        );
        self.auth.log_effective();
    }

    /// Checks that the slots of expensive reads leave pooled connections
    /// for every other call: each kind below the pool, both together too
    /// once the pool has room for that (three connections or more).
    fn check_expensive_reads(&self) -> Result<(), String> {
        let pool = self.db_max_connections;
        let listings = self.filtered_listings();
        let walks = self.membership_walks();
        for (flag, slots) in [
            ("--max-filtered-listings", listings),
            ("--max-membership-walks", walks),
        ] {
            if pool > 1 && slots >= pool {
                return Err(format!(
                    "'{flag}' is {slots}, not below '--db-max-connections' ({pool}): these \
                     calls could hold every pooled connection"
                ));
            }
        }
        if pool > 2 && listings + walks >= pool {
            return Err(format!(
                "'--max-filtered-listings' ({listings}) and '--max-membership-walks' ({walks}) \
                 together are not below '--db-max-connections' ({pool}): these calls could \
                 hold every pooled connection"
            ));
        }
        Ok(())
    }

    /// The budget of one ListGroups filter.
    pub fn filter_budget(&self) -> FilterBudget {
        FilterBudget {
            terms: self.max_filter_terms,
            negations: self.max_filter_negations,
            substring_matches: self.max_filter_substring_matches,
        }
    }

    /// How many filtered listings may run at once: `--max-filtered-listings`,
    /// else a third of the pool, at least one. With a pool of one or two
    /// connections there is no room to keep free, and the expensive reads
    /// share it with the other calls.
    pub fn filtered_listings(&self) -> u32 {
        self.max_filtered_listings
            .unwrap_or((self.db_max_connections / 3).max(1))
    }

    /// How many membership walks may run at once: `--max-membership-walks`,
    /// else a third of the pool, at least one.
    pub fn membership_walks(&self) -> u32 {
        self.max_membership_walks
            .unwrap_or((self.db_max_connections / 3).max(1))
    }

    /// The service limits these settings configure.
    pub fn limits(&self) -> Limits {
        Limits {
            max_members_per_request: self.max_members_per_request,
            max_members_per_group: self.max_members_per_group,
            max_reply_bytes: self.max_message_bytes,
        }
    }
}

/// `url` with its password, and any query parameter that names a password,
/// a secret or a key (`sslpassword`, `sslkey`), replaced by `REDACTED`. A URL
/// that does not parse is replaced whole.
pub fn redact_database_url(url: &str) -> String {
    const REDACTED: &str = "REDACTED";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return format!("<{REDACTED}: not a URL>");
    };
    if parsed.password().is_some() && parsed.set_password(Some(REDACTED)).is_err() {
        return format!("<{REDACTED}>");
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let lower = key.to_ascii_lowercase();
                let secret = ["password", "secret", "key", "token"]
                    .iter()
                    .any(|word| lower.contains(word));
                let value = if secret {
                    REDACTED.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.into()
}

/// Parses durations such as `250ms`, `5s`, `2m`, `1h`, `7d` or a bare number
/// of seconds; the load tool reads its flags with it too.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 5s, 2m, 1h or 7d"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(value.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(value.saturating_mul(86_400))),
        _ => Err(format!(
            "`{text}` has an unknown unit; use ms, s, m, h or d"
        )),
    }
}

/// A duration that must not be zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("`{text}` must be longer than zero")),
        duration => Ok(duration),
    }
}

/// A count that must be at least 1.
fn parse_positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(error) => Err(format!("`{text}` is not a count: {error}")),
    }
}

/// A count that may be zero.
fn parse_count(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .map_err(|error| format!("`{text}` is not a count: {error}"))
}

/// A message size limit: at least 1 KiB, so that ordinary requests fit.
fn parse_message_bytes(text: &str) -> Result<usize, String> {
    const SMALLEST: usize = 1024;
    match text.trim().parse::<usize>() {
        Ok(bytes) if bytes < SMALLEST => Err(format!("must be at least {SMALLEST} bytes")),
        Ok(bytes) => Ok(bytes),
        Err(error) => Err(format!("`{text}` is not a number of bytes: {error}")),
    }
}

/// A log filter in env-filter syntax, checked before logging starts.
fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("`{text}` is not a log filter: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        for (text, millis) in [
            ("250ms", 250),
            ("5s", 5000),
            ("2m", 120_000),
            ("7", 7000),
            ("3h", 3 * 3_600_000),
            ("7d", 7 * 86_400_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for refused in ["5w", "s", "1.5h", "-1s"] {
            assert!(parse_duration(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let settings = Settings::parse_from_args(["groupd"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(settings.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.database_url, "sqlite://groupd.db");
        assert!(!settings.skip_migrations);
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        assert_eq!(settings.drain_timeout, Duration::from_secs(20));
        assert_eq!(settings.change_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(settings.change_poll_interval, Duration::from_secs(1));
        assert_eq!(settings.max_watch_streams, 1000);
        assert_eq!(settings.watch_buffer, 16_384);
        assert!(settings.membership_index);
        assert_eq!(settings.body_read_timeout, Duration::from_secs(10));
        assert_eq!(settings.idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.max_connections, 256);
        assert_eq!(settings.max_inflight_bytes, 64 * 1024 * 1024);
        assert_eq!(settings.tls_files(), None, "plaintext by default");
        assert_eq!(settings.tls_reload_interval, Duration::from_secs(5));
        assert_eq!(settings.probe_addr, None, "no probe port by default");
        assert_eq!(settings.filter_budget(), FilterBudget::DEFAULT);
        assert_eq!(
            (settings.filtered_listings(), settings.membership_walks()),
            (3, 3),
            "a third each of the 10 pooled connections"
        );
    }

    #[test]
    fn expensive_reads_default_to_a_third_of_the_pool_each_and_stay_below_it() {
        let slots = |args: &[&str]| {
            let mut all = vec!["groupd"];
            all.extend_from_slice(args);
            Settings::parse_from_args(all).map(|s| (s.filtered_listings(), s.membership_walks()))
        };
        let refusal = |args: &[&str]| slots(args).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(slots(&["--db-max-connections", "3"]).ok(), Some((1, 1)));
        assert_eq!(slots(&["--db-max-connections", "1"]).ok(), Some((1, 1)));
        assert_eq!(slots(&["--db-max-connections", "2"]).ok(), Some((1, 1)));
        assert_eq!(
            slots(&["--db-max-connections", "5", "--max-filtered-listings", "3"]).ok(),
            Some((3, 1))
        );
        assert_eq!(
            slots(&["--db-max-connections", "7", "--max-membership-walks", "4"]).ok(),
            Some((2, 4)),
            "the other default stays a third of the pool"
        );
        let one_kind = refusal(&["--db-max-connections", "4", "--max-filtered-listings", "4"]);
        assert!(
            one_kind.contains("--max-filtered-listings")
                && one_kind.contains("--db-max-connections"),
            "{one_kind}"
        );
        let walks = refusal(&["--db-max-connections", "2", "--max-membership-walks", "2"]);
        assert!(walks.contains("--max-membership-walks"), "{walks}");
        let together = refusal(&[
            "--db-max-connections",
            "6",
            "--max-filtered-listings",
            "3",
            "--max-membership-walks",
            "3",
        ]);
        assert!(
            together.contains("together") && together.contains("(6)"),
            "{together}"
        );
    }

    #[test]
    fn tls_files_come_together() {
        let settings = Settings::parse_from_args([
            "groupd",
            "--tls-cert",
            "/tls/cert.pem",
            "--tls-key",
            "/tls/key.pem",
            "--tls-client-ca",
            "/tls/ca.pem",
            "--probe-addr",
            "0.0.0.0:8081",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            settings.tls_files(),
            Some(crate::serve::tls::TlsFiles {
                cert: "/tls/cert.pem".into(),
                key: "/tls/key.pem".into(),
                client_ca: Some("/tls/ca.pem".into()),
            })
        );
        assert_eq!(settings.probe_addr.map(|a| a.port()), Some(8081));
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_database_url("postgres://groupd:s3cret@db:5432/groupd?sslmode=require"),
            "postgres://groupd:REDACTED@db:5432/groupd?sslmode=require"
        );
        assert_eq!(
            redact_database_url("postgres://db/groupd?user=g&password=s3cret&sslpassword=k3y"),
            "postgres://db/groupd?user=g&password=REDACTED&sslpassword=REDACTED"
        );
        assert_eq!(
            redact_database_url("postgres://groupd@db/groupd"),
            "postgres://groupd@db/groupd"
        );
        assert_eq!(
            redact_database_url("sqlite://groupd.db"),
            "sqlite://groupd.db"
        );
        let unparsable = redact_database_url("postgres://groupd:s3cret@[db/groupd");
        assert!(!unparsable.contains("s3cret"), "{unparsable}");
    }

    #[test]
    fn invalid_settings_are_refused_naming_the_setting() {
        let refused = |args: &[&str]| {
            let mut all = vec!["groupd"];
            all.extend_from_slice(args);
            match Settings::parse_from_args(all) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(error) => error.to_string(),
            }
        };
        for (args, names) in [
            (&["--db-max-connections", "0"][..], "--db-max-connections"),
            (&["--request-timeout", "0s"], "--request-timeout"),
            (&["--db-acquire-timeout", "soon"], "--db-acquire-timeout"),
            (&["--max-members-per-group", "0"], "--max-members-per-group"),
            (&["--max-message-bytes", "100"], "--max-message-bytes"),
            (&["--body-read-timeout", "0s"], "--body-read-timeout"),
            (&["--idle-timeout", "0s"], "--idle-timeout"),
            (&["--max-connections", "0"], "--max-connections"),
            (
                &[
                    "--max-inflight-bytes",
                    "5000000",
                    "--max-message-bytes",
                    "4000000",
                ],
                "--max-inflight-bytes",
            ),
            (&["--max-filter-terms", "0"], "--max-filter-terms"),
            (
                &["--max-filter-negations", "some"],
                "--max-filter-negations",
            ),
            (
                &["--max-filter-substring-matches", "many"],
                "--max-filter-substring-matches",
            ),
            (&["--max-filtered-listings", "0"], "--max-filtered-listings"),
            (&["--log-filter", "info,[="], "--log-filter"),
            (
                &["--database-url", "mysql://u:s3cret@h/db"],
                "--database-url",
            ),
            (&["--database-url", "not a url s3cret"], "--database-url"),
            (
                &[
                    "--grpc-addr",
                    "127.0.0.1:7000",
                    "--http-addr",
                    "127.0.0.1:7000",
                ],
                "--http-addr",
            ),
            (&["--tls-cert", "cert.pem"], "--tls-key"),
            (&["--tls-key", "key.pem"], "--tls-cert"),
            (&["--tls-client-ca", "ca.pem"], "--tls-client-ca"),
            (&["--tls-reload-interval", "0s"], "--tls-reload-interval"),
            (
                &[
                    "--grpc-addr",
                    "127.0.0.1:7000",
                    "--probe-addr",
                    "127.0.0.1:7000",
                ],
                "--probe-addr",
            ),
            (&["--probe-addr", "localhost"], "--probe-addr"),
        ] {
            let message = refused(args);
            assert!(message.contains(names), "{args:?}: {message}");
            assert!(
                !message.contains("s3cret"),
                "{args:?} echoed a secret: {message}"
            );
        }
    }
}
