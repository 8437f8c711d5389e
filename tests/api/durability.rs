//! Acknowledged writes survive a crash (SPEC §4): the real `groupd` binary
//! is started as a child process on the test's database, written to, killed
//! with SIGKILL (no shutdown, no flush), and started again.

use std::{process::Stdio, time::Duration};

use groupd::pb::{self, group_service_client::GroupServiceClient};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::helpers::*;

both_backends!(
    acknowledged_writes_survive_a_kill_9_of_the_server,
    the_server_keeps_serving_when_its_log_reader_goes_away,
);

/// A bound against a binary that never starts, not a timing assertion.
const START_BOUND: Duration = Duration::from_secs(60);

/// Starts `groupd serve` on `database_url` and a free port, and returns the
/// process and the address it reported in its JSON start-up log. With
/// `drain_log`, the rest of the log is read (and dropped) for as long as the
/// process runs; without it, the log pipe is closed once the address is
/// known.
async fn start_binary(database_url: &str, drain_log: bool) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_groupd"))
        .args([
            "serve",
            "--database-url",
            database_url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--skip-migrations",
        ])
        .env_remove("GROUPD_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("groupd starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(START_BOUND, async {
        while let Some(line) = lines.next_line().await.expect("readable log") {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["message"] == "serving gRPC" {
                return event["addr"].as_str().expect("an addr field").to_owned();
            }
        }
        panic!("groupd exited before serving");
    })
    .await
    .expect("groupd reported its address in time");
    if drain_log {
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    (child, addr)
}

async fn connect(addr: &str) -> GroupServiceClient<tonic::transport::Channel> {
    GroupServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects to the child groupd")
}

async fn acknowledged_writes_survive_a_kill_9_of_the_server(app: TestApp) {
    let (mut first, addr) = start_binary(app.database_url(), true).await;
    let mut client = connect(&addr).await;
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
    first.kill().await.expect("SIGKILL delivered");

    let (_second, addr) = start_binary(app.database_url(), true).await;
    let mut client = connect(&addr).await;
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
    let (mut child, addr) = start_binary(app.database_url(), false).await;
    let mut client = connect(&addr).await;
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
        child.try_wait().expect("process status").is_none(),
        "groupd is still running"
    );
}
