//! Replies always fit the message limit, so that a write that committed is
//! never answered with an error: a group too large for its FULL view is
//! answered in the BASIC view by every write, refused with a clear error by
//! GetGroup's FULL view, and listed without its members.

use groupd::pb;
use reqwest::Method;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

// A message limit just above what the reply bounds need with at most 1,000
// principals per request.
both_backends!(
    args ["--max-message-bytes", "800000", "--max-members-per-request", "1000"];
    writes_to_a_group_too_large_for_one_reply_answer_the_basic_view_and_commit,
    the_full_view_of_a_group_too_large_for_one_reply_is_a_clear_error,
    a_listing_in_the_full_view_lists_a_group_too_large_for_one_reply_without_its_members,
);

/// Members whose ids have the longest length a principal id may have.
const MEMBERS: usize = 3200;

/// The id of member `i`: 256 characters.
fn long_id(i: usize) -> String {
    format!("{i:06}-{}", "m".repeat(249))
}

/// A group of [`MEMBERS`] members with the longest ids: its FULL view
/// (about 840 kB) is over the 800 kB limit.
async fn large_group(app: &TestApp, name: &str) -> pb::Group {
    let group = create_named(app, name).await;
    let ids: Vec<String> = (0..MEMBERS).map(long_id).collect();
    for chunk in ids.chunks(800) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        add(app, &group.id, &chunk, &[]).await;
    }
    let basic = try_get_view(app, &group.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert_eq!(basic.member_count, i32::try_from(MEMBERS).unwrap());
    basic
}

/// Asserts that `group` is answered without its member lists, with its
/// member count.
#[track_caller]
fn assert_basic_view(group: &pb::Group) {
    assert!(group.members.is_empty() && group.admins.is_empty());
    assert_eq!(group.member_count, i32::try_from(MEMBERS).unwrap());
}

async fn writes_to_a_group_too_large_for_one_reply_answer_the_basic_view_and_commit(app: TestApp) {
    let group = large_group(&app, "crowd").await;

    let updated = set_description(&app, &group.id, "still writable").await;
    assert_basic_view(&updated);
    assert_eq!(updated.description, "still writable");
    let stored = try_get_view(&app, &group.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert_eq!(stored.description, "still writable");
    assert_eq!(
        stored.etag, updated.etag,
        "the answer is the stored version"
    );

    // A retry with the etag the answer carried succeeds: the caller was
    // told the truth about the write.
    let again = update(
        &app,
        pb::Group {
            description: "again".to_owned(),
            etag: updated.etag.clone(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    assert_basic_view(&again);

    let deleted = try_delete(&app, &group.id, &again.etag).await.unwrap();
    assert_basic_view(&deleted);
    assert_eq!(deleted.state(), pb::State::Deleted);
    let undeleted = try_undelete(&app, &group.id, &deleted.etag).await.unwrap();
    assert_basic_view(&undeleted);
    assert_eq!(undeleted.state(), pb::State::Active);

    // Over HTTP, PATCH answers 200 with the group, without its members.
    let reply = http_call(
        &app,
        Method::PATCH,
        &group_path(&group.id),
        Some(&json!({"description": "over http"})),
    )
    .await;
    let body = http_ok(reply);
    assert_eq!(body["description"], json!("over http"));
    assert_eq!(body["memberCount"], json!(MEMBERS));
    assert!(body.get("members").is_none(), "{body}");

    // Every write is in the history, in order.
    assert_eq!(
        kinds(&changes(&app, &group.id).await)[1 + MEMBERS.div_ceil(800)..],
        [
            pb::ChangeKind::Update,
            pb::ChangeKind::Update,
            pb::ChangeKind::Delete,
            pb::ChangeKind::Undelete,
            pb::ChangeKind::Update,
        ]
    );

    // Every call was counted with the code its caller received.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for code in ["OUT_OF_RANGE", "INTERNAL"] {
        assert!(!metrics.contains(&format!("code=\"{code}\"")), "{metrics}");
    }
    assert!(
        metrics.contains(
            r#"groupd_requests_total{transport="grpc",method="UpdateGroup",code="OK"} 2"#
        ),
        "{metrics}"
    );

    // A group that fits is still answered whole.
    let small = create(
        &app,
        pb::Group {
            members: members(&["alice"]),
            ..named("small")
        },
    )
    .await;
    let small = set_description(&app, &small.id, "whole").await;
    assert_eq!(ids(&small.members), ["alice"]);
}

async fn the_full_view_of_a_group_too_large_for_one_reply_is_a_clear_error(app: TestApp) {
    let group = large_group(&app, "crowd").await;

    let status = try_get(&app, &group.id).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "GROUP_TOO_LARGE");
    assert!(status.message().contains("ListGroupMembers"), "{status:?}");

    let reply = http_get(&app, &group_path(&group.id)).await;
    assert_http_error(&reply, 400, Code::FailedPrecondition, "GROUP_TOO_LARGE");

    // Its members are all readable a page at a time.
    let mut listed = 0;
    let mut token = String::new();
    loop {
        let page = app
            .client()
            .list_group_members(pb::ListGroupMembersRequest {
                id: group.id.clone(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        listed += page.members.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, MEMBERS);
}

async fn a_listing_in_the_full_view_lists_a_group_too_large_for_one_reply_without_its_members(
    app: TestApp,
) {
    let large = large_group(&app, "crowd").await;
    let small = create(
        &app,
        pb::Group {
            members: members(&["alice"]),
            ..named("small")
        },
    )
    .await;
    let listed = list_all(
        &app,
        pb::ListGroupsRequest {
            view: pb::GroupView::Full as i32,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&listed), [large.id.clone(), small.id.clone()]);
    assert_basic_view(&listed[0]);
    assert_eq!(ids(&listed[1].members), ["alice"]);
}
