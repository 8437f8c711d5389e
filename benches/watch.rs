//! The change stream benchmark (README, "Performance"): a measurement, not
//! a test.
//!
//! The server is the real `groupd` binary (the one Cargo builds beside
//! this benchmark, so optimized under `cargo bench`), run as a child
//! process on `127.0.0.1:0` so that its memory and its CPU time can be read
//! apart from the clients' (`/proc/<pid>`). The clients are the generated
//! gRPC client, in this process, over loopback. On SQLite (a temporary
//! file) and on PostgreSQL (a fresh database, dropped afterwards), it
//! measures:
//!
//! 1. **Delivery latency, one server.** One writer updates groups
//!    (UpdateGroup, the `description` mask) at a steady rate; a watcher on
//!    the same server times each change from just before its write was
//!    sent until it arrives on the stream (matched by group id and
//!    version). Target: p99 ≤ 50 ms.
//! 2. **Delivery latency across replicas** (PostgreSQL only): the same,
//!    writing through one server and watching on a second one on the same
//!    database. Target: p99 ≤ 1 s.
//! 3. **What watchers cost writes.** UpdateGroup throughput from 16
//!    writers on 16 groups, closed loop, for a fixed time: with no
//!    watcher, with 100 watchers reading everything, with 100 watchers of
//!    a group nobody writes (woken by every change, sending none), and
//!    with none again (the baseline is the mean of the two runs without,
//!    so that drift over the run cancels). Target: the throughput with
//!    the reading watchers ≥ 0.9 × the baseline. The server's and the
//!    clients' CPU time per write are printed beside it (both share the
//!    machine's cores, and so does a local PostgreSQL), and what one
//!    change sent to one watcher costs each.
//! 4. **Memory of idle watchers.** The server's resident set before and
//!    after opening 1,000 idle streams (watching a group nobody writes,
//!    100 streams per HTTP/2 connection; the server allows 200). Target:
//!    ≤ 50 MB for them. Then 100 more streams that never read, on one
//!    connection, while 2,000 changes are written: the server's resident
//!    set must grow by less than what those streams left unread (it would
//!    if it buffered it), and each, read afterwards, must give an unbroken
//!    prefix of the changes and then either end with RESOURCE_EXHAUSTED
//!    (`WATCH_TOO_SLOW`) or, if the server never had to drop it, go on to
//!    the last change. The server runs with `--watch-buffer` at half the
//!    writes, so that the non-readers fall out of it.
//!
//! Every reply is checked, and every stream's changes: the right groups,
//! versions one after another per group, the written `description`, each
//! change exactly once (a watcher told `WATCH_TOO_SLOW` resumes from its
//! cursor, as a client should, and the resumptions are counted). Streams
//! started from "now" must give exactly the writes made after; streams
//! started from a listing's cursor may begin with changes the listing
//! already showed, as `ListGroupsResponse.cursor` allows (counted), and
//! then exactly the writes. A wrong or missing change fails the process;
//! a missed target is printed as `MISS` and does not.
//!
//! `cargo bench --bench watch` runs the full sizes; without `--bench` (as
//! `cargo test --benches` runs it) it does a quick smoke run. Environment:
//!
//! - `GROUPD_BENCH_BACKENDS`: `sqlite`, `postgres` or `sqlite,postgres`
//!   (default).
//! - `GROUPD_BENCH_POSTGRES_URL`, else `GROUPD_TEST_POSTGRES_URL`: the
//!   admin URL used to create and drop the database (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`). PostgreSQL is skipped
//!   with a message when it does not answer.
//! - `GROUPD_BENCH_CHANGES`: changes timed per latency run (default 1,000;
//!   50 in a smoke run), written at `GROUPD_BENCH_RATE` per second
//!   (default 100).
//! - `GROUPD_BENCH_SECONDS`: seconds per throughput run (default 5; 0.5),
//!   `GROUPD_BENCH_WATCHERS`: watchers in the second one (default 100; 10).
//! - `GROUPD_BENCH_IDLE` (default 1,000; 50), `GROUPD_BENCH_SLOW` (default
//!   100; 10) and `GROUPD_BENCH_MEMORY_WRITES` (default 2,000; 200): the
//!   memory run's idle streams, non-reading streams and changes.
//! - `GROUPD_BENCH_PARTS`: which of `latency`, `replicas`, `throughput`,
//!   `memory` to run (default all).

// A benchmark, not request-path code: a setup call that fails aborts the
// run with its message, which is what `expect` says best.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use groupd::pb::{
    self, group_service_client::GroupServiceClient, watch_group_changes_response::Event,
};
use prost::Message as _;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    sync::watch,
    task::JoinSet,
};
use tonic::{Code, Status, Streaming, transport::Channel};
use tonic_types::StatusExt as _;

#[path = "../tests/support/scratch_db.rs"]
mod scratch_db;

use scratch_db::{ScratchDb, postgres_admin_url};

type Client = GroupServiceClient<Channel>;
type Stream = Streaming<pb::WatchGroupChangesResponse>;

/// Target: p99 of the delivery latency on one server.
const LOCAL_P99_TARGET: Duration = Duration::from_millis(50);
/// Target: p99 of the delivery latency across replicas.
const REPLICA_P99_TARGET: Duration = Duration::from_secs(1);
/// Target: write throughput with watchers, as a share of without.
const THROUGHPUT_RATIO_TARGET: f64 = 0.9;
/// Target: what the idle streams add to the server's resident set.
const IDLE_MEMORY_TARGET_MB: f64 = 50.0;

/// Writers of the throughput runs, one group each.
const WRITERS: usize = 16;
/// Client connections the writers share.
const WRITER_CONNECTIONS: usize = 4;
/// Watchers per connection in the throughput run.
const WATCHERS_PER_CONNECTION: usize = 25;
/// Idle streams per connection in the memory run (the server allows 200).
const IDLE_PER_CONNECTION: usize = 100;
/// Groups the latency writer goes round.
const LATENCY_GROUPS: usize = 4;
/// Writers (one group each) of the memory run.
const MEMORY_WRITERS: usize = 8;
/// A bound against a stream that stalls, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let config = Config::from_env(bench_mode);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    let failed = runtime.block_on(run(config));
    if failed {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Latency,
    Replicas,
    Throughput,
    Memory,
}

