//! Integration tests of groupd: each scenario starts the real server on a
//! fresh database and talks to it over gRPC, once on SQLite and once on
//! PostgreSQL (`<scenario>::sqlite`, `<scenario>::postgres`).
//!
//! PostgreSQL comes from `GROUPD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), and each PostgreSQL
//! scenario gets a fresh database on it. When no server answers there,
//! every `::postgres` test and `postgres_half_of_the_suite` fail with a
//! message naming the URL and saying how to start a server or opt out.
//! `GROUPD_TEST_SKIP_POSTGRES=1` opts out: the `::postgres` tests return
//! without running (libtest still lists them `ok`) and a notice that only
//! SQLite was tested is printed in the test output. Under `CI=true` the
//! opt-out is refused, and those tests fail. Set `TEST_LOG=1` to see the
//! server's logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod abuse;
mod auth;
mod capacity;
mod changes;
mod concurrency;
mod create;
mod delete;
mod durability;
mod filter;
mod get_list;
mod grouped_writes;
mod http;
mod members;
mod membership;
mod metrics;
mod openapi;
mod operations;
mod seeds;
mod serving;
mod tls;
mod update;
mod watch;

/// Fails when the PostgreSQL half of the suite cannot run and was not
/// skipped on purpose, and prints the skip notice when it was: one test
/// that says what became of the `::postgres` tests, whatever the filter.
#[tokio::test]
async fn postgres_half_of_the_suite() {
    helpers::check_postgres_half().await;
}
