//! Builders of request messages, and one helper per gRPC call: `try_x`
//! returns the status, `x` panics on error.

use std::collections::{BTreeMap, BTreeSet};

use groupd::pb;
use prost_types::FieldMask;
use tonic::Status;

use super::TestApp;

// ---------------------------------------------------------------------------
// Builders.
// ---------------------------------------------------------------------------

/// The ids of `groups`, in order.
pub fn id_list(groups: &[pb::Group]) -> Vec<String> {
    groups.iter().map(|group| group.id.clone()).collect()
}

/// A group with just a name.
pub fn named(name: &str) -> pb::Group {
    pb::Group {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// Member messages for the given principal ids.
pub fn members(ids: &[&str]) -> Vec<pb::Member> {
    ids.iter()
        .map(|id| pb::Member {
            id: (*id).to_owned(),
        })
        .collect()
}

/// The principal ids of member messages, in their order.
pub fn ids(members: &[pb::Member]) -> Vec<String> {
    members.iter().map(|member| member.id.clone()).collect()
}

/// Group references for the given ids.
pub fn refs(ids: &[&str]) -> Vec<pb::GroupRef> {
    ids.iter()
        .map(|id| pb::GroupRef {
            group_id: (*id).to_owned(),
        })
        .collect()
}

/// Role references for the given ids.
pub fn roles(ids: &[&str]) -> Vec<pb::RoleRef> {
    ids.iter()
        .map(|id| pb::RoleRef {
            role_id: (*id).to_owned(),
        })
        .collect()
}

/// A field mask of the given paths.
pub fn mask(paths: &[&str]) -> FieldMask {
    FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    }
}

/// A group's labels as a sorted map, whatever map type prost generated.
pub fn labels_of(group: &pb::Group) -> BTreeMap<String, String> {
    group
        .labels
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A sorted map of the given label pairs.
pub fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Sets the labels of a group from pairs.
pub fn with_labels(mut group: pb::Group, pairs: &[(&str, &str)]) -> pb::Group {
    group.labels.clear();
    for (key, value) in pairs {
        group.labels.insert((*key).to_owned(), (*value).to_owned());
    }
    group
}

/// Seconds and nanos of a timestamp, for ordering comparisons.
pub fn instant(timestamp: Option<&prost_types::Timestamp>) -> (i64, i32) {
    let timestamp = timestamp.expect("timestamp is set");
    (timestamp.seconds, timestamp.nanos)
}

/// Creates a group with every writable field populated (over gRPC), so
/// that an update can show what it keeps.
pub async fn rich_group(app: &TestApp) -> pb::Group {
    let parent = create_named(app, "parent").await;
    create(
        app,
        with_labels(
            pb::Group {
                name: "rich".to_owned(),
                scope: "tenant-a".to_owned(),
                description: "before".to_owned(),
                email: "before@example.com".to_owned(),
                members: members(&["alice", "bob"]),
                admins: members(&["alice"]),
                member_of: refs(&[&parent.id]),
                assigned_roles: roles(&["roles/viewer"]),
                inactive: true,
                provenance: "ldap".to_owned(),
                ..Default::default()
            },
            &[("a", "1"), ("b", "2")],
        ),
    )
    .await
}

// ---------------------------------------------------------------------------
// Calls.
// ---------------------------------------------------------------------------

/// Creates a group, panicking on error.
pub async fn create(app: &TestApp, group: pb::Group) -> pb::Group {
    try_create(app, group)
        .await
        .unwrap_or_else(|status| panic!("CreateGroup failed: {status:?}"))
}

/// Creates a group with just a name, panicking on error.
pub async fn create_named(app: &TestApp, name: &str) -> pb::Group {
    create(app, named(name)).await
}

/// Creates a group, returning the status on error.
pub async fn try_create(app: &TestApp, group: pb::Group) -> Result<pb::Group, Status> {
    create_request(
        app,
        pb::CreateGroupRequest {
            group: Some(group),
            ..Default::default()
        },
    )
    .await
}

/// Sends a full CreateGroupRequest.
pub async fn create_request(
    app: &TestApp,
    request: pb::CreateGroupRequest,
) -> Result<pb::Group, Status> {
    app.client()
        .create_group(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Gets a group in the given view.
pub async fn try_get_view(
    app: &TestApp,
    id: &str,
    view: pb::GroupView,
) -> Result<pb::Group, Status> {
    app.client()
        .get_group(pb::GetGroupRequest {
            id: id.to_owned(),
            view: view as i32,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Gets a group in the default view, panicking on error.
pub async fn get(app: &TestApp, id: &str) -> pb::Group {
    try_get(app, id)
        .await
        .unwrap_or_else(|status| panic!("GetGroup {id} failed: {status:?}"))
}

/// Gets a group in the default view.
pub async fn try_get(app: &TestApp, id: &str) -> Result<pb::Group, Status> {
    try_get_view(app, id, pb::GroupView::Unspecified).await
}

/// Sends an UpdateGroup with the given group and mask (`None`: no mask).
pub async fn try_update(
    app: &TestApp,
    group: pb::Group,
    paths: Option<&[&str]>,
) -> Result<pb::Group, Status> {
    update_request(
        app,
        pb::UpdateGroupRequest {
            group: Some(group),
            update_mask: paths.map(mask),
            ..Default::default()
        },
    )
    .await
}

/// Sets group `id`'s description with the mask `description`, and returns
/// the updated group.
pub async fn set_description(app: &TestApp, id: &str, description: &str) -> pb::Group {
    update(
        app,
        pb::Group {
            description: description.to_owned(),
            ..patch(id)
        },
        Some(&["description"]),
    )
    .await
}

/// Updates a group, panicking on error.
pub async fn update(app: &TestApp, group: pb::Group, paths: Option<&[&str]>) -> pb::Group {
    try_update(app, group, paths)
        .await
        .unwrap_or_else(|status| panic!("UpdateGroup failed: {status:?}"))
}

/// Sends a full UpdateGroupRequest.
pub async fn update_request(
    app: &TestApp,
    request: pb::UpdateGroupRequest,
) -> Result<pb::Group, Status> {
    app.client()
        .update_group(request)
        .await
        .map(tonic::Response::into_inner)
}

/// A group carrying only an id, to build update requests on.
pub fn patch(id: &str) -> pb::Group {
    pb::Group {
        id: id.to_owned(),
        ..Default::default()
    }
}

/// Deletes a group.
pub async fn try_delete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Group, Status> {
    app.client()
        .delete_group(pb::DeleteGroupRequest {
            id: id.to_owned(),
            etag: etag.to_owned(),
            allow_missing: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Deletes a group, panicking on error.
pub async fn delete(app: &TestApp, id: &str) -> pb::Group {
    try_delete(app, id, "")
        .await
        .unwrap_or_else(|status| panic!("DeleteGroup {id} failed: {status:?}"))
}

/// Undeletes a group.
pub async fn try_undelete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Group, Status> {
    app.client()
        .undelete_group(pb::UndeleteGroupRequest {
            id: id.to_owned(),
            etag: etag.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The two calls that edit a group's member lists. Their requests carry
/// the same fields, so one helper sends either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembersCall {
    /// AddGroupMembers: adds members and admins.
    Add,
    /// RemoveGroupMembers: removes members and demotes admins.
    Remove,
}

/// Sends AddGroupMembers or RemoveGroupMembers for the given principal ids.
pub async fn try_members_call(
    app: &TestApp,
    call: MembersCall,
    id: &str,
    member_ids: &[&str],
    admin_ids: &[&str],
) -> Result<pb::Group, Status> {
    let (id, members, admins) = (id.to_owned(), members(member_ids), members(admin_ids));
    let mut client = app.client();
    let reply = match call {
        MembersCall::Add => {
            let request = pb::AddGroupMembersRequest {
                id,
                members,
                admins,
            };
            client.add_group_members(request).await
        }
        MembersCall::Remove => {
            let request = pb::RemoveGroupMembersRequest {
                id,
                members,
                admins,
            };
            client.remove_group_members(request).await
        }
    };
    reply.map(tonic::Response::into_inner)
}

/// Adds members and admins.
pub async fn try_add(
    app: &TestApp,
    id: &str,
    member_ids: &[&str],
    admin_ids: &[&str],
) -> Result<pb::Group, Status> {
    try_members_call(app, MembersCall::Add, id, member_ids, admin_ids).await
}

/// Adds members and admins, panicking on error.
pub async fn add(app: &TestApp, id: &str, member_ids: &[&str], admin_ids: &[&str]) -> pb::Group {
    try_add(app, id, member_ids, admin_ids)
        .await
        .unwrap_or_else(|status| panic!("AddGroupMembers failed: {status:?}"))
}

/// Removes members and demotes admins.
pub async fn try_remove(
    app: &TestApp,
    id: &str,
    member_ids: &[&str],
    admin_ids: &[&str],
) -> Result<pb::Group, Status> {
    try_members_call(app, MembersCall::Remove, id, member_ids, admin_ids).await
}

/// Removes members and demotes admins, panicking on error.
pub async fn remove(app: &TestApp, id: &str, member_ids: &[&str], admin_ids: &[&str]) -> pb::Group {
    try_remove(app, id, member_ids, admin_ids)
        .await
        .unwrap_or_else(|status| panic!("RemoveGroupMembers failed: {status:?}"))
}

/// One page of ListGroups.
pub async fn try_list(
    app: &TestApp,
    request: pb::ListGroupsRequest,
) -> Result<pb::ListGroupsResponse, Status> {
    app.client()
        .list_groups(request)
        .await
        .map(tonic::Response::into_inner)
}

/// One page of ListGroups, panicking on error.
pub async fn list(app: &TestApp, request: pb::ListGroupsRequest) -> pb::ListGroupsResponse {
    try_list(app, request)
        .await
        .unwrap_or_else(|status| panic!("ListGroups failed: {status:?}"))
}

/// Every group ListGroups returns for `request`, following page tokens
/// (bounded so that a token loop cannot hang the test).
pub async fn list_all(app: &TestApp, mut request: pb::ListGroupsRequest) -> Vec<pb::Group> {
    let mut groups = Vec::new();
    for _ in 0..1000 {
        let page = list(app, request.clone()).await;
        groups.extend(page.groups);
        if page.next_page_token.is_empty() {
            return groups;
        }
        request.page_token = page.next_page_token;
    }
    panic!("ListGroups did not reach its last page after 1000 pages");
}

/// The number of groups stored, deleted ones included.
pub async fn group_count(app: &TestApp) -> usize {
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

/// One page of ListGroupChanges.
pub async fn try_changes_page(
    app: &TestApp,
    id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListGroupChangesResponse, Status> {
    app.client()
        .list_group_changes(pb::ListGroupChangesRequest {
            id: id.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The whole history of a group, following page tokens.
pub async fn changes(app: &TestApp, id: &str) -> Vec<pb::GroupChange> {
    let mut changes = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = try_changes_page(app, id, 1000, &token)
            .await
            .unwrap_or_else(|status| panic!("ListGroupChanges {id} failed: {status:?}"));
        changes.extend(page.changes);
        if page.next_page_token.is_empty() {
            return changes;
        }
        token = page.next_page_token;
    }
    panic!("ListGroupChanges did not reach its last page after 1000 pages");
}

/// The kinds of a history, in order.
pub fn kinds(changes: &[pb::GroupChange]) -> Vec<pb::ChangeKind> {
    changes.iter().map(pb::GroupChange::kind).collect()
}

/// The paths of a change's update mask, sorted.
pub fn mask_paths(change: &pb::GroupChange) -> BTreeSet<String> {
    change
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.iter().cloned().collect())
        .unwrap_or_default()
}

/// A sorted set of mask paths.
pub fn path_set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|path| (*path).to_owned()).collect()
}
