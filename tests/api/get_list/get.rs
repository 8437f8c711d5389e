//! GetGroup: a missing group is NOT_FOUND; the full view is the default;
//! the basic view leaves out members and admins but keeps member_count;
//! and a deleted group is returned with state DELETED and its
//! delete_time.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    get_of_a_missing_group_is_not_found,
    get_defaults_to_the_full_view,
    get_with_the_basic_view_leaves_out_members_and_admins_but_keeps_member_count,
    get_returns_a_deleted_group_with_state_deleted_and_delete_time,
);

async fn get_of_a_missing_group_is_not_found(app: TestApp) {
    let status = try_get(&app, "no-such-group").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn get_defaults_to_the_full_view(app: TestApp) {
    let created = create(
        &app,
        pb::Group {
            name: "full".to_owned(),
            members: members(&["carol", "alice", "bob"]),
            admins: members(&["carol", "alice"]),
            ..Default::default()
        },
    )
    .await;

    let read = get(&app, &created.id).await;
    assert_eq!(ids(&read.members), ["alice", "bob", "carol"]);
    assert_eq!(ids(&read.admins), ["alice", "carol"]);
    assert_eq!(read.member_count, 3);

    let full = try_get_view(&app, &created.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(full, read);
}

async fn get_with_the_basic_view_leaves_out_members_and_admins_but_keeps_member_count(
    app: TestApp,
) {
    let created = create(
        &app,
        pb::Group {
            name: "basic".to_owned(),
            description: "kept".to_owned(),
            members: members(&["alice", "bob"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    let basic = try_get_view(&app, &created.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert!(basic.members.is_empty());
    assert!(basic.admins.is_empty());
    assert_eq!(basic.member_count, 2);
    assert_eq!(basic.description, "kept");
    assert_eq!(basic.etag, created.etag);

    let full = try_get_view(&app, &created.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(ids(&full.members), ["alice", "bob"]);
    assert_eq!(
        pb::Group {
            members: full.members.clone(),
            admins: full.admins.clone(),
            ..basic
        },
        full,
        "BASIC differs from FULL only by members and admins"
    );
}

async fn get_returns_a_deleted_group_with_state_deleted_and_delete_time(app: TestApp) {
    let created = create_named(&app, "doomed").await;
    let deleted = delete(&app, &created.id).await;

    let read = get(&app, &created.id).await;
    assert_eq!(read.state(), pb::State::Deleted);
    assert!(read.delete_time.is_some());
    assert_eq!(read, deleted);
}
