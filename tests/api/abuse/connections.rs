//! Bounded connections, against the real binary: connections that send
//! nothing, only part of a preface or of a request's headers, or that stay
//! idle, are closed; the gRPC port does not speak HTTP/1.1; and connections
//! beyond `--max-connections` wait for a free slot instead of taking the
//! process's last file descriptors, while the log stays quiet.

use groupd::pb;
use tokio::io::AsyncReadExt as _;

use super::raw::*;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_preface_only_partial_and_idle_connections_are_closed_on_both_ports() {
    run_scenario(Backend::Sqlite, &[], |app| async move {
        let child = Child::serve(
            app.database_url(),
            &["--http-header-timeout", "1s", "--idle-timeout", "2s"],
            ChildLog::Keep,
        )
        .await;
        let mut hostile = Vec::new();
        for addr in [&child.grpc_addr, &child.http_addr] {
            // Nothing at all; half the preface; the whole preface and its
            // SETTINGS, then nothing (an idle HTTP/2 connection).
            hostile.push(("silent", send_only(addr, b"").await));
            hostile.push(("half a preface", send_only(addr, &PREFACE[..12]).await));
            let mut preface = PREFACE.to_vec();
            preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            hostile.push(("an idle HTTP/2 connection", send_only(addr, &preface).await));
        }
        // Partial HTTP/1.1 headers on the HTTP port.
        hostile.push((
            "partial headers",
            send_only(
                &child.http_addr,
                b"GET /v1/groups HTTP/1.1\r\nhost: groupd\r\nx-slow: ",
            )
            .await,
        ));
        // An HTTP/1.1 connection kept alive after a request.
        let mut kept_alive = send_only(
            &child.http_addr,
            b"GET /v1/groups HTTP/1.1\r\nhost: groupd\r\n\r\n",
        )
        .await;
        let mut status_line = [0_u8; 12];
        kept_alive
            .read_exact(&mut status_line)
            .await
            .expect("a response");
        assert_eq!(&status_line, b"HTTP/1.1 200");
        hostile.push(("an idle HTTP/1.1 connection", kept_alive));

        // Meanwhile a well-behaved client is served.
        let mut client = child.client().await;
        let created = client
            .create_group(pb::CreateGroupRequest {
                group: Some(named("meanwhile")),
                ..Default::default()
            })
            .await
            .expect("a well-behaved CreateGroup")
            .into_inner();

        // Each hostile connection is closed by the server (EOF), within the
        // bound: what the server sent before closing, if anything, is no
        // HTTP/1.1 response but on the kept-alive connection.
        for (what, mut tcp) in hostile {
            let sent = read_to_eof(&mut tcp).await;
            assert!(
                what == "an idle HTTP/1.1 connection" || !sent.starts_with(b"HTTP/1.1 2"),
                "{what}: {:?}",
                String::from_utf8_lossy(&sent)
            );
        }
        assert_eq!(get(&app, &created.id).await, created);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_refuses_http1() {
    run_scenario(Backend::Sqlite, &[], |app| async move {
        let group = create_named(&app, "over-http1").await;
        let child = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
        let message = prost::Message::encode_to_vec(&pb::GetGroupRequest {
            id: group.id.clone(),
            view: 0,
        });
        let mut framed = frame_header(message.len()).to_vec();
        framed.extend_from_slice(&message);
        let mut request = format!(
            "POST /groups.v1.GroupService/GetGroup HTTP/1.1\r\nhost: groupd\r\n\
             content-type: application/grpc\r\nte: trailers\r\ncontent-length: {}\r\n\r\n",
            framed.len()
        )
        .into_bytes();
        request.extend_from_slice(&framed);
        let mut tcp = send_only(&child.grpc_addr, &request).await;
        let answer = read_to_eof(&mut tcp).await;
        assert!(
            !answer.starts_with(b"HTTP/1"),
            "the gRPC port answered HTTP/1.1: {:?}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            !answer
                .windows(group.id.len())
                .any(|window| window == group.id.as_bytes()),
            "the group was served over HTTP/1.1"
        );
        // HTTP/2 on the same port still works.
        let mut client = child.client().await;
        let got = client
            .get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view: 0,
            })
            .await
            .expect("GetGroup over HTTP/2")
            .into_inner();
        assert_eq!(got.id, group.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_and_a_client_is_served_once_idle_ones_close() {
    run_scenario(Backend::Sqlite, &[], |app| async move {
        // A file limit of 128: 2 × 20 connections, 2 pooled database
        // connections and the process's own files fit in it; 60 idle
        // connections a port would not.
        const FILES: u64 = 128;
        const IDLE: usize = 60;
        let child = Child::serve_limited(
            app.database_url(),
            &[
                "--max-connections",
                "20",
                "--db-max-connections",
                "2",
                "--http-header-timeout",
                "2s",
            ],
            ChildLog::Keep,
            Some(FILES),
        )
        .await;
        let mut idle = Vec::new();
        for _ in 0..IDLE {
            idle.push(send_only(&child.grpc_addr, b"").await);
            idle.push(send_only(&child.http_addr, b"").await);
        }
        // A well-behaved client: its connection waits in the listen queue
        // until the idle ones are closed by the header timeout, then it is
        // served on both ports.
        let served = tokio::time::timeout(HANG_BOUND, async {
            let mut client = child.client().await;
            let created = client
                .create_group(pb::CreateGroupRequest {
                    group: Some(named("after-the-flood")),
                    ..Default::default()
                })
                .await
                .expect("a well-behaved CreateGroup")
                .into_inner();
            let reply = reqwest::get(format!(
                "http://{}/v1/groups/{}",
                child.http_addr, created.id
            ))
            .await
            .expect("an HTTP answer");
            assert_eq!(reply.status(), 200);
            created
        })
        .await
        .expect("the well-behaved client was served in time");
        assert_eq!(get(&app, &served.id).await, served);
        for mut tcp in idle {
            read_to_eof(&mut tcp).await;
        }
        // The log was not flooded: no accept error at all (the file limit
        // was never reached), and the limit warned about at most once a
        // port every 10 s (the flood lasts a few seconds), beside the
        // start-up warning that authentication is off.
        let warnings: Vec<_> = child
            .log()
            .into_iter()
            .filter(|event| event["level"] == "WARN")
            .collect();
        assert!(
            !warnings
                .iter()
                .any(|event| event["message"] == "cannot accept a connection"),
            "{warnings:?}"
        );
        assert!(
            warnings.len() <= 5,
            "{} warnings: {warnings:?}",
            warnings.len()
        );
    })
    .await;
}

#[tokio::test]
async fn more_connections_than_the_file_limit_allows_is_refused_at_start() {
    let (status, log) =
        Child::run_with_file_limit(&["serve", "--max-connections", "1000"], 256).await;
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("--max-connections"), "{log}");
    assert!(log.contains("256"), "{log}");
}
