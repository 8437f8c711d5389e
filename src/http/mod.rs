//! The HTTP/JSON face of the service: every RPC served through its
//! `google.api.http` binding, plus `/metrics` and `/openapi.json`.

pub mod openapi;
pub mod rules;
pub mod status;
