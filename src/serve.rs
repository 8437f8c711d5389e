//! The accept loop both ports run: gRPC (HTTP/2 only) and HTTP/JSON
//! (HTTP/1.1 and HTTP/2), and what bounds each connection and exchange.
//!
//! Written on hyper-util rather than taken from `tonic::transport::Server`
//! and `axum::serve`, because neither does the whole job:
//! - tonic's server always enforces the client's `grpc-timeout` itself, in a
//!   layer outside every service, by dropping the call and answering
//!   CANCELLED. groupd enforces deadlines in the call (`grpc::GrpcService`),
//!   so that a late call answers DEADLINE_EXCEEDED, is logged and counted,
//!   and never has its commit cut in half.
//! - `axum::serve` has no header-read timeout and no bound on draining.
//! - Neither closes idle connections, nor bounds their number, nor request
//!   bodies in time and bytes, nor replies a client does not read.
//!
//! What bounds a connection:
//! - At most `--max-connections` per port. Beyond it the loop stops
//!   accepting, so new connections wait in the kernel's listen queue (they
//!   use no file descriptor of ours) until one closes, as Go's
//!   `LimitListener` does, rather than being accepted and closed: a client
//!   is served late instead of failing, and a flood of connections costs
//!   nothing. Accept errors such as running out of files back off (see
//!   [`limits::AcceptBackoff`]).
//! - A connection must send its HTTP/2 preface, or reach its first request,
//!   within `--http-header-timeout`; HTTP/1.1 requests' headers are bounded
//!   by the same timeout (hyper's, which on a kept-alive connection also
//!   runs while it waits for the next request).
//! - A connection with no call in flight for `--idle-timeout` is closed:
//!   gracefully (HTTP/2 GOAWAY), then dropped if it has not closed a moment
//!   later.
//! - The gRPC port speaks HTTP/2 only: hyper-util's
//!   `serve_connection_with_upgrades` ignores `http2_only` and would serve
//!   HTTP/1.1 too, so the ports use `serve_connection`.
//! - Over TLS ([`tls`]), the handshake runs in the connection's task, after
//!   its slot of `--max-connections` is taken, and must end within
//!   `--http-header-timeout` of the accept: the preface's bound counts from
//!   the accept too, so that a client has that long for both together. A
//!   client certificate the handshake verified names the client
//!   ([`tls::identity`]) in every request of the connection ([`peer`]).
//!
//! Each exchange is bounded by [`exchange`]: the request body in time and by
//! the in-flight [`budget`], the reply by the call's deadline.
//!
//! One loop also means one TCP_NODELAY setting and one drain for both ports.

pub mod budget;
pub mod exchange;
pub mod limits;
pub mod peer;
pub mod tls;

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use hyper::body::{Body, Bytes};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::auth::PeerIdentity;
use exchange::{Activity, Exchange, ExchangeLimits, RequestBody};
use limits::AcceptBackoff;
use peer::WithPeer;
use tls::PortTls;

/// The bytes of an HTTP/2 client preface: the 24-byte magic and the header
/// of the SETTINGS frame that must follow it. A connection that has sent
/// fewer by the header timeout, and no request, is closed.
const PREFACE_BYTES: u64 = 24 + 9;

/// How long a connection asked to close (idle, or at shutdown) with no call
/// in flight may take to do so before it is dropped: enough to flush a
/// GOAWAY.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// How a port speaks.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// gRPC: HTTP/2 only (prior knowledge, no upgrade).
    Grpc,
    /// HTTP/JSON: HTTP/1.1 and HTTP/2.
    Http,
}

/// What bounds the connections of a port.
#[derive(Debug, Clone)]
pub struct PortOptions {
    /// How the port speaks.
    pub protocol: Protocol,
    /// The longest a client may take to send its preface or a request's
    /// headers.
    pub header_timeout: Duration,
    /// How long a connection may stay with no call in flight.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: u32,
    /// How long in-flight calls may run once the port stops accepting.
    pub drain_timeout: Duration,
    /// What bounds each exchange.
    pub exchange: Arc<ExchangeLimits>,
    /// The port's TLS configuration; `None` serves plaintext.
    pub tls: Option<PortTls>,
}

