//! The HTTP/JSON gateway: every RPC served through its `google.api.http`
//! binding as canonical proto3 JSON, grpc-gateway's PATCH and PUT
//! semantics (SPEC §2 rule 3), `If-Match`/`ETag`, and errors as JSON
//! `google.rpc.Status` with the standard HTTP statuses (SPEC §3).
//!
//! Every rejected write is followed by a check that the group (and its
//! history) is unchanged: bad input changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use groupd::pb;
use reqwest::{Method, header};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

both_backends!(
    responses_are_canonical_proto3_json_in_lower_camel_case,
    request_bodies_and_queries_accept_proto_and_json_field_names,
    group_change_version_is_an_int64_string_and_its_mask_a_camel_case_string,
    unknown_fields_in_the_body_are_invalid_argument,
    unknown_query_parameters_are_invalid_argument,
    every_writable_field_round_trips_over_http_and_grpc,
    http_and_grpc_reach_the_same_data,
    create_honours_group_id_validate_only_and_request_id,
    get_with_the_basic_view_leaves_out_members_but_keeps_member_count,
    list_groups_pages_with_page_size_and_next_page_token,
    list_groups_accepts_filter_order_by_show_deleted_and_view,
    delete_and_undelete_over_http,
    add_list_and_remove_members_over_http,
    check_membership_over_http_answers_membership_direct_and_path,
    list_member_groups_over_http_lists_direct_or_transitive_groups_a_page_at_a_time,
    patch_without_mask_clears_zero_valued_keys,
    patch_without_mask_clears_null_valued_keys,
    patch_without_mask_clears_labels_with_an_empty_object,
    patch_without_mask_keeps_fields_absent_from_the_body,
    patch_with_update_mask_updates_only_the_masked_fields,
    patch_with_a_label_key_in_the_update_mask_sets_only_that_label,
    patch_with_a_bad_update_mask_path_is_400_and_changes_nothing,
    patch_ignores_output_only_fields_in_the_body,
    patch_with_allow_missing_creates_the_group,
    patch_with_validate_only_answers_the_would_be_group_and_writes_nothing,
    put_without_mask_replaces_the_whole_group,
    put_with_update_mask_behaves_as_masked,
    if_match_with_a_stale_etag_is_409_etag_mismatch,
    if_match_with_the_current_etag_succeeds,
    if_match_star_skips_the_etag_check,
    if_match_that_differs_from_the_etag_in_the_request_is_400,
    responses_carrying_a_group_have_an_etag_header_equal_to_the_body_etag,
    head_answers_as_get_with_the_etag_and_no_body,
    a_body_id_that_differs_from_the_path_id_is_400,
    a_body_id_equal_to_the_path_id_is_accepted,
    rpc_errors_map_to_http_statuses_with_google_rpc_status_bodies,
    an_unknown_path_is_404_route_not_found,
    a_known_path_with_a_wrong_method_is_405_with_allow,
    a_verb_path_with_a_wrong_method_is_405_not_a_call_on_an_id_holding_the_verb,
    a_query_value_that_does_not_decode_is_400_naming_the_parameter,
    malformed_json_is_400_malformed_json,
    a_text_plain_body_is_415_unsupported_media_type,
    if_match_on_a_method_without_an_etag_is_400_not_ignored,
    a_body_on_a_get_or_delete_is_400,
    a_json_array_body_is_400,
    a_non_boolean_value_for_a_boolean_query_parameter_is_400,
    a_negative_or_non_numeric_page_size_is_400,
    an_unknown_enum_name_in_the_query_is_400,
);

both_backends!(
    args ["--max-message-bytes", "2048"];
    a_body_over_the_limit_is_413_request_too_large,
);

// A database outage can only be staged on PostgreSQL.
postgres_only!(
    args ["--db-connect-timeout", "1s", "--db-health-interval", "200ms"];
    a_database_outage_is_503_unavailable_over_http,
);

// ---------------------------------------------------------------------------
// Local helpers.
// ---------------------------------------------------------------------------

/// A string field of a JSON message: `""` when absent. Canonical proto3
/// JSON omits default values, so a present string must not be empty.
#[track_caller]
fn text<'a>(json: &'a Value, key: &str) -> &'a str {
    match json.get(key) {
        None => "",
        Some(Value::String(value)) => {
            assert!(!value.is_empty(), "{key} is \"\" instead of omitted");
            value
        }
        Some(other) => panic!("{key} is {other}, not a string"),
    }
}

/// A repeated message field of a JSON message, as the values of `inner`
/// in each element: empty when absent, never present and empty.
#[track_caller]
fn list_of(json: &Value, key: &str, inner: &str) -> Vec<String> {
    match json.get(key) {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            assert!(!items.is_empty(), "{key} is [] instead of omitted");
            items
                .iter()
                .map(|item| {
                    item[inner]
                        .as_str()
                        .unwrap_or_else(|| panic!("{key} element {item} has no {inner}"))
                        .to_owned()
                })
                .collect()
        }
        Some(other) => panic!("{key} is {other}, not a list"),
    }
}

/// The member ids of a JSON group's `members` (or `admins`).
#[track_caller]
fn member_ids(json: &Value, key: &str) -> Vec<String> {
    list_of(json, key, "id")
}

/// The labels of a JSON group: empty when absent, never present and empty.
#[track_caller]
fn labels_json(json: &Value) -> BTreeMap<String, String> {
    match json.get("labels") {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => {
            assert!(!map.is_empty(), "labels is {{}} instead of omitted");
            map.iter()
                .map(|(key, value)| {
                    let value = value
                        .as_str()
                        .unwrap_or_else(|| panic!("label {key} is {value}, not a string"));
                    (key.clone(), value.to_owned())
                })
                .collect()
        }
        Some(other) => panic!("labels is {other}, not an object"),
    }
}

