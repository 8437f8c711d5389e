//! The membership benchmark (README, "Performance"): a measurement, not a
//! test.
//!
//! It starts the real [`Application`] in process on `127.0.0.1:0`, builds a
//! dataset through the gRPC API, and times calls end to end over loopback
//! gRPC with the generated client, on SQLite (a temporary file) and on
//! PostgreSQL (a fresh database, dropped afterwards):
//!
//! - 10,000 groups in 8 levels: a forest whose roots are level 0, every
//!   other group a member of one or two groups of the level above (so the
//!   hierarchy has diamonds);
//! - 100,000 principals, each a direct member of 1 to 3 groups, mostly
//!   leaves;
//! - one group of 100,000 members (every principal) and one of 10.
//!
//! Then it reports count, p50, p99 and max of `CheckMembership` (transitive
//! true and false answers, direct), `ListMemberGroups` (transitive), and of
//! AddGroupMembers adding one new principal to the big and to the small
//! group, with PASS/MISS against the targets the README states. A MISS is
//! printed loudly but does not fail the process. Answers are checked
//! against the dataset too, and wrong ones are reported (without failing
//! either).
//!
//! `cargo bench --bench membership` runs the full sizes. Without `--bench`
//! (as `cargo test --benches` runs it) it does a quick smoke run instead.
//! Environment:
//!
//! - `GROUPD_BENCH_SCALE`: dataset size factor (default 1; 0.01 in a smoke
//!   run); the 8 levels stay.
//! - `GROUPD_BENCH_CALLS`: factor on the number of measured calls (default
//!   1; 0.05 in a smoke run).
//! - `GROUPD_BENCH_BACKENDS`: `sqlite`, `postgres` or `sqlite,postgres`
//!   (default).
//! - `GROUPD_BENCH_POSTGRES_URL`, else `GROUPD_TEST_POSTGRES_URL`: the
//!   admin URL used to create and drop the database (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`). PostgreSQL is skipped
//!   with a message when it does not answer.
//! - `GROUPD_BENCH_CONCURRENCY`: client tasks building the dataset
//!   (default 8).
//! - `GROUPD_BENCH_SEED`: the RNG seed of the dataset and of the queries
//!   (default 4).
//! - `GROUPD_BENCH_ANALYZE`: on PostgreSQL, run `ANALYZE` once the dataset
//!   is built, as autovacuum would after such a load (`1`, the default), or
//!   measure on tables without statistics (`0`).
//! - `GROUPD_BENCH_KEEP=1`: keep the database afterwards (its URL is
//!   printed), to look at query plans.

// A benchmark, not request-path code: a setup call that fails aborts the
// run with its message, which is what `expect` says best.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use groupd::{
    config::Settings,
    pb::{self, group_service_client::GroupServiceClient},
    startup::Application,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use sea_orm::ConnectionTrait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

#[path = "../tests/support/scratch_db.rs"]
mod scratch_db;

use scratch_db::{ScratchDb, connect_admin, postgres_admin_url};

type Client = GroupServiceClient<Channel>;

/// Groups per level at scale 1, roots first: 10,000 in all.
const LEVEL_SIZES: [usize; 8] = [10, 25, 60, 150, 380, 950, 2400, 6025];
/// Principals at scale 1; the big group holds all of them.
const PRINCIPALS: usize = 100_000;
/// Members of the small group.
const SMALL_MEMBERS: usize = 10;
/// Most members per AddGroupMembers call (the server's default limit).
const BATCH: usize = 10_000;
/// The share of a group's children that also join a second parent.
const SECOND_PARENT: f64 = 0.3;
/// The share of direct memberships that go to a leaf group.
const LEAF_MEMBERSHIP: f64 = 0.9;

/// Where membership calls are answered from, as a label suffix: the
/// server's membership index, then the database (`fully_consistent`).
const SOURCES: [(&str, bool); 2] = [("", false), (" (database)", true)];

/// The target for transitive CheckMembership p99 on SQLite.
const CHECK_P99_TARGET: Duration = Duration::from_millis(2);
/// The target for p50(add one to the big group) / p50(… small one).
const ADD_RATIO_TARGET: f64 = 2.0;

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let config = Config::from_env(bench_mode);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    runtime.block_on(run(config));
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

#[derive(Debug, Clone)]
struct Config {
    smoke: bool,
    scale: f64,
    calls: f64,
    backends: Vec<Backend>,
    postgres_url: String,
    concurrency: usize,
    seed: u64,
    analyze: bool,
    keep: bool,
}

