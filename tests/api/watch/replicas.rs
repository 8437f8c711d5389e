//! Two servers on one PostgreSQL database, as two Kubernetes replicas: a
//! change committed through one reaches watchers of the other, in the
//! same order everywhere.

use std::time::Duration;

use super::*;

// The poll is an hour, so only the notification between replicas can
// carry the changes.
postgres_only!(
    args ["--change-poll-interval", "60m"];
    changes_through_either_replica_reach_watchers_of_both_in_one_order,
);

async fn changes_through_either_replica_reach_watchers_of_both_in_one_order(app: TestApp) {
    let replica = app.spawn_replica().await;
    let mut other = replica.client.clone();
    let start = listing_cursor(&app).await;
    let mut here = open(&app, after(&start)).await;
    let mut there = open_with(&mut other, after(&start)).await;

    // A change through this server reaches the other's watcher.
    let a = create_named(&app, "through-a").await;
    assert_eq!(
        plain(&changes_of(&mut there, 1).await),
        [change(&a.id, 1, pb::ChangeKind::Create)]
    );
    // And one through the other reaches this server's watcher.
    let b = other
        .create_group(pb::CreateGroupRequest {
            group: Some(named("through-b")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        plain(&changes_of(&mut here, 2).await),
        [
            change(&a.id, 1, pb::ChangeKind::Create),
            change(&b.id, 1, pb::ChangeKind::Create)
        ]
    );
    assert_eq!(
        plain(&changes_of(&mut there, 1).await),
        [change(&b.id, 1, pb::ChangeKind::Create)]
    );

    // Writers on both at once: both watchers see the same order.
    let writes = |mut client: pb::group_service_client::GroupServiceClient<_>, id: String| {
        tokio::spawn(async move {
            for n in 0..15 {
                describe_with(&mut client, &id, format!("write {n}")).await;
            }
        })
    };
    let on_a = writes(app.client(), a.id.clone());
    let on_b = writes(other.clone(), b.id.clone());
    on_a.await.unwrap();
    on_b.await.unwrap();
    let seen_here = plain(&changes_of(&mut here, 30).await);
    let seen_there = plain(&changes_of(&mut there, 30).await);
    assert_eq!(seen_here, seen_there);
    for id in [&a.id, &b.id] {
        let versions: Vec<i64> = seen_here
            .iter()
            .filter(|change| &change.group_id == id)
            .map(|change| change.version)
            .collect();
        assert_eq!(versions, (2..=16).collect::<Vec<_>>());
    }
    assert!(
        drain_for(&mut here, Duration::from_millis(300))
            .await
            .is_empty()
    );
}