/// Asserts that a group read over HTTP is, field by field, the group read
/// over gRPC, and that the JSON omits exactly the default values.
#[track_caller]
fn assert_same_group(json: &Value, grpc: &pb::Group) {
    assert_eq!(text(json, "id"), grpc.id, "id");
    assert_eq!(text(json, "name"), grpc.name, "name");
    assert_eq!(text(json, "scope"), grpc.scope, "scope");
    assert_eq!(text(json, "description"), grpc.description, "description");
    assert_eq!(text(json, "email"), grpc.email, "email");
    assert_eq!(text(json, "state"), grpc.state().as_str_name(), "state");
    assert_eq!(member_ids(json, "members"), ids(&grpc.members), "members");
    assert_eq!(member_ids(json, "admins"), ids(&grpc.admins), "admins");
    assert_eq!(
        list_of(json, "memberOf", "groupId"),
        grpc.member_of
            .iter()
            .map(|r| r.group_id.clone())
            .collect::<Vec<_>>(),
        "memberOf"
    );
    assert_eq!(
        list_of(json, "assignedRoles", "roleId"),
        grpc.assigned_roles
            .iter()
            .map(|r| r.role_id.clone())
            .collect::<Vec<_>>(),
        "assignedRoles"
    );
    match json.get("inactive") {
        None => assert!(!grpc.inactive, "inactive omitted but true over gRPC"),
        Some(value) => {
            assert_eq!(value, &json!(true), "inactive is present only when true");
            assert!(grpc.inactive, "inactive");
        }
    }
    assert_eq!(text(json, "provenance"), grpc.provenance, "provenance");
    assert_eq!(labels_json(json), labels_of(grpc), "labels");
    assert_eq!(
        timestamp(json, "createTime"),
        grpc.create_time,
        "createTime"
    );
    assert_eq!(
        timestamp(json, "updateTime"),
        grpc.update_time,
        "updateTime"
    );
    assert_eq!(
        timestamp(json, "deleteTime"),
        grpc.delete_time,
        "deleteTime"
    );
    assert_eq!(text(json, "createdBy"), grpc.created_by, "createdBy");
    assert_eq!(text(json, "updatedBy"), grpc.updated_by, "updatedBy");
    match json.get("memberCount") {
        None => assert_eq!(grpc.member_count, 0, "memberCount omitted but not 0"),
        Some(count) => {
            assert_ne!(count, &json!(0), "memberCount 0 instead of omitted");
            assert_eq!(count, &json!(grpc.member_count), "memberCount");
        }
    }
    assert_eq!(text(json, "etag"), grpc.etag, "etag");
}

/// PATCH (or PUT) a group over HTTP with a JSON body.
async fn http_update(
    app: &TestApp,
    method: Method,
    id: &str,
    query: &str,
    body: &Value,
) -> HttpReply {
    http_call(
        app,
        method,
        &format!("{}{query}", group_path(id)),
        Some(body),
    )
    .await
}

/// The number of groups stored, deleted ones included.
async fn group_count(app: &TestApp) -> usize {
    list_all(
        app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .len()
}

// ---------------------------------------------------------------------------
// The JSON mapping.
// ---------------------------------------------------------------------------

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
    let updated = http_ok(
        http_update(
            &app,
            Method::PATCH,
            "snake",
            "?updateMask=memberOf,assignedRoles",
            &json!({
                "memberOf": [{"groupId": other.id}],
                "assignedRoles": [{"roleId": "roles/b"}],
            }),
        )
        .await,
    );
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
        http_ok(
            http_update(
                &app,
                Method::PATCH,
                "snake",
                query,
                &json!({"assigned_roles": [{"role_id": role}], "description": "ignored"}),
            )
            .await,
        );
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
    let answer = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            &format!(
                "?updateMask={}",
                query_value("labels.cost_center,labels.x_1")
            ),
            &json!({"labels": {"cost_center": "9", "team": "ignored"}}),
        )
        .await,
    );

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

    http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "?updateMask=description,memberOf",
            &json!({"description": "d", "memberOf": [{"groupId": parent.id}]}),
        )
        .await,
    );

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

    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "?force=true",
        &json!({"description": "forced"}),
    )
    .await;
    assert_http_invalid(&reply, "force");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::DELETE,
        &format!("{}?hard=true", group_path(&group.id)),
        None,
    )
    .await;
    assert_http_invalid(&reply, "hard");
    assert_unchanged(&app, &before).await;
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

    let patched = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &from_grpc.id,
            "",
            &json!({"description": "changed over HTTP"}),
        )
        .await,
    );
    let read = get(&app, &from_grpc.id).await;
    assert_eq!(read.description, "changed over HTTP");
    assert_same_group(&patched, &read);
}

// ---------------------------------------------------------------------------
// The bindings.
// ---------------------------------------------------------------------------

async fn create_honours_group_id_validate_only_and_request_id(app: TestApp) {
    let chosen = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?groupId=chosen-id",
            Some(&json!({"name": "chosen"})),
        )
        .await,
    );
    assert_eq!(chosen["id"], "chosen-id");
    assert_eq!(get(&app, "chosen-id").await.name, "chosen");

    let dry = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?validateOnly=true",
            Some(&json!({"name": "dry", "description": "would be"})),
        )
        .await,
    );
    assert_eq!(dry["name"], "dry");
    assert_eq!(dry["description"], "would be");
    assert_eq!(group_count(&app).await, 1, "validateOnly created nothing");

    let request_id = uuid::Uuid::new_v4().to_string();
    let path = format!("/v1/groups?requestId={request_id}");
    let first = http_ok(http_call(&app, Method::POST, &path, Some(&json!({"name": "once"}))).await);
    let retry = http_ok(http_call(&app, Method::POST, &path, Some(&json!({"name": "once"}))).await);
    assert_eq!(
        retry["id"], first["id"],
        "the retry returns the first group"
    );
    assert_eq!(group_count(&app).await, 2, "the retry created nothing");
}

