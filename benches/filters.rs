//! The filter benchmark (README, "Performance"): what ListGroups filters on
//! labels cost over many groups. A measurement, not a test.
//!
//! It starts the real [`Application`] in process on `127.0.0.1:0`, creates
//! the groups through the gRPC API (six labels each: `team` of 50 values,
//! `env` of 3, `tier` of 4, `owner` of 1,000, `note` of 256 `a`s, and on
//! every other group `a`, twelve letters from `a` to `j`), then times each
//! filter of [`filters`]
//! as one ListGroups call (the first page of 50 and `total_size`, which
//! counts every match) over loopback gRPC, and prints the code, the median
//! and the slowest of the runs, and the count. The first filter is the
//! probe of a security review: `-labels.a:b` 170 times.
//!
//! Each backend is measured twice on the same database: with the default
//! filter budget, and with every budget raised as far as the filter length
//! allows (`--max-filter-*`), to show what the SQL itself costs for the
//! filters the budget refuses. Last, how soon a costly listing stopped at
//! its deadline frees its connection: on a server with one pooled
//! connection, a listing searching the 256-character label a hundred
//! times (seconds of work) is sent with a deadline of 300 ms, and a
//! GetGroup right after it is timed, against GetGroup on an idle server.
//!
//! `cargo bench --bench filters` runs 50,000 groups; without `--bench` (as
//! `cargo test --benches` runs it) it does a smoke run of 300. Environment:
//! `GROUPD_BENCH_GROUPS` (the number of groups), `GROUPD_BENCH_RUNS` (runs
//! per filter, default 5), `GROUPD_BENCH_BACKENDS` (`sqlite`, `postgres`
//! or both, the default), `GROUPD_BENCH_POSTGRES_URL` else
//! `GROUPD_TEST_POSTGRES_URL` (the admin URL; PostgreSQL is skipped with a
//! message when it does not answer).

// A benchmark, not request-path code: a setup call that fails aborts the
// run with its message, which is what `expect` says best.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use groupd::{
    config::Settings,
    pb::{self, group_service_client::GroupServiceClient},
    startup::Application,
};
use sea_orm::ConnectionTrait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[path = "../tests/support/scratch_db.rs"]
mod scratch_db;

use scratch_db::{ScratchDb, connect_admin, postgres_admin_url};

type Client = GroupServiceClient<Channel>;

/// Flags that raise every filter budget beyond what 2,048 bytes can hold.
const UNBUDGETED: [&str; 6] = [
    "--max-filter-terms",
    "1000",
    "--max-filter-negations",
    "1000",
    "--max-filter-substring-matches",
    "1000",
];

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let groups = env_count("GROUPD_BENCH_GROUPS", if bench_mode { 50_000 } else { 300 });
    let runs = env_count("GROUPD_BENCH_RUNS", if bench_mode { 5 } else { 1 });
    let backends =
        std::env::var("GROUPD_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    println!(
        "groupd filter benchmark: {groups} groups, {runs} run(s) per filter, {} CPU(s)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for backend in backends.split(',').map(str::trim) {
        runtime.block_on(bench_backend(backend, groups, runs));
    }
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a count")),
        Err(_) => default,
    }
}

/// The filters measured, with a label each.
fn filters() -> Vec<(&'static str, String)> {
    let repeat = |term: &str, times: usize, join: &str| vec![term; times].join(join);
    let terms = |each: &dyn Fn(usize) -> String, join: &str| {
        (0..4).map(each).collect::<Vec<_>>().join(join)
    };
    let letter = |n: usize| char::from(b'a' + u8::try_from(n).unwrap_or(0));
    vec![
        (
            "the probe: `-labels.a:b` x170",
            repeat("-labels.a:b", 170, " "),
        ),
        ("`-labels.a:b` x4", repeat("-labels.a:b", 4, " ")),
        (
            "4 different negated label substrings",
            terms(&|n| format!("-labels.a:{}", letter(n)), " "),
        ),
        (
            "4 label substrings that cannot share a lookup",
            terms(&|n| format!("(labels.a:{} OR name = x{n})", letter(n)), " "),
        ),
        (
            "4 substrings of a 256-character label",
            terms(&|n| format!("labels.note:ab{n}"), " OR "),
        ),
        (
            "4 substrings of a 256-character label, apart",
            terms(&|n| format!("(labels.note:ab{n} OR name = x{n})"), " "),
        ),
        ("no filter", String::new()),
        ("labels.team = team7", "labels.team = team7".to_owned()),
        ("labels.team != team7", "labels.team != team7".to_owned()),
        ("labels:a", "labels:a".to_owned()),
        ("labels.a:b", "labels.a:b".to_owned()),
        (
            "labels.env = prod AND labels.team = team3",
            "labels.env = prod AND labels.team = team3".to_owned(),
        ),
        (
            "labels.owner = one of 10 values (OR)",
            (0..10)
                .map(|n| format!("labels.owner = user{n}"))
                .collect::<Vec<_>>()
                .join(" OR "),
        ),
        ("name:77", "name:77".to_owned()),
    ]
}

