//! The HTTP/JSON gateway: an HTTP request becomes the request message of
//! the RPC its `google.api.http` binding names, that message is sent to
//! the same in-process tonic service gRPC clients reach, and the reply
//! comes back as canonical proto3 JSON; a server-streaming RPC's replies
//! come back one by one, as they arrive (`stream`). Nothing here is
//! specific to groupd's service: any annotated service of the descriptor
//! pool would be served the same way (a stream's SSE ids and `Last-Event-ID`
//! follow the one convention of a `cursor` field, described in `stream`).
//!
//! # Why a transcoder of our own
//!
//! Three crates that serve tonic services as REST were evaluated and
//! passed over. `rest_over_grpc` 0.3 generates a second service trait at
//! build time, which the gRPC stack would have to be bridged into, and
//! writes JSON through pbjson on the generated types. `tonneau` 0.2, a
//! fork of tinc, routes by annotations of its own instead of
//! `google.api.http`. `tonic-rest` 0.1 generates one axum handler per RPC
//! over serde-annotated prost types. None implements grpc-gateway's PATCH
//! semantics (the update mask implied by the keys of the body) or
//! `If-Match`, and each would add a second, generated copy of the API
//! surface beside the tonic one. The part that is hard to get right,
//! canonical proto3 JSON, is not ours either: prost-reflect implements it
//! for any message of a descriptor pool, unknown fields refused. What this
//! module adds is routing and placing fields.
//!
//! # A request, step by step
//!
//! [`Gateway::handle`] takes each request through these steps; the
//! submodules are named after them. Every refusal is an error the gateway
//! raises itself, with a `google.rpc.ErrorInfo` whose reason is named below
//! (`INVALID_ARGUMENT` when none is), like the errors of the service.
//!
//! 1. **Route** (`routing`). The first binding whose template matches the
//!    path and whose HTTP method is the request's answers it; HEAD is
//!    routed as GET. Templates with a custom verb (`:undelete`) are tried
//!    first, and once one of them fits the path, the templates without a
//!    verb are not tried at all: `/v1/groups/g:undelete` is the verb on
//!    group `g`, never a group named `g:undelete`. A path no template fits
//!    is 404 `ROUTE_NOT_FOUND`; a path that fits only for other methods is
//!    405 `METHOD_NOT_ALLOWED`, with an `Allow` header listing them.
//! 2. **Body** (`body`). At most `--max-message-bytes` are read, and a
//!    larger `Content-Length` is refused before reading: 413
//!    `REQUEST_TOO_LARGE`. An empty body sets no field. A non-empty one is
//!    400 when the binding takes no body, 415 `UNSUPPORTED_MEDIA_TYPE` when
//!    its declared `Content-Type` is not JSON (a body without one is read as
//!    JSON), 400 `MALFORMED_JSON` when it does not parse, and 400 when it is
//!    not an object or when an object in it repeats a key (at any depth,
//!    the violation naming the key's path); JSON `null` sets no field.
//! 3. **Assemble** (`placement`). The request message is built as one JSON
//!    object, in this order: the body, under the body field or as the whole
//!    request for `body: "*"`; then the path variables; then the query
//!    parameters (`query`); then `If-Match` (`if_match`). A value placed
//!    from the URL or the header where the body already holds a different
//!    one is 400: nothing sent is silently overridden. Text from the URL is
//!    converted to the JSON its field takes and checked there, so that a
//!    bad number, enum or boolean (grpc-gateway's spellings of booleans
//!    are accepted) is reported against the parameter that carried it.
//!    - Query parameters may set any field the path and the body leave
//!      unset, by proto or JSON name, dotted for nested fields, repeated for
//!      repeated fields. A name or value that is not UTF-8 once
//!      percent-decoded is 400 on that parameter, never decoded lossily. They are refused on `body: "*"` bindings, for the
//!      body field and below it, and for fields the path sets. A field
//!      mask's paths are taken in proto or JSON form (`field_mask`) and set
//!      after decoding, since proto3 JSON could not carry proto-form paths.
//!    - `If-Match` goes to the request's `etag`, or to the body message's
//!      when the path names that message (`group.etag` under
//!      `{group.id}`); `*` asks for no check. A method with no etag to
//!      compare refuses the header with 400, because ignoring it would let
//!      a conditional write through unconditionally.
//!    - On a server-streaming method, a non-empty `Last-Event-ID` (what an
//!      `EventSource` sends when it reconnects to the URL it first opened)
//!      becomes the request's `cursor`, replacing any start the query
//!      gives (`cursor`, `start_from_now`, `start_from_oldest`): the
//!      client resumes where it stopped, not where it first started.
//! 4. **Decode**. prost-reflect decodes the assembled object into the RPC's
//!    input message once, refusing unknown fields and values of the wrong
//!    type (400); a field given by both its names (`member_of` and
//!    `memberOf` in one object) is 400 first, since prost-reflect would
//!    keep one of them.
//! 5. **Implied mask** (`field_mask`). When the input has exactly one
//!    top-level `FieldMask`, the binding's body is one field, and no mask
//!    was sent: PATCH masks the top-level keys of the body as sent, `null`
//!    and zero values included, as grpc-gateway does; PUT masks `*`.
//! 6. **Call** (`invoke`). The message is framed as the one request
//!    message of a gRPC call (`POST /<service>/<method>`, marked with a
//!    `Transport::Http` extension so that the RPC's own log line and
//!    metrics say HTTP; `authorization`, `x-request-id` and `grpc-timeout`
//!    forwarded as metadata, every value of each; the connection's verified
//!    client certificate identity as an extension) and sent to the tonic
//!    service in process. The gateway adds no deadline of its own: the
//!    RPC's is the forwarded `grpc-timeout` bounded by `--request-timeout`,
//!    and a stream's only the `grpc-timeout`. The RPC logs and counts
//!    itself; a request refused in the steps above is logged and counted
//!    once, by the caller of [`Gateway::handle`].
//! 7. **Reply** (`reply`). The output is written as canonical proto3 JSON
//!    (default values left out, so a BASIC view never shows an empty
//!    `members` list that was really not loaded) with 200, creations
//!    included, as grpc-gateway answers; an `ETag` header repeats the
//!    output's `etag`. A failed RPC's status becomes the HTTP status
//!    grpc-gateway would answer and a `google.rpc.Status` body whose
//!    details are typed JSON (see [`super::status`]).
//!
//!    A server-streaming RPC (`stream`) refused as it opens (its status
//!    then comes in the reply's headers, before any message) is answered
//!    the same way, and nothing streams. Once it is open, the reply is 200 and each message is
//!    written as soon as its gRPC frame has arrived, as its own piece of
//!    the body, so that the connection sends it at once: by default
//!    newline-delimited JSON (`application/x-ndjson`), one
//!    `{"result": <message>}` per line as grpc-gateway writes streams;
//!    with `Accept: text/event-stream`, Server-Sent Events (a `retry`
//!    first, then per message `event:` the name of the field set in its
//!    oneof, `id:` its `cursor`, `data:` its JSON). A stream that ends
//!    with an error after the 200 ends with `{"error": <Status>}`, or an
//!    `event: error` whose data is the Status; one that ends OK just ends.
//!    A client that goes away drops the body, which cancels the RPC.
//!
//! # Limits of the mapping
//!
//! These are documented, not bugs. A label key that does not survive the
//! proto3 JSON camelCase conversion of field mask paths (`x_1`: a `_`
//! before a digit) cannot be named in a JSON `updateMask`; clients PATCH
//! the whole `labels` map instead, or use gRPC. On output, such a path (in
//! a `GroupChange` written over gRPC) is widened to `labels` rather than
//! failing the reply. No CORS headers are sent.

