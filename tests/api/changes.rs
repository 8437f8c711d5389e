//! ListGroupChanges: one entry per write, in order, with kinds, versions,
//! masks, snapshots and membership deltas; nothing for failed requests.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    a_new_group_has_one_create_entry_at_version_1,
    every_kind_of_write_appends_one_entry_with_the_next_version,
    membership_deltas_list_exactly_the_ids_that_changed_sorted,
    an_update_of_members_records_the_delta_not_a_copy,
    failed_and_no_op_requests_write_no_history_entry,
    changes_page_through_every_entry_exactly_once_oldest_first,
    changes_default_to_50_per_page,
    changes_of_a_missing_group_are_not_found,
    changes_reject_a_negative_page_size_and_a_tampered_token,
);

async fn a_new_group_has_one_create_entry_at_version_1(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "recorded".to_owned(),
            description: "first version".to_owned(),
            members: members(&["bob", "alice"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    let history = changes(&app, &group.id).await;
    assert_eq!(history.len(), 1);
    let entry = &history[0];
    assert_eq!(entry.kind(), pb::ChangeKind::Create);
    assert_eq!(entry.version, 1);
    assert_eq!(entry.actor, ANONYMOUS);
    assert!(entry.change_time.is_some());

    let recorded = entry.group.as_ref().expect("the entry has the group");
    assert_eq!(recorded.id, group.id);
    assert_eq!(recorded.description, "first version");
    assert_eq!(recorded.etag, group.etag);
    assert!(
        recorded.members.is_empty() && recorded.admins.is_empty(),
        "the snapshot is in the BASIC view"
    );
    assert_eq!(recorded.member_count, 2);
    assert_eq!(ids(&entry.members_added), ["alice", "bob"]);
    assert_eq!(ids(&entry.admins_added), ["alice"]);
    assert!(entry.members_removed.is_empty());
    assert!(entry.admins_removed.is_empty());
}

async fn every_kind_of_write_appends_one_entry_with_the_next_version(app: TestApp) {
    let created = create_named(&app, "lifecycle").await;
    let updated = set_description(&app, &created.id, "updated").await;
    let added = add(&app, &created.id, &["alice"], &[]).await;
    let removed = remove(&app, &created.id, &["alice"], &[]).await;
    let deleted = delete(&app, &created.id).await;
    let undeleted = try_undelete(&app, &created.id, "").await.unwrap();

    let history = changes(&app, &created.id).await;
    assert_eq!(
        kinds(&history),
        [
            pb::ChangeKind::Create,
            pb::ChangeKind::Update,
            pb::ChangeKind::AddMembers,
            pb::ChangeKind::RemoveMembers,
            pb::ChangeKind::Delete,
            pb::ChangeKind::Undelete,
        ]
    );
    let versions: Vec<i64> = history.iter().map(|change| change.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);

    let etags: Vec<&str> = history
        .iter()
        .map(|change| {
            change
                .group
                .as_ref()
                .expect("the entry has the group")
                .etag
                .as_str()
        })
        .collect();
    assert_eq!(
        etags,
        [
            &created.etag,
            &updated.etag,
            &added.etag,
            &removed.etag,
            &deleted.etag,
            &undeleted.etag
        ],
        "each entry records the group as the write left it"
    );

    for (change, write) in history
        .iter()
        .zip([&created, &updated, &added, &removed, &deleted, &undeleted])
    {
        assert_eq!(change.actor, ANONYMOUS);
        assert!(change.change_time.is_some());
        if change.kind() == pb::ChangeKind::Update {
            assert_eq!(mask_paths(change), path_set(&["description"]));
        } else {
            assert!(
                mask_paths(change).is_empty(),
                "only updates record a mask, not {:?}",
                change.kind()
            );
        }
        let recorded = change.group.as_ref().unwrap();
        assert_eq!(recorded.state(), write.state());
        assert_eq!(recorded.description, write.description);
    }

    let times: Vec<(i64, i32)> = history
        .iter()
        .map(|change| instant(change.change_time.as_ref()))
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] < pair[1]),
        "change times strictly increase: {times:?}"
    );
}

