//! Errors: RPC errors as HTTP statuses with `google.rpc.Status` bodies,
//! and the gateway's own refusals (unknown routes and methods, bodies and
//! query values it cannot read, a body over the limit) and a database
//! outage.

use groupd::pb;
use reqwest::{Method, header};
use serde_json::json;
use tonic::Code;

use super::{assert_query_refused, http_update, http_update_ok};
use crate::helpers::*;

both_backends!(
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

// The smallest message limit the reply bounds allow with a small
// per-request limit: every reply groupd can give must still fit it.
both_backends!(
    args ["--max-message-bytes", "600000", "--max-members-per-request", "100"];
    a_body_over_the_limit_is_413_request_too_large,
);

// A database outage can only be staged on PostgreSQL.
postgres_only!(
    args ["--db-connect-timeout", "1s", "--db-health-interval", "200ms"];
    a_database_outage_is_503_unavailable_over_http,
);

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
        assert_method_not_allowed(&app, method, &path, allow).await;
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
        assert_method_not_allowed(&app, method, &path, allow).await;
    }
    assert_unchanged(&app, &before).await;
}

/// Asserts that `method path` is 405 METHOD_NOT_ALLOWED, with the methods
/// the path does take in `Allow`.
async fn assert_method_not_allowed(app: &TestApp, method: Method, path: &str, allow: &str) {
    let reply = http_call(app, method.clone(), path, None).await;
    assert_http_error(&reply, 405, Code::Unimplemented, "METHOD_NOT_ALLOWED");
    assert_eq!(
        reply.header("allow"),
        Some(allow),
        "Allow of {method} {path}"
    );
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
    let big = "x".repeat(700_000);

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
    let answer = http_update_ok(
        &app,
        Method::PATCH,
        &group.id,
        "",
        &json!({"description": small}),
    )
    .await;
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
    let query = "?validateOnly=perhaps";
    assert_query_refused(&app, &before, Method::PATCH, query, "validateOnly").await;
    let query = "?allowMissing=sure";
    assert_query_refused(&app, &before, Method::DELETE, query, "allowMissing").await;
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
