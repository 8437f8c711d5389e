//! One request and its reply, as the accept loop serves them: the request
//! body must arrive within `--body-read-timeout` and the in-flight budget,
//! and the reply must be taken by the client before the call's deadline.
//!
//! [`Exchange`] wraps the service of a connection. For each request it
//! - wraps the body in a [`RequestBody`], which reserves what arrives in
//!   the [`Budget`] and fails once the body takes longer than its bound
//!   (the body-read timeout, or the call's deadline when that is sooner).
//!   The failure carries a `Status`, which tonic answers as it is
//!   (RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED) and the HTTP gateway turns
//!   into 503 or 408 ([`refusal_in`]);
//! - wraps the reply in a [`ReplyBody`], which reserves the reply's bytes
//!   and hands them to hyper in pieces of at most [`REPLY_PIECE`] bytes,
//!   each a copy. A client that does not read (HTTP/2 flow-control window
//!   0) then holds at most a piece or two in hyper; the rest stays here,
//!   and is dropped at the call's deadline, by a timer, even though hyper
//!   will not poll the body again. Without the copies, a piece would keep
//!   the whole reply's buffer alive.
//! - tells the connection ([`Activity`]) that a call is in flight, until
//!   its reply is sent, cut, or dropped, so that idle connections can be
//!   told from busy ones.
//!
//! Streaming exchanges (the exact paths of
//! [`ExchangeLimits::streaming_paths`], `grpc::STREAMING_PATHS`) keep their
//! reply open for hours, so two things differ for them: only the client's
//! own `grpc-timeout` bounds them (not `--request-timeout`), and their
//! request's bytes are released when the reply begins and each reply byte
//! once handed to hyper, so that a stream holds in the budget what it
//! buffers at once (the rest of one frame of its body), however long it
//! runs. They count as in flight like any call, and their request bodies
//! are bounded as any other's.

use std::{
    convert::Infallible,
    error::Error as StdError,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock, Weak},
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use http::{Request, Response};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::{sync::watch, task::AbortHandle, time::Instant};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use tower::{Service, ServiceExt as _};

use super::budget::{Budget, Charge};
use crate::metrics::{Metrics, Transport};

/// The largest piece of a reply handed to hyper at once (the HTTP/2 frame
/// size). Larger replies are copied out piece by piece.
pub const REPLY_PIECE: usize = 16 * 1024;

type BoxError = Box<dyn StdError + Send + Sync>;

/// What bounds each exchange of a port.
#[derive(Debug, Clone)]
pub struct ExchangeLimits {
    /// The in-flight budget, shared by both ports.
    pub budget: Budget,
    /// The longest a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// The longest a call may take (`--request-timeout`); a shorter
    /// `grpc-timeout` wins. The reply must be taken by then too. Streaming
    /// exchanges are bounded by their `grpc-timeout` alone.
    pub request_timeout: Duration,
    /// The exact request paths of the streaming exchanges
    /// (`grpc::STREAMING_PATHS`): replies that stay open for as long as the
    /// client keeps them, so that their bytes are held only until handed on
    /// and `--request-timeout` does not cut them (module docs).
    pub streaming_paths: Arc<[String]>,
    /// Where refusals are logged and counted, on the gRPC port: the call
    /// never reaches the service there, so nothing else would record it.
    /// The HTTP gateway records its refusals itself.
    pub refusals: Option<RefusalRecorder>,
}

impl ExchangeLimits {
    /// Whether a request to `path` is a streaming exchange.
    pub fn is_streaming(&self, path: &str) -> bool {
        self.streaming_paths
            .iter()
            .any(|streaming| streaming == path)
    }

    /// How long a call may take, given the `grpc-timeout` its client
    /// `asked` for; `None` is no bound at all (a stream the client did not
    /// bound).
    fn call_timeout(&self, asked: Option<Duration>, streaming: bool) -> Option<Duration> {
        if streaming {
            // The stream ends itself at its client's deadline, with
            // DEADLINE_EXCEEDED in its trailers; the cut here is for a
            // stream whose client no longer reads, which cannot be told.
            asked.map(|asked| asked.saturating_add(STREAM_DEADLINE_GRACE))
        } else {
            Some(asked.map_or(self.request_timeout, |asked| {
                asked.min(self.request_timeout)
            }))
        }
    }
}

