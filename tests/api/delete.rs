//! DeleteGroup and UndeleteGroup: soft delete, freed names, etags,
//! allow_missing, and what a deleted group still allows.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    delete_soft_deletes_and_returns_the_group_in_state_deleted,
    delete_with_a_stale_etag_is_aborted_and_with_the_current_one_succeeds,
    delete_of_a_missing_group_is_not_found,
    delete_of_a_missing_group_with_allow_missing_returns_a_bare_deleted_group,
    delete_of_a_deleted_group_is_not_found,
    delete_of_a_deleted_group_with_allow_missing_returns_it_unchanged,
    delete_frees_the_name_for_another_group,
    undelete_brings_a_deleted_group_back_as_it_was,
    undelete_of_a_live_group_is_already_exists,
    undelete_of_a_missing_group_is_not_found,
    undelete_when_the_name_was_taken_meanwhile_is_already_exists,
    undelete_with_a_stale_etag_is_aborted,
    a_deleted_group_rejects_updates_and_membership_changes_as_not_found,
    a_deleted_group_keeps_its_history_readable,
);

async fn delete_soft_deletes_and_returns_the_group_in_state_deleted(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "doomed".to_owned(),
            description: "kept after delete".to_owned(),
            members: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    let deleted = delete(&app, &group.id).await;

    assert_eq!(deleted.id, group.id);
    assert_eq!(deleted.state(), pb::State::Deleted);
    assert!(deleted.delete_time.is_some());
    assert!(instant(deleted.delete_time.as_ref()) >= instant(group.create_time.as_ref()));
    assert_ne!(deleted.etag, group.etag);
    assert_quoted_etag(&deleted.etag);
    assert_eq!(deleted.name, "doomed");
    assert_eq!(deleted.description, "kept after delete");
    assert_eq!(deleted.create_time, group.create_time);

    let read = get(&app, &group.id).await;
    assert_eq!(read.state(), pb::State::Deleted);
    assert_eq!(read.etag, deleted.etag);
    assert_eq!(ids(&read.members), ["alice"], "a soft delete keeps members");

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [pb::ChangeKind::Create, pb::ChangeKind::Delete]
    );
    assert_eq!(history[1].version, 2);
    assert_eq!(
        history[1].group.as_ref().map(pb::Group::state),
        Some(pb::State::Deleted)
    );
}

async fn delete_with_a_stale_etag_is_aborted_and_with_the_current_one_succeeds(app: TestApp) {
    let group = create_named(&app, "guarded").await;
    let stale = group.etag.clone();
    let current = set_description(&app, &group.id, "moved on").await;
    let before = snapshot(&app, &group.id).await;

    for etag in [stale.as_str(), "\"made-up\""] {
        let status = try_delete(&app, &group.id, etag).await.unwrap_err();
        assert_etag_mismatch(&status);
    }
    assert_unchanged(&app, &before).await;

    // The etag is accepted without its quotes too.
    let bare = current.etag.trim_matches('"');
    let deleted = try_delete(&app, &group.id, bare).await.unwrap();
    assert_eq!(deleted.state(), pb::State::Deleted);
    let undeleted = try_undelete(&app, &group.id, deleted.etag.trim_matches('"'))
        .await
        .unwrap();
    assert_eq!(undeleted.state(), pb::State::Active);
}