async fn get_with_the_basic_view_leaves_out_members_but_keeps_member_count(app: TestApp) {
    let group = rich_group(&app).await;

    let full = http_group(&app, &group.id).await;
    assert_eq!(full["members"], json!([{"id": "alice"}, {"id": "bob"}]));
    assert_eq!(full["admins"], json!([{"id": "alice"}]));

    let basic = http_ok(
        http_get(
            &app,
            &format!("{}?view=GROUP_VIEW_BASIC", group_path(&group.id)),
        )
        .await,
    );
    assert!(basic.get("members").is_none(), "{basic}");
    assert!(basic.get("admins").is_none(), "{basic}");
    assert_eq!(basic["memberCount"], 2);
    assert_eq!(basic["description"], "before");

    let full = http_ok(
        http_get(
            &app,
            &format!("{}?view=GROUP_VIEW_FULL", group_path(&group.id)),
        )
        .await,
    );
    assert_eq!(full["members"], json!([{"id": "alice"}, {"id": "bob"}]));
}

async fn list_groups_pages_with_page_size_and_next_page_token(app: TestApp) {
    let mut created = BTreeSet::new();
    for name in ["one", "two", "three", "four", "five"] {
        created.insert(id_of(&http_create(&app, json!({ "name": name })).await));
    }

    let mut seen = Vec::new();
    let mut path = "/v1/groups?pageSize=2".to_owned();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "the page tokens never ended");
        let page = http_ok(http_get(&app, &path).await);
        let groups = page["groups"].as_array().expect("a list of groups");
        assert!(groups.len() <= 2, "a page of {} groups", groups.len());
        assert_eq!(page["totalSize"], 5, "totalSize on every page: {page}");
        seen.extend(groups.iter().map(id_of));
        match page.get("nextPageToken") {
            None => break,
            Some(token) => {
                let token = token.as_str().expect("a string token");
                assert!(!token.is_empty(), "an empty token is omitted");
                path = format!("/v1/groups?pageSize=2&pageToken={}", query_value(token));
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "every group exactly once: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), created);
}

async fn list_groups_accepts_filter_order_by_show_deleted_and_view(app: TestApp) {
    for name in ["alpha", "beta", "gamma"] {
        create(
            &app,
            pb::Group {
                name: name.to_owned(),
                members: members(&["alice"]),
                ..Default::default()
            },
        )
        .await;
    }
    let gamma = list_all(&app, pb::ListGroupsRequest::default())
        .await
        .into_iter()
        .find(|g| g.name == "gamma")
        .unwrap();
    delete(&app, &gamma.id).await;

    let names = |page: &Value| -> Vec<String> {
        page["groups"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| g["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let page = http_ok(
        http_get(
            &app,
            &format!("/v1/groups?orderBy={}", query_value("name desc")),
        )
        .await,
    );
    assert_eq!(names(&page), ["beta", "alpha"], "deleted groups are hidden");
    let first = &page["groups"][0];
    assert!(first.get("members").is_none(), "BASIC is the list default");
    assert_eq!(first["memberCount"], 1);

    let page = http_ok(http_get(&app, "/v1/groups?showDeleted=true&orderBy=name").await);
    assert_eq!(names(&page), ["alpha", "beta", "gamma"]);
    assert_eq!(page["groups"][2]["state"], "STATE_DELETED");
    assert!(timestamp(&page["groups"][2], "deleteTime").is_some());

    let filter = query_value(r#"name = "beta""#);
    let page = http_ok(http_get(&app, &format!("/v1/groups?filter={filter}")).await);
    assert_eq!(names(&page), ["beta"]);

    let page = http_ok(http_get(&app, "/v1/groups?view=GROUP_VIEW_FULL&orderBy=name").await);
    assert_eq!(page["groups"][0]["members"], json!([{"id": "alice"}]));

    let reply = http_get(
        &app,
        &format!("/v1/groups?filter={}", query_value("colour = 1")),
    )
    .await;
    assert_http_invalid(&reply, "filter");
}

async fn delete_and_undelete_over_http(app: TestApp) {
    let group = rich_group(&app).await;

    let deleted = http_ok(http_call(&app, Method::DELETE, &group_path(&group.id), None).await);
    assert_eq!(deleted["state"], "STATE_DELETED");
    assert!(timestamp(&deleted, "deleteTime").is_some());
    assert_same_group(&deleted, &get(&app, &group.id).await);

    let undeleted = http_ok(
        http_call(
            &app,
            Method::POST,
            &format!("{}:undelete", group_path(&group.id)),
            Some(&json!({})),
        )
        .await,
    );
    assert_eq!(undeleted["state"], "STATE_ACTIVE");
    assert!(undeleted.get("deleteTime").is_none(), "{undeleted}");
    assert_same_group(&undeleted, &get(&app, &group.id).await);

    // Undeleting a live group is ALREADY_EXISTS, even without a body.
    let before = snapshot(&app, &group.id).await;
    let reply =
        send(app.request(Method::POST, &format!("{}:undelete", group_path(&group.id)))).await;
    assert_http_error(&reply, 409, Code::AlreadyExists, "GROUP_NOT_DELETED");
    assert_unchanged(&app, &before).await;

    let reply = http_call(&app, Method::DELETE, "/v1/groups/no-such-group", None).await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    let reply = http_call(
        &app,
        Method::DELETE,
        "/v1/groups/no-such-group?allowMissing=true",
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "allowMissing: {reply:#?}");
    assert_eq!(group_count(&app).await, 2, "allowMissing created nothing");
}

async fn add_list_and_remove_members_over_http(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    let added = http_ok(
        http_call(
            &app,
            Method::POST,
            &format!("{}:addMembers", group_path(&group.id)),
            Some(&json!({"members": [{"id": "bob"}], "admins": [{"id": "carol"}]})),
        )
        .await,
    );
    assert_eq!(added["memberCount"], 3);
    assert!(added.get("members").is_none(), "answered in BASIC: {added}");
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["alice", "bob", "carol"]);
    assert_eq!(ids(&stored.admins), ["alice", "carol"]);

    let members_path = format!("{}/members", group_path(&group.id));
    let all = http_ok(http_get(&app, &members_path).await);
    assert_eq!(
        all,
        json!({"members": [{"id": "alice"}, {"id": "bob"}, {"id": "carol"}]})
    );
    let first = http_ok(http_get(&app, &format!("{members_path}?pageSize=2")).await);
    assert_eq!(first["members"], json!([{"id": "alice"}, {"id": "bob"}]));
    let token = first["nextPageToken"].as_str().expect("a next page");
    let second = http_ok(
        http_get(
            &app,
            &format!("{members_path}?pageSize=2&pageToken={}", query_value(token)),
        )
        .await,
    );
    assert_eq!(second, json!({"members": [{"id": "carol"}]}));

    let removed = http_ok(
        http_call(
            &app,
            Method::POST,
            &format!("{}:removeMembers", group_path(&group.id)),
            Some(&json!({"members": [{"id": "bob"}], "admins": [{"id": "carol"}]})),
        )
        .await,
    );
    assert_eq!(removed["memberCount"], 2);
    let stored = get(&app, &group.id).await;
    assert_eq!(ids(&stored.members), ["alice", "carol"]);
    assert_eq!(ids(&stored.admins), ["alice"]);
    assert_same_group(
        &removed,
        &pb::Group {
            members: Vec::new(),
            admins: Vec::new(),
            ..stored
        },
    );
}

/// Creates over HTTP a group named `name` with `parents` as its memberOf
/// and `principals` as its members; returns its id.
async fn http_nested(app: &TestApp, name: &str, parents: &[&str], principals: &[&str]) -> String {
    let member_of: Vec<Value> = parents.iter().map(|id| json!({"groupId": id})).collect();
    let members: Vec<Value> = principals.iter().map(|id| json!({"id": id})).collect();
    id_of(
        &http_create(
            app,
            json!({"name": name, "memberOf": member_of, "members": members}),
        )
        .await,
    )
}

async fn check_membership_over_http_answers_membership_direct_and_path(app: TestApp) {
    let top = http_nested(&app, "top", &[], &[]).await;
    let mid = http_nested(&app, "mid", &[&top], &[]).await;
    let leaf = http_nested(&app, "leaf", &[&mid], &["alice", "carol@example.com"]).await;
    let check = |id: &str, query: &str| format!("{}:checkMembership?{query}", group_path(id));
    // proto3 JSON leaves out false and empty fields.
    let flag = |body: &Value, key: &str| body.get(key).map(|v| v.as_bool().unwrap());

    let body = http_ok(http_get(&app, &check(&top, "memberId=alice")).await);
    assert_eq!(flag(&body, "isMember"), Some(true), "{body}");
    assert_ne!(flag(&body, "direct"), Some(true), "{body}");
    assert_eq!(body["path"], json!([leaf, mid, top]), "{body}");

    let body = http_ok(http_get(&app, &check(&leaf, "memberId=alice")).await);
    assert_eq!(flag(&body, "isMember"), Some(true), "{body}");
    assert_eq!(flag(&body, "direct"), Some(true), "{body}");
    assert_eq!(body["path"], json!([leaf]), "{body}");

    // A principal with an `@`, percent-encoded in the query.
    let query = format!("memberId={}", query_value("carol@example.com"));
    let body = http_ok(http_get(&app, &check(&mid, &query)).await);
    assert_eq!(body["path"], json!([leaf, mid]), "{body}");

    let body = http_ok(http_get(&app, &check(&top, "memberId=bob")).await);
    assert_ne!(flag(&body, "isMember"), Some(true), "{body}");
    assert!(
        body.get("path").is_none_or(|path| path == &json!([])),
        "{body}"
    );

    let reply = http_get(&app, &format!("{}:checkMembership", group_path(&top))).await;
    assert_http_invalid(&reply, "member_id");
    let reply = http_get(&app, &check(&top, "memberId=has%20space")).await;
    assert_http_invalid(&reply, "member_id");
    let reply = http_get(&app, &check("missing", "memberId=alice")).await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
}

async fn list_member_groups_over_http_lists_direct_or_transitive_groups_a_page_at_a_time(
    app: TestApp,
) {
    let top = http_nested(&app, "top", &[], &[]).await;
    let mid = http_nested(&app, "mid", &[&top], &[]).await;
    let leaf = http_nested(&app, "leaf", &[&mid], &["alice", "bob"]).await;
    let other = http_nested(&app, "other", &[], &["alice"]).await;
    let listed_ids = |body: &Value| -> Vec<String> {
        body["groups"]
            .as_array()
            .map(|groups| groups.iter().map(id_of).collect())
            .unwrap_or_default()
    };

    let direct = http_ok(http_get(&app, "/v1/members/alice/groups").await);
    let mut expected = vec![leaf.clone(), other.clone()];
    expected.sort();
    assert_eq!(listed_ids(&direct), expected, "{direct}");
    assert!(direct.get("nextPageToken").is_none(), "{direct}");
    for group in direct["groups"].as_array().unwrap() {
        assert!(group.get("members").is_none(), "BASIC view: {group}");
        assert!(group.get("admins").is_none(), "BASIC view: {group}");
    }
    let leaf_json = direct["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == json!(leaf))
        .unwrap();
    assert_eq!(leaf_json["memberCount"], json!(2), "{leaf_json}");
    assert_eq!(
        leaf_json["memberOf"],
        json!([{"groupId": mid}]),
        "{leaf_json}"
    );

    // Transitive, two at a time.
    let mut seen = Vec::new();
    let mut path = "/v1/members/alice/groups?transitive=true&pageSize=2".to_owned();
    for _ in 0..10 {
        let page = http_ok(http_get(&app, &path).await);
        let ids = listed_ids(&page);
        assert!(ids.len() <= 2, "{page}");
        seen.extend(ids);
        match page.get("nextPageToken").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => {
                path = format!(
                    "/v1/members/alice/groups?transitive=true&pageSize=2&pageToken={}",
                    query_value(token)
                );
            }
            _ => break,
        }
    }
    let mut expected = vec![leaf.clone(), mid.clone(), top.clone(), other.clone()];
    expected.sort();
    assert_eq!(seen, expected);

    // A principal with an `@` in the path; an unknown one has no groups.
    http_ok(
        http_call(
            &app,
            Method::POST,
            &format!("{}:addMembers", group_path(&top)),
            Some(&json!({"members": [{"id": "carol@example.com"}]})),
        )
        .await,
    );
    let body = http_ok(http_get(&app, "/v1/members/carol@example.com/groups").await);
    assert_eq!(listed_ids(&body), [top], "{body}");
    let body = http_ok(http_get(&app, "/v1/members/nobody/groups?transitive=true").await);
    assert!(listed_ids(&body).is_empty(), "{body}");

    let reply = http_get(&app, "/v1/members/alice/groups?pageSize=-1").await;
    assert_http_invalid(&reply, "page_size");
    let reply = http_get(&app, "/v1/members/alice/groups?pageToken=garbage").await;
    assert_http_invalid(&reply, "page_token");
    let reply = http_get(&app, "/v1/members/has%20space/groups").await;
    assert_http_invalid(&reply, "member_id");
}

// ---------------------------------------------------------------------------
// PATCH and PUT (SPEC §2 rule 3).
// ---------------------------------------------------------------------------

async fn patch_without_mask_clears_zero_valued_keys(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_ok(
        http_update(
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
        .await,
    );

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

    http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "",
            &json!({"description": null, "email": null, "memberOf": null}),
        )
        .await,
    );

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.description, "");
    assert_eq!(stored.email, "");
    assert!(stored.member_of.is_empty());
    assert_only_changed(&group, &stored, &["description", "email", "member_of"]);
}

async fn patch_without_mask_clears_labels_with_an_empty_object(app: TestApp) {
    let group = rich_group(&app).await;

    let answer =
        http_ok(http_update(&app, Method::PATCH, &group.id, "", &json!({"labels": {}})).await);

    assert!(answer.get("labels").is_none(), "{answer}");
    let stored = get(&app, &group.id).await;
    assert!(stored.labels.is_empty());
    assert_only_changed(&group, &stored, &["labels"]);
}

async fn patch_without_mask_keeps_fields_absent_from_the_body(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "",
            &json!({"provenance": "scim", "labels": {"c": "3"}}),
        )
        .await,
    );

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.provenance, "scim");
    assert_eq!(labels_of(&stored), label_map(&[("c", "3")]));
    assert_only_changed(&group, &stored, &["provenance", "labels"]);
    assert_same_group(&answer, &stored);
    assert_ne!(stored.etag, group.etag, "a write");
}