impl Config {
    fn from_env(bench_mode: bool) -> Self {
        let smoke = !bench_mode;
        let backends = std::env::var("GROUPD_BENCH_BACKENDS")
            .unwrap_or_else(|_| "sqlite,postgres".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| match name.to_ascii_lowercase().as_str() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "postgresql" => Backend::Postgres,
                other => panic!("GROUPD_BENCH_BACKENDS: unknown backend {other:?}"),
            })
            .collect();
        let postgres_url = postgres_admin_url(&["GROUPD_BENCH_POSTGRES_URL"]);
        Self {
            smoke,
            scale: env_number("GROUPD_BENCH_SCALE", if smoke { 0.01 } else { 1.0 }),
            calls: env_number("GROUPD_BENCH_CALLS", if smoke { 0.05 } else { 1.0 }),
            backends,
            postgres_url,
            concurrency: env_number("GROUPD_BENCH_CONCURRENCY", 8.0).max(1.0) as usize,
            seed: env_number("GROUPD_BENCH_SEED", 4.0) as u64,
            analyze: env_flag("GROUPD_BENCH_ANALYZE", true),
            keep: env_flag("GROUPD_BENCH_KEEP", false),
        }
    }

    /// `full` calls scaled by `GROUPD_BENCH_CALLS`, at least 10.
    fn calls(&self, full: usize) -> usize {
        ((full as f64 * self.calls).round() as usize).max(10)
    }
}

fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name).as_deref().map(str::trim) {
        Ok("1" | "true" | "yes" | "on") => true,
        Ok("0" | "false" | "no" | "off") => false,
        Ok(other) => panic!("{name}={other:?} is neither 1 nor 0"),
        Err(_) => default,
    }
}

/// The load average of the machine, to tell a quiet run from a busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
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

// ---------------------------------------------------------------------------
// The dataset, generated in memory first, so that answers can be checked.
// ---------------------------------------------------------------------------

struct Dataset {
    /// Group ids by index; parents always have smaller indices.
    ids: Vec<String>,
    level: Vec<usize>,
    /// Group indices of each level.
    levels: Vec<Vec<usize>>,
    parents: Vec<Vec<usize>>,
    /// Every transitive parent of each group, sorted, the group excluded.
    ancestors: Vec<Vec<usize>>,
    /// Direct members (principal indices) of each group.
    members: Vec<Vec<usize>>,
    /// Direct groups of each principal.
    direct: Vec<Vec<usize>>,
    big_id: String,
    small_id: String,
}

fn principal_id(index: usize) -> String {
    format!("user-{index:06}")
}

impl Dataset {
    fn generate(scale: f64, rng: &mut StdRng) -> Self {
        let mut ids = Vec::new();
        let mut level_of = Vec::new();
        let mut levels: Vec<Vec<usize>> = Vec::new();
        let mut parents: Vec<Vec<usize>> = Vec::new();
        for (level, full) in LEVEL_SIZES.iter().enumerate() {
            let count = ((*full as f64 * scale).round() as usize).max(1);
            let mut this_level = Vec::with_capacity(count);
            for n in 0..count {
                let index = ids.len();
                ids.push(format!("l{level}-g{n:05}"));
                level_of.push(level);
                this_level.push(index);
                let mut mine = Vec::new();
                if level > 0 {
                    let above = &levels[level - 1];
                    // Round robin first, so that every group above has a
                    // child and every leaf is 8 levels deep; then a random
                    // second parent for some: diamonds.
                    let first = above[n % above.len()];
                    mine.push(first);
                    if above.len() > 1 && rng.random_bool(SECOND_PARENT) {
                        let second = loop {
                            let candidate = *above.choose(rng).expect("a level above");
                            if candidate != first {
                                break candidate;
                            }
                        };
                        mine.push(second);
                    }
                }
                parents.push(mine);
            }
            levels.push(this_level);
        }

        let mut ancestors: Vec<Vec<usize>> = Vec::with_capacity(ids.len());
        for mine in &parents {
            let mut all = BTreeSet::new();
            for &parent in mine {
                all.insert(parent);
                all.extend(ancestors[parent].iter().copied());
            }
            ancestors.push(all.into_iter().collect());
        }

        let principals = ((PRINCIPALS as f64 * scale).round() as usize).max(SMALL_MEMBERS);
        let leaves = levels.last().expect("levels").clone();
        let inner: Vec<usize> = levels[..levels.len() - 1].concat();
        let mut members = vec![Vec::new(); ids.len()];
        let mut direct = Vec::with_capacity(principals);
        for principal in 0..principals {
            let wanted = rng.random_range(1..=3);
            let mut mine = BTreeSet::new();
            while mine.len() < wanted {
                let pool = if inner.is_empty() || rng.random_bool(LEAF_MEMBERSHIP) {
                    &leaves
                } else {
                    &inner
                };
                mine.insert(*pool.choose(rng).expect("groups"));
            }
            for &group in &mine {
                members[group].push(principal);
            }
            direct.push(mine.into_iter().collect());
        }

        Self {
            ids,
            level: level_of,
            levels,
            parents,
            ancestors,
            members,
            direct,
            big_id: "big".to_owned(),
            small_id: "small".to_owned(),
        }
    }