async fn membership_deltas_list_exactly_the_ids_that_changed_sorted(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "deltas".to_owned(),
            members: members(&["alice", "bob"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    // zoe and carol are new, alice is already there; bob becomes an admin.
    add(
        &app,
        &group.id,
        &["zoe", "alice", "carol"],
        &["bob", "alice"],
    )
    .await;
    // alice leaves (and stops being an admin), bob is demoted, zed was never
    // there.
    remove(&app, &group.id, &["alice", "zed"], &["bob"]).await;

    let history = changes(&app, &group.id).await;
    assert_eq!(history.len(), 3);

    let add_entry = &history[1];
    assert_eq!(add_entry.kind(), pb::ChangeKind::AddMembers);
    assert_eq!(ids(&add_entry.members_added), ["carol", "zoe"]);
    assert_eq!(ids(&add_entry.admins_added), ["bob"]);
    assert!(add_entry.members_removed.is_empty());
    assert!(add_entry.admins_removed.is_empty());
    let recorded = add_entry.group.as_ref().unwrap();
    assert!(
        recorded.members.is_empty(),
        "membership is a delta, not a copy"
    );
    assert_eq!(recorded.member_count, 4);

    let remove_entry = &history[2];
    assert_eq!(remove_entry.kind(), pb::ChangeKind::RemoveMembers);
    assert_eq!(ids(&remove_entry.members_removed), ["alice"]);
    assert_eq!(ids(&remove_entry.admins_removed), ["alice", "bob"]);
    assert!(remove_entry.members_added.is_empty());
    assert!(remove_entry.admins_added.is_empty());
    assert_eq!(remove_entry.group.as_ref().unwrap().member_count, 3);
}

async fn an_update_of_members_records_the_delta_not_a_copy(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "replaced".to_owned(),
            members: members(&["alice", "bob"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    update(
        &app,
        pb::Group {
            members: members(&["bob", "carol"]),
            admins: members(&["carol"]),
            ..patch(&group.id)
        },
        Some(&["members", "admins"]),
    )
    .await;

    let history = changes(&app, &group.id).await;
    let entry = &history[1];
    assert_eq!(entry.kind(), pb::ChangeKind::Update);
    assert_eq!(mask_paths(entry), path_set(&["admins", "members"]));
    assert_eq!(ids(&entry.members_added), ["carol"]);
    assert_eq!(ids(&entry.members_removed), ["alice"]);
    assert_eq!(ids(&entry.admins_added), ["carol"]);
    assert_eq!(ids(&entry.admins_removed), ["alice"]);
    assert!(entry.group.as_ref().unwrap().members.is_empty());
}

async fn failed_and_no_op_requests_write_no_history_entry(app: TestApp) {
    create_named(&app, "taken").await;
    let group = create(
        &app,
        pb::Group {
            name: "quiet".to_owned(),
            members: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;
    assert_eq!(before.history, 1);

    let failures = [
        try_update(
            &app,
            pb::Group {
                email: "bad".to_owned(),
                ..patch(&group.id)
            },
            Some(&["email"]),
        )
        .await,
        try_update(&app, patch(&group.id), Some(&["bogus"])).await,
        try_update(
            &app,
            pb::Group {
                name: "TAKEN".to_owned(),
                ..patch(&group.id)
            },
            Some(&["name"]),
        )
        .await,
        try_update(
            &app,
            pb::Group {
                description: "stale".to_owned(),
                etag: "\"stale\"".to_owned(),
                ..patch(&group.id)
            },
            Some(&["description"]),
        )
        .await,
        try_add(&app, &group.id, &["bad id"], &[]).await,
        try_undelete(&app, &group.id, "").await,
        try_delete(&app, &group.id, "\"stale\"").await,
    ];
    for outcome in failures {
        assert!(outcome.is_err(), "expected a failure, got {outcome:?}");
    }

    // Successful calls that change nothing write nothing either.
    add(&app, &group.id, &["alice"], &[]).await;
    remove(&app, &group.id, &["nobody"], &[]).await;
    update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "dry run".to_owned(),
                ..patch(&group.id)
            }),
            update_mask: Some(mask(&["description"])),
            allow_missing: false,
            validate_only: true,
        },
    )
    .await
    .unwrap();

    assert_unchanged(&app, &before).await;
}

async fn changes_page_through_every_entry_exactly_once_oldest_first(app: TestApp) {
    let group = create_named(&app, "paged").await;
    for i in 0..6 {
        update(
            &app,
            pb::Group {
                description: format!("v{}", i + 2),
                ..patch(&group.id)
            },
            Some(&["description"]),
        )
        .await;
    }

    let mut versions = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = try_changes_page(&app, &group.id, 3, &token).await.unwrap();
        sizes.push(page.changes.len());
        for change in &page.changes {
            versions.push(change.version);
            if change.version > 1 {
                assert_eq!(
                    change.group.as_ref().unwrap().description,
                    format!("v{}", change.version)
                );
            }
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);

    let default_page = try_changes_page(&app, &group.id, 0, "").await.unwrap();
    assert_eq!(default_page.changes.len(), 7);
    assert!(default_page.next_page_token.is_empty());
}

async fn changes_default_to_50_per_page(app: TestApp) {
    let group = create_named(&app, "busy").await;
    for i in 0..50 {
        add(&app, &group.id, &[&format!("m{i:02}")], &[]).await;
    }

    let first = try_changes_page(&app, &group.id, 0, "").await.unwrap();
    let versions: Vec<i64> = first.changes.iter().map(|c| c.version).collect();
    assert_eq!(versions, (1..=50).collect::<Vec<i64>>());
    assert!(!first.next_page_token.is_empty());

    let rest = try_changes_page(&app, &group.id, 0, &first.next_page_token)
        .await
        .unwrap();
    let versions: Vec<i64> = rest.changes.iter().map(|c| c.version).collect();
    assert_eq!(versions, [51]);
    assert!(rest.next_page_token.is_empty());
}

async fn changes_of_a_missing_group_are_not_found(app: TestApp) {
    let status = try_changes_page(&app, "no-such-group", 0, "")
        .await
        .unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn changes_reject_a_negative_page_size_and_a_tampered_token(app: TestApp) {
    let group = create_named(&app, "guarded").await;
    set_description(&app, &group.id, "second").await;

    let status = try_changes_page(&app, &group.id, -1, "").await.unwrap_err();
    assert_invalid_argument(&status, "page_size");

    let first = try_changes_page(&app, &group.id, 1, "").await.unwrap();
    assert!(!first.next_page_token.is_empty());
    let mut tampered: Vec<char> = first.next_page_token.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();

    for token in [tampered, "garbage".to_owned()] {
        let status = try_changes_page(&app, &group.id, 1, &token)
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }
}