#[derive(Debug, Clone)]
struct Config {
    smoke: bool,
    backends: Vec<Backend>,
    parts: Vec<Part>,
    postgres_url: String,
    changes: usize,
    rate: f64,
    seconds: f64,
    watchers: usize,
    idle: usize,
    slow: usize,
    memory_writes: usize,
}

impl Config {
    fn from_env(bench_mode: bool) -> Self {
        let smoke = !bench_mode;
        let full_or_smoke = |full: f64, smoke_value: f64| if smoke { smoke_value } else { full };
        let backends = list("GROUPD_BENCH_BACKENDS", "sqlite,postgres")
            .iter()
            .map(|name| match name.as_str() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "postgresql" => Backend::Postgres,
                other => panic!("GROUPD_BENCH_BACKENDS: unknown backend {other:?}"),
            })
            .collect();
        let parts = list("GROUPD_BENCH_PARTS", "latency,replicas,throughput,memory")
            .iter()
            .map(|name| match name.as_str() {
                "latency" => Part::Latency,
                "replicas" => Part::Replicas,
                "throughput" => Part::Throughput,
                "memory" => Part::Memory,
                other => panic!("GROUPD_BENCH_PARTS: unknown part {other:?}"),
            })
            .collect();
        Self {
            smoke,
            backends,
            parts,
            postgres_url: postgres_admin_url(&["GROUPD_BENCH_POSTGRES_URL"]),
            changes: env_number("GROUPD_BENCH_CHANGES", full_or_smoke(1_000.0, 50.0)) as usize,
            rate: env_number("GROUPD_BENCH_RATE", 100.0),
            seconds: env_number("GROUPD_BENCH_SECONDS", full_or_smoke(5.0, 0.5)),
            watchers: env_number("GROUPD_BENCH_WATCHERS", full_or_smoke(100.0, 10.0)) as usize,
            idle: env_number("GROUPD_BENCH_IDLE", full_or_smoke(1_000.0, 50.0)) as usize,
            slow: env_number("GROUPD_BENCH_SLOW", full_or_smoke(100.0, 10.0)) as usize,
            memory_writes: env_number("GROUPD_BENCH_MEMORY_WRITES", full_or_smoke(2_000.0, 200.0))
                as usize,
        }
    }

    fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }
}

/// A comma-separated list from the environment, lower case, else `default`.
fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value > 0.0 => value,
            _ => panic!("{name}={text:?} is not a positive number"),
        },
        Err(_) => default,
    }
}

/// The load average of the machine, to tell a quiet run from a busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---------------------------------------------------------------------------
// The server: the real binary, as a child process.
// ---------------------------------------------------------------------------

struct Server {
    process: tokio::process::Child,
    pid: u32,
    grpc_addr: String,
    http_addr: String,
    /// Warnings and errors the server logged.
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `groupd serve` on `url` with `args`, logging only its
    /// addresses, warnings and errors (as JSON, read here).
    async fn start(url: &str, args: &[&str]) -> Self {
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_groupd"))
            .args([
                "serve",
                "--database-url",
                url,
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-filter",
                "warn,groupd::startup=info",
            ])
            .args(args)
            .env_remove("GROUPD_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("groupd starts");
        let pid = process.id().expect("a running process");
        let mut lines = BufReader::new(process.stderr.take().expect("piped stderr")).lines();
        let (grpc_addr, http_addr) = tokio::time::timeout(PATIENCE, async {
            let (mut grpc, mut http) = (None, None);
            let mut seen = Vec::new();
            while let Some(line) = lines.next_line().await.expect("a readable log") {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let addr = event["addr"].as_str().map(str::to_owned);
                match event["message"].as_str() {
                    Some("serving gRPC") => grpc = addr,
                    Some("serving HTTP") => http = addr,
                    _ => seen.push(line),
                }
                if let (Some(grpc), Some(http)) = (&grpc, &http) {
                    return (grpc.clone(), http.clone());
                }
            }
            panic!("groupd exited before serving: {seen:#?}");
        })
        .await
        .expect("groupd reported its addresses in time");
        // Read the rest of the log, or the server would block on a full pipe.
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&warnings);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let mut kept = kept.lock().unwrap();
                if !matches!(event["level"].as_str(), Some("INFO" | "DEBUG" | "TRACE"))
                    && kept.len() < 100
                {
                    kept.push(line);
                }
            }
        });
        Self {
            process,
            pid,
            grpc_addr,
            http_addr,
            warnings,
        }
    }

    /// A new HTTP/2 connection to the server.
    async fn connect(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .expect("an endpoint")
            .connect()
            .await
            .expect("cannot connect to groupd")
    }

    async fn client(&self) -> Client {
        GroupServiceClient::new(self.connect().await)
    }

    /// A line of `/proc/<pid>/status`, in MB.
    fn status_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("/proc/<pid>/status");
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"));
        kib * 1024.0 / 1e6
    }

    /// The resident set size, in MB.
    fn rss_mb(&self) -> f64 {
        self.status_mb("VmRSS:")
    }

    /// The most the resident set has ever been, in MB.
    fn peak_rss_mb(&self) -> f64 {
        self.status_mb("VmHWM:")
    }

    /// CPU time used so far, user and system, every thread.
    fn cpu(&self) -> Duration {
        cpu_of(&self.pid.to_string())
    }

    /// The `groupd_watch_streams` gauge.
    async fn open_streams(&self) -> u64 {
        let body = reqwest::get(format!("http://{}/metrics", self.http_addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics");
        body.lines()
            .find_map(|line| line.strip_prefix("groupd_watch_streams "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .expect("groupd_watch_streams in /metrics") as u64
    }

    /// Waits until `count` streams are open, or says how many are.
    async fn until_open_streams(&self, count: u64) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let open = self.open_streams().await;
            if open == count {
                return Ok(());
            }
            if started.elapsed() > PATIENCE {
                return Err(format!("{open} streams open, {count} expected"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server with SIGTERM (graceful), or kills it after 30 s.
    async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.process.wait())
            .await
            .is_err()
        {
            eprintln!("warning: groupd did not stop within 30 s; killing it");
            let _ = self.process.kill().await;
        }
        let warnings = self.warnings.lock().unwrap();
        if !warnings.is_empty() {
            println!("the server logged {} warning(s), e.g.:", warnings.len());
            for line in warnings.iter().take(3) {
                println!("  {line}");
            }
        }
    }
}

/// CPU time of `/proc/<pid>/stat` (`self` for this process).
fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The fields after the command name, which is in parentheses: state is
    // the first, utime the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 if unknown.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

// ---------------------------------------------------------------------------
// Writes and what watchers see of them.
// ---------------------------------------------------------------------------

/// The description written by the write that makes `version`: a watcher
/// checks a change's content by it.
fn description(version: i64) -> String {
    format!("v{version}")
}

async fn create_group(client: &mut Client, id: &str) {
    client
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: id.to_owned(),
                ..Default::default()
            }),
            group_id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateGroup {id}: {status:?}"));
}

/// Creates the groups `{prefix}-0…` and returns their ids, at version 1.
async fn create_groups(client: &mut Client, prefix: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let id = format!("{prefix}-{n:02}");
        create_group(client, &id).await;
        ids.push(id);
    }
    ids
}

/// UpdateGroup of `id`'s description (one masked field), which makes
/// `version`; checks the reply.
async fn update(client: &mut Client, id: &str, version: i64) -> Result<(), String> {
    let wanted = description(version);
    let reply = client
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                id: id.to_owned(),
                description: wanted.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".to_owned()],
            }),
            ..Default::default()
        })
        .await
        .map_err(|status| format!("UpdateGroup {id} (to version {version}): {status:?}"))?
        .into_inner();
    if reply.id != id || reply.description != wanted {
        return Err(format!(
            "UpdateGroup {id}: the reply is group {:?} with description {:?}, not {wanted:?}",
            reply.id, reply.description
        ));
    }
    Ok(())
}

