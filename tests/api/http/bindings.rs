//! The bindings: each RPC through its `google.api.http` path, with its
//! query parameters (ids, views, paging, filters) and answers.

use std::collections::BTreeSet;

use groupd::pb;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use super::assert_same_group;
use crate::helpers::*;

both_backends!(
    create_honours_group_id_validate_only_and_request_id,
    get_with_the_basic_view_leaves_out_members_but_keeps_member_count,
    list_groups_pages_with_page_size_and_next_page_token,
    list_groups_accepts_filter_order_by_show_deleted_and_view,
    delete_and_undelete_over_http,
    add_list_and_remove_members_over_http,
    check_membership_over_http_answers_membership_direct_and_path,
    list_member_groups_over_http_lists_direct_or_transitive_groups_a_page_at_a_time,
);

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

    // Asked of the database rather than the membership index: the same.
    let consistent =
        http_ok(http_get(&app, &check(&top, "memberId=alice&fullyConsistent=true")).await);
    assert_eq!(consistent, body);
    let reply = http_get(&app, &check(&top, "memberId=alice&fullyConsistent=maybe")).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);

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
