//! The HTTP/JSON face of the service: every RPC served through its
//! `google.api.http` binding (see [`gateway`]), plus `/metrics` and
//! `/openapi.json`.

pub mod gateway;
pub mod rules;
pub mod status;

use axum::{Router, extract::State, response::Response};
use prost_reflect::DescriptorPool;
use tracing::Instrument as _;

use crate::pb;

pub use gateway::{Gateway, GrpcHandler};

/// The gRPC service the gateway serves.
pub const SERVICE_NAME: &str = "groups.v1.GroupService";

/// groupd's descriptors: the contract, and the `google.rpc` error details
/// so that error bodies show them as JSON.
pub fn descriptor_pool() -> anyhow::Result<DescriptorPool> {
    let mut pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)?;
    pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
    Ok(pool)
}

/// The gateway of groupd's `GroupService`, calling `grpc`.
pub fn gateway(grpc: GrpcHandler, max_body_bytes: usize) -> anyhow::Result<Gateway> {
    let pool = descriptor_pool()?;
    let service = pool
        .get_service_by_name(SERVICE_NAME)
        .ok_or_else(|| anyhow::anyhow!("{SERVICE_NAME} is not in the descriptor set"))?;
    Gateway::new(pool.clone(), &service, grpc, max_body_bytes).map_err(anyhow::Error::msg)
}

/// The HTTP application: the transcoded API and the operational endpoints.
pub fn router(gateway: Gateway) -> Router {
    Router::new().fallback(transcode).with_state(gateway)
}

async fn transcode(State(gateway): State<Gateway>, request: axum::extract::Request) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move { gateway.handle(request).await.response }
        .instrument(span)
        .await
}
