//! What every call goes through once, over gRPC or through the HTTP
//! gateway: its span, its deadline, its log line and its metric.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use tonic::{Code, Request, Response, Status};
use tracing::{Instrument as _, field::Empty};

use super::{GrpcService, MAX_LOGGED_REQUEST_ID_BYTES, REQUEST_ID, status::status};
use crate::{
    deadline,
    domain::clip,
    error::Error,
    metrics::{self, Metrics, Transport},
    store::statements,
};

/// Most bytes of an internal error's cause a log line shows: the cause
/// comes from a library, and may quote what it was given.
const MAX_LOGGED_CAUSE_BYTES: usize = 2048;

/// What a call is run with, read from its request before the message is
/// taken out of it.
#[derive(Debug)]
pub(super) struct CallContext {
    /// The face of the service the request came through: the HTTP gateway
    /// marks its requests; anything else came over gRPC.
    transport: Transport,
    /// The request id, for logs: at most
    /// [`MAX_LOGGED_REQUEST_ID_BYTES`] of it.
    request_id: String,
    /// When the call must be over: the client's `grpc-timeout`, bounded by
    /// `--request-timeout`.
    deadline: tokio::time::Instant,
}

impl CallContext {
    /// The context of `request`, whose calls may run no longer than
    /// `request_timeout`.
    pub(super) fn of<T>(request: &Request<T>, request_timeout: Duration) -> Self {
        let metadata = request.metadata();
        let text = |key| metadata.get(key).and_then(|value| value.to_str().ok());
        let timeout = text("grpc-timeout")
            .and_then(deadline::parse_grpc_timeout)
            .map_or(request_timeout, |asked| asked.min(request_timeout));
        CallContext {
            transport: request
                .extensions()
                .get::<Transport>()
                .copied()
                .unwrap_or(Transport::Grpc),
            // The serving layers set it on every request; a request that did
            // not pass them (none does in the server) is logged without one.
            request_id: clip(
                text(REQUEST_ID).unwrap_or_default(),
                MAX_LOGGED_REQUEST_ID_BYTES,
            )
            .into_owned(),
            deadline: tokio::time::Instant::now() + timeout,
        }
    }
}

impl GrpcService {
    /// Runs one call inside its own span (method, transport, request id,
    /// and the principal once known), under its deadline; records it in
    /// the metrics, logs its outcome (code and latency) in the span, and
    /// converts its error into a `Status`.
    /// Every RPC, over gRPC or through the HTTP gateway, passes here exactly
    /// once, so this is where calls are counted.
    ///
    /// `work` comes boxed: the state of a call's future is kilobytes (the
    /// service's and the store's futures inside it), and each wrapper here
    /// and in tonic would otherwise copy all of it as it moves it.
    pub(super) async fn call<T: Deliverable, W: Future<Output = Result<T, Error>>>(
        &self,
        method: &'static str,
        context: CallContext,
        work: Pin<Box<W>>,
    ) -> Result<Response<T>, Status> {
        let span = tracing::info_span!(
            "call",
            method,
            transport = context.transport.as_str(),
            request_id = %context.request_id,
            principal = Empty,
        );
        let mut outcome = Outcome {
            metrics: &self.metrics,
            method,
            transport: context.transport,
            started: Instant::now(),
            span: span.clone(),
            finished: false,
        };
        span.in_scope(|| tracing::debug!("call started"));
        let (result, statements) = statements::counted(deadline::run(
            context.deadline,
            work.instrument(span.clone()),
        ))
        .await;
        span.in_scope(|| tracing::debug!(statements, "statements sent to the database"));
        self.metrics.record_statements(method, statements);
        let result = result
            .and_then(|response| self.deliverable(response))
            .map_err(|error| {
                let status = status(&error);
                (error, status)
            });
        let code = result
            .as_ref()
            .map_or_else(|(_, status)| status.code(), |_| Code::Ok);
        let (code, elapsed_ms) = outcome.finish(code);
        let _entered = span.enter();
        match result {
            Ok(response) => {
                tracing::info!(code, elapsed_ms, "call finished");
                Ok(Response::new(response))
            }
            Err((error, status)) => {
                // The message the caller got, bounded (see `status`), so a
                // request of megabytes cannot make its log line as long.
                let message = status.message();
                if matches!(error, Error::Internal(_) | Error::Unavailable(_)) {
                    let cause = format!("{:?}", std::error::Error::source(&error));
                    tracing::error!(
                        code,
                        elapsed_ms,
                        error = message,
                        cause = %clip(&cause, MAX_LOGGED_CAUSE_BYTES),
                        "call failed"
                    );
                } else {
                    tracing::info!(code, elapsed_ms, error = message, "call finished");
                }
                Err(status)
            }
        }
    }
}

