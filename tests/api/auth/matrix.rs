//! Every RPC × every kind of caller, over gRPC and over HTTP: each cell's
//! code is asserted, and after every refused write the group is unchanged
//! (same etag, same fields, no history entry).

use groupd::pb;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::{Auth, Who};
use crate::helpers::*;

/// The RPCs of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Create,
    Get,
    List,
    Update,
    Delete,
    Undelete,
    AddMembers,
    RemoveMembers,
    ListMembers,
    ListChanges,
    CheckMembership,
    ListMemberGroups,
}

impl Rpc {
    const ALL: [Self; 12] = [
        Self::Create,
        Self::Get,
        Self::List,
        Self::Update,
        Self::Delete,
        Self::Undelete,
        Self::AddMembers,
        Self::RemoveMembers,
        Self::ListMembers,
        Self::ListChanges,
        Self::CheckMembership,
        Self::ListMemberGroups,
    ];

    fn writes(self) -> bool {
        matches!(
            self,
            Self::Create
                | Self::Update
                | Self::Delete
                | Self::Undelete
                | Self::AddMembers
                | Self::RemoveMembers
        )
    }
}

/// The expected code of `rpc` called by `who` on a group where `gadmin` is
/// an admin and `member` a direct member (membership questions are about
/// `member`).
fn expected(rpc: Rpc, who: Who) -> Code {
    use Who::*;
    if who == Nobody {
        return Code::Unauthenticated;
    }
    let allowed = match rpc {
        Rpc::Create => matches!(who, Root | Creator),
        Rpc::List => true,
        Rpc::Get | Rpc::ListMembers | Rpc::ListChanges => {
            matches!(who, Root | Reader | GroupAdmin | Member)
        }
        Rpc::Update | Rpc::Delete | Rpc::Undelete | Rpc::AddMembers | Rpc::RemoveMembers => {
            matches!(who, Root | GroupAdmin)
        }
        Rpc::CheckMembership | Rpc::ListMemberGroups => matches!(who, Root | Reader | Member),
    };
    if allowed {
        Code::Ok
    } else {
        Code::PermissionDenied
    }
}

/// The permission a refused caller is told it lacks.
fn missing_permission(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::Create => "groups.create",
        Rpc::Get | Rpc::ListMembers | Rpc::List => "groups.get",
        Rpc::Update => "groups.update",
        Rpc::Delete => "groups.delete",
        Rpc::Undelete => "groups.undelete",
        Rpc::AddMembers | Rpc::RemoveMembers => "groups.members.update",
        Rpc::ListChanges => "groups.changes.list",
        Rpc::CheckMembership | Rpc::ListMemberGroups => "groups.memberships.read",
    }
}

/// A fresh target group for one cell, created by `groups.admin`: admin
/// `gadmin`, members `gadmin` and `member`; deleted first for Undelete.
async fn target(app: &TestApp, auth: &Auth, rpc: Rpc, cell: usize) -> pb::Group {
    let mut group = named(&format!("target-{cell}"));
    group.members = members(&["gadmin", "member"]);
    group.admins = members(&["gadmin"]);
    let created = auth.create(app, Who::Root, group).await.unwrap();
    if rpc == Rpc::Undelete {
        auth.delete(app, Who::Root, &created.id).await.unwrap();
    }
    auth.get(app, Who::Root, &created.id).await.unwrap()
}

