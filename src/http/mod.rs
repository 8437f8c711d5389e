//! The HTTP/JSON face of the service: every RPC served through its
//! `google.api.http` binding (see [`mod@gateway`]), plus `/metrics` and
//! `/openapi.json`.

pub mod bindings;
pub mod descriptors;
pub mod gateway;
pub mod openapi;
pub mod path_template;
pub mod status;

use std::time::Instant;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, header};
use tracing::Instrument as _;

use crate::{
    domain::clip,
    grpc,
    metrics::{self, Metrics, Transport},
};

/// Most bytes of a request's path a log line shows.
const MAX_LOGGED_PATH_BYTES: usize = 256;

pub use descriptors::{contract_service, descriptor_pool};
pub use gateway::{Gateway, GrpcHandler};

/// The gateway of groupd's `GroupService`, calling `grpc` (the tonic server
/// of the service) and refusing request bodies over `max_body_bytes`; a 401
/// carries `challenge` as its `WWW-Authenticate` header. Its
/// descriptor pool is the one [`router`] generates the OpenAPI document
/// from, so that it is decoded once.
pub fn contract_gateway(
    grpc: GrpcHandler,
    max_body_bytes: usize,
    challenge: Option<&str>,
) -> anyhow::Result<Gateway> {
    let pool = descriptor_pool()?;
    let service = contract_service(&pool)?;
    Gateway::new(pool, &service, grpc, max_body_bytes, challenge).map_err(anyhow::Error::msg)
}

/// What the handlers of the router share; cloned for every request, so
/// every member is cheap to clone.
#[derive(Debug, Clone)]
struct AppState {
    gateway: Gateway,
    metrics: Metrics,
    /// The OpenAPI document, serialised once at start: it cannot change
    /// while the process runs.
    openapi: Bytes,
}

/// The HTTP application: `/metrics`, `/openapi.json`, and every other path
/// transcoded. The OpenAPI document is generated here, once, from the
/// gateway's own descriptor pool.
pub fn router(gateway: Gateway, metrics: Metrics) -> anyhow::Result<Router> {
    let document = openapi::contract_document_in(gateway.pool())?;
    let openapi = Bytes::from(serde_json::to_vec(&document)?);
    Ok(Router::new()
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(render_openapi))
        .fallback(transcode)
        .with_state(AppState {
            gateway,
            metrics,
            openapi,
        }))
}

async fn render_openapi(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi,
    )
        .into_response()
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Transcodes one request. Calls that reached the RPC were logged and
/// counted there; a request the gateway refused is logged and counted here,
/// once, under the RPC its route named or `unmatched`.
async fn transcode(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    // The path and the request id are the caller's, of any length the
    // server reads: the span shows their beginning only.
    let request_id = request
        .headers()
        .get(grpc::REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %clip(request.uri().path(), MAX_LOGGED_PATH_BYTES),
        request_id = %clip(request_id, grpc::MAX_LOGGED_REQUEST_ID_BYTES),
    );
    async move {
        let started = Instant::now();
        let handled = state.gateway.handle(request).await;
        if let Some(refusal) = &handled.refusal {
            let method = handled.rpc.as_deref().unwrap_or("unmatched");
            let elapsed = started.elapsed();
            state
                .metrics
                .record(Transport::Http, method, handled.code, elapsed);
            tracing::info!(
                rpc = method,
                code = metrics::code_label(handled.code),
                http_status = handled.response.status().as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                error = refusal.as_str(),
                "request refused by the gateway"
            );
        }
        handled.response
    }
    .instrument(span)
    .await
}
