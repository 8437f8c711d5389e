//! Command line and environment configuration. Every flag has an environment
//! twin (`--grpc-addr` / `GROUPD_GRPC_ADDR`), so the same binary is configured
//! by flags on a laptop and by environment in Kubernetes.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::Limits;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve gRPC and HTTP/JSON (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document of the HTTP/JSON API and exit.
    Openapi,
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
    #[arg(long, env = "GROUPD_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Do not apply migrations when `serve` starts (run `groupd migrate`
    /// separately, e.g. as a Kubernetes Job).
    #[arg(long, env = "GROUPD_SKIP_MIGRATIONS", global = true)]
    pub skip_migrations: bool,

    /// Maximum number of pooled database connections.
    #[arg(
        long,
        env = "GROUPD_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,

    /// How long to wait for a database connection before answering UNAVAILABLE.
    #[arg(long, env = "GROUPD_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_connect_timeout: Duration,

    /// How often the database is pinged; health is NOT_SERVING while it
    /// does not answer.
    #[arg(long, env = "GROUPD_DB_HEALTH_INTERVAL", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_health_interval: Duration,

    /// How long, after a shutdown signal, health reports NOT_SERVING before
    /// the server stops accepting calls (lets load balancers drain).
    #[arg(long, env = "GROUPD_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration, global = true)]
    pub shutdown_delay: Duration,

    /// Most principals one AddGroupMembers, RemoveGroupMembers or
    /// UpdateGroup request may carry.
    #[arg(
        long,
        env = "GROUPD_MAX_MEMBERS_PER_REQUEST",
        default_value_t = 10_000,
        global = true
    )]
    pub max_members_per_request: usize,

    /// Most direct members a group may have.
    #[arg(
        long,
        env = "GROUPD_MAX_MEMBERS_PER_GROUP",
        default_value_t = 100_000,
        global = true
    )]
    pub max_members_per_group: usize,

    /// Largest gRPC message accepted, in bytes.
    #[arg(
        long,
        env = "GROUPD_MAX_MESSAGE_BYTES",
        default_value_t = 4 * 1024 * 1024,
        global = true
    )]
    pub max_message_bytes: usize,
}

impl Settings {
    /// Parses settings from command-line arguments (the first is the program
    /// name) and the environment, as the binary does.
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(|cli| cli.settings)
    }

    /// The service limits these settings configure.
    pub fn limits(&self) -> Limits {
        Limits {
            max_members_per_request: self.max_members_per_request,
            max_members_per_group: self.max_members_per_group,
        }
    }
}

/// Parses durations such as `250ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        _ => Err(format!("`{text}` has an unknown unit; use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn defaults_match_the_spec() {
        let settings = Settings::parse_from_args(["groupd"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(settings.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.database_url, "sqlite://groupd.db");
        assert!(!settings.skip_migrations);
    }
}