/// Calls `rpc` over gRPC as `who` on group `id`; the code it got.
async fn call_grpc(app: &TestApp, auth: &Auth, rpc: Rpc, who: Who, id: &str, cell: usize) -> Code {
    let mut client = app.client();
    let result = match rpc {
        Rpc::Create => auth
            .create(app, who, named(&format!("made-{cell}")))
            .await
            .map(drop),
        Rpc::Get => auth.get(app, who, id).await.map(drop),
        Rpc::List => client
            .list_groups(auth.request(who, pb::ListGroupsRequest::default()))
            .await
            .map(drop),
        Rpc::Update => {
            let mut patch = patch(id);
            patch.description = format!("by {who:?}");
            client
                .update_group(auth.request(
                    who,
                    pb::UpdateGroupRequest {
                        group: Some(patch),
                        update_mask: Some(mask(&["description"])),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
        }
        Rpc::Delete => auth.delete(app, who, id).await.map(drop),
        Rpc::Undelete => client
            .undelete_group(auth.request(
                who,
                pb::UndeleteGroupRequest {
                    id: id.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::AddMembers => client
            .add_group_members(auth.request(
                who,
                pb::AddGroupMembersRequest {
                    id: id.to_owned(),
                    members: members(&["newcomer"]),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::RemoveMembers => client
            .remove_group_members(auth.request(
                who,
                pb::RemoveGroupMembersRequest {
                    id: id.to_owned(),
                    members: members(&["member"]),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ListMembers => client
            .list_group_members(auth.request(
                who,
                pb::ListGroupMembersRequest {
                    id: id.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ListChanges => client
            .list_group_changes(auth.request(
                who,
                pb::ListGroupChangesRequest {
                    id: id.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::CheckMembership => client
            .check_membership(auth.request(
                who,
                pb::CheckMembershipRequest {
                    id: id.to_owned(),
                    member_id: "member".to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ListMemberGroups => client
            .list_member_groups(auth.request(
                who,
                pb::ListMemberGroupsRequest {
                    member_id: "member".to_owned(),
                    transitive: true,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => {
            check_refusal(&status, rpc, who);
            status.code()
        }
    }
}

/// Checks what a refusal says: its reason, and for PERMISSION_DENIED the
/// permission that was missing.
#[track_caller]
fn check_refusal(status: &tonic::Status, rpc: Rpc, who: Who) {
    match status.code() {
        Code::Unauthenticated => assert_error(status, Code::Unauthenticated, "CREDENTIALS_MISSING"),
        Code::PermissionDenied => {
            assert_error(status, Code::PermissionDenied, "PERMISSION_DENIED");
            let info = status.get_details_error_info().unwrap();
            assert_eq!(
                info.metadata.get("permission").map(String::as_str),
                Some(missing_permission(rpc)),
                "{rpc:?} as {who:?}"
            );
        }
        _ => {}
    }
}

/// Calls `rpc` over HTTP as `who` on group `id`; the HTTP status it got.
async fn call_http(app: &TestApp, auth: &Auth, rpc: Rpc, who: Who, id: &str, cell: usize) -> u16 {
    use reqwest::Method;
    let (method, path, body) = match rpc {
        Rpc::Create => (
            Method::POST,
            "/v1/groups".to_owned(),
            Some(json!({"name": format!("made-{cell}")})),
        ),
        Rpc::Get => (Method::GET, group_path(id), None),
        Rpc::List => (Method::GET, "/v1/groups".to_owned(), None),
        Rpc::Update => (
            Method::PATCH,
            format!("{}?updateMask=description", group_path(id)),
            Some(json!({"description": format!("by {who:?}")})),
        ),
        Rpc::Delete => (Method::DELETE, group_path(id), None),
        Rpc::Undelete => (
            Method::POST,
            format!("{}:undelete", group_path(id)),
            Some(json!({})),
        ),
        Rpc::AddMembers => (
            Method::POST,
            format!("{}:addMembers", group_path(id)),
            Some(json!({"members": [{"id": "newcomer"}]})),
        ),
        Rpc::RemoveMembers => (
            Method::POST,
            format!("{}:removeMembers", group_path(id)),
            Some(json!({"members": [{"id": "member"}]})),
        ),
        Rpc::ListMembers => (Method::GET, format!("{}/members", group_path(id)), None),
        Rpc::ListChanges => (Method::GET, format!("{}/changes", group_path(id)), None),
        Rpc::CheckMembership => (
            Method::GET,
            format!("{}:checkMembership?memberId=member", group_path(id)),
            None,
        ),
        Rpc::ListMemberGroups => (
            Method::GET,
            "/v1/members/member/groups?transitive=true".to_owned(),
            None,
        ),
    };
    let mut request = auth.http(app, who, method, &path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = send(request).await;
    match reply.status {
        401 => {
            assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("Bearer"), "{challenge:?}");
        }
        403 => assert_http_error(&reply, 403, Code::PermissionDenied, "PERMISSION_DENIED"),
        _ => {}
    }
    reply.status
}

/// The HTTP status of a code, as the gateway maps it.
fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        other => panic!("no cell expects {other:?}"),
    }
}

async fn matrix(app: &TestApp, auth: &Auth, http: bool) {
    let mut cell = usize::from(http) * 1_000;
    let mut wrong = Vec::new();
    for rpc in Rpc::ALL {
        for who in Who::ALL {
            cell += 1;
            let group = target(app, auth, rpc, cell).await;
            let before = auth.snapshot(app, &group.id).await;
            let want = expected(rpc, who);
            let got = if http {
                let status = call_http(app, auth, rpc, who, &group.id, cell).await;
                (status != http_status(want)).then(|| format!("HTTP {status}"))
            } else {
                let code = call_grpc(app, auth, rpc, who, &group.id, cell).await;
                (code != want).then(|| format!("{code:?}"))
            };
            if let Some(got) = got {
                wrong.push(format!("{rpc:?} as {who:?}: expected {want:?}, got {got}"));
            }
            if want != Code::Ok && rpc.writes() {
                auth.assert_unchanged(app, &before).await;
            }
        }
    }
    assert!(wrong.is_empty(), "cells that differ:\n{}", wrong.join("\n"));
}

pub(super) async fn every_rpc_for_every_caller_over_grpc(app: TestApp, auth: Auth) {
    matrix(&app, &auth, false).await;
}

pub(super) async fn every_rpc_for_every_caller_over_http(app: TestApp, auth: Auth) {
    matrix(&app, &auth, true).await;
}
