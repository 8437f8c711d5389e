//! WatchGroupChanges over gRPC: the stream is opened like any call (its
//! span, authentication, parsing, metric and log line, under the
//! request's deadline), then its messages are sent as the service yields
//! them, until it ends, the client goes away, or the client's own
//! `grpc-timeout` passes. `--request-timeout` bounds the opening only.
//! A change is encoded once, by the first stream that sends it, and its
//! bytes are shared by every other stream (see [`GroupServiceRoutes`]).

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures_util::{Stream, StreamExt as _, stream};
use prost::{Message as _, bytes::BufMut as _};
use tonic::{
    Code, Request, Response, Status,
    codec::{Codec, EncodeBuf, Encoder},
    codegen::{Body, BoxFuture, Service, StdError},
    server::{NamedService, ServerStreamingService},
};
use tonic_prost::{ProstCodec, ProstDecoder};

use super::{Credentials, GrpcService, call::CallContext, status::status};
use crate::{
    deadline,
    error::Error,
    pb::{self, group_service_server},
    service::{WatchEvent, WatchStream},
};

/// The reply stream of WatchGroupChanges, as the generated trait has it:
/// each message converted and encoded by tonic.
pub type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchGroupChangesResponse, Status>> + Send>>;

/// The reply stream of WatchGroupChanges as served: each message encoded
/// already (see [`EncodedReply`]).
pub type EncodedStream = Pin<Box<dyn Stream<Item = Result<EncodedReply, Status>> + Send>>;

/// A stream's events, before they are encoded.
type Events = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

/// The method's name, in metrics and logs.
const METHOD: &str = "WatchGroupChanges";

/// An open stream and what it needs until it ends.
struct Open {
    stream: WatchStream,
    /// The client's own deadline, if it sent one.
    deadline: Option<tokio::time::Instant>,
    span: tracing::Span,
    started: Instant,
    sent: u64,
}

impl GrpcService {
    /// Opens a change stream for the request's caller, its messages
    /// converted one by one (the generated trait's method; the server
    /// serves the method with [`GrpcService::watch_encoded`]).
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchGroupChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let events = self.open_watch(request).await?;
        Ok(Response::new(Box::pin(events.map(|event| {
            event.map(pb::WatchGroupChangesResponse::from)
        }))))
    }

    /// Opens a change stream for the request's caller, each change sent as
    /// it was encoded once for every stream.
    async fn watch_encoded(
        &self,
        request: Request<pb::WatchGroupChangesRequest>,
    ) -> Result<Response<EncodedStream>, Status> {
        let events = self.open_watch(request).await?;
        Ok(Response::new(Box::pin(
            events.map(|event| event.map(EncodedReply::of)),
        )))
    }

    /// Opens the stream: like any call (its span, authentication, parsing,
    /// metric and log line, under the request's deadline); then its events
    /// as the service yields them, until it ends, the client goes away, or
    /// the client's own `grpc-timeout` passes.
    async fn open_watch(
        &self,
        request: Request<pb::WatchGroupChangesRequest>,
    ) -> Result<Events, Status> {
        let context = CallContext::of(&request, self.request_timeout);
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(deadline::parse_grpc_timeout)
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let credentials = Credentials::of(&request, &self.auth);
        let opened = self
            .call(
                METHOD,
                context,
                Box::pin(async {
                    let caller = self.authenticate(&credentials).await?;
                    let parsed = TryFrom::try_from(request.into_inner())?;
                    let stream = self.service.watch_changes(&caller, parsed).await?;
                    // The call's span: the stream's end is logged in it.
                    Ok(Opening(Some((stream, tracing::Span::current()))))
                }),
            )
            .await?
            .into_inner();
        let Some((stream, span)) = opened.0 else {
            return Err(status(&Error::internal("the stream was opened twice")));
        };
        let open = Open {
            stream,
            deadline,
            span,
            started: Instant::now(),
            sent: 0,
        };
        Ok(Box::pin(stream::unfold(Some(open), |state| async move {
            let mut open = state?;
            let next = match open.deadline {
                Some(at) => tokio::time::timeout_at(at, open.stream.next())
                    .await
                    .unwrap_or(Some(Err(Error::DeadlineExceeded))),
                None => open.stream.next().await,
            };
            match next {
                Some(Ok(event)) => {
                    open.sent += 1;
                    Some((Ok(event), Some(open)))
                }
                Some(Err(error)) => {
                    let status = status(&error);
                    open.ended(status.code(), status.message());
                    Some((Err(status), None))
                }
                None => {
                    open.ended(Code::Ok, "");
                    None
                }
            }
        })))
    }
}

/// A reply of WatchGroupChanges, encoded. A change's reply is the same for
/// every stream that sends it (its cursor is the entry's position), so it
/// is encoded by the first and kept with the entry
/// ([`crate::store::EncodedOnce`]); a heartbeat, or a change sent with
/// another cursor, is encoded as it is sent.
#[derive(Debug, Clone)]
pub struct EncodedReply(Arc<[u8]>);

impl EncodedReply {
    fn of(event: WatchEvent) -> Self {
        if let WatchEvent::Change { entry, cursor } = &event
            && cursor.position() == entry.position
        {
            let entry = Arc::clone(entry);
            return Self(
                entry
                    .encoded
                    .get_or_init(|| pb::WatchGroupChangesResponse::from(event).encode_to_vec()),
            );
        }
        Self(
            pb::WatchGroupChangesResponse::from(event)
                .encode_to_vec()
                .into(),
        )
    }
}

