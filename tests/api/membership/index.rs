//! The membership index: CheckMembership and ListMemberGroups answered
//! from memory, with this server's writes seen by the next call, a replica
//! building its index from what the database already holds, and writes
//! through another replica reaching the index through the change feed.
//! (Every other membership scenario compares the index's answers with the
//! database's on each call.)

use std::time::{Duration, Instant};

use groupd::pb;

use super::{check, group, outsider, set_parents, through};
use crate::helpers::*;

both_backends!(
    each_check_after_a_write_of_this_server_sees_it_and_the_index_holds_exactly_the_memberships,
    a_replica_started_on_existing_groups_builds_its_index_from_them,
    a_write_through_another_replica_reaches_this_ones_index_without_any_write_here,
);

/// How long a scenario waits for what it expects: a bound against hangs,
/// not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(15);

/// A sample of the `/metrics` page at `http_addr`, 0 when absent.
async fn metric(app: &TestApp, http_addr: std::net::SocketAddr, series: &str) -> f64 {
    sample(&metrics_page_at(&app.http, http_addr).await, series).unwrap_or(0.0)
}

const FROM_INDEX: &str = "groupd_membership_answers_total{source=\"index\"}";

/// Waits until the server at `http_addr` reports an index holding
/// `groups` groups and `memberships` memberships, and panics after
/// [`PATIENCE`] with what it reported.
async fn await_index(
    app: &TestApp,
    http_addr: std::net::SocketAddr,
    groups: f64,
    memberships: f64,
) {
    let started = Instant::now();
    loop {
        let seen = (
            metric(app, http_addr, "groupd_membership_index_ready").await,
            metric(app, http_addr, "groupd_membership_index_groups").await,
            metric(app, http_addr, "groupd_membership_index_memberships").await,
        );
        if seen == (1.0, groups, memberships) {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the index reports (ready, groups, memberships) = {seen:?}, \
             expected (1, {groups}, {memberships})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CheckMembership from the index only (no comparison with the database).
async fn indexed_check(
    client: &mut pb::group_service_client::GroupServiceClient<tonic::transport::Channel>,
    id: &str,
    member_id: &str,
) -> pb::CheckMembershipResponse {
    client
        .check_membership(pb::CheckMembershipRequest {
            id: id.to_owned(),
            member_id: member_id.to_owned(),
            fully_consistent: false,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn each_check_after_a_write_of_this_server_sees_it_and_the_index_holds_exactly_the_memberships(
    app: TestApp,
) {
    group(&app, "top", &[], &[]).await;
    group(&app, "mid", &["top"], &[]).await;
    group(&app, "low", &["mid"], &["alice", "bob"]).await;
    group(&app, "other", &[], &["carol"]).await;
    // Each check follows a write with no pause: the index must hold it.
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["low", "mid", "top"])
    );
    try_remove(&app, "low", &["bob"], &[]).await.unwrap();
    assert_eq!(check(&app, "top", "bob").await, outsider());
    set_parents(&app, "mid", &[]).await;
    assert_eq!(check(&app, "top", "alice").await, outsider());
    set_parents(&app, "mid", &["top"]).await;
    delete(&app, "mid").await;
    assert_eq!(check(&app, "top", "alice").await, outsider());
    assert_eq!(check(&app, "mid", "alice").await, outsider());
    try_undelete(&app, "mid", "").await.unwrap();
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["low", "mid", "top"])
    );

    // Four groups; alice in low and carol in other.
    await_index(&app, app.http_addr, 4.0, 2.0).await;
    // Quiet now, so this call is answered from the index.
    let before = metric(&app, app.http_addr, FROM_INDEX).await;
    assert_eq!(
        indexed_check(&mut app.client(), "top", "alice").await,
        through(&["low", "mid", "top"])
    );
    assert_eq!(metric(&app, app.http_addr, FROM_INDEX).await, before + 1.0);
}

async fn a_replica_started_on_existing_groups_builds_its_index_from_them(app: TestApp) {
    group(&app, "top", &[], &[]).await;
    group(&app, "mid", &["top"], &["dave"]).await;
    group(&app, "low", &["mid"], &["alice", "bob"]).await;
    group(&app, "gone", &["top"], &["erin"]).await;
    delete(&app, "gone").await;

    let replica = app.spawn_replica().await;
    // A deleted group's members stay in the index (an undelete brings
    // them back), and it carries no membership.
    await_index(&app, replica.http_addr, 4.0, 4.0).await;
    let mut client = replica.client.clone();
    let before = metric(&app, replica.http_addr, FROM_INDEX).await;
    assert_eq!(
        indexed_check(&mut client, "top", "alice").await,
        through(&["low", "mid", "top"])
    );
    assert_eq!(
        indexed_check(&mut client, "top", "dave").await,
        through(&["mid", "top"])
    );
    assert_eq!(indexed_check(&mut client, "gone", "erin").await, outsider());
    assert_eq!(indexed_check(&mut client, "top", "erin").await, outsider());
    assert_eq!(
        metric(&app, replica.http_addr, FROM_INDEX).await,
        before + 4.0,
        "every check was answered from the replica's index"
    );
}

async fn a_write_through_another_replica_reaches_this_ones_index_without_any_write_here(
    app: TestApp,
) {
    group(&app, "top", &[], &[]).await;
    group(&app, "low", &["top"], &[]).await;
    let replica = app.spawn_replica().await;
    await_index(&app, replica.http_addr, 2.0, 0.0).await;

    // Written through the first server; read through the replica, which
    // writes nothing, so only the change feed can tell its index.
    add(&app, "low", &["alice"], &[]).await;
    let mut client = replica.client.clone();
    let consistent = client
        .check_membership(pb::CheckMembershipRequest {
            id: "top".to_owned(),
            member_id: "alice".to_owned(),
            fully_consistent: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consistent, through(&["low", "top"]));
    let started = Instant::now();
    loop {
        let answer = indexed_check(&mut client, "top", "alice").await;
        if answer == through(&["low", "top"]) {
            break;
        }
        assert_eq!(
            answer,
            outsider(),
            "the index answers only states that were"
        );
        assert!(
            started.elapsed() < PATIENCE,
            "the replica's index never saw the write"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    await_index(&app, replica.http_addr, 2.0, 1.0).await;
}