async fn patch_with_update_mask_updates_only_the_masked_fields(app: TestApp) {
    let group = rich_group(&app).await;

    let answer = http_ok(
        http_update(
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
        .await,
    );

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

    let answer = http_ok(
        http_update(
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
        .await,
    );

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

    let created = http_ok(
        http_update(
            &app,
            Method::PATCH,
            "fresh",
            "?allowMissing=true",
            &json!({"name": "fresh", "description": "new"}),
        )
        .await,
    );
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

    let answer = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "?validateOnly=true",
            &json!({"description": "dry run"}),
        )
        .await,
    );
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

    let answer = http_ok(
        http_update(
            &app,
            Method::PUT,
            &group.id,
            "",
            &json!({"name": "rich", "description": "only this"}),
        )
        .await,
    );

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

    http_ok(
        http_update(
            &app,
            Method::PUT,
            &group.id,
            "?updateMask=email",
            &json!({"name": "rich", "email": "after@example.com"}),
        )
        .await,
    );

    let stored = get(&app, &group.id).await;
    assert_eq!(stored.email, "after@example.com");
    assert_only_changed(&group, &stored, &["email"]);
}

// ---------------------------------------------------------------------------
// ETags.
// ---------------------------------------------------------------------------

async fn if_match_with_a_stale_etag_is_409_etag_mismatch(app: TestApp) {
    let group = rich_group(&app).await;
    let stale = group.etag.clone();
    update(
        &app,
        pb::Group {
            description: "moved on".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    for method in [Method::PATCH, Method::PUT] {
        let reply = send(
            app.request(method.clone(), &group_path(&group.id))
                .header(header::IF_MATCH, &stale)
                .json(&json!({"name": "rich", "description": "lost update"})),
        )
        .await;
        assert_http_error(&reply, 409, Code::Aborted, "ETAG_MISMATCH");
        assert_unchanged(&app, &before).await;
    }

    let reply = send(
        app.request(Method::DELETE, &group_path(&group.id))
            .header(header::IF_MATCH, &stale),
    )
    .await;
    assert_http_error(&reply, 409, Code::Aborted, "ETAG_MISMATCH");
    assert_unchanged(&app, &before).await;

    let deleted = delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;
    let reply = send(
        app.request(Method::POST, &format!("{}:undelete", group_path(&group.id)))
            .header(header::IF_MATCH, &stale)
            .json(&json!({})),
    )
    .await;
    assert_http_error(&reply, 409, Code::Aborted, "ETAG_MISMATCH");
    assert_unchanged(&app, &before).await;
    assert_eq!(before.group.etag, deleted.etag);
}

async fn if_match_with_the_current_etag_succeeds(app: TestApp) {
    let group = rich_group(&app).await;

    let patched = send(
        app.request(Method::PATCH, &group_path(&group.id))
            .header(header::IF_MATCH, &group.etag)
            .json(&json!({"description": "checked"})),
    )
    .await;
    let patched = http_ok(patched);
    assert_eq!(patched["description"], "checked");
    assert_ne!(text(&patched, "etag"), group.etag);

    let put = http_ok(
        send(
            app.request(Method::PUT, &group_path(&group.id))
                .header(header::IF_MATCH, text(&patched, "etag"))
                .json(&json!({"name": "rich", "description": "replaced"})),
        )
        .await,
    );
    assert_eq!(put["description"], "replaced");

    let deleted = http_ok(
        send(
            app.request(Method::DELETE, &group_path(&group.id))
                .header(header::IF_MATCH, text(&put, "etag")),
        )
        .await,
    );
    assert_eq!(deleted["state"], "STATE_DELETED");

    let undeleted = http_ok(
        send(
            app.request(Method::POST, &format!("{}:undelete", group_path(&group.id)))
                .header(header::IF_MATCH, text(&deleted, "etag"))
                .json(&json!({})),
        )
        .await,
    );
    assert_eq!(undeleted["state"], "STATE_ACTIVE");
    assert_same_group(&undeleted, &get(&app, &group.id).await);
}

async fn if_match_star_skips_the_etag_check(app: TestApp) {
    let group = rich_group(&app).await;
    update(
        &app,
        pb::Group {
            description: "moved on".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;

    let patched = http_ok(
        send(
            app.request(Method::PATCH, &group_path(&group.id))
                .header(header::IF_MATCH, "*")
                .json(&json!({"description": "unconditional"})),
        )
        .await,
    );
    assert_eq!(patched["description"], "unconditional");

    let deleted = http_ok(
        send(
            app.request(Method::DELETE, &group_path(&group.id))
                .header(header::IF_MATCH, "*"),
        )
        .await,
    );
    assert_eq!(deleted["state"], "STATE_DELETED");
}

async fn if_match_that_differs_from_the_etag_in_the_request_is_400(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let reply = send(
        app.request(Method::PATCH, &group_path(&group.id))
            .header(header::IF_MATCH, "\"something-else\"")
            .json(&json!({"description": "x", "etag": group.etag})),
    )
    .await;
    assert_http_invalid(&reply, "group.etag");
    assert_unchanged(&app, &before).await;

    let reply = send(
        app.request(
            Method::DELETE,
            &format!(
                "{}?etag={}",
                group_path(&group.id),
                query_value(&group.etag)
            ),
        )
        .header(header::IF_MATCH, "\"something-else\""),
    )
    .await;
    assert_http_invalid(&reply, "etag");
    assert_unchanged(&app, &before).await;

    // The same etag in both places is no conflict.
    let patched = http_ok(
        send(
            app.request(Method::PATCH, &group_path(&group.id))
                .header(header::IF_MATCH, &group.etag)
                .json(&json!({"description": "agreed", "etag": group.etag})),
        )
        .await,
    );
    assert_eq!(patched["description"], "agreed");
}

async fn responses_carrying_a_group_have_an_etag_header_equal_to_the_body_etag(app: TestApp) {
    #[track_caller]
    fn etag_of(reply: HttpReply) -> Value {
        let header = reply.header("etag").map(str::to_owned);
        let body = http_ok(reply);
        assert_eq!(
            header.as_deref(),
            Some(text(&body, "etag")),
            "ETag header and body etag of {body}"
        );
        body
    }

    let created = etag_of(
        http_call(
            &app,
            Method::POST,
            "/v1/groups",
            Some(&json!({"name": "tagged"})),
        )
        .await,
    );
    let id = id_of(&created);
    etag_of(http_get(&app, &group_path(&id)).await);
    etag_of(http_update(&app, Method::PATCH, &id, "", &json!({"description": "p"})).await);
    etag_of(http_update(&app, Method::PUT, &id, "", &json!({"name": "tagged"})).await);
    etag_of(
        http_call(
            &app,
            Method::POST,
            &format!("{}:addMembers", group_path(&id)),
            Some(&json!({"members": [{"id": "alice"}]})),
        )
        .await,
    );
    etag_of(
        http_call(
            &app,
            Method::POST,
            &format!("{}:removeMembers", group_path(&id)),
            Some(&json!({"members": [{"id": "alice"}]})),
        )
        .await,
    );
    etag_of(http_call(&app, Method::DELETE, &group_path(&id), None).await);
    let last = etag_of(
        http_call(
            &app,
            Method::POST,
            &format!("{}:undelete", group_path(&id)),
            Some(&json!({})),
        )
        .await,
    );
    assert_eq!(text(&last, "etag"), get(&app, &id).await.etag);

    let list = http_get(&app, "/v1/groups").await;
    assert!(
        list.header("etag").is_none(),
        "a list has no ETag: {list:#?}"
    );
}

async fn head_answers_as_get_with_the_etag_and_no_body(app: TestApp) {
    let group = rich_group(&app).await;

    let reply = send(app.request(Method::HEAD, &group_path(&group.id))).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.header("etag"), Some(group.etag.as_str()));
    assert_eq!(reply.body, Value::Null, "HEAD has no body");

    let reply = send(app.request(Method::HEAD, "/v1/groups/no-such-group")).await;
    assert_eq!(reply.status, 404, "{reply:#?}");
    assert_eq!(reply.body, Value::Null, "HEAD has no body");
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

    let answer = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "",
            &json!({"id": group.id, "description": "same id"}),
        )
        .await,
    );

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

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

async fn rpc_errors_map_to_http_statuses_with_google_rpc_status_bodies(app: TestApp) {
    // INVALID_ARGUMENT: 400 with a BadRequest naming the field.
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "two words"})),
    )
    .await;
    assert_http_invalid(&reply, "group.name");
    assert_eq!(group_count(&app).await, 0);

    // NOT_FOUND: 404, the id in the ErrorInfo metadata.
    let reply = http_get(&app, "/v1/groups/no-such-group").await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    let info = reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .unwrap();
    assert_eq!(info["metadata"]["id"], "no-such-group");

    // ALREADY_EXISTS: 409.
    let taken = http_create(&app, json!({"name": "taken"})).await;
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "TAKEN"})),
    )
    .await;
    assert_http_error(&reply, 409, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    assert_eq!(group_count(&app).await, 1);

    // ABORTED: 409.
    let before = snapshot(&app, &id_of(&taken)).await;
    let reply = http_update(
        &app,
        Method::PATCH,
        &id_of(&taken),
        "",
        &json!({"description": "x", "etag": "\"stale\""}),
    )
    .await;
    assert_http_error(&reply, 409, Code::Aborted, "ETAG_MISMATCH");
    assert_unchanged(&app, &before).await;

    // FAILED_PRECONDITION: 400.
    let child = create(
        &app,
        pb::Group {
            name: "child".to_owned(),
            member_of: refs(&[&before.group.id]),
            ..Default::default()
        },
    )
    .await;
    let reply = http_update(
        &app,
        Method::PATCH,
        &before.group.id,
        "",
        &json!({"memberOf": [{"groupId": child.id}]}),
    )
    .await;
    assert_http_error(&reply, 400, Code::FailedPrecondition, "MEMBER_OF_CYCLE");
    assert_unchanged(&app, &before).await;
}

