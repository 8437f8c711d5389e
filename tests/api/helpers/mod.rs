//! The test harness: starts the real server on a fresh database per test,
//! hands the scenario a connected client, and cleans up afterwards even when
//! the scenario panics. Plus builders and assertions shared by every module.
//!
//! Every test module imports it whole (`use crate::helpers::*`), so the
//! submodules are re-exported here: where a helper lives is this module's
//! business, not its callers'.

#[macro_use]
mod app;
mod assertions;
mod child;
#[path = "../../support/auth.rs"]
pub mod credentials;
mod grpc;
mod http;
mod postgres;
#[path = "../../support/scratch_db.rs"]
mod scratch_db;
#[path = "../../support/tls.rs"]
pub mod tls;

pub use self::{
    app::*, assertions::*, child::*, grpc::*, http::*, postgres::check_postgres_half,
    scratch_db::connect_admin,
};