/// How long after its client's deadline a stream still sending is cut:
/// the stream's own end, at the deadline, comes first.
pub const STREAM_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Logs and counts requests the port refused before the RPC saw them.
#[derive(Debug, Clone)]
pub struct RefusalRecorder {
    /// The metrics refused calls are counted in.
    pub metrics: Metrics,
    /// The path prefix of the counted service, `/groups.v1.GroupService/`.
    pub service_prefix: String,
    /// The RPC names counted: a metric label only takes values from a
    /// fixed set, and the path is the client's.
    pub methods: Arc<[String]>,
}

/// Why a request was refused before it was read whole.
#[derive(Debug)]
pub struct Refusal {
    kind: RefusalKind,
    message: String,
    status: Status,
}

/// The two ways a request body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Reading it would take the in-flight budget beyond its limit.
    Budget,
    /// It did not arrive within its bound.
    Timeout,
    /// It did not arrive before the call's own deadline (a `grpc-timeout`
    /// shorter than the body's bound): the call is past its deadline, as
    /// if it had run out of time anywhere else.
    Deadline,
}

impl Refusal {
    fn new(kind: RefusalKind, message: String) -> Self {
        let details = ErrorDetails::with_error_info(
            kind.reason(),
            crate::error::ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        let status = Status::with_error_details(kind.code(), message.clone(), details);
        Self {
            kind,
            message,
            status,
        }
    }

    /// Which refusal this is.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// What the caller is told.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl RefusalKind {
    /// The gRPC code the caller gets.
    pub fn code(self) -> Code {
        match self {
            Self::Budget => Code::ResourceExhausted,
            Self::Timeout | Self::Deadline => Code::DeadlineExceeded,
        }
    }

    /// The `ErrorInfo` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Budget => "SERVER_BUSY",
            Self::Timeout => "REQUEST_BODY_TIMEOUT",
            Self::Deadline => "DEADLINE_EXCEEDED",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Refusal {
    /// The `Status` tonic looks for in an error's sources, and answers.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.status)
    }
}

/// The refusal behind a request body's read error, if it was one: the
/// gateway answers it with its own HTTP status.
pub fn refusal_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Refusal> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        next = error.source();
    }
    None
}

/// Why a reply was cut: the client did not take it before the call's
/// deadline, or, for a stream, the stream reached its deadline.
#[derive(Debug)]
struct ReplyCut {
    streaming: bool,
}

impl std::fmt::Display for ReplyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.streaming {
            "the stream reached the call's deadline"
        } else {
            "the client did not take the reply before the call's deadline"
        })
    }
}

impl StdError for ReplyCut {}

/// What a connection's calls tell its driver: how many are in flight, and
/// since when none is.
#[derive(Debug, Clone, Copy)]
pub struct ActivityState {
    /// Calls whose reply is not yet sent, cut or dropped.
    pub in_flight: usize,
    /// Whether any request has reached the service.
    pub dispatched: bool,
    /// When the last call in flight ended (or the connection was accepted).
    pub idle_since: Instant,
}

/// A connection's activity, shared by its calls and its driver.
#[derive(Debug, Clone)]
pub struct Activity {
    sender: Arc<watch::Sender<ActivityState>>,
}