async fn an_unknown_path_is_404_route_not_found(app: TestApp) {
    for path in [
        "/v2/groups",
        "/",
        "/v1/groups/a/b",
        "/v1/group",
        "/v1/groups/",
    ] {
        let reply = http_get(&app, path).await;
        assert_http_error(&reply, 404, Code::NotFound, "ROUTE_NOT_FOUND");
    }
    let reply = http_call(&app, Method::POST, "/v1/teams", Some(&json!({"name": "x"}))).await;
    assert_http_error(&reply, 404, Code::NotFound, "ROUTE_NOT_FOUND");
    assert_eq!(group_count(&app).await, 0);
}

async fn a_known_path_with_a_wrong_method_is_405_with_allow(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let cases = [
        (Method::DELETE, "/v1/groups".to_owned(), "GET, POST"),
        (
            Method::POST,
            group_path(&group.id),
            "DELETE, GET, PATCH, PUT",
        ),
        (
            Method::DELETE,
            format!("{}/members", group_path(&group.id)),
            "GET",
        ),
    ];
    for (method, path, allow) in cases {
        let reply = http_call(&app, method.clone(), &path, None).await;
        assert_http_error(&reply, 405, Code::Unimplemented, "METHOD_NOT_ALLOWED");
        assert_eq!(
            reply.header("allow"),
            Some(allow),
            "Allow of {method} {path}"
        );
    }
    assert_unchanged(&app, &before).await;
}

