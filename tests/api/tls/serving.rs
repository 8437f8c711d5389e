//! Both ports over TLS: gRPC (HTTP/2 only, as ALPN says) and HTTP/JSON
//! (HTTP/2 and HTTP/1.1), and nothing in plaintext on them.

use groupd::{config::Settings, pb, startup::Application};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::*;

/// GetGroup of `id`, in the default view.
pub(super) fn get_request(id: &str) -> pb::GetGroupRequest {
    pb::GetGroupRequest {
        id: id.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_are_served_over_tls() {
    let pki = Pki::new(&[]);
    run_launched_scenario(&pki.flags(&[]), |server| async move {
        let channel = tls_channel(server.addr, &pki.ca, None).await.unwrap();
        let mut client = GroupServiceClient::new(channel.clone());
        let created = client
            .create_group(pb::CreateGroupRequest {
                group: Some(named("tls-group")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let got = client
            .get_group(get_request(&created.id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.name, "tls-group");
        let health = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving);

        for (alpn, version) in [
            ("h2", http::Version::HTTP_2),
            ("http/1.1", http::Version::HTTP_11),
        ] {
            let path = format!("/v1/groups/{}", created.id);
            let reply = https_get(server.http_addr, &pki.ca, None, &[alpn], &path)
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{alpn}");
            assert_eq!(reply.version, version, "{alpn}");
            assert_eq!(reply.json()["name"], "tls-group", "{alpn}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_not_served_on_tls_ports() {
    let pki = Pki::new(&[]);
    run_launched_scenario(&pki.flags(&[]), |server| async move {
        // A plaintext gRPC client: its preface is not a ClientHello.
        let called = match Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
        {
            Err(_) => None,
            Ok(channel) => Some(
                GroupServiceClient::new(channel)
                    .get_group(get_request("anything"))
                    .await,
            ),
        };
        assert!(
            !matches!(called, Some(Ok(_))),
            "a plaintext call was answered on the TLS port: {called:?}"
        );

        // A plaintext HTTP client.
        let plain = reqwest::Client::builder()
            .timeout(HANG_GUARD)
            .build()
            .unwrap()
            .get(format!("http://{}/openapi.json", server.http_addr))
            .send()
            .await;
        assert!(plain.is_err(), "plaintext HTTP was answered: {plain:?}");

        // What the server sends back to a plaintext request: no HTTP, and the
        // connection closed.
        for addr in [server.addr, server.http_addr] {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut answer))
                .await
                .expect("the connection was left open");
            assert!(
                read.is_err() || !answer.starts_with(b"HTTP/"),
                "{addr}: plaintext answer {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_offers_h2_alone_on_the_grpc_port_and_both_on_the_http_port() {
    let pki = Pki::new(&[]);
    run_launched_scenario(&pki.flags(&[]), |server| async move {
        let refused = tls_connect(server.addr, &pki.ca, None, &["http/1.1"])
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                tls_error(&refused),
                Some(rustls::Error::AlertReceived(
                    rustls::AlertDescription::NoApplicationProtocol
                ))
            ),
            "{refused:?}"
        );
        let grpc = tls_connect(server.addr, &pki.ca, None, &["http/1.1", "h2"])
            .await
            .unwrap();
        assert_eq!(grpc.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        for alpn in ["h2", "http/1.1"] {
            let http = tls_connect(server.http_addr, &pki.ca, None, &[alpn])
                .await
                .unwrap();
            assert_eq!(http.get_ref().1.alpn_protocol(), Some(alpn.as_bytes()));
        }
        // The server's certificate is the one in the files.
        assert_eq!(
            served_certificate(server.addr, &pki.ca).await.unwrap(),
            pki.server.der
        );
    })
    .await;
}

#[tokio::test]
async fn tls_files_that_do_not_load_refuse_the_start() {
    let pki = Pki::new(&[]);
    let other = pki.ca.localhost();
    // The key of another certificate; then a key file that is no key.
    crate::helpers::tls::replace(&pki.dir.key(), other.key_pem.as_bytes());
    let start = |flags: Vec<String>| async move {
        let mut args = vec![
            "groupd".to_owned(),
            "--database-url".to_owned(),
            format!(
                "sqlite://{}",
                std::env::temp_dir()
                    .join(format!("groupd_tls_never_{}.db", uuid::Uuid::new_v4()))
                    .display()
            ),
        ];
        args.extend(flags);
        let settings = Settings::parse_from_args(args).unwrap();
        match Application::build(settings).await {
            Ok(_) => panic!("the server started"),
            Err(error) => format!("{error:#}"),
        }
    };
    let mismatch = start(pki.flags(&[])).await;
    assert!(mismatch.contains("cannot serve TLS"), "{mismatch}");
    let secret =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0a2V5bWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n";
    crate::helpers::tls::replace(&pki.dir.key(), secret.as_bytes());
    let unreadable = start(pki.flags(&[])).await;
    assert!(unreadable.contains("key.pem"), "{unreadable}");
    assert!(
        !unreadable.contains("c2VjcmV0"),
        "the key's text leaked: {unreadable}"
    );
}
