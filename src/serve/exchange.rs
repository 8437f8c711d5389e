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

use std::{
    convert::Infallible,
    error::Error as StdError,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock, Weak},
    task::{Context, Poll, ready},
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
    /// `grpc-timeout` wins. The reply must be taken by then too.
    pub request_timeout: Duration,
    /// Where refusals are logged and counted, on the gRPC port: the call
    /// never reaches the service there, so nothing else would record it.
    /// The HTTP gateway records its refusals itself.
    pub refusals: Option<RefusalRecorder>,
}

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

/// Why a reply was cut.
#[derive(Debug)]
struct ReplyCut;

impl std::fmt::Display for ReplyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client did not take the reply before the call's deadline")
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
        let call_timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(crate::deadline::parse_grpc_timeout)
            .map_or(self.limits.request_timeout, |asked| {
                asked.min(self.limits.request_timeout)
            });
        let deadline = started + call_timeout;
        let body_timeout = self.limits.body_read_timeout.min(call_timeout);
        let cut_by = if call_timeout < self.limits.body_read_timeout {
            RefusalKind::Deadline
        } else {
            RefusalKind::Timeout
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
            Ok(response.map(|body| ReplyBody::new(body, shared, deadline, busy, path)))
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
    deadline: Instant,
    expiry: Option<AbortHandle>,
    path: Option<String>,
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
}

impl<B> Slot<B> {
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
    fn new(body: B, shared: Arc<Shared>, deadline: Instant, busy: Busy, path: String) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                inner: Some(Box::pin(body)),
                pending: Bytes::new(),
                shared: Some(shared),
                busy: Some(busy),
                cut: false,
            })),
            deadline,
            expiry: None,
            path: Some(path),
        }
    }

    /// Starts the timer that cuts the reply at the deadline if it is not
    /// sent by then: hyper does not poll a body whose client does not read,
    /// so the body cannot notice the deadline itself.
    fn arm(&mut self) {
        if self.expiry.is_some() {
            return;
        }
        let slot: Weak<Mutex<Slot<B>>> = Arc::downgrade(&self.slot);
        let deadline = self.deadline;
        let path = self.path.take().unwrap_or_default();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(slot) = slot.upgrade() {
                let mut slot = lock(&slot);
                if slot.busy.is_some() {
                    slot.cut = true;
                    slot.finish();
                    tracing::info!(
                        path,
                        "reply cut: the client did not take it before the call's deadline"
                    );
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
        let slot = Arc::clone(&this.slot);
        let mut slot = lock(&slot);
        if slot.cut {
            slot.cut = false;
            return Poll::Ready(Some(Err(Box::new(ReplyCut))));
        }
        if !slot.pending.is_empty() {
            let piece = next_piece(&mut slot.pending);
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
            Poll::Pending => Poll::Pending,
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
                        if let Some(shared) = &slot.shared {
                            shared.charge().reply(data.len());
                        }
                        if data.len() > REPLY_PIECE {
                            let piece = next_piece(&mut data);
                            slot.pending = data;
                            Frame::data(piece)
                        } else {
                            Frame::data(data)
                        }
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