    fn principals(&self) -> usize {
        self.direct.len()
    }

    fn memberships(&self) -> usize {
        self.direct.iter().map(Vec::len).sum()
    }

    /// Every group the principal is in, directly or through `member_of`
    /// (the big group included).
    fn closure(&self, principal: usize) -> BTreeSet<String> {
        let mut groups = BTreeSet::new();
        for &group in &self.direct[principal] {
            groups.insert(self.ids[group].clone());
            for &ancestor in &self.ancestors[group] {
                groups.insert(self.ids[ancestor].clone());
            }
        }
        groups.insert(self.big_id.clone());
        groups
    }

    fn is_transitive_member(&self, principal: usize, group: usize) -> bool {
        self.direct[principal]
            .iter()
            .any(|&own| own == group || self.ancestors[own].binary_search(&group).is_ok())
    }

    fn describe(&self) -> String {
        let sizes: Vec<String> = self.levels.iter().map(|l| l.len().to_string()).collect();
        let max_ancestors = self.ancestors.iter().map(Vec::len).max().unwrap_or(0);
        let leaves = self.levels.last().map_or(0, Vec::len);
        let leaf_ancestors = self
            .levels
            .last()
            .map(|l| l.iter().map(|&g| self.ancestors[g].len()).sum::<usize>())
            .unwrap_or(0) as f64
            / leaves.max(1) as f64;
        format!(
            "{} groups in {} levels ({}), {} with two parents; a leaf has {:.1} ancestors on \
             average (at most {max_ancestors}); {} principals with {} direct memberships; \
             big group {} members, small group {SMALL_MEMBERS}",
            self.ids.len(),
            self.levels.len(),
            sizes.join("/"),
            self.parents.iter().filter(|p| p.len() > 1).count(),
            leaf_ancestors,
            self.principals(),
            self.memberships(),
            self.principals(),
        )
    }
}

// ---------------------------------------------------------------------------
// Databases and the server.
// ---------------------------------------------------------------------------

/// A fresh database for `backend`, and its URL, or why there is none.
async fn scratch_database(
    backend: Backend,
    config: &Config,
) -> Result<(String, ScratchDb), String> {
    match backend {
        Backend::Sqlite => Ok(ScratchDb::sqlite("groupd_bench")),
        Backend::Postgres => ScratchDb::postgres(&config.postgres_url, "groupd_bench")
            .await
            .map_err(|problem| problem.to_string()),
    }
}

/// The size of a scratch database, when it can be told.
async fn database_size(scratch: &ScratchDb) -> Option<u64> {
    match scratch {
        ScratchDb::Sqlite { path } => ["", "-wal"]
            .iter()
            .map(|suffix| {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
            })
            .sum::<u64>()
            .into(),
        ScratchDb::Postgres { admin_url, name } => {
            let admin = connect_admin(admin_url).await.ok()?;
            let row = admin
                .query_one_raw(sea_orm::Statement::from_string(
                    admin.get_database_backend(),
                    format!("SELECT pg_database_size('{name}') AS size"),
                ))
                .await
                .ok()??;
            let _ = admin.close().await;
            row.try_get::<i64>("", "size").ok().map(|s| s as u64)
        }
    }
}

/// Runs `ANALYZE` when asked (and says how long it took), or says that the
/// tables have no statistics unless autovacuum gathered some.
async fn postgres_statistics(url: &str, analyze: bool) {
    let db = connect_admin(url)
        .await
        .expect("connect to the bench database");
    let autovacuum = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT current_setting('autovacuum') AS on",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<String>("", "on").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    if analyze {
        let started = Instant::now();
        db.execute_unprepared("ANALYZE").await.expect("ANALYZE");
        println!(
            "ANALYZE after the build: {:.1} s (as autovacuum would; autovacuum here: {autovacuum})",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "no ANALYZE after the build (GROUPD_BENCH_ANALYZE=0; autovacuum here: {autovacuum})"
        );
    }
    let _ = db.close().await;
}