/// The codec of WatchGroupChanges as served: the request decoded by
/// tonic-prost, the replies written as they were encoded.
#[derive(Debug, Default)]
struct WatchCodec;

impl Codec for WatchCodec {
    type Encode = EncodedReply;
    type Decode = pb::WatchGroupChangesRequest;
    type Encoder = EncodedReplyEncoder;
    type Decoder = ProstDecoder<pb::WatchGroupChangesRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedReplyEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<pb::WatchGroupChangesResponse, pb::WatchGroupChangesRequest>::default()
            .decoder()
    }
}

/// Writes an [`EncodedReply`] into its gRPC frame as it is.
#[derive(Debug)]
struct EncodedReplyEncoder;

impl Encoder for EncodedReplyEncoder {
    type Item = EncodedReply;
    type Error = Status;

    fn encode(&mut self, item: EncodedReply, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

/// The gRPC `GroupService` as served, on both ports (the gateway calls it
/// in process): the generated server for every method but
/// WatchGroupChanges, which is served here with [`WatchCodec`], so that a
/// change sent to a thousand streams is converted and encoded once, not a
/// thousand times. The generated server offers no hook for one method's
/// codec, hence this route in front of it. Its message size limits are the
/// generated server's; neither compresses.
#[derive(Clone)]
pub struct GroupServiceRoutes {
    generated: group_service_server::GroupServiceServer<GrpcService>,
    service: Arc<GrpcService>,
    max_message_bytes: usize,
}

impl GroupServiceRoutes {
    pub(super) fn new(service: GrpcService) -> Self {
        let max_message_bytes = service.max_message_bytes;
        let service = Arc::new(service);
        Self {
            generated: group_service_server::GroupServiceServer::from_arc(Arc::clone(&service))
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
            service,
            max_message_bytes,
        }
    }
}

impl NamedService for GroupServiceRoutes {
    const NAME: &'static str = group_service_server::SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for GroupServiceRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Like the generated server's: always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != super::STREAMING_PATHS[0] {
            return self.generated.call(request);
        }
        let method = WatchMethod(Arc::clone(&self.service));
        let limit = Some(self.max_message_bytes);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(WatchCodec).apply_max_message_size_config(limit, limit);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// WatchGroupChanges as a tonic server-streaming method.
struct WatchMethod(Arc<GrpcService>);

impl ServerStreamingService<pb::WatchGroupChangesRequest> for WatchMethod {
    type Response = EncodedReply;
    type ResponseStream = EncodedStream;
    type Future = BoxFuture<Response<EncodedStream>, Status>;

    fn call(&mut self, request: Request<pb::WatchGroupChangesRequest>) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move { service.watch_encoded(request).await })
    }
}

impl Open {
    /// Logs the end of the stream.
    fn ended(&self, code: Code, message: &str) {
        let _entered = self.span.enter();
        tracing::info!(
            method = METHOD,
            code = crate::metrics::code_label(code),
            sent = self.sent,
            open_s = self.started.elapsed().as_secs(),
            error = message,
            "stream ended"
        );
    }
}

/// The opened stream, as the call returns it: taken out once.
pub(super) struct Opening(Option<(WatchStream, tracing::Span)>);

impl super::call::Deliverable for Opening {
    fn encoded_len(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::watch::Cursor, store::FeedEntry};

    #[test]
    fn a_change_is_encoded_once_for_every_stream_as_the_generated_codec_would() {
        let entry = Arc::new(FeedEntry::update_for_tests(7, "shared"));
        let change = WatchEvent::Change {
            cursor: Cursor::at(7),
            entry: Arc::clone(&entry),
        };
        let converted = pb::WatchGroupChangesResponse::from(change.clone()).encode_to_vec();

        let first = EncodedReply::of(change.clone());
        let second = EncodedReply::of(change);
        assert_eq!(&*first.0, converted.as_slice());
        assert!(Arc::ptr_eq(&first.0, &second.0), "encoded once, shared");
        assert_eq!(entry.encoded.get(), Some(converted.as_slice()));

        // The shared bytes carry the entry's own cursor: a change sent with
        // another is encoded apart.
        let elsewhere = WatchEvent::Change {
            cursor: Cursor::at(8),
            entry: Arc::clone(&entry),
        };
        let own = pb::WatchGroupChangesResponse::from(elsewhere.clone()).encode_to_vec();
        assert_ne!(own, converted);
        assert_eq!(&*EncodedReply::of(elsewhere).0, own.as_slice());

        let heartbeat = WatchEvent::Heartbeat {
            cursor: Cursor::at(9),
        };
        let converted = pb::WatchGroupChangesResponse::from(heartbeat.clone()).encode_to_vec();
        assert_eq!(&*EncodedReply::of(heartbeat).0, converted.as_slice());
    }

    #[test]
    fn a_copy_of_an_entry_is_encoded_anew_so_that_a_cut_copy_sends_its_own_bytes() {
        let entry = FeedEntry::update_for_tests(3, "cut");
        let sent = entry.encoded.get_or_init(|| vec![1, 2, 3]);
        let mut copy = entry.clone();
        assert_eq!(copy, entry, "the bytes take no part in comparisons");
        assert_eq!(copy.encoded.get(), None);
        copy.change.members_added.push("someone".to_owned());
        let event = WatchEvent::Change {
            cursor: Cursor::at(3),
            entry: Arc::new(copy.clone()),
        };
        let encoded = EncodedReply::of(event.clone());
        assert_ne!(&*encoded.0, &*sent);
        assert_eq!(
            &*encoded.0,
            pb::WatchGroupChangesResponse::from(event)
                .encode_to_vec()
                .as_slice()
        );
    }
}