async fn bench_backend(backend: &str, groups: usize, runs: usize) {
    println!("\n=== {backend} ===");
    let (url, scratch) = match backend {
        "sqlite" => ScratchDb::sqlite("groupd_bench_filters"),
        "postgres" => {
            match ScratchDb::postgres(
                &postgres_admin_url(&["GROUPD_BENCH_POSTGRES_URL"]),
                "groupd_bench_filters",
            )
            .await
            {
                Ok(created) => created,
                Err(problem) => {
                    println!("SKIPPED: {problem}");
                    return;
                }
            }
        }
        other => panic!("GROUPD_BENCH_BACKENDS: unknown backend {other:?}"),
    };
    let (client, stop) = start_server(&url, &[]).await;
    let started = Instant::now();
    seed(&client, groups).await;
    println!(
        "created {groups} groups through the API in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if backend == "postgres" {
        // As autovacuum would after such a load.
        let db = connect_admin(&url)
            .await
            .expect("connect to the bench database");
        db.execute_unprepared("ANALYZE").await.expect("ANALYZE");
        let _ = db.close().await;
    }
    measure("default budget", &client, runs).await;
    stop.cancel();
    let (client, stop) = start_server(&url, &UNBUDGETED).await;
    measure("budgets raised", &client, runs).await;
    stop.cancel();
    let mut one_connection = UNBUDGETED.to_vec();
    one_connection.extend(["--db-max-connections", "1"]);
    let (client, stop) = start_server(&url, &one_connection).await;
    measure_stop(&client, runs).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Err(problem) = scratch.drop_database().await {
        eprintln!("warning: {problem}");
    }
}

async fn start_server(url: &str, extra: &[&str]) -> (Client, CancellationToken) {
    let mut args = vec![
        "groupd",
        "--database-url",
        url,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--log-filter",
        "warn",
    ];
    args.extend_from_slice(extra);
    let settings = Settings::parse_from_args(args).expect("bench settings");
    let application = Application::build(settings)
        .await
        .expect("Application::build");
    let addr = application.grpc_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("cannot connect to groupd");
    (GroupServiceClient::new(channel), shutdown)
}

/// The labels of group `n`: the `a` label from a fixed pseudo-random
/// sequence, so that every run sees the same data.
fn labels(n: usize) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("team".to_owned(), format!("team{}", n % 50)),
        ("env".to_owned(), ["prod", "dev", "stage"][n % 3].to_owned()),
        ("tier".to_owned(), (n % 4).to_string()),
        ("owner".to_owned(), format!("user{}", n % 1000)),
        ("note".to_owned(), "a".repeat(256)),
    ]);
    if n.is_multiple_of(2) {
        let mut state = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let a: String = (0..12)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + (state % 10) as u8)
            })
            .collect();
        labels.insert("a".to_owned(), a);
    }
    labels
}

/// Creates `groups` groups with eight client tasks.
async fn seed(client: &Client, groups: usize) {
    const TASKS: usize = 8;
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let mut client = client.clone();
        tasks.spawn(async move {
            for n in (task..groups).step_by(TASKS) {
                client
                    .create_group(pb::CreateGroupRequest {
                        group_id: format!("g{n:06}"),
                        group: Some(pb::Group {
                            name: format!("group-{n}"),
                            labels: labels(n).into_iter().collect(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await
                    .expect("CreateGroup");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a seeding task");
    }
}

async fn measure(setting: &str, client: &Client, runs: usize) {
    println!(
        "\n{setting}: {:<50} {:>22} {:>9} {:>9} {:>8}",
        "filter", "code", "median", "max", "count"
    );
    for (label, filter) in filters() {
        let mut times = Vec::with_capacity(runs);
        let mut outcome = (String::new(), 0);
        for _ in 0..runs {
            let mut client = client.clone();
            let started = Instant::now();
            let answer = client
                .list_groups(pb::ListGroupsRequest {
                    filter: filter.clone(),
                    page_size: 50,
                    ..Default::default()
                })
                .await;
            times.push(started.elapsed());
            outcome = match answer {
                Ok(page) => ("OK".to_owned(), page.into_inner().total_size),
                Err(status) => (format!("{:?}", status.code()), 0),
            };
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<66} {:>22} {:>7.1}ms {:>7.1}ms {:>8}",
            label,
            outcome.0,
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            outcome.1
        );
    }
}

/// How long GetGroup waits, right after a costly listing was answered at
/// its deadline, on a server with one pooled connection.
async fn measure_stop(client: &Client, runs: usize) {
    let costly = (0..100)
        .map(|n| format!("labels.note:ab{n:02}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let get = || {
        let mut client = client.clone();
        async move {
            let started = Instant::now();
            client
                .get_group(pb::GetGroupRequest {
                    id: "g000000".to_owned(),
                    ..Default::default()
                })
                .await
                .expect("GetGroup");
            started.elapsed()
        }
    };
    let mut idle = Vec::with_capacity(runs);
    for _ in 0..runs {
        idle.push(get().await);
    }
    let (mut answered, mut after) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let mut request = tonic::Request::new(pb::ListGroupsRequest {
            filter: costly.clone(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        if client.clone().list_groups(request).await.is_ok() {
            println!(
                "\nstop not measured: with so few groups the costly listing ends before its deadline"
            );
            return;
        }
        answered.push(started.elapsed());
        after.push(get().await);
    }
    let ms = |times: &mut Vec<Duration>| {
        times.sort();
        format!(
            "median {:.1} ms, max {:.1} ms",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        )
    };
    println!(
        "\nstopped at its deadline (one pooled connection): the costly listing answered after {}; \
         GetGroup right after it took {} (on the idle server: {})",
        ms(&mut answered),
        ms(&mut after),
        ms(&mut idle)
    );
}
