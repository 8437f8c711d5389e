//! The accept loop both ports run: gRPC (HTTP/2 only) and HTTP/JSON
//! (HTTP/1.1 and HTTP/2).
//!
//! Written on hyper-util rather than taken from `tonic::transport::Server`
//! and `axum::serve`, because neither does the whole job:
//! - tonic's server always enforces the client's `grpc-timeout` itself, in a
//!   layer outside every service, by dropping the call and answering
//!   CANCELLED. groupd enforces deadlines in the call (`grpc::GrpcService`),
//!   so that a late call answers DEADLINE_EXCEEDED, is logged and counted,
//!   and never has its commit cut in half.
//! - `axum::serve` has no header-read timeout and no bound on draining.
//!
//! One loop also means one TCP_NODELAY setting and one drain for both ports.

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::{Body, Bytes, Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// How a port speaks.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// gRPC: HTTP/2 only (prior knowledge, no upgrade).
    Grpc,
    /// HTTP/JSON: HTTP/1.1 and HTTP/2, with a bound on how long a client may
    /// take to send a request's headers.
    Http {
        /// The longest a client may take to send a request's headers.
        header_read_timeout: Duration,
    },
}

/// Serves `service` on `listener` until `stop` is cancelled; then stops
/// accepting, lets in-flight requests finish for up to `drain_timeout`, and
/// cuts whatever is still running after that.
pub async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    protocol: Protocol,
    stop: CancellationToken,
    drain_timeout: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    match protocol {
        Protocol::Grpc => builder = builder.http2_only(),
        Protocol::Http {
            header_read_timeout,
        } => {
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
        }
    }
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Forget connections that have ended.
        while connections.try_join_next().is_some() {}
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin on the same error.
                tracing::warn!(port = name, %error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY a reply sent in several writes waits for the
        // client's delayed ACK (~40 ms).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(port = name, %error, "cannot set TCP_NODELAY");
        }
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(tcp),
                TowerToHyperService::new(service.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(port = name, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(port = name, connections = open, "draining");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            port = name,
            ?drain_timeout,
            "calls still running after the drain timeout are cut"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}
