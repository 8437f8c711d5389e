//! The HTTP port's operational endpoints: `/metrics` counts calls over both
//! transports, and `/openapi.json` serves the document `groupd openapi`
//! prints.

use groupd::pb;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    metrics_count_grpc_and_http_calls_by_method_and_code,
    metrics_count_the_statements_each_call_sends,
    the_served_openapi_document_is_the_generated_one,
);

async fn metrics_count_grpc_and_http_calls_by_method_and_code(app: TestApp) {
    // Two gRPC calls: one that works, one that fails.
    let created = create_named(&app, "counted").await;
    assert_eq!(
        try_get(&app, "missing").await.unwrap_err().code(),
        Code::NotFound
    );
    // Four HTTP requests: one that works, one the RPC refuses, one the
    // gateway refuses before any RPC runs, and one no route matches.
    let ok = app
        .http
        .get(app.url(&format!("/v1/groups/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let missing = app
        .http
        .get(app.url("/v1/groups/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let malformed = app
        .http
        .post(app.url("/v1/groups"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let unrouted = app.http.get(app.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(unrouted.status(), 404);

    let page = metrics_page(&app).await;
    let count = |transport: &str, method: &str, code: &str| {
        sample(
            &page,
            &format!(
                "groupd_requests_total{{transport=\"{transport}\",method=\"{method}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(count("grpc", "CreateGroup", "OK"), Some(1.0), "{page}");
    assert_eq!(count("grpc", "GetGroup", "NOT_FOUND"), Some(1.0), "{page}");
    assert_eq!(count("http", "GetGroup", "OK"), Some(1.0), "{page}");
    assert_eq!(count("http", "GetGroup", "NOT_FOUND"), Some(1.0), "{page}");
    assert_eq!(
        count("http", "CreateGroup", "INVALID_ARGUMENT"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(count("http", "unmatched", "NOT_FOUND"), Some(1.0), "{page}");
    // Over HTTP the call is counted once, under http, not also under grpc.
    assert_eq!(count("grpc", "GetGroup", "OK"), None, "{page}");
    // Latency histograms, per transport and method.
    let histogram_count = |transport: &str, method: &str| {
        sample(
            &page,
            &format!(
                "groupd_request_duration_seconds_count{{transport=\"{transport}\",method=\"{method}\"}}"
            ),
        )
    };
    assert_eq!(histogram_count("grpc", "GetGroup"), Some(1.0), "{page}");
    assert_eq!(histogram_count("http", "GetGroup"), Some(2.0), "{page}");
    assert!(page.trim_end().ends_with("# EOF"));
}

async fn the_served_openapi_document_is_the_generated_one(app: TestApp) {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(served, groupd::http::openapi::contract_document().unwrap());
    assert_eq!(served["openapi"], json!("3.0.3"));
    assert!(served["paths"]["/v1/groups/{id}"]["patch"].is_object());
}

async fn metrics_count_the_statements_each_call_sends(app: TestApp) {
    let statements = |page: &str, method: &str| {
        sample(
            page,
            &format!("groupd_database_statements_total{{method=\"{method}\"}}"),
        )
        .unwrap_or(0.0)
    };
    // The statements `method` sent between the pages `before` and `after`.
    let sent = |after: &str, before: &str, method: &str| {
        statements(after, method) - statements(before, method)
    };
    // A count that differs between the backends.
    let on_backend = |postgres: f64, sqlite: f64| {
        if app.database_url().starts_with("postgres") {
            postgres
        } else {
            sqlite
        }
    };
    let parent = create_named(&app, "counted-parent").await;
    let mut child = create_named(&app, "counted-child").await;
    child.member_of = refs(&[&parent.id]);
    try_update(&app, child.clone(), Some(&["member_of"]))
        .await
        .unwrap();
    let before = metrics_page(&app).await;

    // The BASIC view is one statement: the group, its parents and the
    // caller's standing, outside any transaction; a missing group too.
    let got = try_get_view(&app, &child.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert_eq!(got.member_of, refs(&[&parent.id]));
    let after_basic = metrics_page(&app).await;
    assert_eq!(
        sent(&after_basic, &before, "GetGroup"),
        1.0,
        "{after_basic}"
    );
    assert_eq!(
        try_get_view(&app, "counted-missing", pb::GroupView::Basic)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let after_missing = metrics_page(&app).await;
    assert_eq!(
        sent(&after_missing, &after_basic, "GetGroup"),
        1.0,
        "{after_missing}"
    );

    // The FULL view reads the members in the same snapshot: a transaction
    // (its BEGIN and its end are counted too) around more than one read.
    let full = try_get_view(&app, &child.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(full.member_of, refs(&[&parent.id]));
    let after_full = metrics_page(&app).await;
    assert!(
        sent(&after_full, &after_missing, "GetGroup") >= 3.0,
        "{after_full}"
    );
    // Each method's statements are counted under its own name.
    assert!(statements(&after_full, "UpdateGroup") > 0.0, "{after_full}");
    assert_eq!(
        sent(&after_full, &before, "UpdateGroup"),
        0.0,
        "{after_full}"
    );

    let mut described = full.clone();
    described.description = "counted".to_owned();
    let updated = try_update(&app, described, Some(&["description"]))
        .await
        .unwrap();
    assert_eq!(updated.description, "counted");
    assert_eq!(updated.member_count, 0);
    let after_update = metrics_page(&app).await;
    // A one-field update of a group without members: the group read, then
    // its history entry, change-feed row and row update in one statement.
    // On SQLite the read is outside the transaction and the statement is
    // a guarded write, run with the others that arrive together in the
    // group's transaction (whose BEGIN, savepoints and COMMIT are the
    // group's); on PostgreSQL the read follows its row lock, between its
    // own BEGIN and COMMIT.
    assert_eq!(
        sent(&after_update, &after_full, "UpdateGroup"),
        on_backend(5.0, 2.0),
        "{after_update}"
    );

    let listed = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 50,
            ..Default::default()
        },
    )
    .await;
    let listed_child = listed.groups.iter().find(|g| g.id == child.id).unwrap();
    assert_eq!(listed_child.member_of, refs(&[&parent.id]));
    let after_list = metrics_page(&app).await;
    // A page: its read transaction (BEGIN, the `SET TRANSACTION` of a
    // PostgreSQL read, COMMIT), the page's groups with their parents in
    // one statement, the count of the matches, and the change feed's
    // position for the listing's cursor.
    assert_eq!(
        sent(&after_list, &after_update, "ListGroups"),
        on_backend(6.0, 5.0),
        "{after_list}"
    );
    let added = add(&app, &child.id, &["counted-member"], &[]).await;
    assert_eq!(added.member_count, 1);
    let after_add = metrics_page(&app).await;
    // One new member: the group read (after its row lock on PostgreSQL),
    // the principal's member row looked up, then its insert with the
    // history entry, change-feed row and row update in one statement; on
    // SQLite the savepoint's release, on PostgreSQL BEGIN and COMMIT.
    assert_eq!(
        sent(&after_add, &after_list, "AddGroupMembers"),
        on_backend(6.0, 4.0),
        "{after_add}"
    );
}