impl Activity {
    /// The activity of a connection accepted now.
    pub fn new() -> Self {
        let (sender, _) = watch::channel(ActivityState {
            in_flight: 0,
            dispatched: false,
            idle_since: Instant::now(),
        });
        Self {
            sender: Arc::new(sender),
        }
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<ActivityState> {
        self.sender.subscribe()
    }

    fn begin(&self) -> Busy {
        self.sender.send_modify(|state| {
            state.in_flight += 1;
            state.dispatched = true;
        });
        Busy {
            sender: Arc::clone(&self.sender),
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// One call in flight; dropping it ends the call for its connection.
#[derive(Debug)]
struct Busy {
    sender: Arc<watch::Sender<ActivityState>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.sender.send_modify(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
            }
        });
    }
}

/// The service of one connection: `inner` with every exchange bounded.
#[derive(Debug, Clone)]
pub struct Exchange<S> {
    inner: S,
    limits: Arc<ExchangeLimits>,
    activity: Activity,
    port: &'static str,
}

impl<S> Exchange<S> {
    /// `inner`, bounded by `limits`, reporting to `activity`.
    pub fn new(
        inner: S,
        limits: Arc<ExchangeLimits>,
        activity: Activity,
        port: &'static str,
    ) -> Self {
        Self {
            inner,
            limits,
            activity,
            port,
        }
    }
}

/// What a request and its reply share: the budget they reserved, and the
/// refusal of the request, if any.
#[derive(Debug)]
struct Shared {
    charge: Mutex<Charge>,
    refusal: OnceLock<(RefusalKind, String)>,
}

impl Shared {
    fn charge(&self) -> std::sync::MutexGuard<'_, Charge> {
        // A panic while holding the lock leaves only byte counts behind,
        // which stay usable.
        self.charge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Exchange<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ReplyBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let started = Instant::now();
        let streaming = self.limits.is_streaming(request.uri().path());
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(crate::deadline::parse_grpc_timeout);
        let call_timeout = self.limits.call_timeout(asked, streaming);
        // A timeout too far to be an instant is none.
        let deadline = call_timeout.and_then(|timeout| started.checked_add(timeout));
        let (body_timeout, cut_by) = match call_timeout {
            Some(call) if call < self.limits.body_read_timeout => (call, RefusalKind::Deadline),
            _ => (self.limits.body_read_timeout, RefusalKind::Timeout),
        };
        let shared = Arc::new(Shared {
            charge: Mutex::new(self.limits.budget.charge()),
            refusal: OnceLock::new(),
        });
        let path = request.uri().path().to_owned();
        let (parts, body) = request.into_parts();
        let body = RequestBody {
            inner: body,
            shared: Arc::clone(&shared),
            timeout: body_timeout,
            cut_by,
            deadline: started + body_timeout,
            sleep: None,
            upfront: None,
            received: 0,
            failed: false,
        };
        let inner = self.inner.clone();
        let limits = Arc::clone(&self.limits);
        let port = self.port;
        Box::pin(async move {
            let Ok(response) = inner.oneshot(Request::from_parts(parts, body)).await;
            if let (Some((kind, message)), Some(recorder)) =
                (shared.refusal.get(), &limits.refusals)
            {
                record_refusal(recorder, port, &path, *kind, message, started);
            }
            if streaming {
                // The request has been read: a stream holds only what its
                // reply buffers.
                shared.charge().release_request();
            }
            Ok(response.map(|body| ReplyBody::new(body, shared, deadline, busy, path, streaming)))
        })
    }
}

fn record_refusal(
    recorder: &RefusalRecorder,
    port: &'static str,
    path: &str,
    kind: RefusalKind,
    message: &str,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let method = path
        .strip_prefix(recorder.service_prefix.as_str())
        .and_then(|name| recorder.methods.iter().find(|known| *known == name));
    if let Some(method) = method {
        recorder
            .metrics
            .record(Transport::Grpc, method, kind.code(), elapsed);
    }
    tracing::info!(
        port,
        rpc = method.map_or("unmatched", String::as_str),
        code = crate::metrics::code_label(kind.code()),
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        error = message,
        "request refused before the call"
    );
}

/// A request body bounded in time and by the budget (module docs).
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    shared: Arc<Shared>,
    timeout: Duration,
    /// What running out of `timeout` means: the body's own bound, or the
    /// call's deadline.
    cut_by: RefusalKind,
    deadline: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The declared length, once reserved whole.
    upfront: Option<usize>,
    received: usize,
    failed: bool,
}

impl RequestBody {
    fn refuse(
        &mut self,
        kind: RefusalKind,
        message: String,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        let _ = self.shared.refusal.set((kind, message.clone()));
        // Nothing more of this body will be read: what it reserved is
        // released now, not when the reply is sent.
        self.shared.charge().release_all();
        Poll::Ready(Some(Err(Box::new(Refusal::new(kind, message)))))
    }