/// Serves `service` on `listener` until `stop` is cancelled; then stops
/// accepting, lets in-flight requests finish for up to the drain timeout,
/// and cuts whatever is still running after that.
pub async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    options: PortOptions,
    stop: CancellationToken,
) where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    match options.protocol {
        Protocol::Grpc => builder = builder.http2_only(),
        Protocol::Http => {
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_timeout);
        }
    }
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(
        usize::try_from(options.max_connections).unwrap_or(usize::MAX),
    ));
    let mut backoff = AcceptBackoff::default();
    let mut connections = JoinSet::new();
    // When the limit was last warned about: at most once every
    // `AcceptBackoff::WARN_EVERY`, however often it is reached.
    let mut warned_full: Option<std::time::Instant> = None;
    loop {
        // Forget connections that have ended.
        while connections.try_join_next().is_some() {}
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let now = std::time::Instant::now();
                if warned_full
                    .is_none_or(|last| now.duration_since(last) >= AcceptBackoff::WARN_EVERY)
                {
                    tracing::warn!(
                        port = name,
                        max_connections = options.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                    warned_full = Some(now);
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => {
                backoff.on_success();
                tcp
            }
            Err(error) => {
                let after = backoff.on_error(&error, std::time::Instant::now());
                if let Some(unlogged) = after.warn {
                    tracing::warn!(
                        port = name,
                        %error,
                        unlogged,
                        retry_in = ?after.wait,
                        "cannot accept a connection"
                    );
                } else {
                    tracing::debug!(port = name, %error, "cannot accept a connection");
                }
                drop(slot);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(after.wait) => continue,
                }
            }
        };
        // Without TCP_NODELAY a reply sent in several writes waits for the
        // client's delayed ACK (~40 ms).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(port = name, %error, "cannot set TCP_NODELAY");
        }
        let port = Port {
            name,
            builder: Arc::clone(&builder),
            service: service.clone(),
            exchange: Arc::clone(&options.exchange),
            timeouts: Timeouts {
                header: options.header_timeout,
                idle: options.idle_timeout,
            },
            stop: stop.clone(),
        };
        let tls = options.tls.clone();
        connections.spawn(async move {
            let accepted = Instant::now();
            match tls {
                None => port.connection(tcp, None, accepted).await,
                Some(tls) => {
                    let deadline = accepted + port.timeouts.header;
                    if let Some((stream, peer)) =
                        handshake(name, tcp, &tls, deadline, &port.stop).await
                    {
                        port.connection(stream, peer, accepted).await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(port = name, connections = open, "draining");
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            port = name,
            drain_timeout = ?options.drain_timeout,
            "calls still running after the drain timeout are cut"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// What every connection of a port shares.
struct Port<S> {
    name: &'static str,
    builder: Arc<Builder<TokioExecutor>>,
    service: S,
    exchange: Arc<ExchangeLimits>,
    timeouts: Timeouts,
    stop: CancellationToken,
}

impl<S, B> Port<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves one connection, whose client is `peer`, until it ends.
    async fn connection<IO>(self, io: IO, peer: Option<PeerIdentity>, accepted: Instant)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let read = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Counted {
            inner: io,
            read: Arc::clone(&read),
        });
        let exchange = Exchange::new(
            WithPeer::new(self.service, peer),
            Arc::clone(&self.exchange),
            activity.clone(),
            self.name,
        );
        let connection = self.builder.serve_connection(io, exchange);
        drive(
            self.name,
            connection,
            &activity,
            &read,
            self.timeouts,
            accepted,
            &self.stop,
        )
        .await;
    }
}

/// The TLS handshake of a connection, which must end by `deadline`, and
/// the identity of the client certificate it verified. `None` when the
/// handshake failed, did not end in time, or the port stopped meanwhile:
/// the connection is then dropped.
async fn handshake(
    port: &'static str,
    tcp: TcpStream,
    tls: &PortTls,
    deadline: Instant,
    stop: &CancellationToken,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<PeerIdentity>,
)> {
    let handshake = tls.acceptor().accept(tcp);
    let stream = tokio::select! {
        () = stop.cancelled() => return None,
        ended = tokio::time::timeout_at(deadline, handshake) => match ended {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(port, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(port, "TLS handshake not done within the header timeout");
                return None;
            }
        },
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|certificate| tls::identity::peer_identity(certificate))
        .map(PeerIdentity);
    Some((stream, peer))
}

/// The timeouts a connection's driver applies.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// A hyper connection that can be asked to close gracefully.
trait Graceful: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> {
    fn close_gracefully(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper_util::server::conn::auto::Connection<'_, I, S, TokioExecutor>
where
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs one connection, accepted at `accepted`, until it ends, closing it
/// when it has been idle (no call in flight) too long, when it has not sent
/// its preface in time, or when the port stops.
async fn drive(
    port: &'static str,
    connection: impl Graceful,
    activity: &Activity,
    read: &AtomicU64,
    timeouts: Timeouts,
    accepted: Instant,
    stop: &CancellationToken,
) {
    let mut changes = activity.subscribe();
    let mut closing: Option<Instant> = None;
    tokio::pin!(connection);
    loop {
        let state = *changes.borrow_and_update();
        let wake = if state.in_flight > 0 {
            None
        } else if let Some(since) = closing {
            Some(since.max(state.idle_since) + CLOSE_LINGER)
        } else if !state.dispatched && read.load(Ordering::Relaxed) < PREFACE_BYTES {
            Some((accepted + timeouts.header).min(state.idle_since + timeouts.idle))
        } else {
            Some(state.idle_since + timeouts.idle)
        };
        let wake_at = wake.unwrap_or_else(|| Instant::now() + timeouts.idle);
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(port, %error, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if closing.is_none() => {
                connection.as_mut().close_gracefully();
                closing = Some(Instant::now());
            }
            changed = changes.changed() => {
                // The calls' side cannot go away while the connection
                // runs; if it did, idle timers still apply.
                let _ = changed;
            }
            () = tokio::time::sleep_until(wake_at), if wake.is_some() => {
                if closing.is_some() {
                    tracing::debug!(port, "connection dropped: it did not close when asked");
                    return;
                }
                let state = *changes.borrow();
                let preface_missing =
                    !state.dispatched && read.load(Ordering::Relaxed) < PREFACE_BYTES;
                let now = Instant::now();
                let idle_for = now.saturating_duration_since(state.idle_since);
                let header_late = preface_missing
                    && now.saturating_duration_since(accepted) >= timeouts.header;
                if state.in_flight == 0 && (header_late || idle_for >= timeouts.idle) {
                    tracing::debug!(
                        port,
                        preface_missing,
                        "closing a connection with no call in flight"
                    );
                    connection.as_mut().close_gracefully();
                    closing = Some(now);
                }
            }
        }
    }
}

/// A connection's stream (TCP, or TLS: then the bytes counted are the
/// decrypted ones) that counts the bytes read from it, so that the driver
/// can tell a connection that sent its preface from one that did not.
struct Counted<IO> {
    inner: IO,
    read: Arc<AtomicU64>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.read.fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
