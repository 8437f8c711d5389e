//! The HTTP/JSON gateway: every RPC served through its `google.api.http`
//! binding as canonical proto3 JSON, grpc-gateway's PATCH and PUT
//! semantics, `If-Match`/`ETag`, and errors as JSON `google.rpc.Status`
//! with the standard HTTP statuses; the change stream read live (`watch`).
//! One file per theme; the JSON readers and assertions they share are
//! here.
//!
//! Every rejected write is followed by a check that the group (and its
//! history) is unchanged: bad input changes nothing.

mod bindings;
mod errors;
mod etags;
mod json;
mod patch_put;
pub(crate) mod watch;

use std::collections::BTreeMap;

use groupd::pb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

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

/// PATCH (or PUT) a group over HTTP with a JSON body, asserting 200; the
/// group answered.
async fn http_update_ok(
    app: &TestApp,
    method: Method,
    id: &str,
    query: &str,
    body: &Value,
) -> Value {
    http_ok(http_update(app, method, id, query, body).await)
}

/// Sends a PATCH (with a description to write) or a DELETE to the group of
/// `before` with `query`, and asserts that it is refused 400 with a
/// violation on `parameter` and changed nothing.
async fn assert_query_refused(
    app: &TestApp,
    before: &Snapshot,
    method: Method,
    query: &str,
    parameter: &str,
) {
    let path = format!("{}{query}", group_path(&before.group.id));
    let body = json!({"description": "refused"});
    let body = (method == Method::PATCH).then_some(&body);
    let reply = http_call(app, method, &path, body).await;
    assert_http_invalid(&reply, parameter);
    assert_unchanged(app, before).await;
}