async fn a_verb_path_with_a_wrong_method_is_405_not_a_call_on_an_id_holding_the_verb(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    // Group ids never hold ':', so `/v1/groups/{id}:undelete` is the
    // undelete verb's path whatever the method: GET and DELETE on it must
    // not be GetGroup or DeleteGroup of a group named "<id>:undelete".
    for (method, verb, allow) in [
        (Method::GET, "undelete", "POST"),
        (Method::DELETE, "undelete", "POST"),
        (Method::GET, "addMembers", "POST"),
        (Method::POST, "checkMembership", "GET"),
    ] {
        let path = format!("{}:{verb}", group_path(&group.id));
        let reply = http_call(&app, method.clone(), &path, None).await;
        assert_http_error(&reply, 405, Code::Unimplemented, "METHOD_NOT_ALLOWED");
        assert_eq!(
            reply.header("allow"),
            Some(allow),
            "Allow of {method} {path}"
        );
    }
    assert_unchanged(&app, &before).await;
}

async fn a_query_value_that_does_not_decode_is_400_naming_the_parameter(app: TestApp) {
    let group = create_named(&app, "listed").await;

    // Each value is well-formed text that is not a value of its field: the
    // violation must name the query parameter, not the body (GET methods
    // have none).
    let cases = [
        ("/v1/groups?pageSize=two".to_owned(), "page"),
        ("/v1/groups?view=GROUP_VIEW_HUGE".to_owned(), "view"),
        (
            format!("{}/members?pageSize=1.5", group_path(&group.id)),
            "page",
        ),
    ];
    for (path, parameter) in cases {
        let reply = http_get(&app, &path).await;
        assert_http_invalid(&reply, parameter);
    }
}

