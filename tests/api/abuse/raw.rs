//! Raw clients for the abuse tests: plain TCP and HTTP/2 (the `h2` crate),
//! to send what tonic and reqwest never would (partial messages, streams
//! held open, a flow-control window of 0), and to see exactly what the
//! server does with it.

use std::time::Duration;

use h2::client::SendRequest;
use hyper::body::Bytes;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tonic::Code;
use tonic_types::StatusExt as _;

/// A bound against hangs, not a timing assertion.
pub const HANG_BOUND: Duration = Duration::from_secs(60);

/// The HTTP/2 client preface's magic.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 connection to `addr`, driven in the background; with
/// `window` as the stream flow-control window it advertises.
pub async fn h2_connect(addr: &str, window: Option<u32>) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connects");
    let mut builder = h2::client::Builder::new();
    if let Some(window) = window {
        builder.initial_window_size(window);
    }
    let (send, connection) = builder.handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// The headers of a gRPC call of `method` of the GroupService.
pub fn grpc_request(method: &str, timeout: Option<&str>) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://groupd/groups.v1.GroupService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    request.body(()).expect("a request")
}

/// The 5-byte gRPC frame header of an uncompressed message of `length`
/// bytes.
pub fn frame_header(length: usize) -> Bytes {
    let mut header = vec![0_u8];
    header.extend_from_slice(&u32::try_from(length).expect("a u32").to_be_bytes());
    Bytes::from(header)
}

/// Starts a call whose message declares `declared` bytes and sends only
/// `sent` of them, keeping the stream open. Returns the response future
/// and the stream, which must be kept for the stream to stay open.
pub async fn partial_call(
    connection: &mut SendRequest<Bytes>,
    method: &str,
    declared: usize,
    sent: usize,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut ready = connection
        .clone()
        .ready()
        .await
        .expect("the connection takes streams");
    let (response, mut stream) = ready
        .send_request(grpc_request(method, None), false)
        .expect("a stream");
    stream
        .send_data(frame_header(declared), false)
        .expect("frame header sent");
    stream
        .send_data(Bytes::from(vec![b'x'; sent]), false)
        .expect("part of the message sent");
    *connection = ready;
    (response, stream)
}

/// The gRPC code and `ErrorInfo` reason of a response's headers (an error
/// is answered trailers-only) or, failing that, its trailers.
pub async fn grpc_outcome(response: h2::client::ResponseFuture) -> (Code, String) {
    let response = tokio::time::timeout(HANG_BOUND, response)
        .await
        .expect("an answer in time");
    outcome_of(response).await
}

/// The gRPC code and `ErrorInfo` reason of an HTTP/2 response, as
/// [`grpc_outcome`] reads them.
pub async fn outcome_of(
    response: Result<http::Response<h2::RecvStream>, h2::Error>,
) -> (Code, String) {
    let response = response.expect("a response, not a reset");
    let (parts, mut body) = response.into_parts();
    let status = match tonic::Status::from_header_map(&parts.headers) {
        Some(status) => status,
        None => {
            while let Some(data) = body.data().await {
                let _ = data;
            }
            let trailers = body
                .trailers()
                .await
                .expect("trailers")
                .expect("a gRPC status in the trailers");
            tonic::Status::from_header_map(&trailers).expect("a gRPC status")
        }
    };
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

/// Reads from `tcp` until the server closes the connection, within the
/// bound; returns what it sent.
pub async fn read_to_eof(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(HANG_BOUND, async {
        let mut buffer = [0_u8; 4096];
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await
    .expect("the server closed the connection in time");
    received
}

/// A TCP connection to `addr` that has sent `bytes` and nothing else.
pub async fn send_only(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    tcp.write_all(bytes).await.expect("sent");
    tcp
}
