//! The JSON mapping: canonical proto3 JSON in lowerCamelCase out, proto
//! and JSON field names both accepted in, unknown fields and parameters
//! refused, and the same data over HTTP and gRPC.

use std::collections::BTreeSet;

use groupd::pb;
use reqwest::Method;
use serde_json::json;
use tonic::Code;

use super::{assert_query_refused, assert_same_group, http_update, http_update_ok, list_of, text};
use crate::helpers::*;

both_backends!(
    responses_are_canonical_proto3_json_in_lower_camel_case,
    request_bodies_and_queries_accept_proto_and_json_field_names,
    group_change_version_is_an_int64_string_and_its_mask_a_camel_case_string,
    unknown_fields_in_the_body_are_invalid_argument,
    unknown_query_parameters_are_invalid_argument,
    every_writable_field_round_trips_over_http_and_grpc,
    http_and_grpc_reach_the_same_data,
    patch_with_a_label_key_in_the_update_mask_sets_only_that_label,
);

async fn responses_are_canonical_proto3_json_in_lower_camel_case(app: TestApp) {
    let parent = create_named(&app, "parent").await;

    let group = http_create(
        &app,
        json!({
            "name": "camel",
            "members": [{"id": "alice"}],
            "admins": [{"id": "alice"}],
            "memberOf": [{"groupId": parent.id}],
            "assignedRoles": [{"roleId": "roles/viewer"}],
        }),
    )
    .await;

    let object = group.as_object().expect("a JSON object");
    for key in [
        "id",
        "name",
        "state",
        "members",
        "admins",
        "memberOf",
        "assignedRoles",
        "createTime",
        "updateTime",
        "createdBy",
        "updatedBy",
        "memberCount",
        "etag",
    ] {
        assert!(object.contains_key(key), "{key} missing from {group}");
    }
    for key in object.keys() {
        assert!(!key.contains('_'), "key {key:?} is not lowerCamelCase");
    }
    assert_eq!(group["state"], "STATE_ACTIVE", "enums are written by name");
    assert_eq!(group["memberCount"], 1, "int32 is a JSON number");
    assert_eq!(group["createdBy"], ANONYMOUS);
    assert_eq!(group["updatedBy"], ANONYMOUS);
    assert_eq!(group["memberOf"], json!([{"groupId": parent.id}]));
    assert_eq!(group["assignedRoles"], json!([{"roleId": "roles/viewer"}]));
    assert_quoted_etag(text(&group, "etag"));
    // Default values are omitted, not written as "", false, {} or null.
    for key in [
        "scope",
        "description",
        "email",
        "inactive",
        "provenance",
        "labels",
        "deleteTime",
    ] {
        assert!(
            !object.contains_key(key),
            "default {key} written in {group}"
        );
    }

    let stored = get(&app, &id_of(&group)).await;
    assert_eq!(
        timestamp(&group, "createTime"),
        stored.create_time,
        "createTime is the stored instant in RFC 3339"
    );
    assert_same_group(&group, &stored);
}

async fn request_bodies_and_queries_accept_proto_and_json_field_names(app: TestApp) {
    let parent = create_named(&app, "parent").await;
    let other = create_named(&app, "other").await;

    // Proto names in the body and the query.
    let created = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?group_id=snake",
            Some(&json!({
                "name": "snake",
                "member_of": [{"group_id": parent.id}],
                "assigned_roles": [{"role_id": "roles/a"}],
            })),
        )
        .await,
    );
    assert_eq!(created["id"], "snake");
    let stored = get(&app, "snake").await;
    assert_eq!(stored.member_of, refs(&[&parent.id]));
    assert_eq!(stored.assigned_roles, roles(&["roles/a"]));

    // JSON names in the body and the query.
    let updated = http_update_ok(
        &app,
        Method::PATCH,
        "snake",
        "?updateMask=memberOf,assignedRoles",
        &json!({
            "memberOf": [{"groupId": other.id}],
            "assignedRoles": [{"roleId": "roles/b"}],
        }),
    )
    .await;
    assert_eq!(updated["memberOf"], json!([{"groupId": other.id}]));
    let stored = get(&app, "snake").await;
    assert_eq!(stored.member_of, refs(&[&other.id]));
    assert_eq!(stored.assigned_roles, roles(&["roles/b"]));

    // The proto name of the mask parameter, with camelCase paths (as
    // proto3 JSON writes a FieldMask) or proto-name paths (as grpc-gateway
    // takes a query mask).
    for (query, role) in [
        ("?update_mask=assignedRoles", "roles/c"),
        ("?update_mask=assigned_roles", "roles/d"),
        ("?updateMask=assigned_roles", "roles/e"),
    ] {
        http_update_ok(
            &app,
            Method::PATCH,
            "snake",
            query,
            &json!({"assigned_roles": [{"role_id": role}], "description": "ignored"}),
        )
        .await;
        let stored = get(&app, "snake").await;
        assert_eq!(stored.assigned_roles, roles(&[role]), "{query}");
        assert_eq!(stored.description, "", "outside the mask of {query}");
    }
}

