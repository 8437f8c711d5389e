//! AddGroupMembers, RemoveGroupMembers and ListGroupMembers: set semantics,
//! idempotence (no write when nothing changes), validation and limits.

use groupd::pb;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    add_members_adds_them_and_returns_the_basic_view,
    adding_an_admin_also_makes_them_a_member,
    adding_members_already_present_changes_nothing,
    adding_empty_lists_changes_nothing,
    adding_a_mix_of_present_and_new_members_writes_once,
    remove_members_also_drops_them_as_admins,
    removing_an_admin_demotes_them_but_keeps_them_a_member,
    removing_absent_members_changes_nothing,
    add_rejects_invalid_member_and_admin_ids,
    add_rejects_duplicate_ids_in_one_list,
    remove_rejects_invalid_and_duplicate_ids,
    membership_changes_on_a_missing_group_are_not_found,
    list_members_returns_members_sorted_by_id_a_page_at_a_time,
    list_members_defaults_to_50_per_page_and_caps_at_1000,
    list_members_of_a_missing_group_is_not_found,
    list_members_rejects_a_negative_page_size_and_a_garbage_token,
);

both_backends!(
    args ["--max-members-per-request", "3"];
    a_request_with_more_principals_than_allowed_is_invalid,
);

both_backends!(
    args ["--max-members-per-group", "4"];
    adding_members_beyond_the_group_limit_is_invalid,
);

/// `group` as the BASIC view shows it: AddGroupMembers and
/// RemoveGroupMembers answer in that view, so that changing a few members of
/// a large group never reads the rest.
fn basic(group: &pb::Group) -> pb::Group {
    pb::Group {
        members: Vec::new(),
        admins: Vec::new(),
        ..group.clone()
    }
}

/// A group with members alice, bob, carol and admin alice.
async fn crew(app: &TestApp) -> pb::Group {
    create(
        app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice", "bob", "carol"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await
}

async fn add_members_adds_them_and_returns_the_basic_view(app: TestApp) {
    let group = crew(&app).await;

    let added = add(&app, &group.id, &["zoe", "dave"], &[]).await;

    assert!(
        added.members.is_empty() && added.admins.is_empty(),
        "BASIC view"
    );
    assert_eq!(added.member_count, 5);
    assert_ne!(added.etag, group.etag);
    let stored = get(&app, &group.id).await;
    assert_eq!(
        ids(&stored.members),
        ["alice", "bob", "carol", "dave", "zoe"]
    );
    assert_eq!(ids(&stored.admins), ["alice"]);
    assert_eq!(basic(&stored), added, "the answer is the stored group");

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [pb::ChangeKind::Create, pb::ChangeKind::AddMembers]
    );
    assert_eq!(history[1].version, 2);
}

async fn adding_an_admin_also_makes_them_a_member(app: TestApp) {
    let group = crew(&app).await;

    let added = add(&app, &group.id, &[], &["erin", "bob"]).await;

    assert_eq!(added.member_count, 4);
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["alice", "bob", "carol", "erin"]);
    assert_eq!(ids(&stored.admins), ["alice", "bob", "erin"]);
}

async fn adding_members_already_present_changes_nothing(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    let answer = add(&app, &group.id, &["bob", "alice"], &["alice"]).await;

    assert_eq!(
        answer,
        basic(&before.group),
        "the answer is the unchanged group"
    );
    assert_unchanged(&app, &before).await;
}

async fn adding_empty_lists_changes_nothing(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    let answer = add(&app, &group.id, &[], &[]).await;
    assert_eq!(answer, basic(&before.group));
    let answer = remove(&app, &group.id, &[], &[]).await;
    assert_eq!(answer, basic(&before.group));
    assert_unchanged(&app, &before).await;
}

async fn adding_a_mix_of_present_and_new_members_writes_once(app: TestApp) {
    let group = crew(&app).await;

    let added = add(&app, &group.id, &["alice", "dave"], &["alice", "bob"]).await;

    assert_eq!(added.member_count, 4);
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["alice", "bob", "carol", "dave"]);
    assert_eq!(ids(&stored.admins), ["alice", "bob"]);
    assert_eq!(changes(&app, &group.id).await.len(), 2);
}

async fn remove_members_also_drops_them_as_admins(app: TestApp) {
    let group = crew(&app).await;

    let removed = remove(&app, &group.id, &["alice", "carol"], &[]).await;

    assert_eq!(removed.member_count, 1);
    assert_ne!(removed.etag, group.etag);
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["bob"]);
    assert!(stored.admins.is_empty(), "alice stopped being an admin");
    assert_eq!(basic(&stored), removed);
    assert_eq!(
        kinds(&changes(&app, &group.id).await),
        [pb::ChangeKind::Create, pb::ChangeKind::RemoveMembers]
    );
}

async fn removing_an_admin_demotes_them_but_keeps_them_a_member(app: TestApp) {
    let group = crew(&app).await;

    let demoted = remove(&app, &group.id, &[], &["alice"]).await;

    assert_eq!(demoted.member_count, 3);
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["alice", "bob", "carol"]);
    assert!(stored.admins.is_empty());
}

async fn removing_absent_members_changes_nothing(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    // zed is absent, bob is a member but not an admin.
    let answer = remove(&app, &group.id, &["zed"], &["bob", "zed"]).await;

    assert_eq!(answer, basic(&before.group));
    assert_unchanged(&app, &before).await;
}

