//! The probe port (`--probe-addr`): gRPC health in plaintext, for probes
//! that cannot speak TLS, and nothing else; the same health as the gRPC
//! port, so NOT_SERVING once shutdown begins.

use groupd::pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use super::*;

/// A plaintext channel to the probe port.
async fn probe_channel(server: &Launched) -> Channel {
    let addr = server.probe_addr.expect("a probe port");
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The status the health service reports for `service`.
async fn health_of(channel: &Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_port_answers_health_in_plaintext_and_nothing_else() {
    let pki = Pki::new(&[]);
    run_launched_scenario(
        &pki.flags(&["--probe-addr", "127.0.0.1:0"]),
        |server| async move {
            let probe = probe_channel(&server).await;
            for service in ["", "groups.v1.GroupService", "liveness"] {
                assert_eq!(
                    health_of(&probe, service).await,
                    ServingStatus::Serving,
                    "{service:?}"
                );
            }

            let status = GroupServiceClient::new(probe.clone())
                .list_groups(pb::ListGroupsRequest::default())
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let reflection = ServerReflectionClient::new(probe)
                .server_reflection_info(tokio_stream::iter([request]))
                .await;
            let status = match reflection {
                Err(status) => status,
                Ok(reply) => reply.into_inner().message().await.unwrap_err(),
            };
            assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

            // The API ports still require TLS; the probe port speaks none.
            let mut api = tls_client(server.addr, &pki.ca).await;
            assert!(
                api.list_groups(pb::ListGroupsRequest::default())
                    .await
                    .is_ok()
            );
            let over_tls = tls_connect(server.probe_addr.unwrap(), &pki.ca, None, &["h2"]).await;
            assert!(over_tls.is_err(), "the probe port spoke TLS");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_port_reports_not_serving_once_shutdown_begins() {
    // Without TLS too: the probe port does not depend on it.
    let flags = ["--probe-addr", "127.0.0.1:0", "--shutdown-delay", "2s"].map(str::to_owned);
    run_launched_scenario(&flags, |server| async move {
        let probe = probe_channel(&server).await;
        assert_eq!(health_of(&probe, "").await, ServingStatus::Serving);
        server.shutdown.cancel();
        let turned = tokio::time::timeout(HANG_GUARD, async {
            while health_of(&probe, "").await != ServingStatus::NotServing {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(turned.is_ok(), "the probe port's health stayed SERVING");
        assert_eq!(
            health_of(&probe, "liveness").await,
            ServingStatus::Serving,
            "liveness does not follow shutdown"
        );
    })
    .await;
}