async fn malformed_json_is_400_malformed_json(app: TestApp) {
    let reply = send(
        app.request(Method::POST, "/v1/groups")
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"name": "#),
    )
    .await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "MALFORMED_JSON");
    assert_eq!(group_count(&app).await, 0);

    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    for body in [
        r#"{"description": "x",}"#,
        "{'description': 'x'}",
        "nonsense",
    ] {
        let reply = send(
            app.request(Method::PATCH, &group_path(&group.id))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await;
        assert_http_error(&reply, 400, Code::InvalidArgument, "MALFORMED_JSON");
        assert_unchanged(&app, &before).await;
    }

    // Well-formed JSON of the wrong type is INVALID_ARGUMENT, not malformed.
    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"inactive": "yes", "members": "alice"}),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_unchanged(&app, &before).await;
}

async fn a_text_plain_body_is_415_unsupported_media_type(app: TestApp) {
    let reply = send(
        app.request(Method::POST, "/v1/groups")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(r#"{"name": "plain"}"#),
    )
    .await;
    assert_http_error(&reply, 415, Code::InvalidArgument, "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(group_count(&app).await, 0);

    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let reply = send(
        app.request(Method::PATCH, &group_path(&group.id))
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(r#"{"description": "plain"}"#),
    )
    .await;
    assert_http_error(&reply, 415, Code::InvalidArgument, "UNSUPPORTED_MEDIA_TYPE");
    assert_unchanged(&app, &before).await;

    // A JSON content type with parameters is JSON.
    let answer = http_ok(
        send(
            app.request(Method::PATCH, &group_path(&group.id))
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(r#"{"description": "json"}"#),
        )
        .await,
    );
    assert_eq!(answer["description"], "json");

    // A body without any Content-Type is read as JSON.
    let answer = http_ok(
        send(
            app.request(Method::PATCH, &group_path(&group.id))
                .body(r#"{"description": "undeclared"}"#),
        )
        .await,
    );
    assert_eq!(answer["description"], "undeclared");
}

async fn if_match_on_a_method_without_an_etag_is_400_not_ignored(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let reply = send(
        app.request(
            Method::POST,
            &format!("{}:addMembers", group_path(&group.id)),
        )
        .header(header::IF_MATCH, "\"stale\"")
        .json(&json!({"members": [{"id": "mallory"}]})),
    )
    .await;
    assert_http_invalid(&reply, "If-Match");
    assert_unchanged(&app, &before).await;

    let reply = send(
        app.request(Method::POST, "/v1/groups")
            .header(header::IF_MATCH, "\"anything\"")
            .json(&json!({"name": "conditional"})),
    )
    .await;
    assert_http_invalid(&reply, "If-Match");
    let listed = http_ok(http_get(&app, "/v1/groups?filter=name%3D%22conditional%22").await);
    assert!(listed.get("groups").is_none(), "{listed}");
}

async fn a_body_over_the_limit_is_413_request_too_large(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let big = "x".repeat(3000);

    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"description": big}),
    )
    .await;
    assert_http_error(&reply, 413, Code::ResourceExhausted, "REQUEST_TOO_LARGE");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "big", "description": big})),
    )
    .await;
    assert_http_error(&reply, 413, Code::ResourceExhausted, "REQUEST_TOO_LARGE");
    assert_eq!(group_count(&app).await, 2, "only parent and rich");

    // A body under the limit is served.
    let small = "y".repeat(1000);
    let answer = http_ok(
        http_update(
            &app,
            Method::PATCH,
            &group.id,
            "",
            &json!({"description": small}),
        )
        .await,
    );
    assert_eq!(answer["description"], json!(small));
}