async fn add_rejects_invalid_member_and_admin_ids(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_add(&app, &group.id, &["dave", "bad id"], &[])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "members[1].id");

    let status = try_add(&app, &group.id, &[], &["-erin"]).await.unwrap_err();
    assert_invalid_argument(&status, "admins[0].id");

    let status = try_add(&app, &group.id, &[""], &[]).await.unwrap_err();
    assert_invalid_argument(&status, "members[0].id");

    assert_unchanged(&app, &before).await;
}

async fn add_rejects_duplicate_ids_in_one_list(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_add(&app, &group.id, &["dave", "erin", "dave"], &[])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "members[2].id");

    let status = try_add(&app, &group.id, &[], &["dave", "dave"])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "admins[1].id");

    assert_unchanged(&app, &before).await;
}

async fn remove_rejects_invalid_and_duplicate_ids(app: TestApp) {
    let group = crew(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_remove(&app, &group.id, &["bob", "bad id"], &[])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "members[1].id");

    let status = try_remove(&app, &group.id, &[], &["alice", "alice"])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "admins[1].id");

    assert_unchanged(&app, &before).await;
}

async fn membership_changes_on_a_missing_group_are_not_found(app: TestApp) {
    let status = try_add(&app, "no-such-group", &["alice"], &[])
        .await
        .unwrap_err();
    assert_not_found(&status, "no-such-group");

    let status = try_remove(&app, "no-such-group", &["alice"], &[])
        .await
        .unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn list_members_returns_members_sorted_by_id_a_page_at_a_time(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "big".to_owned(),
            members: members(&["g", "c", "a", "f", "b", "e", "d"]),
            ..Default::default()
        },
    )
    .await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = app
            .client()
            .list_group_members(pb::ListGroupMembersRequest {
                id: group.id.clone(),
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.members.len());
        seen.extend(ids(&page.members));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g"]);

    let all = app
        .client()
        .list_group_members(pb::ListGroupMembersRequest {
            id: group.id.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.members.len(), 7);
    assert!(all.next_page_token.is_empty());
}

async fn list_members_defaults_to_50_per_page_and_caps_at_1000(app: TestApp) {
    let ids_1001: Vec<String> = (0..1001).map(|i| format!("p{i:04}")).collect();
    let id_refs: Vec<&str> = ids_1001.iter().map(String::as_str).collect();
    let group = create(
        &app,
        pb::Group {
            name: "crowd".to_owned(),
            members: members(&id_refs),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(group.member_count, 1001);

    let page = |page_size: i32, page_token: String| pb::ListGroupMembersRequest {
        id: group.id.clone(),
        page_size,
        page_token,
    };
    let default = app
        .client()
        .list_group_members(page(0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&default.members), &ids_1001[..50]);
    assert!(!default.next_page_token.is_empty());

    let capped = app
        .client()
        .list_group_members(page(5000, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&capped.members), &ids_1001[..1000]);
    let rest = app
        .client()
        .list_group_members(page(5000, capped.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&rest.members), ["p1000"]);
    assert!(rest.next_page_token.is_empty());
}

async fn list_members_of_a_missing_group_is_not_found(app: TestApp) {
    let status = app
        .client()
        .list_group_members(pb::ListGroupMembersRequest {
            id: "no-such-group".to_owned(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn list_members_rejects_a_negative_page_size_and_a_garbage_token(app: TestApp) {
    let group = crew(&app).await;

    let status = app
        .client()
        .list_group_members(pb::ListGroupMembersRequest {
            id: group.id.clone(),
            page_size: -5,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "page_size");

    let status = app
        .client()
        .list_group_members(pb::ListGroupMembersRequest {
            id: group.id.clone(),
            page_size: 1,
            page_token: "garbage".to_owned(),
        })
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "page_token");
}

async fn a_request_with_more_principals_than_allowed_is_invalid(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "limited".to_owned(),
            members: members(&["a"]),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    let status = try_add(&app, &group.id, &["b", "c", "d", "e"], &[])
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(!violations(&status).is_empty());

    let status = try_remove(&app, &group.id, &["a", "b", "c", "d"], &[])
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");

    let status = try_update(
        &app,
        pb::Group {
            members: members(&["a", "b", "c", "d"]),
            ..patch(&group.id)
        },
        Some(&["members"]),
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_unchanged(&app, &before).await;

    // Exactly the limit is fine.
    let added = add(&app, &group.id, &["b", "c", "d"], &[]).await;
    assert_eq!(added.member_count, 4);
}

async fn adding_members_beyond_the_group_limit_is_invalid(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "limited".to_owned(),
            members: members(&["a", "b", "c"]),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    let status = try_add(&app, &group.id, &["d", "e"], &[])
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(!violations(&status).is_empty());

    let status = try_update(
        &app,
        pb::Group {
            members: members(&["a", "b", "c", "d", "e"]),
            ..patch(&group.id)
        },
        Some(&["members"]),
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_unchanged(&app, &before).await;

    // Adding present members does not count against the limit.
    let added = add(&app, &group.id, &["a", "b", "c", "d"], &[]).await;
    assert_eq!(added.member_count, 4);
}