/// The cursor of a listing: where a watch starting "after everything so
/// far" begins.
async fn listing_cursor(client: &mut Client) -> String {
    client
        .list_groups(pb::ListGroupsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("ListGroups")
        .into_inner()
        .cursor
}

fn watch_after(cursor: &str) -> pb::WatchGroupChangesRequest {
    pb::WatchGroupChangesRequest {
        cursor: cursor.to_owned(),
        ..Default::default()
    }
}

async fn open(client: &mut Client, request: pb::WatchGroupChangesRequest) -> Stream {
    client
        .watch_group_changes(request)
        .await
        .unwrap_or_else(|status| panic!("WatchGroupChanges refused: {status:?}"))
        .into_inner()
}

/// A change as a stream gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seen {
    group: String,
    version: i64,
}

/// The change a message carries (`None` for a heartbeat), checked: an
/// update whose group is the message's, with the description its version
/// was written with.
fn seen(message: &pb::WatchGroupChangesResponse) -> Result<Option<Seen>, String> {
    let change = match &message.event {
        Some(Event::Heartbeat(_)) => return Ok(None),
        Some(Event::Change(change)) => change,
        None => {
            return Err(format!(
                "a message with neither change nor heartbeat: {message:?}"
            ));
        }
    };
    let Some(group) = &change.group else {
        return Err(format!("a change without its group: {message:?}"));
    };
    // Updates only, but for the creations a stream from a listing's
    // cursor may begin with (see `Order`).
    let content_right = if change.kind == i32::from(pb::ChangeKind::Create) {
        change.version == 1 && group.description.is_empty()
    } else {
        change.kind == i32::from(pb::ChangeKind::Update)
            && group.description == description(change.version)
    };
    if group.id != message.group_id || !content_right || message.cursor.is_empty() {
        return Err(format!(
            "a wrong change: group {:?} of message {:?}, kind {}, version {}, description {:?}, \
             cursor {:?}",
            group.id,
            message.group_id,
            change.kind,
            change.version,
            group.description,
            message.cursor
        ));
    }
    Ok(Some(Seen {
        group: group.id.clone(),
        version: change.version,
    }))
}

/// Whether `status` ends a stream whose client read too slowly.
fn too_slow(status: &Status) -> bool {
    status.code() == Code::ResourceExhausted
        && status
            .get_details_error_info()
            .is_some_and(|info| info.reason == "WATCH_TOO_SLOW")
}

/// The next version each group's next change must have, for a stream
/// started from a listing's cursor.
#[derive(Debug, Clone)]
struct Order {
    next: HashMap<String, i64>,
    /// A change the listing did not show has come.
    begun: bool,
    /// Changes the listing already showed, which such a stream may begin
    /// with (`ListGroupsResponse.cursor`).
    repeats: u64,
}

impl Order {
    /// Groups at `versions` now.
    fn new(groups: &[String], versions: &[i64]) -> Self {
        Self {
            next: groups
                .iter()
                .zip(versions)
                .map(|(group, version)| (group.clone(), version + 1))
                .collect(),
            begun: false,
            repeats: 0,
        }
    }

    /// Checks `seen`: the next change of its group (true), or, before any
    /// such change, one the listing already showed (false).
    fn accept(&mut self, seen: &Seen) -> Result<bool, String> {
        let Some(next) = self.next.get_mut(&seen.group) else {
            return Err(format!("a change to {}, which nobody wrote", seen.group));
        };
        if !self.begun && seen.version < *next {
            self.repeats += 1;
            return Ok(false);
        }
        if seen.version != *next {
            return Err(format!(
                "{} version {} arrived where {} was due (a change lost, repeated or reordered)",
                seen.group, seen.version, next
            ));
        }
        *next += 1;
        self.begun = true;
        Ok(true)
    }

    /// Checks that every group reached `versions` (the writers' last).
    fn complete(&self, groups: &[String], versions: &[i64]) -> Result<(), String> {
        for (group, version) in groups.iter().zip(versions) {
            let last = self.next.get(group).map_or(0, |next| next - 1);
            if last != *version {
                return Err(format!(
                    "{group}: the last change seen is version {last}, the last written {version}"
                ));
            }
        }
        Ok(())
    }
}