async fn a_body_on_a_get_or_delete_is_400(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let reply = http_call(&app, Method::GET, &group_path(&group.id), Some(&json!({}))).await;
    assert_http_invalid(&reply, "body");
    let reply = http_call(
        &app,
        Method::GET,
        "/v1/groups",
        Some(&json!({"pageSize": 1})),
    )
    .await;
    assert_http_invalid(&reply, "body");

    let reply = http_call(
        &app,
        Method::DELETE,
        &group_path(&group.id),
        Some(&json!({"etag": group.etag})),
    )
    .await;
    assert_http_invalid(&reply, "body");
    assert_unchanged(&app, &before).await;
}

async fn a_json_array_body_is_400(app: TestApp) {
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!([{"name": "listed"}])),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_eq!(group_count(&app).await, 0);

    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let reply = http_update(&app, Method::PATCH, &group.id, "", &json!([])).await;
    assert_http_invalid(&reply, "group");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::POST,
        &format!("{}:addMembers", group_path(&group.id)),
        Some(&json!([{"id": "zoe"}])),
    )
    .await;
    assert_http_invalid(&reply, "body");
    assert_unchanged(&app, &before).await;
}

async fn a_non_boolean_value_for_a_boolean_query_parameter_is_400(app: TestApp) {
    let reply = http_get(&app, "/v1/groups?showDeleted=maybe").await;
    assert_http_invalid(&reply, "showDeleted");
    // grpc-gateway's spellings of true and false are accepted.
    for spelling in ["1", "TRUE", "True", "t", "0", "FALSE", "f"] {
        http_ok(http_get(&app, &format!("/v1/groups?showDeleted={spelling}")).await);
    }

    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let reply = http_update(
        &app,
        Method::PATCH,
        &group.id,
        "?validateOnly=perhaps",
        &json!({"description": "x"}),
    )
    .await;
    assert_http_invalid(&reply, "validateOnly");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::DELETE,
        &format!("{}?allowMissing=sure", group_path(&group.id)),
        None,
    )
    .await;
    assert_http_invalid(&reply, "allowMissing");
    assert_unchanged(&app, &before).await;
}

async fn a_negative_or_non_numeric_page_size_is_400(app: TestApp) {
    let group = rich_group(&app).await;

    for path in [
        "/v1/groups?pageSize=-1".to_owned(),
        format!("{}/members?pageSize=-1", group_path(&group.id)),
        format!("{}/changes?pageSize=-1", group_path(&group.id)),
    ] {
        let reply = http_get(&app, &path).await;
        assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    }
    for path in ["/v1/groups?pageSize=two", "/v1/groups?pageSize=99999999999"] {
        let reply = http_get(&app, path).await;
        assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    }
}

async fn an_unknown_enum_name_in_the_query_is_400(app: TestApp) {
    let group = rich_group(&app).await;

    let reply = http_get(
        &app,
        &format!("{}?view=GROUP_VIEW_HUGE", group_path(&group.id)),
    )
    .await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    let reply = http_get(&app, "/v1/groups?view=everything").await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
}

async fn a_database_outage_is_503_unavailable_over_http(app: TestApp) {
    let group = http_create(&app, json!({"name": "durable"})).await;
    let id = id_of(&group);

    app.set_postgres_reachable(false).await;

    let reply = http_get(&app, &group_path(&id)).await;
    assert_http_error(&reply, 503, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "during"})),
    )
    .await;
    assert_http_error(&reply, 503, Code::Unavailable, "DATABASE_UNAVAILABLE");

    app.set_postgres_reachable(true).await;
    wait_until_serving(&app).await;

    assert_eq!(http_group(&app, &id).await, group, "the data survived");
}

/// Waits (bounded against hangs) until health reports the GroupService
/// SERVING again, as the server reconnects to the database.
async fn wait_until_serving(app: &TestApp) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "groups.v1.GroupService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match watch.message().await {
                Ok(Some(update)) if update.status() == ServingStatus::Serving => return,
                Ok(Some(_)) => {}
                other => panic!("the health Watch ended before SERVING: {other:?}"),
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "health never reported SERVING again");
}
