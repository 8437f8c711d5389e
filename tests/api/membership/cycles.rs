//! Cycles closed by concurrent writers: two updates racing to close a ring
//! of `member_of` edges never both succeed, through one server or two
//! replicas on one database; edges that close no cycle all succeed.

use std::{collections::BTreeSet, sync::Arc};

use groupd::pb;
use tokio::sync::Barrier;
use tonic::{Code, Status};

use super::{Client, check, group, through};
use crate::helpers::*;

both_backends!(
    two_updates_racing_to_close_a_two_group_cycle_never_both_succeed,
    two_updates_racing_to_close_a_two_group_cycle_through_two_replicas_never_both_succeed,
    two_updates_racing_to_close_a_three_group_cycle_never_both_succeed,
    two_updates_racing_to_close_a_three_group_cycle_through_two_replicas_never_both_succeed,
    concurrent_member_of_changes_that_close_no_cycle_all_succeed,
);

/// How many fresh rings each race scenario tries.
const ROUNDS: usize = 10;

async fn two_updates_racing_to_close_a_two_group_cycle_never_both_succeed(app: TestApp) {
    race_to_close_cycles(&app, &[app.client()], 2).await;
}

async fn two_updates_racing_to_close_a_two_group_cycle_through_two_replicas_never_both_succeed(
    app: TestApp,
) {
    let replica = app.spawn_replica().await;
    race_to_close_cycles(&app, &[app.client(), replica.client], 2).await;
}

async fn two_updates_racing_to_close_a_three_group_cycle_never_both_succeed(app: TestApp) {
    race_to_close_cycles(&app, &[app.client()], 3).await;
}

async fn two_updates_racing_to_close_a_three_group_cycle_through_two_replicas_never_both_succeed(
    app: TestApp,
) {
    let replica = app.spawn_replica().await;
    race_to_close_cycles(&app, &[app.client(), replica.client], 3).await;
}

/// Adds every `(child, parent)` edge at once: one task per edge, spread
/// over `clients` (shifted by `round`), all released by one barrier.
async fn link_all(
    clients: &[Client],
    round: usize,
    edges: &[(String, String)],
) -> Vec<Result<pb::Group, Status>> {
    let barrier = Arc::new(Barrier::new(edges.len()));
    let tasks: Vec<_> = edges
        .iter()
        .enumerate()
        .map(|(i, (child, parent))| {
            let client = clients[(i + round) % clients.len()].clone();
            let (child, parent) = (child.clone(), parent.clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                link(client, child, parent).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Sets `member_of` of group `id` to `[parent]` through `client`.
async fn link(mut client: Client, id: String, parent: String) -> Result<pb::Group, Status> {
    client
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                member_of: refs(&[&parent]),
                ..patch(&id)
            }),
            update_mask: Some(mask(&["member_of"])),
            allow_missing: false,
            validate_only: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// ROUNDS times, on a fresh ring of `size` groups r0..r{size-1} where
/// r0 → r1 → … → r{size-2} already hold, two tasks (spread over `clients`)
/// at once add the two edges that would close the ring: r{size-2} → r{size-1}
/// and r{size-1} → r0. (For size 2: r0 → r1 and r1 → r0.) Exactly one may
/// succeed; the other is FAILED_PRECONDITION/MEMBER_OF_CYCLE, or ABORTED on
/// a serialization conflict. Whatever happened, no cycle is stored.
async fn race_to_close_cycles(app: &TestApp, clients: &[Client], size: usize) {
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let ring: Vec<String> = (0..size).map(|i| format!("ring{round}-{i}")).collect();
        for (i, id) in ring.iter().enumerate().rev() {
            // Every edge but the two raced ones exists beforehand (parents
            // are created first).
            let parents: Vec<&str> = if i + 2 < size {
                vec![ring[i + 1].as_str()]
            } else {
                Vec::new()
            };
            group(app, id, &parents, &[]).await;
        }
        let edges = [
            (ring[size - 2].clone(), ring[size - 1].clone()),
            (ring[size - 1].clone(), ring[0].clone()),
        ];
        let results = link_all(clients, round, &edges).await;

        let winners = results.iter().filter(|result| result.is_ok()).count();
        // The loser is told about the cycle, not about a deadlock: the
        // hierarchy lock is taken before the group's row lock.
        for status in results.iter().filter_map(|result| result.as_ref().err()) {
            assert_error(status, Code::FailedPrecondition, "MEMBER_OF_CYCLE");
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one of the two updates closing the cycle must succeed: {results:?}"
        );

        // The stored graph has no cycle: only the acknowledged edge is there.
        let mut stored = Vec::new();
        for (child, parent) in &edges {
            let child = get(app, child).await;
            stored.push(child.member_of.iter().any(|r| &r.group_id == parent));
        }
        let acknowledged: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(
            stored, acknowledged,
            "round {round}: the stored edges differ from the acknowledged writes {results:?}"
        );
        outcomes.push(
            results
                .iter()
                .map(|result| match result {
                    Ok(_) => "OK".to_owned(),
                    Err(status) => format!("{:?}", status.code()),
                })
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    let kinds: BTreeSet<&String> = outcomes.iter().collect();
    eprintln!("cycle race outcomes (ring of {size}): {kinds:?}");
}

/// Concurrent `member_of` changes that together close no cycle (a chain
/// growing at both ends, siblings joining one parent) all take effect,
/// spread over two replicas.
async fn concurrent_member_of_changes_that_close_no_cycle_all_succeed(app: TestApp) {
    let replica = app.spawn_replica().await;
    let clients = [app.client(), replica.client];
    for round in 0..ROUNDS {
        let id = |name: &str| format!("r{round}-{name}");
        for name in ["top", "a", "b", "c", "s1", "s2"] {
            group(&app, &id(name), &[], &[]).await;
        }
        // a → b, b → c and c → top at once: a chain, no cycle; and s1, s2
        // both joining top.
        let edges = [
            (id("a"), id("b")),
            (id("b"), id("c")),
            (id("c"), id("top")),
            (id("s1"), id("top")),
            (id("s2"), id("top")),
        ];
        let results = link_all(&clients, round, &edges).await;
        for (result, (child, parent)) in results.into_iter().zip(&edges) {
            if let Err(status) = result {
                panic!("round {round}: {child} → {parent} failed: {status:?}");
            }
        }
        add(&app, &id("a"), &["alice"], &[]).await;
        assert_eq!(
            check(&app, &id("top"), "alice").await,
            through(&[&id("a"), &id("b"), &id("c"), &id("top")])
        );
    }
}
