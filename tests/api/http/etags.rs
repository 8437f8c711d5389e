//! ETags: `If-Match` (stale, current, `*`, disagreeing with the body's
//! etag), the `ETag` header of every answer that carries a group, and HEAD.

use groupd::pb;
use reqwest::{Method, header};
use serde_json::{Value, json};
use tonic::Code;

use super::{assert_same_group, http_update, text};
use crate::helpers::*;

both_backends!(
    if_match_with_a_stale_etag_is_409_etag_mismatch,
    if_match_with_the_current_etag_succeeds,
    if_match_star_skips_the_etag_check,
    if_match_that_differs_from_the_etag_in_the_request_is_400,
    responses_carrying_a_group_have_an_etag_header_equal_to_the_body_etag,
    head_answers_as_get_with_the_etag_and_no_body,
);

/// A rich group as created, and then updated over gRPC: the etag it
/// carries is stale.
async fn group_with_a_stale_etag(app: &TestApp) -> pb::Group {
    let group = rich_group(app).await;
    set_description(app, &group.id, "moved on").await;
    group
}

async fn if_match_with_a_stale_etag_is_409_etag_mismatch(app: TestApp) {
    let group = group_with_a_stale_etag(&app).await;
    let stale = group.etag.clone();
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
    let group = group_with_a_stale_etag(&app).await;

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
