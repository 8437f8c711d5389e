//! Acknowledged writes survive a crash: the real `groupd` binary
//! is started as a child process on the test's database, written to, killed
//! with SIGKILL (no shutdown, no flush), and started again.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    acknowledged_writes_survive_a_kill_9_of_the_server,
    the_server_keeps_serving_when_its_log_reader_goes_away,
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