struct Server {
    client: Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_server(url: &str, max_members_per_group: usize) -> Server {
    let settings = Settings::parse_from_args([
        "groupd".to_owned(),
        "--database-url".to_owned(),
        url.to_owned(),
        "--grpc-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--http-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--max-members-per-group".to_owned(),
        max_members_per_group.to_string(),
    ])
    .expect("bench settings");
    let application = Application::build(settings)
        .await
        .expect("Application::build");
    let addr = application.grpc_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(application.run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("cannot connect to groupd");
    Server {
        client: GroupServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
        shutdown,
        task,
    }
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => eprintln!("warning: the server stopped with {error:#}"),
            Ok(Err(join)) => eprintln!("warning: the server task failed: {join}"),
            Err(_) => eprintln!("warning: the server did not stop within 30 s"),
        }
    }
}

// ---------------------------------------------------------------------------
// Building the dataset through the API.
// ---------------------------------------------------------------------------

/// Runs `call` on every item with `concurrency` client tasks pulling from
/// one queue.
async fn in_parallel<T, F, Fut>(client: &Client, items: Vec<T>, concurrency: usize, call: F)
where
    T: Send + 'static,
    F: Fn(Client, T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let queue = Arc::new(Mutex::new(items.into_iter()));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let queue = Arc::clone(&queue);
        let client = client.clone();
        let call = call.clone();
        tasks.spawn(async move {
            loop {
                let next = queue.lock().expect("queue").next();
                let Some(item) = next else { break };
                call(client.clone(), item).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a build task panicked");
    }
}

fn members_of(ids: impl IntoIterator<Item = String>) -> Vec<pb::Member> {
    ids.into_iter().map(|id| pb::Member { id }).collect()
}

fn create_request(id: &str, parents: Vec<String>) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        group: Some(pb::Group {
            name: id.to_owned(),
            member_of: parents
                .into_iter()
                .map(|group_id| pb::GroupRef { group_id })
                .collect(),
            ..Default::default()
        }),
        group_id: id.to_owned(),
        ..Default::default()
    }
}

async fn create(mut client: Client, request: pb::CreateGroupRequest) {
    let id = request.group_id.clone();
    if let Err(status) = client.create_group(request).await {
        panic!("CreateGroup {id}: {status:?}");
    }
}

async fn add(mut client: Client, request: pb::AddGroupMembersRequest) {
    let id = request.id.clone();
    if let Err(status) = client.add_group_members(request).await {
        panic!("AddGroupMembers {id}: {status:?}");
    }
}

struct BuildTimes {
    groups: Duration,
    members: Duration,
    big: Duration,
    total: Duration,
    calls: usize,
}

async fn build(client: &Client, data: &Dataset, concurrency: usize) -> BuildTimes {
    let started = Instant::now();
    let mut calls = 0;
    // Level by level: a parent must exist before its children name it.
    for level in &data.levels {
        let requests: Vec<_> = level
            .iter()
            .map(|&group| {
                let parents = data.parents[group]
                    .iter()
                    .map(|&p| data.ids[p].clone())
                    .collect();
                create_request(&data.ids[group], parents)
            })
            .collect();
        calls += requests.len();
        in_parallel(client, requests, concurrency, create).await;
    }
    let groups = started.elapsed();

    let started_members = Instant::now();
    let mut requests = Vec::new();
    for (group, members) in data.members.iter().enumerate() {
        for batch in members.chunks(BATCH) {
            requests.push(pb::AddGroupMembersRequest {
                id: data.ids[group].clone(),
                members: members_of(batch.iter().map(|&p| principal_id(p))),
                admins: Vec::new(),
            });
        }
    }
    calls += requests.len();
    in_parallel(client, requests, concurrency, add).await;
    let members = started_members.elapsed();

    let started_big = Instant::now();
    create(client.clone(), create_request(&data.big_id, Vec::new())).await;
    let all: Vec<usize> = (0..data.principals()).collect();
    let requests: Vec<_> = all
        .chunks(BATCH)
        .map(|batch| pb::AddGroupMembersRequest {
            id: data.big_id.clone(),
            members: members_of(batch.iter().map(|&p| principal_id(p))),
            admins: Vec::new(),
        })
        .collect();
    calls += requests.len() + 2;
    in_parallel(client, requests, concurrency, add).await;
    let mut small = create_request(&data.small_id, Vec::new());
    if let Some(group) = small.group.as_mut() {
        group.members = members_of((0..SMALL_MEMBERS).map(|n| format!("small-{n:02}")));
    }
    create(client.clone(), small).await;
    let big = started_big.elapsed();

    BuildTimes {
        groups,
        members,
        big,
        total: started.elapsed(),
        calls,
    }
}

