//! Client certificates with `--tls-client-ca`: optional at the TLS level,
//! refused at the handshake when they do not chain to the CA, and, when
//! verified, the caller's identity in every request's extensions, where
//! tonic hands it to the call.

use std::sync::Arc;

use groupd::{
    auth::PeerIdentity,
    pb,
    serve::{
        self, PortOptions, Protocol,
        budget::Budget,
        exchange::ExchangeLimits,
        tls::{ServerTls, TlsFiles},
    },
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};

use super::*;
use crate::helpers::tls::ClientNames;

const SPIFFE_ID: &str = "spiffe://example.org/ns/prod/sa/billing";

/// A client certificate with a SPIFFE id, a DNS name and a CN.
fn spiffe_client(ca: &Ca) -> Leaf {
    ca.client(&ClientNames {
        uris: &[SPIFFE_ID],
        dns: &["billing.example.org"],
        common_name: Some("billing"),
    })
}

/// Whether a TLS connection presenting `identity` is served: the handshake
/// and a first exchange of HTTP/2 settings. Err holds what refused it.
async fn served(addr: SocketAddr, ca: &Ca, identity: Option<&Leaf>) -> Result<(), std::io::Error> {
    let mut stream = tls_connect(addr, ca, identity, &["h2"]).await?;
    // With TLS 1.3 the client's handshake ends before the server has
    // checked its certificate: a refusal arrives on the first read.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await?;
    let mut frame = [0_u8; 9];
    tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut frame))
        .await
        .expect("no answer")?;
    assert_eq!(frame[3], 0x4, "the server's first frame is its SETTINGS");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_optional_and_those_of_other_cas_are_refused() {
    let trusted = Ca::new("trusted client CA");
    let foreign = Ca::new("foreign client CA");
    let pki = Pki::new(&[&trusted]);
    run_launched_scenario(&pki.flags(&[]), |server| async move {
        let good = spiffe_client(&trusted);
        let stranger = spiffe_client(&foreign);
        for addr in [server.addr, server.http_addr] {
            served(addr, &pki.ca, Some(&good)).await.unwrap();
            served(addr, &pki.ca, None)
                .await
                .unwrap_or_else(|e| panic!("{addr}: a client without a certificate: {e}"));
            let refused = served(addr, &pki.ca, Some(&stranger)).await.unwrap_err();
            assert!(
                matches!(
                    tls_error(&refused),
                    Some(rustls::Error::AlertReceived(
                        rustls::AlertDescription::UnknownCA
                            | rustls::AlertDescription::BadCertificate
                    ))
                ),
                "{addr}: {refused:?}"
            );
        }

        // The same through real clients.
        let channel = tls_channel(server.addr, &pki.ca, Some(&good))
            .await
            .unwrap();
        let listed = GroupServiceClient::new(channel)
            .list_groups(pb::ListGroupsRequest::default())
            .await;
        assert!(listed.is_ok(), "{listed:?}");
        let refused = match tls_channel(server.addr, &pki.ca, Some(&stranger)).await {
            Err(error) => Err(error.to_string()),
            Ok(channel) => GroupServiceClient::new(channel)
                .list_groups(pb::ListGroupsRequest::default())
                .await
                .map(|_| ())
                .map_err(|status| status.to_string()),
        };
        assert!(refused.is_err(), "a foreign certificate was served");

        for alpn in ["h2", "http/1.1"] {
            let reply = https_get(
                server.http_addr,
                &pki.ca,
                Some(&good),
                &[alpn],
                "/v1/groups",
            )
            .await
            .unwrap();
            assert_eq!(reply.status, 200, "{alpn}");
            let refused = https_get(
                server.http_addr,
                &pki.ca,
                Some(&stranger),
                &[alpn],
                "/v1/groups",
            )
            .await;
            assert!(refused.is_err(), "{alpn}: {refused:?}");
        }
    })
    .await;
}

/// A health service that answers every check with the caller's identity,
/// as the call's extensions carry it: NOT_FOUND `peer=<identity>` or
/// `peer=none`.
struct EchoPeer;

#[tonic::async_trait]
impl Health for EchoPeer {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .map_or("none", |peer| peer.0.as_str());
        Err(Status::not_found(format!("peer={peer}")))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Serves [`EchoPeer`] with the serve layer over TLS, on a port of its own.
async fn echo_server(files: TlsFiles, stop: CancellationToken) -> SocketAddr {
    let tls = ServerTls::load(files).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = PortOptions {
        protocol: Protocol::Grpc,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 16,
        drain_timeout: Duration::from_secs(1),
        exchange: Arc::new(ExchangeLimits {
            budget: Budget::new(1 << 20),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            streaming_paths: Arc::new([]),
            refusals: None,
        }),
        tls: Some(tls.port(Protocol::Grpc)),
    };
    let routes = tonic::service::Routes::new(HealthServer::new(EchoPeer)).prepare();
    tokio::spawn(serve::serve("echo", listener, routes, options, stop));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verified_identity_reaches_the_calls_extensions() {
    let clients = Ca::new("client CA");
    let pki = Pki::new(&[&clients]);
    let stop = CancellationToken::new();
    let addr = echo_server(
        TlsFiles {
            cert: pki.dir.cert(),
            key: pki.dir.key(),
            client_ca: Some(pki.dir.client_ca()),
        },
        stop.clone(),
    )
    .await;
    let dns_only = clients.client(&ClientNames {
        dns: &["orders.example.org", "second.example.org"],
        common_name: Some("orders"),
        ..Default::default()
    });
    let cn_only = clients.client(&ClientNames {
        common_name: Some("inventory"),
        ..Default::default()
    });
    let spiffe = spiffe_client(&clients);
    for (identity, expected) in [
        (Some(&spiffe), SPIFFE_ID),
        (Some(&dns_only), "orders.example.org"),
        (Some(&cn_only), "inventory"),
        (None, "none"),
    ] {
        let channel = tls_channel(addr, &pki.ca, identity).await.unwrap();
        let mut request = Request::new(HealthCheckRequest::default());
        // Nothing the client sends names it.
        request.metadata_mut().insert(
            "x-peer-identity",
            "spiffe://example.org/admin".parse().unwrap(),
        );
        let status = HealthClient::new(channel).check(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), format!("peer={expected}"));
    }
    stop.cancel();
}