impl GrpcService {
    /// `response`, unless it is too large to send: then an internal error,
    /// so that the call is logged and counted with the code its caller
    /// receives (the transport would otherwise refuse the reply after the
    /// call was recorded as a success). The service sizes its replies to
    /// fit, so this is a guard against a bug, not a path taken.
    fn deliverable<T: Deliverable>(&self, response: T) -> Result<T, Error> {
        let bytes = response.encoded_len();
        if bytes > self.max_message_bytes {
            Err(Error::internal(format!(
                "the reply takes {bytes} bytes, more than the {} a message may take",
                self.max_message_bytes
            )))
        } else {
            Ok(response)
        }
    }
}

/// What a call returns: a reply message, whose size is checked before it
/// is sent, or an opened stream, whose messages are sized as they come.
pub(super) trait Deliverable {
    /// The bytes it takes encoded.
    fn encoded_len(&self) -> usize;
}

impl<T: prost::Message> Deliverable for T {
    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }
}

/// Records a call's outcome once: when it finishes, or, if the call is
/// dropped first (the client cancelled it, or its connection was cut at
/// the end of a drain), when it is dropped, as CANCELLED.
struct Outcome<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    transport: Transport,
    started: Instant,
    span: tracing::Span,
    finished: bool,
}

impl Outcome<'_> {
    /// Counts the call under `code`; returns the code and the latency as
    /// they are logged.
    fn finish(&mut self, code: Code) -> (&'static str, f64) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        self.metrics
            .record(self.transport, self.method, code, elapsed);
        let label = metrics::code_label(code);
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        (label, elapsed_ms)
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let (code, elapsed_ms) = self.finish(Code::Cancelled);
            let _entered = self.span.enter();
            tracing::info!(code, elapsed_ms, "call cancelled before it finished");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(30);

    #[test]
    fn a_request_without_a_mark_came_over_grpc() {
        assert_eq!(
            CallContext::of(&Request::new(()), BOUND).transport,
            Transport::Grpc
        );
    }

    #[test]
    fn the_gateways_mark_on_the_http_request_reaches_the_grpc_request() {
        let mut http_request = http::Request::new(());
        http_request.extensions_mut().insert(Transport::Http);
        assert_eq!(
            CallContext::of(&Request::from_http(http_request), BOUND).transport,
            Transport::Http
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_the_clients_timeout_bounded_by_the_servers() {
        let deadline_in = |header: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = header {
                request.metadata_mut().insert(
                    "grpc-timeout",
                    value.parse().unwrap_or_else(|e| panic!("{e}")),
                );
            }
            CallContext::of(&request, BOUND).deadline - tokio::time::Instant::now()
        };
        assert_eq!(deadline_in(None), BOUND);
        assert_eq!(deadline_in(Some("250m")), Duration::from_millis(250));
        assert_eq!(deadline_in(Some("1H")), BOUND);
        assert_eq!(deadline_in(Some("garbage")), BOUND);
    }

    #[test]
    fn the_request_id_comes_from_the_metadata() {
        let mut request = Request::new(());
        request.metadata_mut().insert(
            REQUEST_ID,
            "req-42".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(CallContext::of(&request, BOUND).request_id, "req-42");
    }

    #[test]
    fn a_long_request_id_is_cut_for_the_logs() {
        let mut request = Request::new(());
        let long = "r".repeat(10_000);
        request
            .metadata_mut()
            .insert(REQUEST_ID, long.parse().unwrap_or_else(|e| panic!("{e}")));
        let logged = CallContext::of(&request, BOUND).request_id;
        assert!(logged.len() <= MAX_LOGGED_REQUEST_ID_BYTES);
        assert!(long.starts_with(logged.trim_end_matches('…')));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_grpc_timeout_is_a_deadline_already_past() {
        let mut request = Request::new(());
        request.metadata_mut().insert(
            "grpc-timeout",
            "0n".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let context = CallContext::of(&request, BOUND);
        assert!(context.deadline <= tokio::time::Instant::now());
    }
}
