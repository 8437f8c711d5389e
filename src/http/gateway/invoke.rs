//! The in-process call: the request message goes to the same tonic service
//! gRPC clients reach, through its `tower` interface rather than a socket,
//! so that the RPC runs on the same code path as theirs: the same
//! validation, the deadline from the forwarded `grpc-timeout`, the call's
//! log line and its metrics.

use std::convert::Infallible;

use axum::body::Bytes;
use http::{HeaderMap, Method, header};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::DynamicMessage;
use tonic::{Code, Status};
use tower::{ServiceExt as _, util::BoxCloneSyncService};

use super::failure::{Failure, internal, internal_error};
use crate::{auth::PeerIdentity, http::bindings::Binding};

/// The in-process gRPC service the gateway calls: the tonic server of the
/// service, boxed so that the gateway does not depend on its type.
pub type GrpcHandler = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// Request headers passed on to the RPC as metadata, every value of each:
/// the caller's credentials, the request id the logs are correlated by,
/// and the client's deadline. A request with two `authorization` headers
/// is then refused as it is over gRPC, rather than authenticated by the
/// first.
const FORWARDED_HEADERS: [&str; 3] = ["authorization", "x-request-id", "grpc-timeout"];

/// Calls the RPC in process, as a gRPC client would over the network:
/// `message` framed as a unary gRPC request to `grpc`, the reply unframed
/// and decoded as the RPC's output. A status other than OK, in the headers
/// or the trailers, is the RPC's failure. `peer`, the identity the TLS
/// handshake of the HTTP connection verified, goes with the call, as it
/// would on a gRPC connection.
pub(super) async fn invoke(
    grpc: &GrpcHandler,
    binding: &Binding,
    message: DynamicMessage,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
) -> Result<DynamicMessage, Failure> {
    let body = open(grpc, binding, message, headers, peer).await?;
    let collected = body
        .collect()
        .await
        .map_err(|_| internal("the reply could not be read"))?;
    if let Some(status) = collected.trailers().and_then(Status::from_header_map)
        && status.code() != Code::Ok
    {
        return Err(Failure::Rpc(status));
    }
    let data = collected.to_bytes();
    let message = data
        .get(5..)
        .filter(|_| data.first() == Some(&0))
        .ok_or_else(|| internal("the reply is not one uncompressed message"))?;
    DynamicMessage::decode(binding.method.output(), message)
        .map_err(|_| Failure::Gateway(internal_error("the reply could not be decoded")))
}

/// Opens the call: `message` sent as the one request message of the RPC,
/// and the reply's body returned unread once its headers say the call was
/// not refused (a refusal before any reply message comes in the headers,
/// as a gRPC trailers-only response). A unary reply is then collected
/// ([`invoke`]); a server-streaming one is read frame by frame as its
/// messages arrive (`super::stream`). Nothing here bounds the call in
/// time: its deadline is the RPC's, from the forwarded `grpc-timeout`.
pub(super) async fn open(
    grpc: &GrpcHandler,
    binding: &Binding,
    message: DynamicMessage,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
) -> Result<tonic::body::Body, Failure> {
    let path = format!(
        "/{}/{}",
        binding.method.parent_service().full_name(),
        binding.method.name()
    );
    let mut frame = Vec::with_capacity(5 + message.encoded_len());
    let length = u32::try_from(message.encoded_len()).map_err(|_| internal("too large"))?;
    frame.push(0);
    frame.extend_from_slice(&length.to_be_bytes());
    message
        .encode(&mut frame)
        .map_err(|_| internal("cannot encode the request"))?;

    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        // Tells the RPC's metrics and log that the call came over HTTP.
        .extension(crate::metrics::Transport::Http);
    if let Some(peer) = peer {
        request = request.extension(peer.clone());
    }
    for name in FORWARDED_HEADERS {
        for value in headers.get_all(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )))
        .map_err(|_| internal("cannot build the request"))?;

    let Ok(response) = grpc.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers)
        && status.code() != Code::Ok
    {
        return Err(Failure::Rpc(status));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tower::service_fn;

    use super::*;
    use crate::{http as gateway_http, metrics::Metrics};

    /// What the in-process call saw of the caller's identity when
    /// `request` went through the HTTP router.
    async fn identity_seen(request: http::Request<axum::body::Body>) -> Option<PeerIdentity> {
        seen_by_the_call(request).await.0
    }

    /// The caller's identity and the headers the in-process call saw when
    /// `request` went through the HTTP router.
    async fn seen_by_the_call(
        request: http::Request<axum::body::Body>,
    ) -> (Option<PeerIdentity>, HeaderMap) {
        let seen = Arc::new(Mutex::new(None));
        let grpc = {
            let seen = Arc::clone(&seen);
            GrpcHandler::new(service_fn(move |call: http::Request<tonic::body::Body>| {
                let seen = Arc::clone(&seen);
                async move {
                    let peer = call.extensions().get::<PeerIdentity>().cloned();
                    *seen.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((peer, call.headers().clone()));
                    Ok::<_, Infallible>(Status::unimplemented("seen").into_http())
                }
            }))
        };
        let gateway =
            gateway_http::contract_gateway(grpc, 1 << 20, None).unwrap_or_else(|e| panic!("{e}"));
        let router =
            gateway_http::router(gateway, Metrics::new()).unwrap_or_else(|e| panic!("{e}"));
        let Ok(response) = router.oneshot(request).await;
        assert_eq!(response.status(), http::StatusCode::NOT_IMPLEMENTED);
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
        seen.unwrap_or_else(|| panic!("the RPC was not called"))
    }

    fn get_group() -> http::request::Builder {
        http::Request::get("/v1/groups/engineering")
    }

    #[tokio::test]
    async fn the_connections_identity_goes_with_the_in_process_call() {
        let peer = PeerIdentity("spiffe://example.org/ns/prod/sa/billing".to_owned());
        let request = get_group()
            .extension(peer.clone())
            .body(axum::body::Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(identity_seen(request).await, Some(peer));
    }

    #[tokio::test]
    async fn every_authorization_header_goes_with_the_in_process_call() {
        let request = get_group()
            .header("authorization", "Basic Y2Fyb2w6cGFzc3dvcmQ=")
            .header("authorization", "Bearer a.b.c")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, headers) = seen_by_the_call(request).await;
        let forwarded: Vec<_> = headers.get_all("authorization").iter().collect();
        assert_eq!(forwarded, ["Basic Y2Fyb2w6cGFzc3dvcmQ=", "Bearer a.b.c"]);
    }

    #[tokio::test]
    async fn no_header_sets_an_identity() {
        let request = get_group()
            .header("x-peer-identity", "spiffe://example.org/admin")
            .header("x-forwarded-client-cert", "URI=spiffe://example.org/admin")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(identity_seen(request).await, None);
    }
}
