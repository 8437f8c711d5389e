//! PATCH and PUT as grpc-gateway maps them: a PATCH without a mask updates
//! the fields its body names (zero and null values clear them), one with a
//! mask updates the masked fields; a PUT without a mask replaces the
//! group. And the id in the path against an id in the body.

use groupd::pb;
use reqwest::Method;
use serde_json::json;
use tonic::Code;

use super::{assert_same_group, http_update, http_update_ok};
use crate::helpers::*;

both_backends!(
    patch_without_mask_clears_zero_valued_keys,
    patch_without_mask_clears_null_valued_keys,
    patch_without_mask_clears_labels_with_an_empty_object,
    patch_without_mask_keeps_fields_absent_from_the_body,
    patch_with_update_mask_updates_only_the_masked_fields,
    patch_with_a_bad_update_mask_path_is_400_and_changes_nothing,
    patch_ignores_output_only_fields_in_the_body,
    patch_with_allow_missing_creates_the_group,
    patch_with_validate_only_answers_the_would_be_group_and_writes_nothing,
    put_without_mask_replaces_the_whole_group,
    put_with_update_mask_behaves_as_masked,
    a_body_id_that_differs_from_the_path_id_is_400,
    a_body_id_equal_to_the_path_id_is_accepted,
);

// ---------------------------------------------------------------------------
// PATCH and PUT.
// ---------------------------------------------------------------------------

async fn patch_without_mask_clears_zero_valued_keys(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({
            "description": "",
            "inactive": false,
            "members": [],
            "admins": [],
            "assignedRoles": [],
        }),
    )
    .await;

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "");
    assert!(!stored.inactive);
    assert!(stored.members.is_empty() && stored.admins.is_empty());
    assert!(stored.assigned_roles.is_empty());
    assert_only_changed(
        &group,
        &stored,
        &[
            "description",
            "inactive",
            "members",
            "admins",
            "assigned_roles",
        ],
    );
    assert_same_group(&answer, &stored);
    let history = changes(&app, &group.id).await;
    assert_eq!(
        mask_paths(history.last().unwrap()),
        path_set(&[
            "admins",
            "assigned_roles",
            "description",
            "inactive",
            "members"
        ]),
        "the implied mask is the body's keys"
    );
}

async fn patch_without_mask_clears_null_valued_keys(app: TestApp) {
    let group = rich_group(&app).await;

    http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"description": null, "email": null, "memberOf": null}),
    )
    .await;

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "");
    assert_eq!(stored.email, "");
    assert!(stored.member_of.is_empty());
    assert_only_changed(&group, &stored, &["description", "email", "member_of"]);
}

async fn patch_without_mask_clears_labels_with_an_empty_object(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(&app, Method::PATCH, &group.id, "", &json!({"labels": {}})).await;

    assert!(answer.get("labels").is_none(), "{answer}");
    let stored = get(&app, &group.id).await;
    assert!(stored.labels.is_empty());
    assert_only_changed(&group, &stored, &["labels"]);
}

async fn patch_without_mask_keeps_fields_absent_from_the_body(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"provenance": "scim", "labels": {"c": "3"}}),
    )
    .await;

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.provenance, "scim");
    assert_eq!(labels_of(&stored), label_map(&[("c", "3")]));
    assert_only_changed(&group, &stored, &["provenance", "labels"]);
    assert_same_group(&answer, &stored);
    assert_ne!(stored.etag, group.etag, "a write");
}

async fn patch_with_update_mask_updates_only_the_masked_fields(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "?updateMask=description",
        &json!({
            "description": "masked",
            "email": "ignored@example.com",
            "provenance": "",
            "labels": {},
            "members": [],
        }),
    )
    .await;

    assert_eq!(answer["description"], "masked");
    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "masked");
    assert_only_changed(&group, &stored, &["description"]);
}

async fn patch_with_a_bad_update_mask_path_is_400_and_changes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "?updateMask=description,colour",
        &json!({"description": "x"}),
    )
    .await;
    assert_http_invalid(&reply, "update_mask");
    assert!(
        http_violations(&reply)
            .iter()
            .any(|(_, description)| description.contains("colour")),
        "the violation quotes the path: {reply:#?}"
    );
    assert_unchanged(&app, &before).await;
}

async fn patch_ignores_output_only_fields_in_the_body(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({
            "description": "after",
            "state": "STATE_DELETED",
            "createTime": "2000-01-01T00:00:00Z",
            "deleteTime": "2000-01-01T00:00:00Z",
            "createdBy": "mallory",
            "updatedBy": "mallory",
            "memberCount": 99,
        }),
    )
    .await;

    assert_eq!(answer["state"], "STATE_ACTIVE");
    assert_eq!(answer["memberCount"], 2);
    assert_eq!(answer["createdBy"], ANONYMOUS);
    assert_eq!(answer["updatedBy"], ANONYMOUS);
    assert!(answer.get("deleteTime").is_none(), "{answer}");
    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "after");
    assert_only_changed(&group, &stored, &["description"]);
    assert_same_group(&answer, &stored);
}

