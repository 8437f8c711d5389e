//! TLS on both ports, client certificates, the plaintext probe port, and
//! certificates reloaded while serving; all with certificates generated
//! for the test (`helpers::tls`), against the real server. TLS does not
//! depend on the database: these scenarios run on SQLite only.

mod client_certs;
mod handshake;
mod probe;
mod rotation;
mod serving;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use groupd::pb::group_service_client::GroupServiceClient;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::helpers::{
    tls::{Ca, Leaf, TlsDir, client_config},
    *,
};

/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A CA, the server certificate it signed, and the server's files.
struct Pki {
    ca: Ca,
    server: Leaf,
    dir: TlsDir,
}

impl Pki {
    /// A CA and a server certificate for localhost, written as the server's
    /// files; with `client_cas`, a client CA bundle of them too.
    fn new(client_cas: &[&Ca]) -> Self {
        let ca = Ca::new("groupd test CA");
        let server = ca.localhost();
        let dir = TlsDir::new();
        dir.write_server(&server);
        if !client_cas.is_empty() {
            dir.write_client_ca(client_cas);
        }
        Self { ca, server, dir }
    }

    /// The server's flags: both ports over TLS (with the client CA when
    /// one was written), both on port 0, plus `extra`.
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags = self.dir.flags(self.dir.client_ca().exists());
        flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
        flags
    }
}

/// A gRPC channel over TLS to `addr`, trusting `ca`, presenting `identity`
/// when given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A GroupService client over TLS.
async fn tls_client(addr: SocketAddr, ca: &Ca) -> GroupServiceClient<Channel> {
    GroupServiceClient::new(tls_channel(addr, ca, None).await.unwrap())
}

/// What an HTTPS GET answered.
#[derive(Debug)]
struct HttpsReply {
    status: http::StatusCode,
    version: http::Version,
    body: Vec<u8>,
}

impl HttpsReply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// GET `path` from the gateway at `addr` over TLS (as `localhost`),
/// trusting `ca`, presenting `identity`, offering `alpn`: HTTP/2 when the
/// server picks `h2`, else HTTP/1.1.
async fn https_get(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
    alpn: &[&str],
    path: &str,
) -> Result<HttpsReply, String> {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let stream = tls_connect(addr, ca, identity, alpn)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let request = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .header(http::header::HOST, format!("localhost:{}", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2: {e}"))?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP/1.1: {e}"))?;
        tokio::spawn(connection);
        sender.send_request(request).await
    }
    .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("the reply hung")
        .map_err(|e| format!("body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(HttpsReply {
        status: parts.status,
        version: parts.version,
        body,
    })
}

/// A raw TLS connection to `addr` as `localhost`, trusting `ca`,
/// presenting `identity`, offering `alpn`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
    alpn: &[&str],
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(Arc::new(client_config(ca, identity, alpn)));
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(
        HANG_GUARD,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("the handshake hung")
}

/// The certificate a new connection to `addr` is served.
async fn served_certificate(addr: SocketAddr, ca: &Ca) -> std::io::Result<CertificateDer<'static>> {
    let stream = tls_connect(addr, ca, None, &["h2"]).await?;
    Ok(stream.get_ref().1.peer_certificates().unwrap()[0].clone())
}

/// The rustls error behind an IO error, if any.
fn tls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}
