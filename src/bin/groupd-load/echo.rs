//! The gRPC ceiling: a no-op unary call to an echo server this tool starts
//! on loopback, over the same number of connections and tasks as the
//! measured run. It returns its request, a bytes message the size of a
//! small group, and does nothing else: what is left is tonic, HTTP/2,
//! loopback TCP and the runtime on this machine. The server runs in this
//! process, so the client and the server share its threads.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Response, Status,
    body::Body,
    client::Grpc,
    codegen::http,
    server::{NamedService, UnaryService},
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_prost::ProstCodec;

use crate::{cli::Kind, client::not_ok, run::Worker, stats::Outcome};

/// The echo method's path.
const PATH: &str = "/groupd.load.Echo/Echo";

/// The size of the message echoed: about a group in the BASIC view.
const PAYLOAD_BYTES: usize = 256;

/// The echo service: one unary method, which answers its request.
#[derive(Debug, Clone, Copy)]
struct EchoService;

impl NamedService for EchoService {
    const NAME: &'static str = "groupd.load.Echo";
}

/// The echo method.
#[derive(Debug, Clone, Copy)]
struct Echo;

impl UnaryService<Vec<u8>> for Echo {
    type Response = Vec<u8>;
    type Future = Ready<Result<Response<Vec<u8>>, Status>>;

    fn call(&mut self, request: Request<Vec<u8>>) -> Self::Future {
        ready(Ok(Response::new(request.into_inner())))
    }
}

impl tower::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != PATH {
                return Ok(Status::unimplemented("only Echo is served").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Vec<u8>, Vec<u8>>::default());
            Ok(grpc.unary(Echo, request).await)
        })
    }
}

/// The echo server, serving on loopback until dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl EchoServer {
    pub async fn start() -> anyhow::Result<Self> {
        let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("cannot bind the echo server to loopback")?
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().context("the echo server's address")?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = Server::builder()
                .add_service(EchoService)
                .serve_with_incoming_shutdown(incoming, stopped.cancelled_owned())
                .await;
            if let Err(error) = served {
                eprintln!("the echo server stopped: {error}");
            }
        });
        Ok(Self { addr, stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One task's echo calls: whatever kind is drawn, the same no-op call.
#[derive(Debug)]
pub struct EchoWorker {
    grpc: Grpc<Channel>,
    payload: Vec<u8>,
}

impl EchoWorker {
    pub fn new(channel: Channel, task: usize) -> Self {
        Self {
            grpc: Grpc::new(channel),
            payload: (0..PAYLOAD_BYTES).map(|at| (at + task) as u8).collect(),
        }
    }
}

impl Worker for EchoWorker {
    async fn call(&mut self, _: Kind) -> Outcome {
        if let Err(error) = self.grpc.ready().await {
            return Outcome::NotOk {
                code: "Unavailable".into(),
                message: error.to_string(),
            };
        }
        let path = http::uri::PathAndQuery::from_static(PATH);
        let codec = ProstCodec::<Vec<u8>, Vec<u8>>::default();
        match self
            .grpc
            .unary(Request::new(self.payload.clone()), path, codec)
            .await
        {
            Ok(reply) if *reply.get_ref() == self.payload => Outcome::Right,
            Ok(_) => Outcome::Wrong("the echo differs from the request".into()),
            Err(status) => not_ok(&status),
        }
    }
}