async fn patch_with_allow_missing_creates_the_group(app: TestApp) {
    let reply = http_update(
        &app,
        Method::PATCH,
        "fresh",
        "",
        &json!({"name": "fresh", "description": "new"}),
    )
    .await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    assert_eq!(group_count(&app).await, 0);

    let created = http_update_ok(
        &app,
        Method::PATCH,
        "fresh",
        "?allowMissing=true",
        &json!({"name": "fresh", "description": "new"}),
    )
    .await;
    assert_eq!(created["id"], "fresh");
    let stored = get(&app, "fresh").await;
    assert_eq!(stored.description, "new");
    assert_same_group(&created, &stored);
    assert_eq!(
        kinds(&changes(&app, "fresh").await),
        [pb::ChangeKind::Create]
    );
}

async fn patch_with_validate_only_answers_the_would_be_group_and_writes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "?validateOnly=true",
        &json!({"description": "dry run"}),
    )
    .await;
    assert_eq!(answer["description"], "dry run");
    assert_eq!(answer["email"], "before@example.com");
    assert_unchanged(&app, &before).await;

    // validateOnly still validates.
    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "?validateOnly=true",
        &json!({"email": "not an email"}),
    )
    .await;
    assert_http_invalid(&reply, "group.email");
    assert_unchanged(&app, &before).await;
}

async fn put_without_mask_replaces_the_whole_group(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PUT,
        &group.id,
        "",
        &json!({"name": "rich", "description": "only this"}),
    )
    .await;

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.name, "rich");
    assert_eq!(stored.scope, "tenant-a", "an unsent scope is kept");
    assert_eq!(stored.description, "only this");
    assert_eq!(stored.email, "");
    assert!(stored.members.is_empty());
    assert!(stored.admins.is_empty());
    assert!(stored.member_of.is_empty());
    assert!(stored.assigned_roles.is_empty());
    assert!(!stored.inactive);
    assert_eq!(stored.provenance, "");
    assert!(stored.labels.is_empty());
    assert_eq!(stored.member_count, 0);
    assert_eq!(stored.create_time, group.create_time);
    assert_same_group(&answer, &stored);
    let history = changes(&app, &group.id).await;
    assert_eq!(
        mask_paths(history.last().unwrap()),
        path_set(&["*"]),
        "PUT without a mask is *"
    );
}

async fn put_with_update_mask_behaves_as_masked(app: TestApp) {
    let group = rich_group(&app).await;

    http_update_ok(
        &app,
        Method::PUT,
        &group.id,
        "?updateMask=email",
        &json!({"name": "rich", "email": "after@example.com"}),
    )
    .await;

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.email, "after@example.com");
    assert_only_changed(&group, &stored, &["email"]);
}

// ---------------------------------------------------------------------------
// Path and body ids.
// ---------------------------------------------------------------------------

async fn a_body_id_that_differs_from_the_path_id_is_400(app: TestApp) {
    let group = rich_group(&app).await;
    let other = create_named(&app, "other").await;
    let before = snapshot(&app, &group.id).await;
    let other_before = snapshot(&app, &other.id).await;

    for method in [Method::PATCH, Method::PUT] {
        let reply = http_update(
            &app,
            method,
            &group.id,
            "",
            &json!({"id": other.id, "name": "rich", "description": "which one?"}),
        )
        .await;
        assert_http_invalid(&reply, "group.id");
        assert_unchanged(&app, &before).await;
        assert_unchanged(&app, &other_before).await;
    }

    // body "*": the path's id and the body's must agree too.
    let reply = http_call(
        &app,
        Method::POST,
        &format!("{}:addMembers", group_path(&group.id)),
        Some(&json!({"id": other.id, "members": [{"id": "zoe"}]})),
    )
    .await;
    assert_http_invalid(&reply, "id");
    assert_unchanged(&app, &before).await;
    assert_unchanged(&app, &other_before).await;
}

async fn a_body_id_equal_to_the_path_id_is_accepted(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"id": group.id, "description": "same id"}),
    )
    .await;

    assert_eq!(answer["id"], json!(group.id));
    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "same id");
    assert_only_changed(&group, &stored, &["description"]);

    let added = http_ok(
        http_call(
            &app,
            Method::POST,
            &format!("{}:addMembers", group_path(&group.id)),
            Some(&json!({"id": group.id, "members": [{"id": "zoe"}]})),
        )
        .await,
    );
    assert_eq!(added["memberCount"], 3);
}
