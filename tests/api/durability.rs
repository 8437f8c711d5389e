//! Acknowledged writes survive a crash: the real `groupd` binary
//! is started as a child process on the test's database, written to, killed
//! with SIGKILL (no shutdown, no flush), and started again.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    acknowledged_writes_survive_a_kill_9_of_the_server,
    the_server_keeps_serving_when_its_log_reader_goes_away,
    a_log_reader_that_stops_reading_blocks_no_call_and_drops_lines_counted,
);

async fn acknowledged_writes_survive_a_kill_9_of_the_server(app: TestApp) {
    let mut first = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
    let mut client = first.client().await;
    let created = client
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "durable".to_owned(),
                members: members(&["alice", "bob"]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("CreateGroup acknowledged")
        .into_inner();
    let updated = client
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "written just before the crash".to_owned(),
                ..patch(&created.id)
            }),
            update_mask: Some(mask(&["description"])),
            ..Default::default()
        })
        .await
        .expect("UpdateGroup acknowledged")
        .into_inner();

    // SIGKILL: no graceful shutdown, no pool close, no checkpoint.
    first.process.kill().await.expect("SIGKILL delivered");

    let second = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
    let mut client = second.client().await;
    let recovered = client
        .get_group(pb::GetGroupRequest {
            id: created.id.clone(),
            view: pb::GroupView::Full as i32,
        })
        .await
        .expect("the group is still there")
        .into_inner();
    assert_eq!(recovered, updated, "every acknowledged write survived");
    assert_eq!(ids(&recovered.members), ["alice", "bob"]);
    assert_eq!(changes(&app, &created.id).await.len(), 2);
}

async fn the_server_keeps_serving_when_its_log_reader_goes_away(app: TestApp) {
    let mut child = Child::serve(app.database_url(), &[], ChildLog::Close).await;
    let mut client = child.client().await;
    // Every call logs a line into the closed pipe.
    for name in ["first", "second", "third"] {
        let created = client
            .create_group(pb::CreateGroupRequest {
                group: Some(named(name)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("CreateGroup {name} failed: {status:?}"))
            .into_inner();
        assert_eq!(created.name, name);
    }
    assert!(
        child.process.try_wait().expect("process status").is_none(),
        "groupd is still running"
    );
}

/// Calls sent to a server whose log nobody reads: each logs a line, and
/// more lines than the pipe's buffer and the server's queue of lines
/// together hold.
const CALLS_PAST_A_STALLED_LOG: usize = 6_000;

async fn a_log_reader_that_stops_reading_blocks_no_call_and_drops_lines_counted(app: TestApp) {
    let mut child = Child::serve(app.database_url(), &[], ChildLog::Stall).await;
    let client = child.client().await;
    let missing = pb::GetGroupRequest {
        id: "no-such-group".to_owned(),
        view: pb::GroupView::Basic as i32,
    };
    // Sixteen callers at a time, each call answered NOT_FOUND and logged.
    let callers = (0..16).map(|caller| {
        let mut client = client.clone();
        let missing = missing.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            for _ in (caller..CALLS_PAST_A_STALLED_LOG).step_by(16) {
                let status = client
                    .get_group(missing.clone())
                    .await
                    .expect_err("the group does not exist");
                assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
                answered += 1;
            }
            answered
        })
    });
    let answered = tokio::time::timeout(CHILD_BOUND, futures_util::future::join_all(callers))
        .await
        .expect("every call was answered although nobody reads the log")
        .into_iter()
        .map(|answered| answered.expect("caller task"))
        .sum::<usize>();
    assert_eq!(answered, CALLS_PAST_A_STALLED_LOG);

    let http_addr = child.http_addr.parse().expect("the child's HTTP address");
    let page = metrics_page_at(&app.http, http_addr).await;
    let dropped =
        sample(&page, "groupd_log_lines_dropped_total").expect("the dropped-lines counter");
    assert!(
        dropped >= 1.0,
        "lines past the queue were dropped and counted: {dropped}"
    );
    assert!(
        dropped < CALLS_PAST_A_STALLED_LOG as f64,
        "lines before the pipe and the queue filled were written: {dropped}"
    );
    assert!(
        child.process.try_wait().expect("process status").is_none(),
        "groupd is still running"
    );
}
