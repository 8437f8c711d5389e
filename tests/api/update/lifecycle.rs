//! Deleted groups, concurrency and history (rules 13 to 15): a deleted
//! group cannot be updated until it is undeleted, concurrent updates with
//! disjoint masks both take effect, and every update appends one history
//! entry with its effective mask. Every write is a new version: a new etag
//! and a later update_time, even when the stored update_time is ahead of
//! the server's clock.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    rule_13_updating_a_deleted_group_is_not_found_until_it_is_undeleted,
    rule_14_two_concurrent_updates_with_disjoint_masks_both_take_effect,
    rule_15_every_update_appends_one_history_entry_with_its_effective_mask,
    update_is_a_write_new_etag_later_update_time_same_create_time,
    every_write_moves_update_time_forward_even_when_the_clock_is_behind_it,
);

async fn rule_13_updating_a_deleted_group_is_not_found_until_it_is_undeleted(app: TestApp) {
    let group = rich_group(&app).await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    for paths in [Some(&["description"][..]), None] {
        let status = try_update(
            &app,
            pb::Group {
                description: "while deleted".to_owned(),
                ..patch(&group.id)
            },
            paths,
        )
        .await
        .unwrap_err();
        assert_not_found(&status, &group.id);
    }
    assert_unchanged(&app, &before).await;

    try_undelete(&app, &group.id, "").await.unwrap();
    let updated = set_description(&app, &group.id, "after undelete").await;
    assert_eq!(updated.description, "after undelete");
    assert_eq!(updated.state(), pb::State::Active);
}

async fn rule_14_two_concurrent_updates_with_disjoint_masks_both_take_effect(app: TestApp) {
    let group = rich_group(&app).await;

    for round in 0..10 {
        let description = update(
            &app,
            pb::Group {
                description: format!("description {round}"),
                ..patch(&group.id)
            },
            Some(&["description"]),
        );
        let email = update(
            &app,
            pb::Group {
                email: format!("round{round}@example.com"),
                ..patch(&group.id)
            },
            Some(&["email"]),
        );
        // Both requests are in flight at once on the shared connection.
        let (first, second) = tokio::join!(description, email);
        assert_ne!(first.etag, second.etag);

        let stored = get(&app, &group.id).await;
        assert_eq!(stored.description, format!("description {round}"));
        assert_eq!(stored.email, format!("round{round}@example.com"));
    }
    assert_eq!(changes(&app, &group.id).await.len(), 21);
}

async fn rule_15_every_update_appends_one_history_entry_with_its_effective_mask(app: TestApp) {
    let group = rich_group(&app).await;

    let masked = update(
        &app,
        with_labels(
            pb::Group {
                description: "masked".to_owned(),
                ..patch(&group.id)
            },
            &[("team", "core")],
        ),
        Some(&["description", "labels.team"]),
    )
    .await;
    let implied = update(
        &app,
        pb::Group {
            description: "implied".to_owned(),
            email: "implied@example.com".to_owned(),
            ..patch(&group.id)
        },
        None,
    )
    .await;

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [
            pb::ChangeKind::Create,
            pb::ChangeKind::Update,
            pb::ChangeKind::Update
        ]
    );
    let versions: Vec<i64> = history.iter().map(|change| change.version).collect();
    assert_eq!(versions, [1, 2, 3]);

    assert_eq!(
        mask_paths(&history[1]),
        path_set(&["description", "labels.team"])
    );
    let recorded = history[1].group.as_ref().expect("the entry has the group");
    assert_eq!(recorded.description, "masked");
    assert_eq!(recorded.etag, masked.etag);

    assert_eq!(
        mask_paths(&history[2]),
        path_set(&["description", "email"]),
        "the implied mask is recorded as the populated fields"
    );
    let recorded = history[2].group.as_ref().expect("the entry has the group");
    assert_eq!(recorded.email, "implied@example.com");
    assert_eq!(recorded.etag, implied.etag);
}

async fn update_is_a_write_new_etag_later_update_time_same_create_time(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = set_description(&app, &group.id, "write").await;

    assert_ne!(updated.etag, group.etag);
    assert_quoted_etag(&updated.etag);
    assert!(instant(updated.update_time.as_ref()) > instant(group.update_time.as_ref()));
    assert_eq!(updated.create_time, group.create_time);
    assert_eq!(updated.updated_by, ANONYMOUS);
    assert_eq!(get(&app, &group.id).await, updated);
}

/// A timestamp in microseconds since the Unix epoch.
fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    let (seconds, nanos) = instant(timestamp);
    seconds * 1_000_000 + i64::from(nanos) / 1000
}

async fn every_write_moves_update_time_forward_even_when_the_clock_is_behind_it(app: TestApp) {
    use sea_orm::ConnectionTrait as _;

    let group = create_named(&app, "ahead").await;
    // The group was last written, as far as the database says, a day from
    // now (by a replica whose clock is ahead, say). This server's clock is
    // behind that, and every write must still move update_time forward.
    let ahead = micros(group.update_time.as_ref()) + 86_400_000_000;
    let db = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    let moved = db
        .execute_unprepared(&format!(
            "UPDATE groups SET update_time = {ahead} WHERE id = '{}'",
            group.id
        ))
        .await
        .expect("UPDATE");
    assert_eq!(moved.rows_affected(), 1);
    db.close().await.expect("the test's connection closes");
    assert_eq!(
        micros(get(&app, &group.id).await.update_time.as_ref()),
        ahead
    );

    let mut last = ahead;
    let mut step = |name: &str, written: &pb::Group| {
        let time = micros(written.update_time.as_ref());
        assert!(
            time > last,
            "{name}: update_time {time} is not after the previous {last}"
        );
        last = time;
    };
    let updated = set_description(&app, &group.id, "first").await;
    step("UpdateGroup", &updated);
    let updated = set_description(&app, &group.id, "second").await;
    step("a second UpdateGroup", &updated);
    step(
        "AddGroupMembers",
        &add(&app, &group.id, &["alice"], &[]).await,
    );
    step(
        "RemoveGroupMembers",
        &remove(&app, &group.id, &["alice"], &[]).await,
    );
    let deleted = delete(&app, &group.id).await;
    step("DeleteGroup", &deleted);
    assert_eq!(deleted.delete_time, deleted.update_time);
    let undeleted = try_undelete(&app, &group.id, "")
        .await
        .unwrap_or_else(|status| panic!("UndeleteGroup failed: {status:?}"));
    step("UndeleteGroup", &undeleted);
    assert_eq!(get(&app, &group.id).await, undeleted);

    // The history's change times are the writes' update times, so they
    // strictly increase too.
    let history = changes(&app, &group.id).await;
    let times: Vec<i64> = history
        .iter()
        .skip(1)
        .map(|change| micros(change.change_time.as_ref()))
        .collect();
    assert_eq!(times.len(), 6, "{history:?}");
    assert!(times[0] > ahead, "{times:?}");
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
}