mod body;
mod failure;
mod field_mask;
mod if_match;
mod invoke;
mod placement;
mod query;
mod reply;
mod routing;
mod stream;

use std::sync::Arc;

use axum::{body::Body as AxumBody, response::Response};
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use serde_json::{Map, Value as Json};
use tonic::Code;

use super::{
    bindings::{self, Binding, BodyRule},
    path_template::Captures,
    status::HttpError,
};
use failure::Failure;
use routing::Routes;

pub use invoke::GrpcHandler;
pub use stream::{EVENT_STREAM, NDJSON};

/// The HTTP/JSON transcoder of one gRPC service. Cloning it is cheap: the
/// clones share the routes, the pool and the service they call.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// Holds the request and reply types, and the `google.rpc` detail
    /// types that error bodies show as JSON.
    pool: DescriptorPool,
    routes: Routes,
    grpc: GrpcHandler,
    max_body_bytes: usize,
    /// The `WWW-Authenticate` header of a 401: the schemes the server
    /// accepts; none when authentication is off.
    challenge: Option<http::HeaderValue>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.inner.routes.count())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// The gateway of `service` (whose types must be in `pool`), calling
    /// `grpc`. Request bodies over `max_body_bytes` are refused. A 401
    /// carries `challenge` as its `WWW-Authenticate` header (RFC 9110 wants
    /// one on every 401): the schemes the server accepts. Fails when an
    /// HTTP rule of the service cannot be served, naming the RPC.
    pub fn new(
        pool: DescriptorPool,
        service: &ServiceDescriptor,
        grpc: GrpcHandler,
        max_body_bytes: usize,
        challenge: Option<&str>,
    ) -> Result<Self, String> {
        let challenge = challenge
            .map(|text| {
                http::HeaderValue::from_str(text)
                    .map_err(|_| format!("the challenge {text:?} is not a header value"))
            })
            .transpose()?;
        let routes = Routes::new(bindings::bindings(&pool, service)?);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                routes,
                grpc,
                max_body_bytes,
                challenge,
            }),
        })
    }

    /// The descriptor pool the gateway routes by: the OpenAPI document is
    /// generated from it too, so that the document describes exactly what
    /// is served and the descriptors are decoded once.
    pub fn pool(&self) -> &DescriptorPool {
        &self.inner.pool
    }

    /// Answers one HTTP request. Returns the response with what the caller
    /// needs to log and count a refusal: the gateway logs nothing itself
    /// but internal failures, so that each request is logged once.
    pub async fn handle(&self, request: http::Request<AxumBody>) -> Handled {
        let (parts, body) = request.into_parts();
        let (binding, captures) = match self.inner.routes.find(&parts.method, parts.uri.path()) {
            Ok(found) => found,
            Err(error) => return self.refused(None, error),
        };
        let rpc = binding.method.name().to_owned();
        match self.call(binding, captures, &parts, body).await {
            Ok(response) => Handled {
                rpc: Some(rpc),
                code: Code::Ok,
                refusal: None,
                response,
            },
            Err(Failure::Rpc(status)) => {
                let code = status.code();
                let mut error = HttpError::new(status);
                if let Some(challenge) = self
                    .inner
                    .challenge
                    .as_ref()
                    .filter(|_| code == Code::Unauthenticated)
                {
                    error = error.with_header(http::header::WWW_AUTHENTICATE, challenge.clone());
                }
                Handled {
                    rpc: Some(rpc),
                    code,
                    refusal: None,
                    response: error.into_response(&self.inner.pool),
                }
            }
            Err(Failure::Gateway(error)) => self.refused(Some(rpc), error),
        }
    }

    fn refused(&self, rpc: Option<String>, error: HttpError) -> Handled {
        Handled {
            rpc,
            code: error.status.code(),
            refusal: Some(error.status.message().to_owned()),
            response: error.into_response(&self.inner.pool),
        }
    }

    /// Steps 2 to 7 of the module documentation, for a routed request.
    async fn call(
        &self,
        binding: &Binding,
        captures: Captures,
        parts: &http::request::Parts,
        body: AxumBody,
    ) -> Result<Response, Failure> {
        let limit = self.inner.max_body_bytes;
        let bytes = body::read_body(&parts.headers, body, &binding.body, limit).await?;
        let input = binding.method.input();

        // The JSON of the whole request message, assembled from the body,
        // the path, the query and If-Match, then decoded once.
        let mut root = Map::new();
        let mut body_keys = Vec::new();
        if let Some(body) = body::parse_body(&bytes, &binding.body)? {
            match &binding.body {
                BodyRule::None => {}
                BodyRule::Whole => root = body,
                BodyRule::Field(field) => {
                    body_keys = body.keys().cloned().collect();
                    root.insert(field.clone(), Json::Object(body));
                }
            }
        }
        placement::place_path_variables(&mut root, &input, &captures)?;
        let masks = match parts.uri.query() {
            Some(query) => query::apply_query(&mut root, &input, binding, &captures, query)?,
            None => Vec::new(),
        };
        let streams = binding.method.is_server_streaming();
        if streams {
            stream::apply_last_event_id(&mut root, &input, &parts.headers)?;
        }
        if_match::apply_if_match(&mut root, &input, binding, &parts.headers)?;

        let mut message = placement::decode_request(&input, root, &binding.body)?;
        for (path, paths) in masks {
            field_mask::set_mask(&mut message, &path, paths);
        }
        field_mask::apply_implied_mask(&mut message, binding, &body_keys)?;

        let peer = parts.extensions.get::<crate::auth::PeerIdentity>();
        if streams {
            let format = stream::Format::negotiate(&parts.headers);
            let body =
                invoke::open(&self.inner.grpc, binding, message, &parts.headers, peer).await?;
            return Ok(stream::stream_response(
                body,
                binding.method.output(),
                format,
            ));
        }
        let reply =
            invoke::invoke(&self.inner.grpc, binding, message, &parts.headers, peer).await?;
        Ok(reply::reply_response(&reply))
    }
}

/// What [`Gateway::handle`] did: the response, and what the caller needs
/// to log and count a request the RPC never saw.
#[derive(Debug)]
pub struct Handled {
    /// The RPC the route named, if any route matched.
    pub rpc: Option<String>,
    /// The outcome as a gRPC code, the metrics' `code` label.
    pub code: Code,
    /// Why the gateway refused the request, as its error message says, when
    /// the RPC never ran. `None` when it ran: it then logged and counted
    /// itself.
    pub refusal: Option<String>,
    /// The response to send, error responses included.
    pub response: Response,
}