async fn delete_of_a_missing_group_is_not_found(app: TestApp) {
    let status = try_delete(&app, "no-such-group", "").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn delete_of_a_missing_group_with_allow_missing_returns_a_bare_deleted_group(app: TestApp) {
    let answer = app
        .client()
        .delete_group(pb::DeleteGroupRequest {
            id: "no-such-group".to_owned(),
            etag: String::new(),
            allow_missing: true,
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        answer,
        pb::Group {
            id: "no-such-group".to_owned(),
            state: pb::State::Deleted as i32,
            ..Default::default()
        }
    );
    let status = try_get(&app, "no-such-group").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn delete_of_a_deleted_group_is_not_found(app: TestApp) {
    let group = create_named(&app, "twice").await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_delete(&app, &group.id, "").await.unwrap_err();
    assert_not_found(&status, &group.id);
    assert_unchanged(&app, &before).await;
}

async fn delete_of_a_deleted_group_with_allow_missing_returns_it_unchanged(app: TestApp) {
    let group = create_named(&app, "twice").await;
    let deleted = delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    let again = app
        .client()
        .delete_group(pb::DeleteGroupRequest {
            id: group.id.clone(),
            etag: String::new(),
            allow_missing: true,
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(again.state(), pb::State::Deleted);
    assert_eq!(again.etag, deleted.etag);
    assert_eq!(again.delete_time, deleted.delete_time);
    assert_unchanged(&app, &before).await;
}

async fn delete_frees_the_name_for_another_group(app: TestApp) {
    let first = create(
        &app,
        pb::Group {
            name: "Shared".to_owned(),
            scope: "tenant".to_owned(),
            ..Default::default()
        },
    )
    .await;
    delete(&app, &first.id).await;

    let second = create(
        &app,
        pb::Group {
            name: "shared".to_owned(),
            scope: "tenant".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_ne!(second.id, first.id);

    // A deleted group's name is free for renames too.
    let third = create_named(&app, "third").await;
    delete(&app, &second.id).await;
    let renamed = update(
        &app,
        pb::Group {
            name: "SHARED".to_owned(),
            ..patch(&third.id)
        },
        Some(&["name"]),
    )
    .await;
    assert_eq!(renamed.name, "SHARED");
}

async fn undelete_brings_a_deleted_group_back_as_it_was(app: TestApp) {
    let group = create(
        &app,
        with_labels(
            pb::Group {
                name: "phoenix".to_owned(),
                description: "rises again".to_owned(),
                members: members(&["alice", "bob"]),
                admins: members(&["bob"]),
                ..Default::default()
            },
            &[("k", "v")],
        ),
    )
    .await;
    let deleted = delete(&app, &group.id).await;

    let undeleted = try_undelete(&app, &group.id, &deleted.etag).await.unwrap();

    assert_eq!(undeleted.state(), pb::State::Active);
    assert!(undeleted.delete_time.is_none());
    assert_ne!(undeleted.etag, deleted.etag);
    assert_ne!(undeleted.etag, group.etag);
    assert_eq!(undeleted.name, "phoenix");
    assert_eq!(undeleted.description, "rises again");
    assert_eq!(ids(&undeleted.members), ["alice", "bob"]);
    assert_eq!(ids(&undeleted.admins), ["bob"]);
    assert_eq!(labels_of(&undeleted), label_map(&[("k", "v")]));
    assert_eq!(undeleted.create_time, group.create_time);
    assert_eq!(get(&app, &group.id).await, undeleted);

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [
            pb::ChangeKind::Create,
            pb::ChangeKind::Delete,
            pb::ChangeKind::Undelete
        ]
    );
    assert_eq!(history[2].version, 3);

    let listed = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(listed.total_size, 1, "an undeleted group is listed again");
}

async fn undelete_of_a_live_group_is_already_exists(app: TestApp) {
    let group = create_named(&app, "alive").await;
    let before = snapshot(&app, &group.id).await;

    let status = try_undelete(&app, &group.id, "").await.unwrap_err();
    assert_already_exists(&status, "GROUP_NOT_DELETED");
    assert_metadata_id(&status, &group.id);
    assert_unchanged(&app, &before).await;
}

async fn undelete_of_a_missing_group_is_not_found(app: TestApp) {
    let status = try_undelete(&app, "no-such-group", "").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn undelete_when_the_name_was_taken_meanwhile_is_already_exists(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "contested".to_owned(),
            scope: "tenant".to_owned(),
            ..Default::default()
        },
    )
    .await;
    delete(&app, &group.id).await;
    create(
        &app,
        pb::Group {
            name: "CONTESTED".to_owned(),
            scope: "tenant".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    let status = try_undelete(&app, &group.id, "").await.unwrap_err();
    assert_already_exists(&status, "GROUP_NAME_TAKEN");
    assert_unchanged(&app, &before).await;
    assert_eq!(get(&app, &group.id).await.state(), pb::State::Deleted);
}

async fn undelete_with_a_stale_etag_is_aborted(app: TestApp) {
    let group = create_named(&app, "guarded").await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    // The etag from before the delete is stale now.
    let status = try_undelete(&app, &group.id, &group.etag)
        .await
        .unwrap_err();
    assert_etag_mismatch(&status);
    assert_unchanged(&app, &before).await;
}

async fn a_deleted_group_rejects_updates_and_membership_changes_as_not_found(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "frozen".to_owned(),
            members: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_update(
        &app,
        pb::Group {
            description: "nope".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await
    .unwrap_err();
    assert_not_found(&status, &group.id);

    let status = try_add(&app, &group.id, &["bob"], &[]).await.unwrap_err();
    assert_not_found(&status, &group.id);

    let status = try_remove(&app, &group.id, &["alice"], &[])
        .await
        .unwrap_err();
    assert_not_found(&status, &group.id);

    assert_unchanged(&app, &before).await;
}

async fn a_deleted_group_keeps_its_history_readable(app: TestApp) {
    let group = create_named(&app, "archived").await;
    set_description(&app, &group.id, "once").await;
    delete(&app, &group.id).await;

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [
            pb::ChangeKind::Create,
            pb::ChangeKind::Update,
            pb::ChangeKind::Delete
        ]
    );
}
