//! Tokens the real server must refuse though they were signed for real: an
//! expired one (of a caller who could otherwise do everything), and one
//! signed by a key the JWKS does not hold. Refused UNAUTHENTICATED with
//! their reason over gRPC and HTTP, and nothing is written.

use groupd::pb;
use tonic::Code;

use super::{
    Auth, Idp, Who,
    files::{authorized, bearer},
};
use crate::helpers::*;

/// Every write the refused tokens try on `group`, over gRPC: each must be
/// refused UNAUTHENTICATED with `reason`.
async fn writes_are_refused(app: &TestApp, token: &str, group: &pb::Group, reason: &str) {
    let credential = bearer(token);
    let mut client = app.client();
    let mut update = patch(&group.id);
    update.description = "changed by a refused token".to_owned();
    let refusals = [
        client
            .create_group(authorized(
                &credential,
                pb::CreateGroupRequest {
                    group: Some(named("by-a-refused-token")),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        client
            .update_group(authorized(
                &credential,
                pb::UpdateGroupRequest {
                    group: Some(update),
                    update_mask: Some(mask(&["description"])),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        client
            .add_group_members(authorized(
                &credential,
                pb::AddGroupMembersRequest {
                    id: group.id.clone(),
                    members: members(&["intruder"]),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        client
            .delete_group(authorized(
                &credential,
                pb::DeleteGroupRequest {
                    id: group.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        client
            .get_group(authorized(
                &credential,
                pb::GetGroupRequest {
                    id: group.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
    ];
    for (index, refusal) in refusals.into_iter().enumerate() {
        let status = refusal.expect_err("a refused token was accepted");
        assert_error(&status, Code::Unauthenticated, reason);
        assert!(
            !status.message().contains(token),
            "call {index}: the message repeats the token: {status:?}"
        );
    }
}

/// The same over HTTP: 401 with `reason`, the challenge naming Bearer.
async fn http_writes_are_refused(app: &TestApp, token: &str, group: &pb::Group, reason: &str) {
    let credential = bearer(token);
    let path = group_path(&group.id);
    let requests = [
        app.request(reqwest::Method::POST, "/v1/groups")
            .json(&serde_json::json!({"name": "by-a-refused-token-http"})),
        app.request(reqwest::Method::PATCH, &path)
            .json(&serde_json::json!({"description": "changed over HTTP"})),
        app.request(reqwest::Method::DELETE, &path),
        app.request(reqwest::Method::GET, &path),
    ];
    for request in requests {
        let reply = send(request.header("authorization", &credential)).await;
        assert_http_error(&reply, 401, Code::Unauthenticated, reason);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="groupd""#)
        );
        assert!(
            !reply.body.to_string().contains(token),
            "the reply repeats the token"
        );
    }
}

/// A group the refused tokens' owner administers.
async fn target(app: &TestApp, auth: &Auth) -> pb::Group {
    let mut group = named("guarded");
    group.admins = members(&["gadmin"]);
    group.members = members(&["gadmin"]);
    auth.create(app, Who::Root, group).await.unwrap()
}

pub async fn an_expired_token_is_refused_and_changes_nothing(app: TestApp, auth: Auth) {
    let group = target(&app, &auth).await;
    let before = auth.snapshot(&app, &group.id).await;
    let groups = group_count_as_root(&app, &auth).await;

    // The same caller's fresh token works: only the expiry is at fault.
    for (sub, roles) in [("root", &["groups.admin"][..]), ("gadmin", &[][..])] {
        let expired = auth.idp.expired_token(sub, roles);
        writes_are_refused(&app, &expired, &group, "TOKEN_EXPIRED").await;
        http_writes_are_refused(&app, &expired, &group, "TOKEN_EXPIRED").await;
        let fresh = auth.idp.token(sub, roles);
        let read = app
            .client()
            .get_group(authorized(
                &bearer(&fresh),
                pb::GetGroupRequest {
                    id: group.id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        assert!(read.is_ok(), "{sub}'s fresh token: {read:?}");
    }

    auth.assert_unchanged(&app, &before).await;
    assert_eq!(group_count_as_root(&app, &auth).await, groups);
}

pub async fn a_token_of_an_unknown_key_is_refused_and_changes_nothing(app: TestApp, auth: Auth) {
    let group = target(&app, &auth).await;
    let before = auth.snapshot(&app, &group.id).await;
    let groups = group_count_as_root(&app, &auth).await;

    // Another provider: same issuer and audience, a key (and kid) the
    // server's JWKS does not hold.
    let stranger = Idp::new();
    for (sub, roles) in [("root", &["groups.admin"][..]), ("gadmin", &[][..])] {
        let foreign = stranger.token(sub, roles);
        writes_are_refused(&app, &foreign, &group, "CREDENTIALS_INVALID").await;
        http_writes_are_refused(&app, &foreign, &group, "CREDENTIALS_INVALID").await;
    }
    // Expired and of an unknown key: refused either way, never accepted.
    let both = stranger.expired_token("root", &["groups.admin"]);
    let status = app
        .client()
        .list_groups(authorized(&bearer(&both), pb::ListGroupsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    auth.assert_unchanged(&app, &before).await;
    assert_eq!(group_count_as_root(&app, &auth).await, groups);
}

/// How many live groups there are, listed by `groups.admin`.
pub async fn group_count_as_root(app: &TestApp, auth: &Auth) -> usize {
    app.client()
        .list_groups(auth.request(
            Who::Root,
            pb::ListGroupsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .groups
        .len()
}