/// The value of `q` (0 to 1) in sorted `sorted`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------
// 1 and 2: delivery latency.
// ---------------------------------------------------------------------------

struct Latency {
    changes: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Writes `config.changes` updates through `writer` at `config.rate` per
/// second, one at a time, while a stream on `watcher` times their arrival.
async fn delivery_latency(
    writer: &Server,
    watcher: &Server,
    prefix: &str,
    config: &Config,
) -> Result<Latency, String> {
    let mut client = writer.client().await;
    let groups = create_groups(&mut client, prefix, LATENCY_GROUPS).await;
    let mut versions = vec![1_i64; groups.len()];
    // Warm-up writes, before the stream starts.
    for round in 0..5 {
        for (group, version) in groups.iter().zip(versions.iter_mut()) {
            *version += 1;
            update(&mut client, group, *version)
                .await
                .map_err(|e| format!("warm-up {round}: {e}"))?;
        }
    }

    // The stream starts after every write so far: on the watcher's server,
    // "now" comes after every acknowledged write, wherever it was made.
    let mut watching = watcher.client().await;
    let mut stream = open(
        &mut watching,
        pb::WatchGroupChangesRequest {
            start_from_now: true,
            ..Default::default()
        },
    )
    .await;

    let count = config.changes;
    let mut expected = Vec::with_capacity(count);
    let mut turn = 0;
    let mut next_versions = versions.clone();
    for _ in 0..count {
        next_versions[turn] += 1;
        expected.push(Seen {
            group: groups[turn].clone(),
            version: next_versions[turn],
        });
        turn = (turn + 1) % groups.len();
    }

    let reader = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(count);
        while arrivals.len() < count {
            let message = tokio::time::timeout(PATIENCE, stream.message())
                .await
                .map_err(|_| format!("no change for {PATIENCE:?} after {}", arrivals.len()))?
                .map_err(|status| format!("the stream ended: {status:?}"))?
                .ok_or_else(|| "the stream ended without an error".to_owned())?;
            let at = Instant::now();
            if let Some(seen) = seen(&message)? {
                arrivals.push((seen, at));
            }
        }
        Ok::<_, String>(arrivals)
    });

    let mut sent = Vec::with_capacity(count);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    for change in &expected {
        ticks.tick().await;
        sent.push(Instant::now());
        update(&mut client, &change.group, change.version).await?;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let arrivals = reader
        .await
        .map_err(|e| format!("the watcher failed: {e}"))??;

    // The writer waited for each reply, so the commit order is the order
    // of the writes: the stream must give exactly that.
    let mut latencies = Vec::with_capacity(count);
    for (n, ((seen, at), (wanted, sent))) in
        arrivals.iter().zip(expected.iter().zip(&sent)).enumerate()
    {
        if seen != wanted {
            return Err(format!(
                "change {n} on the stream is {seen:?}, the write was {wanted:?}"
            ));
        }
        latencies.push(at.saturating_duration_since(*sent));
    }
    latencies.sort_unstable();
    Ok(Latency {
        changes: count,
        rate,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------
// 3: what watchers cost writes.
// ---------------------------------------------------------------------------

struct Throughput {
    watchers: usize,
    /// The watchers read every change, rather than watch a group nobody
    /// writes.
    reading: bool,
    writes: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// Server CPU time per write.
    server_cpu: Duration,
    /// This process's (the clients') CPU time per write.
    client_cpu: Duration,
    /// Times a watcher was ended as too slow and resumed.
    resumptions: u64,
    /// Changes the watchers began with that their listing already showed.
    repeats: u64,
}

/// The writers' groups and their versions, kept from run to run.
struct Writers {
    clients: Vec<Client>,
    groups: Vec<String>,
    versions: Vec<i64>,
}

/// A group no writer writes.
const UNWRITTEN: &str = "unwritten";

impl Writers {
    async fn new(server: &Server) -> Self {
        let mut channels = Vec::new();
        for _ in 0..WRITER_CONNECTIONS {
            channels.push(server.connect().await);
        }
        let mut clients: Vec<Client> = (0..WRITERS)
            .map(|n| GroupServiceClient::new(channels[n % channels.len()].clone()))
            .collect();
        let groups = create_groups(&mut clients[0], "writer", WRITERS).await;
        create_group(&mut clients[0], UNWRITTEN).await;
        let versions = vec![1; WRITERS];
        Self {
            clients,
            groups,
            versions,
        }
    }

    /// Every writer updates its group, closed loop, until `deadline`; the
    /// latencies of all.
    async fn write_until(&mut self, deadline: Instant) -> Result<Vec<Duration>, String> {
        let mut tasks = JoinSet::new();
        for (n, (client, group)) in self.clients.iter().zip(&self.groups).enumerate() {
            let mut client = client.clone();
            let group = group.clone();
            let mut version = self.versions[n];
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    update(&mut client, &group, version + 1).await?;
                    latencies.push(started.elapsed());
                    version += 1;
                }
                Ok::<_, String>((n, version, latencies))
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (n, version, latencies) = done.map_err(|e| format!("a writer failed: {e}"))??;
            self.versions[n] = version;
            all.extend(latencies);
        }
        Ok(all)
    }
}

/// Follows `stream` until it has seen `target` changes (unknown until the
/// writers stop), checking their order; resumes from its cursor when told
/// it is too slow. Returns how often it resumed.
async fn follow(
    mut client: Client,
    mut stream: Stream,
    mut cursor: String,
    mut order: Order,
    mut target: watch::Receiver<u64>,
) -> Result<(Order, u64), String> {
    let mut count = 0_u64;
    let mut resumed = 0;
    loop {
        if count >= *target.borrow_and_update() {
            return Ok((order, resumed));
        }
        tokio::select! {
            changed = target.changed() => {
                changed.map_err(|_| "the writers went away".to_owned())?;
            }
            message = tokio::time::timeout(PATIENCE, stream.message()) => {
                let message = message.map_err(|_| format!("no message for {PATIENCE:?}"))?;
                match message {
                    Ok(Some(message)) => {
                        if let Some(seen) = seen(&message)?
                            && order.accept(&seen)?
                        {
                            count += 1;
                        }
                        cursor = message.cursor;
                    }
                    Ok(None) => return Err("the stream ended without an error".to_owned()),
                    Err(status) if too_slow(&status) => {
                        resumed += 1;
                        stream = open(&mut client, watch_after(&cursor)).await;
                    }
                    Err(status) => return Err(format!("the stream ended: {status:?}")),
                }
            }
        }
    }
}

/// Holds a stream of a group nobody writes until the writers stop: it must
/// stay open and send no change.
async fn hold(
    mut stream: Stream,
    mut target: watch::Receiver<u64>,
) -> Result<(Order, u64), String> {
    loop {
        tokio::select! {
            changed = target.changed() => {
                changed.map_err(|_| "the writers went away".to_owned())?;
                return Ok((Order::new(&[], &[]), 0));
            }
            message = stream.message() => match message {
                Ok(Some(message)) if seen(&message)?.is_none() => {}
                Ok(Some(message)) => {
                    return Err(format!("a stream of {UNWRITTEN} got {message:?}"));
                }
                Ok(None) => return Err("the stream ended without an error".to_owned()),
                Err(status) => return Err(format!("the stream ended: {status:?}")),
            }
        }
    }
}

/// One throughput run: `watchers` streams open, reading every change or
/// (not `reading`) watching a group nobody writes, while the writers
/// write for `span`.
async fn throughput_run(
    server: &Server,
    writers: &mut Writers,
    watchers: usize,
    reading: bool,
    span: Duration,
) -> Result<Throughput, String> {
    let mut setup = server.client().await;
    let cursor = listing_cursor(&mut setup).await;
    let (target_tx, target) = watch::channel(u64::MAX);
    let mut following = JoinSet::new();
    let mut connections = Vec::new();
    for n in 0..watchers {
        if n % WATCHERS_PER_CONNECTION == 0 {
            connections.push(server.connect().await);
        }
        let mut client = GroupServiceClient::new(connections.last().expect("a connection").clone());
        if !reading {
            let mut request = watch_after(&cursor);
            request.group_ids = vec![UNWRITTEN.to_owned()];
            following.spawn(hold(open(&mut client, request).await, target.clone()));
            continue;
        }
        let stream = open(&mut client, watch_after(&cursor)).await;
        following.spawn(follow(
            client,
            stream,
            cursor.clone(),
            Order::new(&writers.groups, &writers.versions),
            target.clone(),
        ));
    }
    if let Err(error) = server.until_open_streams(watchers as u64).await {
        return Err(match following.try_join_next() {
            Some(Ok(Err(ended))) => format!("{error}: a watcher ended: {ended}"),
            _ => error,
        });
    }

    let before = writers.versions.clone();
    let (server_cpu, client_cpu) = (server.cpu(), cpu_of("self"));
    let started = Instant::now();
    let mut latencies = writers.write_until(started + span).await?;
    let elapsed = started.elapsed();
    let (server_cpu, client_cpu) = (server.cpu() - server_cpu, cpu_of("self") - client_cpu);
    let writes: u64 = writers
        .versions
        .iter()
        .zip(&before)
        .map(|(after, before)| (after - before) as u64)
        .sum();

    target_tx.send_replace(writes);
    let (mut resumptions, mut repeats) = (0, 0);
    while let Some(done) = following.join_next().await {
        let (order, resumed) = done.map_err(|e| format!("a watcher failed: {e}"))??;
        if reading {
            order.complete(&writers.groups, &writers.versions)?;
        }
        resumptions += resumed;
        repeats += order.repeats;
    }
    latencies.sort_unstable();
    let per_write = |cpu: Duration| cpu.div_f64(writes.max(1) as f64);
    Ok(Throughput {
        watchers,
        reading,
        writes,
        per_second: writes as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        server_cpu: per_write(server_cpu),
        client_cpu: per_write(client_cpu),
        resumptions,
        repeats,
    })
}

// ---------------------------------------------------------------------------
// 4: memory.
// ---------------------------------------------------------------------------

struct Memory {
    idle: usize,
    slow: usize,
    writes: usize,
    watch_buffer: usize,
    /// Resident set before any stream, after a warm-up.
    base_mb: f64,
    /// What the idle streams added.
    idle_mb: f64,
    /// The most the resident set grew over `idle_mb`'s level while the
    /// changes were written and the non-readers did not read.
    growth_mb: f64,
    /// What the non-readers left unread, as encoded.
    unread_mb: f64,
    /// The process's peak resident set (VmHWM) at the end.
    peak_mb: f64,
    /// Resident set once every stream was closed.
    after_mb: f64,
    /// Non-readers ended with WATCH_TOO_SLOW, and the changes they had
    /// before (least, most).
    ended: usize,
    delivered: (usize, usize),
    /// Non-readers that gave every change.
    complete: usize,
}

/// Reads `stream` until `count` changes in `order`, or an error: the
/// changes, and the error (`None` when all came).
async fn read_all(
    stream: &mut Stream,
    mut order: Order,
    count: usize,
) -> Result<(Vec<Seen>, Option<Status>), String> {
    let mut changes = Vec::with_capacity(count);
    while changes.len() < count {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .map_err(|_| {
                format!(
                    "no message for {PATIENCE:?} after {} changes",
                    changes.len()
                )
            })?;
        match message {
            Ok(Some(message)) => {
                if let Some(seen) = seen(&message)?
                    && order.accept(&seen)?
                {
                    changes.push(seen);
                }
            }
            Ok(None) => return Err("the stream ended without an error".to_owned()),
            Err(status) => return Ok((changes, Some(status))),
        }
    }
    Ok((changes, None))
}

async fn memory(url: &str, config: &Config) -> Result<Memory, String> {
    let watch_buffer = (config.memory_writes / 2).max(1);
    let max_streams = config.idle + config.slow + 10;
    let server = Server::start(
        url,
        &[
            "--max-watch-streams",
            &max_streams.to_string(),
            "--watch-buffer",
            &watch_buffer.to_string(),
        ],
    )
    .await;
    let outcome = memory_on(&server, config, watch_buffer).await;
    server.stop().await;
    outcome
}

async fn memory_on(
    server: &Server,
    config: &Config,
    watch_buffer: usize,
) -> Result<Memory, String> {
    let mut setup = server.client().await;
    create_group(&mut setup, "quiet").await;
    let groups = create_groups(&mut setup, "memory", MEMORY_WRITERS).await;
    let mut versions = vec![1_i64; groups.len()];

    // Warm-up: writes, and one stream that reads them.
    let cursor = listing_cursor(&mut setup).await;
    let mut warm = open(&mut setup, watch_after(&cursor)).await;
    let before_warm_up = Order::new(&groups, &versions);
    for _ in 0..10 {
        for (group, version) in groups.iter().zip(versions.iter_mut()) {
            *version += 1;
            update(&mut setup, group, *version).await?;
        }
    }
    let (warmed, error) = read_all(&mut warm, before_warm_up, 10 * groups.len()).await?;
    if let Some(status) = error {
        return Err(format!(
            "the warm-up stream ended after {}: {status:?}",
            warmed.len()
        ));
    }
    drop(warm);
    server.until_open_streams(0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_mb = server.rss_mb();

    // The idle streams: a group nobody writes, so they only wait.
    // Every connection is kept until the end, with the streams it carries.
    let mut connections = Vec::new();
    let mut idle = JoinSet::new();
    for n in 0..config.idle {
        if n % IDLE_PER_CONNECTION == 0 {
            connections.push(server.connect().await);
        }
        let mut client = GroupServiceClient::new(connections.last().expect("a connection").clone());
        let mut stream = open(
            &mut client,
            pb::WatchGroupChangesRequest {
                start_from_now: true,
                group_ids: vec!["quiet".to_owned()],
                ..Default::default()
            },
        )
        .await;
        idle.spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(message)) if matches!(message.event, Some(Event::Heartbeat(_))) => {}
                    Ok(Some(message)) => return format!("an idle stream got {message:?}"),
                    Ok(None) => return "an idle stream ended".to_owned(),
                    Err(status) => return format!("an idle stream ended: {status:?}"),
                }
            }
        });
    }
    server.until_open_streams(config.idle as u64).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_level = server.rss_mb();

    // One stream that reads everything (the commit order), and the ones
    // that read nothing, on a connection of their own.
    let cursor = listing_cursor(&mut setup).await;
    let mut reading = server.client().await;
    let mut reference = open(&mut reading, watch_after(&cursor)).await;
    let count = config.memory_writes;
    let at_listing = Order::new(&groups, &versions);
    let order = at_listing.clone();
    let reference = tokio::spawn(async move { read_all(&mut reference, order, count).await });
    let mut slow = Vec::with_capacity(config.slow);
    for n in 0..config.slow {
        if n % IDLE_PER_CONNECTION == 0 {
            connections.push(server.connect().await);
        }
        let mut client = GroupServiceClient::new(connections.last().expect("a connection").clone());
        slow.push(open(&mut client, watch_after(&cursor)).await);
    }
    let open_now = (config.idle + 1 + config.slow) as u64;
    server.until_open_streams(open_now).await?;

    // The resident set, sampled while the changes are written.
    let (stop_sampling, mut stopped) = watch::channel(false);
    let pid = server.pid;
    let sampler = tokio::spawn(async move {
        let mut most = 0.0_f64;
        loop {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kib) = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
            {
                most = most.max(kib * 1024.0 / 1e6);
            }
            tokio::select! {
                _ = stopped.changed() => return most,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });
    let mut writers = JoinSet::new();
    let per_writer = config.memory_writes.div_ceil(MEMORY_WRITERS);
    let mut left = config.memory_writes;
    for (group, version) in groups.iter().zip(&versions) {
        let writes = per_writer.min(left);
        left -= writes;
        let mut client = setup.clone();
        let group = group.clone();
        let from = *version;
        writers.spawn(async move {
            for version in from + 1..=from + writes as i64 {
                update(&mut client, &group, version).await?;
            }
            Ok::<_, String>(from + writes as i64)
        });
    }
    while let Some(done) = writers.join_next().await {
        done.map_err(|e| format!("a writer failed: {e}"))??;
    }
    let (reference, error) = reference
        .await
        .map_err(|e| format!("the reading stream failed: {e}"))??;
    if let Some(status) = error {
        return Err(format!(
            "the reading stream ended after {} changes: {status:?}",
            reference.len()
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_sampling.send_replace(true);
    let sampled = sampler
        .await
        .map_err(|e| format!("the sampler failed: {e}"))?;
    let settled = server.rss_mb();
    let growth_mb = sampled.max(settled) - idle_level;
    // The non-readers are still open (the reading one has closed): nothing
    // has read them to end them.
    server
        .until_open_streams((config.idle + config.slow) as u64)
        .await?;

    // What one change weighs on the wire, from a stream reading them.
    let mut sizing = open(&mut reading, watch_after(&cursor)).await;
    let mut bytes = 0;
    for _ in 0..reference.len().min(200) {
        match sizing.message().await {
            Ok(Some(message)) => bytes += message.encoded_len(),
            other => return Err(format!("the sizing stream: {other:?}")),
        }
    }
    drop(sizing);
    let change_bytes = bytes as f64 / reference.len().clamp(1, 200) as f64;

    // Now read the non-readers: each must give the changes in commit
    // order up to where it was dropped, if it was. All at once: they share
    // their connection's flow-control window, which what one of them reads
    // alone does not reopen.
    let mut reads = JoinSet::new();
    for (n, mut stream) in slow.into_iter().enumerate() {
        let order = at_listing.clone();
        let count = reference.len();
        reads.spawn(async move { (n, read_all(&mut stream, order, count).await) });
    }
    let mut read = Vec::new();
    while let Some(done) = reads.join_next().await {
        let (n, outcome) = done.map_err(|e| format!("a non-reader failed: {e}"))?;
        read.push((n, outcome.map_err(|e| format!("non-reader {n}: {e}"))?));
    }
    read.sort_by_key(|(n, _)| *n);
    let (mut ended, mut complete, mut unread) = (0, 0, 0);
    let mut delivered = (usize::MAX, 0);
    for (n, (changes, error)) in read {
        if changes[..] != reference[..changes.len()] {
            return Err(format!(
                "non-reader {n}: its {} changes are not the first ones of the commit order",
                changes.len()
            ));
        }
        match error {
            None => complete += 1,
            Some(status) if too_slow(&status) => {
                ended += 1;
                delivered = (
                    delivered.0.min(changes.len()),
                    delivered.1.max(changes.len()),
                );
            }
            Some(status) => {
                return Err(format!(
                    "non-reader {n} ended after {} changes: {status:?}",
                    changes.len()
                ));
            }
        }
        unread += reference.len() - changes.len();
    }
    if ended == 0 {
        delivered = (0, 0);
    }

    // The idle streams never got a change nor ended.
    let finished = idle.len();
    if let Some(done) = idle.try_join_next() {
        return Err(done.unwrap_or_else(|e| e.to_string()));
    }
    idle.shutdown().await;
    drop(connections);
    server.until_open_streams(0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Memory {
        idle: finished,
        slow: config.slow,
        writes: reference.len(),
        watch_buffer,
        base_mb,
        idle_mb: idle_level - base_mb,
        growth_mb,
        unread_mb: unread as f64 * change_bytes / 1e6,
        peak_mb: server.peak_rss_mb(),
        after_mb: server.rss_mb(),
        ended,
        delivered,
        complete,
    })
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

/// What one backend gave.
#[derive(Default)]
struct Results {
    local: Option<Latency>,
    replicas: Option<Latency>,
    throughput: Vec<Throughput>,
    memory: Option<Memory>,
    /// Wrong or missing changes, failed calls.
    failures: Vec<String>,
}

async fn run_backend(backend: Backend, url: String, config: Config) -> Results {
    let mut results = Results::default();
    let fail = |results: &mut Results, what: &str, error: String| {
        println!("!!! {what}: {error}");
        results.failures.push(format!("{what}: {error}"));
    };
    let replicas = backend == Backend::Postgres && config.runs(Part::Replicas);
    if config.runs(Part::Latency) || replicas || config.runs(Part::Throughput) {
        let server = Server::start(&url, &[]).await;
        if config.runs(Part::Latency) {
            match delivery_latency(&server, &server, "latency", &config).await {
                Ok(latency) => results.local = Some(latency),
                Err(error) => fail(&mut results, "delivery latency", error),
            }
        }
        if replicas {
            let replica = Server::start(&url, &["--skip-migrations"]).await;
            match delivery_latency(&server, &replica, "replicas", &config).await {
                Ok(latency) => results.replicas = Some(latency),
                Err(error) => fail(&mut results, "delivery latency across replicas", error),
            }
            replica.stop().await;
        }
        if config.runs(Part::Throughput) {
            let span = Duration::from_secs_f64(config.seconds);
            let mut writers = Writers::new(&server).await;
            // Warm-up.
            if let Err(error) = writers.write_until(Instant::now() + span / 5).await {
                fail(&mut results, "throughput warm-up", error);
            }
            // Without watchers first and last: their mean is the baseline.
            let runs = [
                (0, true),
                (config.watchers, true),
                (config.watchers, false),
                (0, true),
            ];
            for (watchers, reading) in runs {
                match throughput_run(&server, &mut writers, watchers, reading, span).await {
                    Ok(figures) => results.throughput.push(figures),
                    Err(error) => {
                        fail(
                            &mut results,
                            &format!("throughput, {watchers} watchers"),
                            error,
                        );
                        break;
                    }
                }
            }
        }
        server.stop().await;
    }
    if config.runs(Part::Memory) {
        match memory(&url, &config).await {
            Ok(figures) => results.memory = Some(figures),
            Err(error) => fail(&mut results, "memory", error),
        }
    }
    results
}

/// What else a throughput run's watchers went through.
fn notes(run: &Throughput) -> String {
    let mut notes = String::new();
    if run.resumptions > 0 {
        notes.push_str(&format!(
            "; watchers resumed {} times after WATCH_TOO_SLOW",
            run.resumptions
        ));
    }
    if run.repeats > 0 {
        notes.push_str(&format!(
            "; watchers began with {} changes their listing showed ({:.1} each)",
            run.repeats,
            run.repeats as f64 / run.watchers.max(1) as f64
        ));
    }
    notes
}

/// A target verdict, for the table and the final summary.
struct Verdict {
    backend: Backend,
    what: String,
    figure: String,
    pass: bool,
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn report(backend: Backend, results: &Results, verdicts: &mut Vec<Verdict>) {
    println!();
    for (label, latency, target) in [
        ("delivery, same server", &results.local, LOCAL_P99_TARGET),
        (
            "delivery, across replicas",
            &results.replicas,
            REPLICA_P99_TARGET,
        ),
    ] {
        let Some(latency) = latency else { continue };
        let pass = latency.p99 <= target;
        println!(
            "{label:<28} {:>5} changes at {:>4.0}/s   p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms   \
             p99 ≤ {} ms: {}",
            latency.changes,
            latency.rate,
            ms(latency.p50),
            ms(latency.p99),
            ms(latency.max),
            target.as_millis(),
            verdict(pass)
        );
        verdicts.push(Verdict {
            backend,
            what: format!("{label}: p99 (target ≤ {} ms)", target.as_millis()),
            figure: format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(latency.p50),
                ms(latency.p99),
                ms(latency.max)
            ),
            pass,
        });
    }
    for run in &results.throughput {
        println!(
            "{:<40} {:>6} writes {:>7.0}/s   p50 {:>6.2} ms  p99 {:>6.2} ms   CPU per write: \
             server {:>4.0} µs, clients {:>4.0} µs{}",
            match (run.watchers, run.reading) {
                (0, _) => "UpdateGroup, no watcher".to_owned(),
                (n, true) => format!("UpdateGroup, {n} watchers reading all"),
                (n, false) => format!("UpdateGroup, {n} watchers of no writes"),
            },
            run.writes,
            run.per_second,
            ms(run.p50),
            ms(run.p99),
            run.server_cpu.as_secs_f64() * 1e6,
            run.client_cpu.as_secs_f64() * 1e6,
            notes(run),
        );
    }
    if let [before, reading, quiet, after] = results.throughput.as_slice() {
        let baseline = (before.per_second + after.per_second) / 2.0;
        let ratio = reading.per_second / baseline;
        let pass = ratio >= THROUGHPUT_RATIO_TARGET;
        // What sending one change to one watcher costs, beyond the write:
        // the extra CPU per write, shared by the watchers.
        let per_delivery = |cpu: fn(&Throughput) -> Duration| {
            let without = (cpu(before) + cpu(after)).as_secs_f64() / 2.0;
            (cpu(reading).as_secs_f64() - without) * 1e6 / reading.watchers.max(1) as f64
        };
        println!(
            "UpdateGroup with {} watchers reading everything / without: {ratio:.2}   \
             ≥ {THROUGHPUT_RATIO_TARGET}: {}   (one change to one watcher: {:.1} µs of server \
             CPU, {:.1} µs of client CPU)",
            reading.watchers,
            verdict(pass),
            per_delivery(|run| run.server_cpu),
            per_delivery(|run| run.client_cpu),
        );
        println!(
            "UpdateGroup with {} watchers of an unwritten group / without: {:.2}   (woken by \
             every change, sending none)",
            quiet.watchers,
            quiet.per_second / baseline,
        );
        verdicts.push(Verdict {
            backend,
            what: format!(
                "writes with {} watchers / without (target ≥ {THROUGHPUT_RATIO_TARGET})",
                reading.watchers
            ),
            figure: format!(
                "{ratio:.2} ({:.0}/s against {:.0}/s)",
                reading.per_second, baseline
            ),
            pass,
        });
    }
    if let Some(memory) = &results.memory {
        let idle_pass = memory.idle_mb <= IDLE_MEMORY_TARGET_MB;
        println!(
            "memory: {:.1} MB before any stream; {} idle streams add {:.1} MB ({:.1} KB each)   \
             ≤ {IDLE_MEMORY_TARGET_MB} MB: {}",
            memory.base_mb,
            memory.idle,
            memory.idle_mb,
            memory.idle_mb * 1000.0 / memory.idle.max(1) as f64,
            verdict(idle_pass)
        );
        let bounded = memory.growth_mb < memory.unread_mb || memory.unread_mb == 0.0;
        println!(
            "memory: {} changes written (--watch-buffer {}) while {} streams read nothing: the \
             server grew {:.1} MB at most, while {:.1} MB went unread   {}",
            memory.writes,
            memory.watch_buffer,
            memory.slow,
            memory.growth_mb,
            memory.unread_mb,
            if memory.unread_mb == 0.0 {
                "(nothing unread: not a check)"
            } else if bounded {
                "bounded: PASS"
            } else {
                "not bounded: MISS"
            }
        );
        println!(
            "memory: non-readers read afterwards: {} ended WATCH_TOO_SLOW after {}–{} changes, \
             {} gave all {}; peak {:.1} MB, {:.1} MB once every stream closed",
            memory.ended,
            memory.delivered.0,
            memory.delivered.1,
            memory.complete,
            memory.writes,
            memory.peak_mb,
            memory.after_mb
        );
        verdicts.push(Verdict {
            backend,
            what: format!(
                "{} idle streams' memory (target ≤ {IDLE_MEMORY_TARGET_MB} MB)",
                memory.idle
            ),
            figure: format!("{:.1} MB", memory.idle_mb),
            pass: idle_pass,
        });
        if memory.unread_mb > 0.0 {
            verdicts.push(Verdict {
                backend,
                what: format!(
                    "growth with {} non-readers (below what they left unread)",
                    memory.slow
                ),
                figure: format!(
                    "{:.1} MB against {:.1} MB",
                    memory.growth_mb, memory.unread_mb
                ),
                pass: bounded,
            });
        }
    }
}

/// Runs everything; whether anything failed (not a missed target).
async fn run(config: Config) -> bool {
    println!(
        "groupd change stream benchmark{}: {} CPU(s), load average {}",
        if config.smoke {
            " (smoke run: `cargo bench --bench watch` runs the full one)"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average(),
    );
    let mut verdicts = Vec::new();
    let mut failures = Vec::new();
    for &backend in &config.backends {
        println!("\n=== {} ===", backend.name());
        let created = match backend {
            Backend::Sqlite => Ok(ScratchDb::sqlite("groupd_bench_watch")),
            Backend::Postgres => ScratchDb::postgres(&config.postgres_url, "groupd_bench_watch")
                .await
                .map_err(|problem| problem.to_string()),
        };
        let (url, scratch) = match created {
            Ok(created) => created,
            Err(reason) => {
                println!("SKIPPED {}: {reason}", backend.name());
                continue;
            }
        };
        // In a task of its own, so that a panic still drops the database.
        let outcome = tokio::spawn(run_backend(backend, url, config.clone())).await;
        if let Err(problem) = scratch.drop_database().await {
            eprintln!("warning: {problem}");
        }
        match outcome {
            Ok(results) => {
                report(backend, &results, &mut verdicts);
                failures.extend(
                    results
                        .failures
                        .into_iter()
                        .map(|failure| format!("{}: {failure}", backend.name())),
                );
            }
            Err(error) => failures.push(format!("{}: the run failed: {error}", backend.name())),
        }
        println!("load average after: {}", load_average());
    }

    println!("\n=== summary ===");
    if config.smoke || cfg!(debug_assertions) {
        println!(
            "(a smoke run{}: these figures say nothing about the targets)",
            if cfg!(debug_assertions) {
                " of an unoptimized build"
            } else {
                ""
            }
        );
    }
    for verdict in &verdicts {
        if verdict.pass {
            println!(
                "PASS  {}: {}: {}",
                verdict.backend.name(),
                verdict.what,
                verdict.figure
            );
        } else {
            println!(
                "!!! MISS  {}: {}: {}  <<< target missed",
                verdict.backend.name(),
                verdict.what,
                verdict.figure
            );
        }
    }
    for failure in &failures {
        println!("!!! FAILED  {failure}");
    }
    !failures.is_empty()
}