// ---------------------------------------------------------------------------
// Measuring.
// ---------------------------------------------------------------------------

/// The latencies of one kind of call.
struct Row {
    label: String,
    outcome: Outcome,
}

enum Outcome {
    Measured {
        times: Vec<Duration>,
        /// Calls that failed or answered something the dataset contradicts.
        wrong: usize,
        first_wrong: Option<String>,
        note: String,
    },
    Skipped(String),
}

struct Stats {
    calls: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(times: &[Duration]) -> Stats {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let rank = |p: f64| {
        let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1]
    };
    Stats {
        calls: sorted.len(),
        p50: rank(50.0),
        p99: rank(99.0),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

impl Row {
    fn stats(&self) -> Option<Stats> {
        match &self.outcome {
            Outcome::Measured { times, .. } if !times.is_empty() => Some(stats(times)),
            _ => None,
        }
    }
}

/// Times `calls` after `warmup` untimed ones; `check` judges each answer
/// (outside the timed span) and returns what was wrong with it. The first
/// warm-up call answering UNIMPLEMENTED skips the row.
async fn measure<Q, A, F, Fut, C>(
    label: &str,
    warmup: Vec<Q>,
    calls: Vec<Q>,
    mut call: F,
    check: C,
) -> Row
where
    Q: Clone,
    F: FnMut(Q) -> Fut,
    Fut: Future<Output = Result<A, tonic::Status>>,
    C: Fn(&Q, &A) -> Option<String>,
{
    let mut wrong = 0;
    let mut first_wrong = None;
    let mut note_wrong = |problem: String| {
        wrong += 1;
        first_wrong.get_or_insert(problem);
    };
    for query in warmup {
        if let Err(status) = call(query).await {
            if status.code() == Code::Unimplemented {
                return Row {
                    label: label.to_owned(),
                    outcome: Outcome::Skipped("UNIMPLEMENTED".to_owned()),
                };
            }
            note_wrong(format!("warm-up call failed: {status:?}"));
        }
    }
    let mut times = Vec::with_capacity(calls.len());
    for query in calls {
        let started = Instant::now();
        let answer = call(query.clone()).await;
        times.push(started.elapsed());
        match answer {
            Ok(answer) => {
                if let Some(problem) = check(&query, &answer) {
                    note_wrong(problem);
                }
            }
            Err(status) => note_wrong(format!("call failed: {status:?}")),
        }
    }
    Row {
        label: label.to_owned(),
        outcome: Outcome::Measured {
            times,
            wrong,
            first_wrong,
            note: String::new(),
        },
    }
}

/// Draws a CheckMembership question of one kind.
type MakeQuestion<'a> = &'a (dyn Fn(&mut StdRng) -> Question + Sync);

/// A CheckMembership question and the answer the dataset implies.
#[derive(Clone)]
struct Question {
    principal: usize,
    group: usize,
    member: bool,
    direct: bool,
}

fn check_answer(
    data: &Dataset,
    index: &HashMap<&str, usize>,
    question: &Question,
    answer: &pb::CheckMembershipResponse,
) -> Option<String> {
    let asked = format!(
        "{} in {}",
        principal_id(question.principal),
        data.ids[question.group]
    );
    if answer.is_member != question.member || answer.direct != question.direct {
        return Some(format!(
            "{asked}: is_member={} direct={}, expected {} {}",
            answer.is_member, answer.direct, question.member, question.direct
        ));
    }
    if !question.member {
        return (!answer.path.is_empty()).then(|| format!("{asked}: a path for a non-member"));
    }
    let groups: Option<Vec<usize>> = answer
        .path
        .iter()
        .map(|id| index.get(id.as_str()).copied())
        .collect();
    let valid = groups.is_some_and(|path| {
        path.first()
            .is_some_and(|first| data.direct[question.principal].contains(first))
            && path.last() == Some(&question.group)
            && path
                .windows(2)
                .all(|pair| data.parents[pair[0]].contains(&pair[1]))
    });
    (!valid).then(|| format!("{asked}: invalid path {:?}", answer.path))
}

async fn measure_backend(
    config: &Config,
    client: &Client,
    data: &Dataset,
    rng: &mut StdRng,
) -> Vec<Row> {
    let index: HashMap<&str, usize> = data
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let leaf_level = data.levels.len() - 1;
    let mut rows = Vec::new();

    // A reference point: the cheapest read (one group row, one snapshot
    // transaction), so that the rows below can be read as this plus what
    // membership adds.
    let get = |group: usize| {
        let mut client = client.clone();
        async move {
            client
                .get_group(pb::GetGroupRequest {
                    id: data.ids[group].clone(),
                    view: pb::GroupView::Basic.into(),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let check_get = |group: &usize, answer: &pb::Group| {
        (answer.id != data.ids[*group])
            .then(|| format!("GetGroup {}: {}", data.ids[*group], answer.id))
    };
    let pick_group = |rng: &mut StdRng| rng.random_range(0..data.ids.len());
    let warmup = (0..config.calls(200)).map(|_| pick_group(rng)).collect();
    let calls = (0..config.calls(1_000)).map(|_| pick_group(rng)).collect();
    rows.push(measure("GetGroup BASIC (reference)", warmup, calls, get, check_get).await);

    // Transitive, true: a principal of a leaf group, asked against a root
    // reached by walking up random parents (8 levels).
    let transitive_true = |rng: &mut StdRng| loop {
        let principal = rng.random_range(0..data.principals());
        let leaves: Vec<usize> = data.direct[principal]
            .iter()
            .copied()
            .filter(|&g| data.level[g] == leaf_level)
            .collect();
        let Some(&leaf) = leaves.choose(rng) else {
            continue;
        };
        let mut group = leaf;
        while let Some(&parent) = data.parents[group].choose(rng) {
            group = parent;
        }
        break Question {
            principal,
            group,
            member: true,
            direct: data.direct[principal].contains(&group),
        };
    };
    // Transitive, false: a group of the top three levels the principal is
    // not in, directly or not.
    let top: Vec<usize> = data.levels.iter().take(3).flatten().copied().collect();
    let transitive_false = |rng: &mut StdRng| loop {
        let principal = rng.random_range(0..data.principals());
        let group = *top.choose(rng).expect("groups");
        if !data.is_transitive_member(principal, group) {
            break Question {
                principal,
                group,
                member: false,
                direct: false,
            };
        }
    };
    let direct = |rng: &mut StdRng| {
        let principal = rng.random_range(0..data.principals());
        let group = *data.direct[principal].choose(rng).expect("a group");
        Question {
            principal,
            group,
            member: true,
            direct: true,
        }
    };

    let check = |q: &Question, a: &pb::CheckMembershipResponse| check_answer(data, &index, q, a);

    let kinds: [(&str, MakeQuestion<'_>, usize); 3] = [
        (
            "CheckMembership transitive, member",
            &transitive_true,
            2_000,
        ),
        (
            "CheckMembership transitive, not member",
            &transitive_false,
            1_000,
        ),
        ("CheckMembership direct", &direct, 2_000),
    ];
    // Each kind from the server's membership index, then from the
    // database (`fully_consistent`).
    for (source, fully_consistent) in SOURCES {
        let ask = |question: Question| {
            let mut client = client.clone();
            async move {
                client
                    .check_membership(pb::CheckMembershipRequest {
                        id: data.ids[question.group].clone(),
                        member_id: principal_id(question.principal),
                        fully_consistent,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            }
        };
        for (label, make, full) in kinds {
            let warmup = (0..config.calls(200)).map(|_| make(rng)).collect();
            let calls = (0..config.calls(full)).map(|_| make(rng)).collect();
            let label = format!("{label}{source}");
            rows.push(measure(&label, warmup, calls, ask, check).await);
        }
    }

    // ListMemberGroups, transitive, one page of up to 1000 groups.
    let check_list = |principal: &usize, answer: &pb::ListMemberGroupsResponse| {
        let got: BTreeSet<String> = answer.groups.iter().map(|g| g.id.clone()).collect();
        let expected = data.closure(*principal);
        if got != expected || !answer.next_page_token.is_empty() {
            Some(format!(
                "{}: {} groups (more pages: {}), expected {}",
                principal_id(*principal),
                got.len(),
                !answer.next_page_token.is_empty(),
                expected.len()
            ))
        } else {
            None
        }
    };
    let pick = |rng: &mut StdRng| rng.random_range(0..data.principals());
    for (source, fully_consistent) in SOURCES {
        let list = |principal: usize| {
            let mut client = client.clone();
            async move {
                client
                    .list_member_groups(pb::ListMemberGroupsRequest {
                        member_id: principal_id(principal),
                        transitive: true,
                        page_size: 1000,
                        page_token: String::new(),
                        fully_consistent,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            }
        };
        let warmup = (0..config.calls(100)).map(|_| pick(rng)).collect();
        let calls: Vec<usize> = (0..config.calls(1_000)).map(|_| pick(rng)).collect();
        let average =
            calls.iter().map(|&p| data.closure(p).len()).sum::<usize>() as f64 / calls.len() as f64;
        let label = format!("ListMemberGroups transitive{source}");
        let mut row = measure(&label, warmup, calls, list, check_list).await;
        if let Outcome::Measured { note, .. } = &mut row.outcome {
            *note = format!("{average:.1} groups per answer on average");
        }
        rows.push(row);
    }

    rows.extend(measure_adds(config, client, data).await);
    rows
}

/// Adds one new principal to the big group, then to the small one,
/// alternately (so drift hits both alike); each is removed again, untimed,
/// so that the groups keep their sizes.
async fn measure_adds(config: &Config, client: &Client, data: &Dataset) -> Vec<Row> {
    let warmup = config.calls(20);
    let count = config.calls(200);
    let mut big = Vec::with_capacity(count);
    let mut small = Vec::with_capacity(count);
    let mut failures = Vec::new();
    let mut client = client.clone();
    for n in 0..warmup + count {
        for (group, times) in [(&data.big_id, &mut big), (&data.small_id, &mut small)] {
            let principal = format!("new-{group}-{n:05}");
            let request = pb::AddGroupMembersRequest {
                id: group.clone(),
                members: members_of([principal.clone()]),
                admins: Vec::new(),
            };
            let started = Instant::now();
            let answer = client.add_group_members(request).await;
            let took = started.elapsed();
            if n >= warmup {
                times.push(took);
            }
            if let Err(status) = answer {
                failures.push(format!("AddGroupMembers {group}: {status:?}"));
            }
            let remove = pb::RemoveGroupMembersRequest {
                id: group.clone(),
                members: members_of([principal]),
                admins: Vec::new(),
            };
            if let Err(status) = client.remove_group_members(remove).await {
                failures.push(format!("RemoveGroupMembers {group}: {status:?}"));
            }
        }
    }
    let row = |label: String, times: Vec<Duration>| Row {
        label,
        outcome: Outcome::Measured {
            times,
            wrong: failures.len(),
            first_wrong: failures.first().cloned(),
            note: String::new(),
        },
    };
    vec![
        row(
            format!(
                "AddGroupMembers +1, {}-member group",
                thousands(data.principals())
            ),
            big,
        ),
        row(
            format!("AddGroupMembers +1, {SMALL_MEMBERS}-member group"),
            small,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Reporting.
// ---------------------------------------------------------------------------

fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A target verdict, for the table and the final summary.
struct Verdict {
    backend: Backend,
    what: String,
    pass: bool,
}

fn report(backend: Backend, rows: &[Row], verdicts: &mut Vec<Verdict>) {
    println!(
        "\n{:<52} {:>6} {:>10} {:>10} {:>10}   target",
        "call (latency in ms, end to end)", "calls", "p50", "p99", "max"
    );
    println!("{}", "-".repeat(104));
    for row in rows {
        match (&row.outcome, row.stats()) {
            (Outcome::Skipped(reason), _) => {
                println!("{:<52} {:>6}   not measured: {reason}", row.label, "-");
            }
            (
                Outcome::Measured {
                    wrong,
                    first_wrong,
                    note,
                    ..
                },
                Some(stats),
            ) => {
                let mut target = String::new();
                if row.label.starts_with("CheckMembership transitive") {
                    let pass = stats.p99 < CHECK_P99_TARGET;
                    if backend == Backend::Sqlite {
                        target = format!(
                            "p99 < {} ms: {}",
                            ms(CHECK_P99_TARGET),
                            if pass { "PASS" } else { "MISS" }
                        );
                        verdicts.push(Verdict {
                            backend,
                            what: format!(
                                "{}: p99 {} ms (target < {} ms)",
                                row.label,
                                ms(stats.p99),
                                ms(CHECK_P99_TARGET)
                            ),
                            pass,
                        });
                    } else {
                        target = format!(
                            "(SQLite's target, p99 < {} ms: {})",
                            ms(CHECK_P99_TARGET),
                            if pass { "met" } else { "not met" }
                        );
                    }
                }
                println!(
                    "{:<52} {:>6} {:>10} {:>10} {:>10}   {target}",
                    row.label,
                    stats.calls,
                    ms(stats.p50),
                    ms(stats.p99),
                    ms(stats.max)
                );
                if !note.is_empty() {
                    println!("{:<52} {note}", "");
                }
                if *wrong > 0 {
                    println!(
                        "!!! {wrong} WRONG OR FAILED ANSWERS, e.g. {}",
                        first_wrong.as_deref().unwrap_or("?")
                    );
                }
            }
            (Outcome::Measured { .. }, None) => {
                println!("{:<52} {:>6}   no calls", row.label, 0);
            }
        }
    }
    let adds: Vec<Stats> = rows
        .iter()
        .filter(|row| row.label.starts_with("AddGroupMembers"))
        .filter_map(Row::stats)
        .collect();
    if let [big, small] = adds.as_slice() {
        let ratio = big.p50.as_secs_f64() / small.p50.as_secs_f64();
        let pass = ratio <= ADD_RATIO_TARGET;
        println!(
            "{:<52} {:>6} {:>10}   {:>31}",
            "AddGroupMembers +1, big/small p50 ratio",
            "",
            format!("{ratio:.2}"),
            format!(
                "≤ {ADD_RATIO_TARGET}: {}",
                if pass { "PASS" } else { "MISS" }
            )
        );
        verdicts.push(Verdict {
            backend,
            what: format!(
                "AddGroupMembers +1 big/small p50 ratio {ratio:.2} (target ≤ {ADD_RATIO_TARGET})"
            ),
            pass,
        });
    }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

async fn run(config: Config) {
    println!(
        "groupd membership benchmark{}: scale {}, calls ×{}, seed {}, {} build tasks, {} CPU(s)",
        if config.smoke {
            " (smoke run: `cargo bench --bench membership` runs the full one)"
        } else {
            ""
        },
        config.scale,
        config.calls,
        config.seed,
        config.concurrency,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let mut rng = StdRng::seed_from_u64(config.seed);
    let data = Arc::new(Dataset::generate(config.scale, &mut rng));
    println!("dataset: {}", data.describe());

    let mut verdicts = Vec::new();
    for &backend in &config.backends {
        println!("\n=== {} ===", backend.name());
        let (url, scratch) = match scratch_database(backend, &config).await {
            Ok(created) => created,
            Err(reason) => {
                println!("SKIPPED {}: {reason}", backend.name());
                continue;
            }
        };
        let url_shown = url.clone();
        // The same query sequence on every backend.
        let mut query_rng = StdRng::seed_from_u64(config.seed.wrapping_add(1));
        let task = {
            let config = config.clone();
            let data = Arc::clone(&data);
            tokio::spawn(async move {
                // Room for the measured additions on top of the big group.
                let server = start_server(&url, data.principals() + 1_000).await;
                let times = build(&server.client, &data, config.concurrency).await;
                println!(
                    "build through the API: {:.1} s in all ({} calls): groups {:.1} s, \
                     memberships {:.1} s, big and small groups {:.1} s",
                    times.total.as_secs_f64(),
                    thousands(times.calls),
                    times.groups.as_secs_f64(),
                    times.members.as_secs_f64(),
                    times.big.as_secs_f64(),
                );
                if backend == Backend::Postgres {
                    postgres_statistics(&url, config.analyze).await;
                }
                println!("load average before measuring: {}", load_average());
                let rows = measure_backend(&config, &server.client, &data, &mut query_rng).await;
                server.stop().await;
                rows
            })
        };
        let outcome = task.await;
        let size = database_size(&scratch).await;
        if config.keep {
            println!("kept the database: {url_shown}");
        } else if let Err(problem) = scratch.drop_database().await {
            eprintln!("warning: {problem}");
        }
        let rows = match outcome {
            Ok(done) => done,
            Err(error) => {
                println!("!!! {} FAILED: {error}", backend.name());
                verdicts.push(Verdict {
                    backend,
                    what: format!("the run failed: {error}"),
                    pass: false,
                });
                continue;
            }
        };
        if let Some(bytes) = size {
            println!("database size: {} MB", bytes / 1_000_000);
        }
        report(backend, &rows, &mut verdicts);
        println!("load average after measuring: {}", load_average());
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
    if verdicts.is_empty() {
        println!("nothing measured against a target");
    }
    for verdict in &verdicts {
        if verdict.pass {
            println!("PASS  {}: {}", verdict.backend.name(), verdict.what);
        } else {
            println!(
                "!!! MISS  {}: {}  <<< target missed",
                verdict.backend.name(),
                verdict.what
            );
        }
    }
}