    fn over_budget(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.refuse(
            RefusalKind::Budget,
            "the server holds as many request and reply bytes as it may; retry later".to_owned(),
        )
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        if this.upfront.is_none()
            && let Some(declared) = this.inner.size_hint().exact()
        {
            let declared = usize::try_from(declared).unwrap_or(usize::MAX);
            if !this.shared.charge().try_request(declared) {
                return this.over_budget();
            }
            this.upfront = Some(declared);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let before = this.received;
                    this.received = this.received.saturating_add(data.len());
                    let covered = this.upfront.unwrap_or(0);
                    let beyond = this.received.saturating_sub(covered.max(before));
                    if !this.shared.charge().try_request(beyond) {
                        return this.over_budget();
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(sleep.as_mut().poll(cx));
                let (timeout, kind) = (this.timeout, this.cut_by);
                let message = match kind {
                    RefusalKind::Deadline => format!(
                        "deadline exceeded: the request did not arrive within the call's \
                         deadline ({timeout:?}) and changed nothing"
                    ),
                    RefusalKind::Timeout | RefusalKind::Budget => {
                        format!("the request body did not arrive within {timeout:?}")
                    }
                };
                this.refuse(kind, message)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.failed {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

/// A reply bounded by the call's deadline and counted in the budget
/// (module docs).
pub struct ReplyBody<B> {
    slot: Arc<Mutex<Slot<B>>>,
    /// `None` for a stream its client did not bound.
    deadline: Option<Instant>,
    expiry: Option<AbortHandle>,
    path: Option<String>,
    streaming: bool,
}

impl<B> std::fmt::Debug for ReplyBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyBody").finish_non_exhaustive()
    }
}

/// What a reply holds until it is sent, and drops when it is cut.
struct Slot<B> {
    inner: Option<Pin<Box<B>>>,
    /// The part of a large data frame not yet handed to hyper.
    pending: Bytes,
    shared: Option<Arc<Shared>>,
    busy: Option<Busy>,
    cut: bool,
    /// Whether bytes are released as they are handed on (a stream), rather
    /// than when the exchange ends.
    streaming: bool,
    /// Who to wake when the reply is cut while its body is pending: hyper
    /// would otherwise wait on a body that is gone.
    waker: Option<Waker>,
}

impl<B> Slot<B> {
    /// Counts `bytes` of the reply, just taken from the body, in the budget.
    fn taken(&self, bytes: usize) {
        if let Some(shared) = &self.shared {
            shared.charge().reply(bytes);
        }
    }

    /// `bytes` of the reply were handed to hyper: a stream no longer holds
    /// them.
    fn handed(&self, bytes: usize) {
        if self.streaming
            && let Some(shared) = &self.shared
        {
            shared.charge().release_reply(bytes);
        }
    }

    /// Ends the exchange: the connection no longer counts it in flight,
    /// and its bytes are released.
    fn finish(&mut self) {
        self.inner = None;
        self.pending = Bytes::new();
        if let Some(shared) = self.shared.take() {
            shared.charge().release_all();
        }
        self.busy = None;
    }
}

fn lock<B>(slot: &Mutex<Slot<B>>) -> std::sync::MutexGuard<'_, Slot<B>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<B> ReplyBody<B>
where
    B: Body<Data = Bytes> + Send + 'static,
{
    fn new(
        body: B,
        shared: Arc<Shared>,
        deadline: Option<Instant>,
        busy: Busy,
        path: String,
        streaming: bool,
    ) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                inner: Some(Box::pin(body)),
                pending: Bytes::new(),
                shared: Some(shared),
                busy: Some(busy),
                cut: false,
                streaming,
                waker: None,
            })),
            deadline,
            expiry: None,
            path: Some(path),
            streaming,
        }
    }

    /// Starts the timer that cuts the reply at the deadline if it is not
    /// sent by then: hyper does not poll a body whose client does not read,
    /// so the body cannot notice the deadline itself. A reply with no
    /// deadline has no timer.
    fn arm(&mut self) {
        if self.expiry.is_some() {
            return;
        }
        let Some(deadline) = self.deadline else {
            return;
        };
        let slot: Weak<Mutex<Slot<B>>> = Arc::downgrade(&self.slot);
        let path = self.path.take().unwrap_or_default();
        let streaming = self.streaming;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(slot) = slot.upgrade() {
                let mut slot = lock(&slot);
                if slot.busy.is_some() {
                    slot.cut = true;
                    slot.finish();
                    if let Some(waker) = slot.waker.take() {
                        waker.wake();
                    }
                    drop(slot);
                    if streaming {
                        tracing::info!(path, "stream cut at the call's deadline");
                    } else {
                        tracing::info!(
                            path,
                            "reply cut: the client did not take it before the call's deadline"
                        );
                    }
                }
            }
        });
        self.expiry = Some(task.abort_handle());
    }
}

