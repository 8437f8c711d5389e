//! WatchGroupChanges over gRPC: the stream is opened like any call (its
//! span, authentication, parsing, metric and log line, under the
//! request's deadline), then its messages are sent as the service yields
//! them, until it ends, the client goes away, or the client's own
//! `grpc-timeout` passes. `--request-timeout` bounds the opening only.

use std::{pin::Pin, time::Instant};

use futures_util::{Stream, stream};
use tonic::{Code, Request, Response, Status};

use super::{Credentials, GrpcService, call::CallContext, status::status};
use crate::{deadline, error::Error, pb, service::WatchStream};

/// The reply stream of WatchGroupChanges.
pub type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchGroupChangesResponse, Status>> + Send>>;

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
    /// Opens a change stream for the request's caller.
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchGroupChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
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
        let messages = stream::unfold(Some(open), |state| async move {
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
                    Some((Ok(event.into()), Some(open)))
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
        });
        Ok(Response::new(Box::pin(messages)))
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
