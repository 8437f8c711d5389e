//! Bounded memory per caller, against the real binary: request bodies and
//! gRPC messages sent slowly are cut at the body-read timeout and their
//! memory returns; the in-flight budget refuses beyond it while small calls
//! get through; a client that never reads its replies does not hold them
//! past the call's deadline.
//!
//! The bounds are the transport's and do not depend on the database, so
//! these scenarios run on SQLite only.

use std::time::Duration;

use groupd::pb;
use tokio::io::AsyncWriteExt as _;
use tonic::Code;

use super::raw::*;
use crate::helpers::*;

const MIB: usize = 1024 * 1024;

/// One scenario on SQLite, in its own test.
macro_rules! sqlite_scenarios {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_scenario(Backend::Sqlite, &[], |app| async move {
                    scenarios::$name(app).await;
                })
                .await;
            }
        )+
    };
}

sqlite_scenarios!(
    slow_http_bodies_are_answered_408_and_their_memory_returns,
    slow_grpc_messages_are_answered_deadline_exceeded_and_their_memory_returns,
    the_inflight_budget_refuses_beyond_it_and_small_calls_get_through,
    replies_a_client_does_not_read_are_cut_at_the_calls_deadline,
);

/// Creates a group named `name` through `client`, as a well-behaved caller.
async fn create_through(
    client: &mut pb::group_service_client::GroupServiceClient<tonic::transport::Channel>,
    name: &str,
) -> pb::Group {
    tokio::time::timeout(
        HANG_BOUND,
        client.create_group(pb::CreateGroupRequest {
            group: Some(named(name)),
            ..Default::default()
        }),
    )
    .await
    .expect("answered in time")
    .unwrap_or_else(|status| panic!("a well-behaved CreateGroup failed: {status:?}"))
    .into_inner()
}

/// The RSS of `child` sampled every 100 ms for `span`, the largest seen.
async fn peak_rss(child: &Child, span: Duration) -> u64 {
    let mut peak = child.rss_kib();
    let end = tokio::time::Instant::now() + span;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(child.rss_kib());
    }
    peak
}

/// Checks that memory returned after a burst: 10 s after it, RSS is within
/// a quarter of what the burst added (and at most 2× the baseline).
fn assert_memory_returned(what: &str, before: u64, during: u64, after: u64) {
    eprintln!("{what}: RSS before {before} KiB, peak during {during} KiB, 10 s after {after} KiB");
    let added = during.saturating_sub(before);
    assert!(
        after <= before + added / 4 && after <= 2 * before,
        "{what}: memory did not return (before {before} KiB, during {during} KiB, after {after} KiB)"
    );
}

mod scenarios {
    use super::*;

