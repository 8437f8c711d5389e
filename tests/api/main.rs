//! Integration tests of groupd: each scenario starts the real server on a
//! fresh database and talks to it over gRPC, once on SQLite and once on
//! PostgreSQL (`<scenario>::sqlite`, `<scenario>::postgres`).
//!
//! PostgreSQL comes from `GROUPD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without it the PostgreSQL
//! variants are skipped, except in CI (`CI=true`) where they fail. Set
//! `TEST_LOG=1` to see the server's logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod capacity;
mod changes;
mod concurrency;
mod create;
mod delete;
mod durability;
mod filter;
mod get_list;
mod http;
mod members;
mod membership;
mod metrics;
mod openapi;
mod operations;
mod seeds;
mod serving;
mod update;
