//! groupd: a gRPC group-management service. See `ARCHITECTURE.md` for the
//! code map; this file only declares modules.

pub mod auth;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod feed;
pub mod grpc;
pub mod http;
pub mod index;
pub mod metrics;
pub mod pb;
pub mod serve;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