/// The next piece of `pending`, at most [`REPLY_PIECE`] bytes, copied so
/// that hyper never holds the large buffer it came from.
fn next_piece(pending: &mut Bytes) -> Bytes {
    let length = pending.len().min(REPLY_PIECE);
    let piece = Bytes::copy_from_slice(&pending[..length]);
    *pending = if length == pending.len() {
        Bytes::new()
    } else {
        pending.slice(length..)
    };
    piece
}

impl<B> Body for ReplyBody<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.streaming {
            // A stream's deadline runs from its start, whether or not
            // anything is sent: its body may be pending a long time.
            this.arm();
        }
        let slot = Arc::clone(&this.slot);
        let mut slot = lock(&slot);
        if slot.cut {
            slot.cut = false;
            return Poll::Ready(Some(Err(Box::new(ReplyCut {
                streaming: this.streaming,
            }))));
        }
        if !slot.pending.is_empty() {
            let piece = next_piece(&mut slot.pending);
            slot.handed(piece.len());
            drop(slot);
            this.arm();
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        let Some(inner) = slot.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = inner.as_mut().poll_frame(cx);
        let ended = inner.is_end_stream();
        match polled {
            Poll::Pending => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                slot.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                slot.finish();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(mut data) => {
                        slot.taken(data.len());
                        let piece = if data.len() > REPLY_PIECE {
                            let piece = next_piece(&mut data);
                            slot.pending = data;
                            piece
                        } else {
                            data
                        };
                        slot.handed(piece.len());
                        Frame::data(piece)
                    }
                    Err(frame) => frame,
                };
                if ended && slot.pending.is_empty() {
                    slot.finish();
                    return Poll::Ready(Some(Ok(frame)));
                }
                drop(slot);
                this.arm();
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.slot);
        !slot.cut
            && slot.pending.is_empty()
            && slot.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let slot = lock(&self.slot);
        match &slot.inner {
            Some(inner) => {
                let pending = slot.pending.len() as u64;
                let hint = inner.size_hint();
                let mut sum = SizeHint::new();
                sum.set_lower(hint.lower().saturating_add(pending));
                if let Some(upper) = hint.upper() {
                    sum.set_upper(upper.saturating_add(pending));
                }
                sum
            }
            None => SizeHint::with_exact(slot.pending.len() as u64),
        }
    }
}

