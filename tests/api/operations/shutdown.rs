//! Shutdown and slow clients: on SIGTERM groupd stops accepting
//! connections, lets the calls in flight finish and exits 0; a call still
//! running when the drain timeout ends is cut and writes nothing; and an
//! HTTP client that never finishes its headers is disconnected while
//! others are served.

use std::collections::BTreeMap;

use tokio::net::TcpStream;

use super::{HANG_GUARD, assert_nothing_written, hold_write_lock, set_label};
use crate::helpers::*;

both_backends!(
    args ["--http-header-timeout", "300ms"];
    an_http_client_that_never_finishes_its_headers_is_disconnected,
);

both_backends!(
    a_call_still_running_at_the_end_of_the_drain_is_cut_and_writes_nothing,
    sigterm_during_a_burst_of_slow_calls_lets_them_finish_and_exits_0,
);

async fn sigterm_during_a_burst_of_slow_calls_lets_them_finish_and_exits_0(app: TestApp) {
    const CALLS: usize = 8;
    let group = create_named(&app, "busy").await;
    let mut child = Child::serve(
        app.database_url(),
        &[
            "--log-filter",
            "info,groupd::grpc=debug",
            "--drain-timeout",
            "60s",
        ],
        ChildLog::Keep,
    )
    .await;
    let client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;

    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut client = client.clone();
            let request = set_label(&group.id, &format!("k{i}"), &format!("v{i}"));
            tokio::spawn(async move { client.update_group(request).await })
        })
        .collect();
    // Every call has reached groupd and waits for the lock.
    child
        .wait_for_log(CALLS, |event| {
            event["message"] == "call started" && event["span"]["method"] == "UpdateGroup"
        })
        .await;

    child.terminate().await;
    // Both ports stop accepting once draining starts (no shutdown delay)...
    child
        .wait_for_log(2, |event| event["message"] == "draining")
        .await;
    for addr in [&child.grpc_addr, &child.http_addr] {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts connections while draining"
        );
    }
    // ...but the calls in flight are not cut.
    assert!(
        child.process.try_wait().unwrap().is_none(),
        "groupd exited with calls in flight"
    );

    lock.release().await;
    for call in calls {
        let answer = tokio::time::timeout(HANG_GUARD, call)
            .await
            .expect("the call finished")
            .unwrap();
        answer.unwrap_or_else(|status| panic!("an in-flight call failed: {status:?}"));
    }
    let status = child.wait().await;
    assert_eq!(status.code(), Some(0), "groupd exited with {status:?}");

    let labels = get(&app, &group.id).await.labels;
    let expected: BTreeMap<String, String> = (0..CALLS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    assert_eq!(labels.into_iter().collect::<BTreeMap<_, _>>(), expected);
    let log = child.log();
    assert!(
        log.iter().any(|event| event["message"] == "stopped"),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|event| event["message"].as_str().is_some_and(|m| m.contains("cut"))),
        "no call was cut: {log:?}"
    );
}

async fn a_call_still_running_at_the_end_of_the_drain_is_cut_and_writes_nothing(app: TestApp) {
    let group = create_named(&app, "stuck").await;
    let mut child = Child::serve(
        app.database_url(),
        &[
            "--log-filter",
            "info,groupd::grpc=debug",
            "--drain-timeout",
            "300ms",
            "--db-statement-timeout",
            "120s",
        ],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;
    let request = set_label(&group.id, "late", "1");
    let call = tokio::spawn(async move { client.update_group(request).await });
    child
        .wait_for_log(1, |event| {
            event["message"] == "call started" && event["span"]["method"] == "UpdateGroup"
        })
        .await;

    child.terminate().await;
    // The lock is still held: the call cannot finish, and the drain timeout
    // ends the wait.
    let status = child.wait().await;
    assert_eq!(status.code(), Some(0), "groupd exited with {status:?}");
    let outcome = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ended")
        .unwrap();
    assert!(outcome.is_err(), "the cut call succeeded: {outcome:?}");
    let log = child.log();
    for message in [
        "calls still running after the drain timeout are cut",
        "call cancelled before it finished",
    ] {
        assert!(
            log.iter().any(|event| event["message"] == message),
            "{message:?} not logged: {log:?}"
        );
    }
    assert_nothing_written(&app, lock, &group).await;
}

async fn an_http_client_that_never_finishes_its_headers_is_disconnected(app: TestApp) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut slow = TcpStream::connect(app.http_addr).await.unwrap();
    slow.write_all(b"GET /v1/groups HTTP/1.1\r\nHost: groupd\r\n")
        .await
        .unwrap();
    // The server gives up on the headers (after --http-header-timeout) and
    // closes the connection: the read ends, at the end of the stream or
    // with a reset, rather than wait for headers that never come. The
    // bound is against a hang only.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, slow.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection was still open after {HANG_GUARD:?}: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
    if let Err(error) = read {
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the connection ended with {error}"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The request never reached a handler: nothing answered 200.
    assert!(!answer.contains(" 200 "), "{answer}");
    // Others are served meanwhile and after.
    let reply = http_get(&app, "/v1/groups").await;
    assert_eq!(reply.status, 200);
}
