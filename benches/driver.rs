//! What one statement costs through each layer between groupd and SQLite
//! (ARCHITECTURE.md, "Round trips"): a measurement, not a test.
//!
//! On a temporary SQLite file configured as groupd configures its own
//! (WAL, `synchronous=NORMAL`) holding 10,000 rows, it times a point read
//! by primary key:
//!
//! 1. in SQLite alone: one statement that does every lookup itself (a
//!    recursive CTE joined to the table), so no driver is crossed;
//! 2. through sqlx on one connection held for the whole run;
//! 3. through sqlx on the pool, a checkout per statement (groupd's reads
//!    outside a transaction);
//! 4. through sea-orm's `query_one_raw` on the same pool, as `src/store/`
//!    sends them;
//!
//! each one statement at a time from one task (the latency of a round
//! trip), then 3 and 4 from 16 tasks at once (the throughput). It prints
//! microseconds per statement and statements per second.
//!
//! `cargo bench --bench driver` runs 50,000 statements per measurement;
//! without `--bench` (as `cargo test --benches` runs it), 500.

// A benchmark, not request-path code: a setup call that fails aborts the
// run with its message, which is what `expect` says best.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement,
    sqlx::{
        self, Row as _,
        sqlite::{SqliteJournalMode, SqliteSynchronous},
    },
};

const ROWS: usize = 10_000;
const TASKS: usize = 16;
const READ: &str = "SELECT id, value FROM rows WHERE id = ?";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let statements = if full { 50_000 } else { 500 };
    let path = std::env::temp_dir().join(format!(
        "groupd_driver_bench_{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let db = connect(&format!("sqlite://{}", path.display())).await;
    fill(&db).await;
    println!(
        "a point read by primary key, {ROWS} rows, {statements} statements per line \
         ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let started = Instant::now();
    let found: i64 = sqlx::query_scalar(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) \
         SELECT count(r.value) FROM k JOIN rows r ON r.id = 'row-' || (k.i * 7919 % ?)",
    )
    .bind(i64::try_from(statements).unwrap())
    .bind(i64::try_from(ROWS).unwrap())
    .fetch_one(db.get_sqlite_connection_pool())
    .await
    .unwrap();
    assert_eq!(found, i64::try_from(statements).unwrap());
    report(
        "SQLite alone (one statement, every lookup)",
        statements,
        started.elapsed(),
    );

    let pool = db.get_sqlite_connection_pool().clone();
    let mut held = pool.acquire().await.unwrap();
    let started = Instant::now();
    for n in 0..statements {
        let row = sqlx::query(READ)
            .bind(key(n))
            .fetch_one(&mut *held)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("value"), value(n));
    }
    report("sqlx, one connection held", statements, started.elapsed());
    drop(held);

    let read_sqlx = |pool: sqlx::SqlitePool, n: usize| async move {
        let row = sqlx::query(READ)
            .bind(key(n))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("value"), value(n));
    };
    let read_sea_orm = |db: DatabaseConnection, n: usize| async move {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                READ,
                [key(n).into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "value").unwrap(), value(n));
    };

    let elapsed = one_task(statements, |n| read_sqlx(pool.clone(), n)).await;
    report("sqlx, a pool checkout per statement", statements, elapsed);
    let elapsed = one_task(statements, |n| read_sea_orm(db.clone(), n)).await;
    report("sea-orm query_one_raw on the pool", statements, elapsed);
    let elapsed = tasks(statements, move |n| read_sqlx(pool.clone(), n)).await;
    report(
        &format!("sqlx, a pool checkout per statement, {TASKS} tasks"),
        statements,
        elapsed,
    );
    let shared = db.clone();
    let elapsed = tasks(statements, move |n| read_sea_orm(shared.clone(), n)).await;
    report(
        &format!("sea-orm query_one_raw on the pool, {TASKS} tasks"),
        statements,
        elapsed,
    );

    db.close().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A pool of 10 on `url`, as groupd's: WAL, `synchronous=NORMAL`, no ping
/// before each checkout.
async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(10)
        .sqlx_logging(false)
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        });
    Database::connect(options).await.unwrap()
}

async fn fill(db: &DatabaseConnection) {
    db.execute_unprepared("CREATE TABLE rows (id TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .await
        .unwrap();
    let pool = db.get_sqlite_connection_pool();
    let mut tx = pool.begin().await.unwrap();
    for n in 0..ROWS {
        sqlx::query("INSERT INTO rows (id, value) VALUES (?, ?)")
            .bind(format!("row-{n}"))
            .bind(format!("value of row {n}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// The key of the `n`th read: rows visited in a scattered order.
fn key(n: usize) -> String {
    format!("row-{}", n * 7919 % ROWS)
}

/// The value the `n`th read finds.
fn value(n: usize) -> String {
    format!("value of row {}", n * 7919 % ROWS)
}

/// Runs `read(0..statements)` one after another.
async fn one_task<F, Fut>(statements: usize, read: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    for n in 0..statements {
        read(n).await;
    }
    started.elapsed()
}

/// Runs `read(0..statements)` from [`TASKS`] tasks at once.
async fn tasks<F, Fut>(statements: usize, read: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut running = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let read = read.clone();
        running.push(tokio::spawn(async move {
            for n in (task..statements).step_by(TASKS) {
                read(n).await;
            }
        }));
    }
    for task in running {
        task.await.unwrap();
    }
    started.elapsed()
}

fn report(what: &str, statements: usize, elapsed: Duration) {
    #[allow(clippy::cast_precision_loss)]
    let count = statements as f64;
    println!(
        "{what:<56} {:>8.1} µs/statement {:>10.0} statements/s",
        elapsed.as_secs_f64() * 1e6 / count,
        count / elapsed.as_secs_f64()
    );
}