impl<B> Drop for ReplyBody<B> {
    fn drop(&mut self) {
        if let Some(expiry) = self.expiry.take() {
            expiry.abort();
        }
        let mut slot = lock(&self.slot);
        slot.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    /// Between two frames, so that a cut is not a frame's doing.
    const REQUEST_TIMEOUT: Duration = Duration::from_millis(5500);
    /// A frame of the synthetic stream: more than one piece, so that part
    /// of it waits in the reply while the rest is handed on.
    const FRAME: usize = 3 * REPLY_PIECE + 10;
    const FRAMES: usize = 30;
    const UNARY_PATH: &str = "/groups.v1.GroupService/GetGroup";

    fn limits(budget: &Budget) -> ExchangeLimits {
        ExchangeLimits {
            budget: budget.clone(),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: REQUEST_TIMEOUT,
            streaming_paths: crate::grpc::STREAMING_PATHS
                .iter()
                .map(|path| (*path).to_owned())
                .collect(),
            refusals: None,
        }
    }

    /// A reply body that sends [`FRAMES`] frames of [`FRAME`] bytes, one a
    /// second, as a stream sends its messages over time.
    struct Ticker {
        sleep: Pin<Box<tokio::time::Sleep>>,
        left: usize,
    }

    impl Ticker {
        fn new() -> Self {
            Self {
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(1))),
                left: FRAMES,
            }
        }
    }

    impl Body for Ticker {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            ready!(self.sleep.as_mut().poll(cx));
            let next = self.sleep.deadline() + Duration::from_secs(1);
            self.sleep.as_mut().reset(next);
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![1_u8; FRAME])))))
        }

        fn is_end_stream(&self) -> bool {
            self.left == 0
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Version {
        Http1,
        Http2,
    }

    enum Client {
        Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
        Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    }

    /// One connection served by an [`Exchange`] over `budget`, whose
    /// service reads the request whole and replies with a [`Ticker`].
    async fn connect(
        budget: &Budget,
        version: Version,
    ) -> (Client, watch::Receiver<ActivityState>) {
        connect_with_window(budget, version, None).await
    }

    /// [`connect`], with the client's HTTP/2 stream window of `window`
    /// bytes when given.
    async fn connect_with_window(
        budget: &Budget,
        version: Version,
        window: Option<u32>,
    ) -> (Client, watch::Receiver<ActivityState>) {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let activity = Activity::new();
        let state = activity.subscribe();
        let service = tower::service_fn(|request: Request<RequestBody>| async move {
            let _ = request.into_body().collect().await;
            Ok::<_, Infallible>(Response::new(Ticker::new()))
        });
        let exchange = Exchange::new(service, Arc::new(limits(budget)), activity, "test");
        let server_io = TokioIo::new(server_io);
        let client_io = TokioIo::new(client_io);
        let client = match version {
            Version::Http1 => {
                let server = hyper::server::conn::http1::Builder::new()
                    .serve_connection(server_io, exchange);
                tokio::spawn(server);
                let (send, connection) = hyper::client::conn::http1::handshake(client_io)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                Client::Http1(send)
            }
            Version::Http2 => {
                let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(server_io, exchange);
                tokio::spawn(server);
                let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
                if let Some(window) = window {
                    builder.initial_stream_window_size(window);
                }
                let (send, connection) = builder.handshake(client_io).await.unwrap();
                tokio::spawn(connection);
                Client::Http2(send)
            }
        };
        (client, state)
    }

    /// What a client read of a reply.
    #[derive(Debug)]
    struct Read {
        /// Whole frames received.
        frames: usize,
        /// Whether the reply ended well (else it was cut).
        ended: bool,
        /// How long it lasted.
        lasted: Duration,
        /// The budget's use each time a whole frame had arrived.
        used: Vec<usize>,
        /// The most the budget held at any data frame the client got.
        most_used: usize,
        /// Whether the connection counted the call in flight at every
        /// frame before the last.
        busy_throughout: bool,
    }

    /// Sends a request of `request_bytes` to `path`, with `grpc-timeout`
    /// when given, and returns the reply's body.
    async fn send(
        client: &mut Client,
        path: &str,
        grpc_timeout: Option<&str>,
        request_bytes: usize,
    ) -> Incoming {
        let mut request = Request::post(format!("http://localhost{path}"));
        if let Some(timeout) = grpc_timeout {
            request = request.header("grpc-timeout", timeout);
        }
        let request = request
            .body(Full::new(Bytes::from(vec![2_u8; request_bytes])))
            .unwrap();
        match client {
            Client::Http1(send) => send.send_request(request).await,
            Client::Http2(send) => send.send_request(request).await,
        }
        .unwrap()
        .into_body()
    }

    /// Sends a request as [`send`] does, and reads its reply to the end or
    /// the cut.
    async fn read(
        client: &mut Client,
        state: &watch::Receiver<ActivityState>,
        budget: &Budget,
        path: &str,
        grpc_timeout: Option<&str>,
        request_bytes: usize,
    ) -> Read {
        let started = Instant::now();
        let body = send(client, path, grpc_timeout, request_bytes).await;
        read_body(body, state, budget, started).await
    }

    async fn read_body(
        mut body: Incoming,
        state: &watch::Receiver<ActivityState>,
        budget: &Budget,
        started: Instant,
    ) -> Read {
        let (mut received, mut used, mut most_used, mut busy_throughout) = (0, Vec::new(), 0, true);
        let ended = loop {
            // A reply cut where hyper does not see it would never end.
            let next = tokio::time::timeout(Duration::from_secs(60), body.frame());
            match next.await.expect("the reply neither ends nor sends") {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    received += data.len();
                    most_used = most_used.max(budget.used());
                    // The last frame's pieces may all be handed on, and
                    // the exchange ended, before the client reads them.
                    if received <= (FRAMES - 1) * FRAME {
                        busy_throughout &= state.borrow().in_flight == 1;
                    }
                    if received % FRAME == 0 {
                        used.push(budget.used());
                    }
                }
            }
        };
        Read {
            frames: received / FRAME,
            ended,
            lasted: started.elapsed(),
            used,
            most_used,
            busy_throughout,
        }
    }

    /// Waits until the connection has no call in flight.
    async fn idle(state: &mut watch::Receiver<ActivityState>) {
        tokio::time::timeout(
            Duration::from_secs(1),
            state.wait_for(|state| state.in_flight == 0),
        )
        .await
        .unwrap()
        .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_outlives_the_request_timeout_and_holds_only_what_it_buffers() {
        for version in [Version::Http2, Version::Http1] {
            for path in crate::grpc::STREAMING_PATHS {
                let budget = Budget::new(64 << 20);
                let (mut client, mut state) = connect(&budget, version).await;
                let read = read(&mut client, &state, &budget, path, None, 100_000).await;
                let context = format!("{version:?} {path}: {read:?}");
                // Every frame, over six times the request timeout.
                assert!(read.ended, "{context}");
                assert_eq!(read.frames, FRAMES, "{context}");
                assert!(
                    read.lasted >= Duration::from_secs(FRAMES as u64),
                    "{context}"
                );
                // The request's bytes went when the reply began, and each
                // frame's when it was handed on: nothing is held between
                // frames, and never more than a frame.
                assert_eq!(read.used, vec![0; FRAMES], "{context}");
                assert!(read.most_used < FRAME, "{context}");
                // A connection with an open stream is not idle.
                assert!(read.busy_throughout, "{context}");
                idle(&mut state).await;
                assert_eq!(budget.used(), 0, "{context}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_client_does_not_read_holds_what_waits_and_stays_open() {
        let budget = Budget::new(64 << 20);
        let window = u32::try_from(REPLY_PIECE).unwrap();
        let (mut client, state) = connect_with_window(&budget, Version::Http2, Some(window)).await;
        let started = Instant::now();
        let body = send(&mut client, crate::grpc::STREAMING_PATHS[0], None, 100_000).await;
        // The client's window takes one piece of the first frame, hyper
        // holds another and stops asking for more: the rest of that frame
        // waits in the reply, charged (the request is not), and nothing
        // more is produced, however long it waits.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let held = budget.used();
        assert!(0 < held && held <= FRAME - REPLY_PIECE, "{held}");
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert_eq!(budget.used(), held);
            assert_eq!(state.borrow().in_flight, 1);
        }
        // Read at last, the stream carries on to its end.
        let read = read_body(body, &state, &budget, started).await;
        assert!(read.ended, "{read:?}");
        assert_eq!(read.frames, FRAMES, "{read:?}");
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_whose_client_does_not_read_is_cut_at_the_request_timeout() {
        let budget = Budget::new(64 << 20);
        let window = u32::try_from(REPLY_PIECE).unwrap();
        let (mut client, mut state) =
            connect_with_window(&budget, Version::Http2, Some(window)).await;
        let body = send(&mut client, UNARY_PATH, None, 100_000).await;
        tokio::time::sleep(REQUEST_TIMEOUT - Duration::from_millis(1)).await;
        // The whole first frame and the request stay charged until the
        // exchange ends; nothing more is produced meanwhile.
        assert_eq!(budget.used(), 100_000 + FRAME);
        assert_eq!(state.borrow().in_flight, 1);
        // At the deadline it is cut, although hyper does not poll it.
        idle(&mut state).await;
        assert_eq!(budget.used(), 0);
        drop(body);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_is_still_cut_at_the_request_timeout_and_charged_to_the_end() {
        for version in [Version::Http2, Version::Http1] {
            let budget = Budget::new(64 << 20);
            let (mut client, mut state) = connect(&budget, version).await;
            let read = read(&mut client, &state, &budget, UNARY_PATH, None, 100_000).await;
            let context = format!("{version:?}: {read:?}");
            assert!(!read.ended, "{context}");
            assert_eq!(read.lasted, REQUEST_TIMEOUT, "{context}");
            assert_eq!(read.frames, 5, "{context}");
            // The request and every frame sent stay charged until the
            // exchange ends.
            let charged: Vec<usize> = (1..=read.frames).map(|k| 100_000 + k * FRAME).collect();
            assert_eq!(read.used, charged, "{context}");
            assert!(read.busy_throughout, "{context}");
            // The cut ends the exchange: all of it is released.
            idle(&mut state).await;
            assert_eq!(budget.used(), 0, "{context}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_streams_own_grpc_timeout_still_bounds_it() {
        for version in [Version::Http2, Version::Http1] {
            for path in crate::grpc::STREAMING_PATHS {
                let budget = Budget::new(64 << 20);
                let (mut client, mut state) = connect(&budget, version).await;
                // Longer than the request timeout, which does not bound a
                // stream; the client's own timeout does, with the grace
                // left for the stream to end itself.
                let read = read(&mut client, &state, &budget, path, Some("8500m"), 0).await;
                let context = format!("{version:?} {path}: {read:?}");
                assert!(!read.ended, "{context}");
                assert_eq!(
                    read.lasted,
                    Duration::from_millis(8500) + STREAM_DEADLINE_GRACE,
                    "{context}"
                );
                assert_eq!(read.frames, 9, "{context}");
                assert!(read.used.iter().all(|used| *used == 0), "{context}");
                idle(&mut state).await;
                assert_eq!(budget.used(), 0, "{context}");
            }
        }
    }

    #[test]
    fn only_the_streaming_paths_are_streams_and_only_their_clients_bound_them() {
        let limits = limits(&Budget::new(1));
        for path in crate::grpc::STREAMING_PATHS {
            assert!(limits.is_streaming(path), "{path}");
        }
        for path in [
            UNARY_PATH,
            "/groups.v1.GroupService/WatchGroupChangesX",
            "/groups.v1.GroupService/WatchGroupChanges/",
            "/v1/groups",
            "/v1/groups:watch/x",
            "/V1/groups:watch",
            "",
        ] {
            assert!(!limits.is_streaming(path), "{path}");
        }
        let hour = Duration::from_secs(3600);
        let second = Duration::from_secs(1);
        assert_eq!(limits.call_timeout(None, false), Some(REQUEST_TIMEOUT));
        assert_eq!(limits.call_timeout(Some(second), false), Some(second));
        assert_eq!(
            limits.call_timeout(Some(hour), false),
            Some(REQUEST_TIMEOUT)
        );
        assert_eq!(limits.call_timeout(None, true), None);
        assert_eq!(
            limits.call_timeout(Some(second), true),
            Some(second + STREAM_DEADLINE_GRACE)
        );
        assert_eq!(
            limits.call_timeout(Some(hour), true),
            Some(hour + STREAM_DEADLINE_GRACE)
        );
    }

    #[test]
    fn large_frames_are_copied_out_in_pieces() {
        let buffer = Bytes::from(vec![7_u8; 3 * REPLY_PIECE + 10]);
        let mut pending = buffer.clone();
        let mut pieces = Vec::new();
        while !pending.is_empty() {
            pieces.push(next_piece(&mut pending));
        }
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [REPLY_PIECE, REPLY_PIECE, REPLY_PIECE, 10]
        );
        // No piece shares the large buffer: dropping the buffer and the
        // pending remainder frees it whatever hyper still holds.
        for piece in &pieces {
            assert!(!std::ptr::eq(piece.as_ptr(), buffer.as_ptr()));
        }
        assert_eq!(pieces.concat(), buffer.to_vec());
    }

    #[test]
    fn refusals_carry_the_status_tonic_answers() {
        let refusal = Refusal::new(RefusalKind::Timeout, "slow".to_owned());
        let boxed: BoxError = Box::new(refusal);
        let status = Status::from_error(boxed);
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "slow");
        let refusal = Refusal::new(RefusalKind::Budget, "busy".to_owned());
        // As the gateway sees it: wrapped by axum's body, then by its
        // collection.
        let wrapped = axum::Error::new(axum::Error::new(refusal));
        assert_eq!(
            refusal_in(&wrapped).map(Refusal::kind),
            Some(RefusalKind::Budget)
        );
    }
}