async fn patch_with_a_label_key_in_the_update_mask_sets_only_that_label(app: TestApp) {
    let group = create(
        &app,
        with_labels(
            named("labelled"),
            &[("cost_center", "1"), ("x_1", "2"), ("team", "core")],
        ),
    )
    .await;

    // Label keys are data, not field names: `cost_center` and `x_1` (which
    // has no camelCase form at all) are named as they are.
    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        &format!(
            "?updateMask={}",
            query_value("labels.cost_center,labels.x_1")
        ),
        &json!({"labels": {"cost_center": "9", "team": "ignored"}}),
    )
    .await;

    assert_eq!(
        answer["labels"],
        json!({"cost_center": "9", "team": "core"}),
        "cost_center set, x_1 deleted (absent from the request), team kept"
    );
    let stored = get(&app, &group.id).await;
    assert_eq!(
        labels_of(&stored),
        label_map(&[("cost_center", "9"), ("team", "core")])
    );

    // ListGroupChanges writes the applied mask as JSON; a path without a
    // camelCase form is widened to `labels` rather than failing the reply.
    let page = http_ok(http_get(&app, &format!("{}/changes", group_path(&group.id))).await);
    let mask = page["changes"][1]["updateMask"]
        .as_str()
        .unwrap_or_else(|| panic!("no updateMask in {page}"));
    assert!(
        mask.split(',').all(|path| path.starts_with("labels")),
        "{mask}"
    );
}

async fn group_change_version_is_an_int64_string_and_its_mask_a_camel_case_string(app: TestApp) {
    let parent = create_named(&app, "parent").await;
    let group = create_named(&app, "child").await;

    http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "?updateMask=description,memberOf",
        &json!({"description": "d", "memberOf": [{"groupId": parent.id}]}),
    )
    .await;

    let page = http_ok(http_get(&app, &format!("{}/changes", group_path(&group.id))).await);
    let changes = page["changes"].as_array().expect("a list of changes");
    assert_eq!(changes.len(), 2, "{page}");
    assert_eq!(changes[0]["version"], "1", "int64 is a JSON string");
    assert_eq!(changes[0]["kind"], "CHANGE_KIND_CREATE");
    assert_eq!(changes[1]["version"], "2");
    assert_eq!(changes[1]["kind"], "CHANGE_KIND_UPDATE");
    assert_eq!(changes[1]["actor"], ANONYMOUS);
    assert_eq!(
        changes[1]["updateMask"], "description,memberOf",
        "a FieldMask is one comma-separated camelCase string"
    );
    assert_eq!(changes[1]["group"]["description"], "d");
    let history = crate::helpers::changes(&app, &group.id).await;
    assert_eq!(
        timestamp(&changes[1], "changeTime"),
        history[1].change_time,
        "changeTime is RFC 3339"
    );
    assert!(
        page.get("nextPageToken").is_none(),
        "an empty token is omitted: {page}"
    );
}

async fn unknown_fields_in_the_body_are_invalid_argument(app: TestApp) {
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "colourful", "colour": "red"})),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert!(
        reply.body["message"].as_str().unwrap().contains("colour"),
        "the message names the unknown field: {reply:#?}"
    );
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "nested", "members": [{"id": "a", "role": "x"}]})),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_eq!(group_count(&app).await, 0, "nothing was created");

    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"description": "x", "colour": "red"}),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::POST,
        &format!("{}:addMembers", group_path(&group.id)),
        Some(&json!({"members": [{"id": "zoe"}], "owners": [{"id": "zoe"}]})),
    )
    .await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_unchanged(&app, &before).await;
}