    pub async fn slow_http_bodies_are_answered_408_and_their_memory_returns(app: TestApp) {
        // 50 bodies of 2 MiB, each sent but for its last 73 bytes; the
        // budget is raised so that all of them are read, and only the
        // body-read timeout ends them.
        const BODIES: usize = 50;
        const DECLARED: usize = 2 * MIB;
        let child = Child::serve(
            app.database_url(),
            &[
                "--body-read-timeout",
                "3s",
                "--max-inflight-bytes",
                &(256 * MIB).to_string(),
            ],
            ChildLog::Keep,
        )
        .await;
        let before = child.rss_kib();
        let mut slow = Vec::new();
        for _ in 0..BODIES {
            let addr = child.http_addr.clone();
            slow.push(tokio::spawn(async move {
                let head = format!(
                    "POST /v1/groups HTTP/1.1\r\nhost: groupd\r\n\
                     content-type: application/json\r\ncontent-length: {DECLARED}\r\n\r\n"
                );
                let mut tcp = send_only(&addr, head.as_bytes()).await;
                tcp.write_all(&vec![b' '; DECLARED - 73])
                    .await
                    .expect("the server reads the body");
                String::from_utf8_lossy(&read_to_eof(&mut tcp).await).into_owned()
            }));
        }
        // Meanwhile a well-behaved client is served.
        let mut client = child.client().await;
        let mut written = Vec::new();
        for n in 0..5 {
            written.push(create_through(&mut client, &format!("meanwhile-{n}")).await);
        }
        let during = peak_rss(&child, Duration::from_secs(2)).await.max(before);
        for answer in slow {
            let answer = answer.await.expect("the slow client ran");
            assert!(
                answer.starts_with("HTTP/1.1 408"),
                "a slow body was not answered 408: {answer}"
            );
            assert!(answer.contains("REQUEST_BODY_TIMEOUT"), "{answer}");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = child.rss_kib();
        assert_memory_returned("50 slow HTTP bodies of 2 MiB", before, during, after);
        for group in &written {
            assert_eq!(&get(&app, &group.id).await, group);
        }
    }

    pub async fn slow_grpc_messages_are_answered_deadline_exceeded_and_their_memory_returns(
        app: TestApp,
    ) {
        // 2 connections × 25 streams, each holding half of a 2 MiB message.
        const CONNECTIONS: usize = 2;
        const STREAMS: usize = 25;
        let child = Child::serve(
            app.database_url(),
            &["--body-read-timeout", "3s"],
            ChildLog::Keep,
        )
        .await;
        let before = child.rss_kib();
        let mut calls = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut connection = h2_connect(&child.grpc_addr, None).await;
            for _ in 0..STREAMS {
                calls.push(partial_call(&mut connection, "CreateGroup", 2 * MIB, MIB).await);
            }
        }
        let mut client = child.client().await;
        let mut written = Vec::new();
        for n in 0..5 {
            written.push(create_through(&mut client, &format!("meanwhile-{n}")).await);
        }
        let during = peak_rss(&child, Duration::from_secs(2)).await.max(before);
        for (response, _stream) in calls {
            let (code, reason) = grpc_outcome(response).await;
            assert_eq!(code, Code::DeadlineExceeded);
            assert_eq!(reason, "REQUEST_BODY_TIMEOUT");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = child.rss_kib();
        assert_memory_returned("50 partial gRPC messages of 1 MiB", before, during, after);
        for group in &written {
            assert_eq!(&get(&app, &group.id).await, group);
        }
        // The refusals were logged and counted as the caller saw them.
        child
            .wait_for_log(CONNECTIONS * STREAMS, |event| {
                event["message"] == "request refused before the call"
                    && event["code"] == "DEADLINE_EXCEEDED"
            })
            .await;
        let metrics = reqwest::get(format!("http://{}/metrics", child.http_addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let counted = format!(
            "groupd_requests_total{{transport=\"grpc\",method=\"CreateGroup\",code=\"DEADLINE_EXCEEDED\"}} {}",
            CONNECTIONS * STREAMS
        );
        assert!(
            metrics.contains(&counted),
            "{counted} missing from {metrics}"
        );
    }

    pub async fn the_inflight_budget_refuses_beyond_it_and_small_calls_get_through(app: TestApp) {
        // A budget of 8 MiB: large bodies may hold 7 MiB of it. Each hostile
        // stream holds 900 KiB of a 1 MiB message.
        const HELD: usize = 900 * 1024;
        let child = Child::serve(
            app.database_url(),
            &[
                "--max-inflight-bytes",
                &(8 * MIB).to_string(),
                "--max-message-bytes",
                &(4 * MIB).to_string(),
                "--body-read-timeout",
                "60s",
            ],
            ChildLog::Keep,
        )
        .await;
        let mut connection = h2_connect(&child.grpc_addr, None).await;
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..12 {
            let (response, stream) = partial_call(&mut connection, "CreateGroup", MIB, HELD).await;
            held.push((response, stream));
        }
        // The streams the budget could not take are answered at once; the
        // others stay open, their messages unfinished.
        let mut open = Vec::new();
        for (mut response, stream) in held {
            match tokio::time::timeout(Duration::from_secs(2), &mut response).await {
                Ok(answered) => {
                    let (code, reason) = outcome_of(answered).await;
                    assert_eq!(
                        (code, reason.as_str()),
                        (Code::ResourceExhausted, "SERVER_BUSY")
                    );
                    refused += 1;
                }
                Err(_) => open.push((response, stream)),
            }
        }
        assert!(
            (4..=7).contains(&open.len()),
            "{} streams of 900 KiB held in an 8 MiB budget",
            open.len()
        );
        assert_eq!(open.len() + refused, 12);

        // Large bodies over HTTP are refused before they are read: 503.
        let reply = reqwest::Client::new()
            .post(format!("http://{}/v1/groups", child.http_addr))
            .header("content-type", "application/json")
            .body(vec![b' '; MIB])
            .send()
            .await
            .expect("an answer");
        assert_eq!(reply.status(), 503);
        assert_eq!(
            reply.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let body: serde_json::Value = reply.json().await.expect("a JSON error");
        assert_eq!(body["code"], Code::ResourceExhausted as i32);
        assert_eq!(body["details"][0]["reason"], "SERVER_BUSY", "{body}");

        // Small calls still get through, over both ports.
        let mut client = child.client().await;
        let mut written = Vec::new();
        for n in 0..5 {
            written.push(create_through(&mut client, &format!("small-{n}")).await);
        }
        let reply = reqwest::Client::new()
            .post(format!("http://{}/v1/groups", child.http_addr))
            .json(&serde_json::json!({"name": "small-http"}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(reply.status(), 200);

        // Once the hostile streams are gone, a large request fits again.
        drop(open);
        drop(connection);
        let large = pb::Group {
            name: "large".to_owned(),
            description: "d".repeat(1000),
            members: (0..9000)
                .map(|n| pb::Member {
                    id: format!("user-{n:08}-{}", "p".repeat(80)),
                })
                .collect(),
            ..Default::default()
        };
        assert!(prost::Message::encoded_len(&large) > 800 * 1024);
        let created = tokio::time::timeout(HANG_BOUND, async {
            loop {
                match client
                    .create_group(pb::CreateGroupRequest {
                        group: Some(large.clone()),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(created) => break created.into_inner(),
                    // The server may not yet have seen the streams reset.
                    Err(status) if status.code() == Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(status) => panic!("the large CreateGroup failed: {status:?}"),
                }
            }
        })
        .await
        .expect("the large CreateGroup got through once the budget was free");
        assert_eq!(created.members.len(), 9000);
        for group in &written {
            assert_eq!(&get(&app, &group.id).await, group);
        }
    }

    pub async fn replies_a_client_does_not_read_are_cut_at_the_calls_deadline(app: TestApp) {
        // A group whose FULL view is about 0.9 MiB, read by 30 calls over a
        // connection whose flow-control window is 0: the server can send
        // none of their replies.
        const CALLS: usize = 30;
        let large = pb::Group {
            name: "large".to_owned(),
            members: (0..9_000)
                .map(|n| pb::Member {
                    id: format!("user-{n:08}-{}", "p".repeat(80)),
                })
                .collect(),
            ..Default::default()
        };
        let group = create(&app, large).await;
        let child = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
        let full = pb::GetGroupRequest {
            id: group.id.clone(),
            view: pb::GroupView::Full as i32,
        };

        // First the same reads by a client that reads: what serving them
        // costs the process (database caches, the allocator's high-water
        // mark) is the baseline the unread replies are measured against.
        let client = child.client().await;
        let mut reads = Vec::new();
        for _ in 0..CALLS {
            let mut client = client.clone();
            let request = full.clone();
            reads.push(tokio::spawn(async move {
                client
                    .get_group(request)
                    .await
                    .expect("a well-behaved GetGroup")
                    .into_inner()
                    .members
                    .len()
            }));
        }
        for read in reads {
            assert_eq!(read.await.expect("the reader ran"), 9_000);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let warm = child.rss_kib();

        let mut connection = h2_connect(&child.grpc_addr, Some(0)).await;
        let request = prost::Message::encode_to_vec(&full);
        let mut unread = Vec::new();
        for _ in 0..CALLS {
            let mut ready = connection.clone().ready().await.expect("takes streams");
            let (response, mut stream) = ready
                .send_request(grpc_request("GetGroup", Some("5S")), false)
                .expect("a stream");
            let mut message = frame_header(request.len()).to_vec();
            message.extend_from_slice(&request);
            stream
                .send_data(message.into(), true)
                .expect("the request sent");
            connection = ready;
            unread.push((response, stream));
        }
        // The replies are held, and counted in the in-flight bytes...
        let held = wait_for_inflight(&child, |bytes| bytes >= 8 * MIB as u64).await;
        // ...until each is cut at its deadline, logged once each, and its
        // bytes released. On a loaded machine a call may not even finish
        // before its deadline: it is then answered DEADLINE_EXCEEDED, and
        // has no reply to cut.
        const CUT: &str = "reply cut: the client did not take it before the call's deadline";
        let ended = child
            .wait_for_log(CALLS, |event| {
                event["message"] == CUT
                    || (event["message"] == "call finished" && event["code"] == "DEADLINE_EXCEEDED")
            })
            .await;
        let cut = ended.iter().filter(|event| event["message"] == CUT).count();
        assert!(cut >= CALLS / 2, "only {cut} of {CALLS} replies were cut");
        wait_for_inflight(&child, |bytes| bytes == 0).await;

        // Meanwhile, and after, a client that reads is served the group.
        let mut client = child.client().await;
        let read = client
            .get_group(full.clone())
            .await
            .expect("a well-behaved GetGroup")
            .into_inner();
        assert_eq!(read.members.len(), 9_000);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = child.rss_kib();
        eprintln!(
            "30 unread replies of 0.9 MiB ({cut} cut): {held} bytes held; RSS after the same reads by a \
             reading client {warm} KiB, 10 s after the cut {after} KiB"
        );
        // The gauge returning to 0 above is the exact check that the replies
        // were released; RSS, which the allocator and the other tests on
        // this machine move by several MiB, is held to a bound against gross
        // leaks only: within twice what the same reads cost a reading client.
        assert!(
            after <= 2 * warm,
            "unread replies still pinned memory: {warm} KiB before, {after} KiB after"
        );
        drop(unread);
    }

    /// Waits until the child's `groupd_inflight_bytes` satisfies `wanted`,
    /// and returns it.
    async fn wait_for_inflight(child: &Child, wanted: impl Fn(u64) -> bool) -> u64 {
        let url = format!("http://{}/metrics", child.http_addr);
        tokio::time::timeout(HANG_BOUND, async {
            loop {
                let text = reqwest::get(&url)
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("metrics text");
                let bytes = text
                    .lines()
                    .find_map(|line| line.strip_prefix("groupd_inflight_bytes "))
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .expect("groupd_inflight_bytes in the metrics");
                if wanted(bytes) {
                    return bytes;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the in-flight bytes reached the expected value in time")
    }
}