async fn unknown_query_parameters_are_invalid_argument(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let reply = http_get(&app, "/v1/groups?colour=red").await;
    assert_http_invalid(&reply, "colour");

    let reply = http_get(&app, &format!("{}?verbose=true", group_path(&group.id))).await;
    assert_http_invalid(&reply, "verbose");

    assert_query_refused(&app, &before, Method::PATCH, "?force=true", "force").await;
    assert_query_refused(&app, &before, Method::DELETE, "?hard=true", "hard").await;
}

async fn every_writable_field_round_trips_over_http_and_grpc(app: TestApp) {
    let parent = http_create(&app, json!({"name": "parent"})).await;

    let created = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?groupId=full",
            Some(&json!({
                "name": "full",
                "scope": "tenant-a",
                "description": "every field",
                "email": "full@example.com",
                "members": [{"id": "bob"}, {"id": "alice"}],
                "admins": [{"id": "alice"}],
                "memberOf": [{"groupId": id_of(&parent)}],
                "assignedRoles": [{"roleId": "roles/viewer"}, {"roleId": "roles/editor"}],
                "inactive": true,
                "provenance": "ldap",
                "labels": {"team": "core", "tier": "1"},
            })),
        )
        .await,
    );

    let over_http = http_group(&app, "full").await;
    let over_grpc = get(&app, "full").await;
    assert_same_group(&over_http, &over_grpc);
    assert_eq!(over_http, created, "GET answers what POST answered");

    assert_eq!(over_http["id"], "full");
    assert_eq!(over_http["name"], "full");
    assert_eq!(over_http["scope"], "tenant-a");
    assert_eq!(over_http["description"], "every field");
    assert_eq!(over_http["email"], "full@example.com");
    assert_eq!(
        over_http["members"],
        json!([{"id": "alice"}, {"id": "bob"}]),
        "members are returned sorted"
    );
    assert_eq!(over_http["admins"], json!([{"id": "alice"}]));
    assert_eq!(over_http["memberOf"], json!([{"groupId": id_of(&parent)}]));
    let roles_sent: BTreeSet<String> = list_of(&over_http, "assignedRoles", "roleId")
        .into_iter()
        .collect();
    assert_eq!(
        roles_sent,
        BTreeSet::from(["roles/editor".to_owned(), "roles/viewer".to_owned()])
    );
    assert_eq!(over_http["inactive"], true);
    assert_eq!(over_http["provenance"], "ldap");
    assert_eq!(over_http["labels"], json!({"team": "core", "tier": "1"}));
    assert_eq!(over_http["state"], "STATE_ACTIVE");
    assert_eq!(over_http["memberCount"], 2);
    assert_eq!(over_http["createdBy"], ANONYMOUS);
    assert_eq!(over_http["updatedBy"], ANONYMOUS);
    assert!(timestamp(&over_http, "createTime").is_some());
    assert!(timestamp(&over_http, "updateTime").is_some());
    assert_quoted_etag(text(&over_http, "etag"));
}

async fn http_and_grpc_reach_the_same_data(app: TestApp) {
    // HTTP write, gRPC read.
    let from_http = http_create(&app, json!({"name": "from-http", "description": "h"})).await;
    let read = get(&app, &id_of(&from_http)).await;
    assert_eq!(read.name, "from-http");
    assert_same_group(&from_http, &read);

    // gRPC write, HTTP read.
    let from_grpc = create(
        &app,
        pb::Group {
            name: "from-grpc".to_owned(),
            members: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;
    assert_same_group(&http_group(&app, &from_grpc.id).await, &from_grpc);

    // A gRPC update is seen over HTTP, and an HTTP update over gRPC.
    let updated = update(
        &app,
        pb::Group {
            description: "changed over gRPC".to_owned(),
            ..patch(&id_of(&from_http))
        },
        Some(&["description"]),
    )
    .await;
    assert_same_group(&http_group(&app, &updated.id).await, &updated);

    let patched = http_update_ok(
        &app,
        Method::PATCH,
        &from_grpc.id,
        "",
        &json!({"description": "changed over HTTP"}),
    )
    .await;
    let read = get(&app, &from_grpc.id).await;
    assert_eq!(read.description, "changed over HTTP");
    assert_same_group(&patched, &read);
}
