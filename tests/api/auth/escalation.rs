//! What authorization must not let through, whatever a caller manages on
//! its own: nesting a group under one it does not manage, granting roles,
//! leaving a group without admins, probing ids; and what callers see of
//! themselves: `permissions`, `created_by`, the history's actor, the
//! groups ListGroups shows them.

use groupd::pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::{Auth, Who};
use crate::helpers::*;

/// A group created by `groups.admin` with `admins` as its admins (and
/// members) and `members` as other members.
async fn group_of(
    app: &TestApp,
    auth: &Auth,
    name: &str,
    admins: &[&str],
    others: &[&str],
) -> pb::Group {
    let mut group = named(name);
    group.admins = members(admins);
    group.members = members(&[admins, others].concat());
    auth.create(app, Who::Root, group).await.unwrap()
}

/// UpdateGroup of `paths` as `who`.
async fn update_as(
    app: &TestApp,
    auth: &Auth,
    who: Who,
    group: pb::Group,
    paths: &[&str],
) -> Result<pb::Group, tonic::Status> {
    app.client()
        .update_group(auth.request(
            who,
            pb::UpdateGroupRequest {
                group: Some(group),
                update_mask: Some(mask(paths)),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// RemoveGroupMembers as `who`: `removed` stop being members, `demoted`
/// admins.
async fn remove_as(
    app: &TestApp,
    auth: &Auth,
    who: Who,
    id: &str,
    removed: &[&str],
    demoted: &[&str],
) -> Result<pb::Group, tonic::Status> {
    app.client()
        .remove_group_members(auth.request(
            who,
            pb::RemoveGroupMembersRequest {
                id: id.to_owned(),
                members: members(removed),
                admins: members(demoted),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

pub(super) async fn nesting_needs_the_right_to_change_the_parents_members(
    app: TestApp,
    auth: Auth,
) {
    let platform = group_of(&app, &auth, "platform-admins", &["root"], &[]).await;
    let team = group_of(&app, &auth, "team", &["gadmin"], &["member"]).await;
    let own_parent = group_of(&app, &auth, "team-parent", &["gadmin"], &[]).await;

    // The team's admin cannot put its members into platform-admins.
    let before = auth.snapshot(&app, &team.id).await;
    let platform_before = auth.snapshot(&app, &platform.id).await;
    let mut nested = patch(&team.id);
    nested.member_of = refs(&[&platform.id]);
    let status = update_as(&app, &auth, Who::GroupAdmin, nested, &["member_of"])
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata["permission"], "groups.members.update");
    auth.assert_unchanged(&app, &before).await;
    auth.assert_unchanged(&app, &platform_before).await;
    let check = app
        .client()
        .check_membership(auth.request(
            Who::Root,
            pb::CheckMembershipRequest {
                id: platform.id.clone(),
                member_id: "member".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!check.is_member, "{check:?}");

    // Under a group it manages too, it can.
    let mut nested = patch(&team.id);
    nested.member_of = refs(&[&own_parent.id]);
    let updated = update_as(&app, &auth, Who::GroupAdmin, nested, &["member_of"])
        .await
        .unwrap();
    assert_eq!(updated.member_of, refs(&[&own_parent.id]));

    // Nor can it create a group under platform-admins, even as a creator.
    let mut child = named("sneaky");
    child.member_of = refs(&[&platform.id]);
    let status = auth.create(&app, Who::Creator, child).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

    // Removing a parent needs the same right: groups.admin nests the team
    // under platform-admins; the team's admin cannot take it out again.
    let mut nested = patch(&team.id);
    nested.member_of = refs(&[&platform.id]);
    update_as(&app, &auth, Who::Root, nested, &["member_of"])
        .await
        .unwrap();
    let before = auth.snapshot(&app, &team.id).await;
    let status = update_as(
        &app,
        &auth,
        Who::GroupAdmin,
        patch(&team.id),
        &["member_of"],
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    auth.assert_unchanged(&app, &before).await;

    // A parent that does not exist is refused like one that does.
    let mut ghost = patch(&own_parent.id);
    ghost.member_of = refs(&["no-such-group"]);
    let status = update_as(&app, &auth, Who::GroupAdmin, ghost, &["member_of"])
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
}

pub(super) async fn only_groups_admin_grants_roles(app: TestApp, auth: Auth) {
    let team = group_of(&app, &auth, "team", &["gadmin"], &[]).await;
    let before = auth.snapshot(&app, &team.id).await;
    let mut granted = patch(&team.id);
    granted.assigned_roles = roles(&["roles/owner"]);
    let status = update_as(
        &app,
        &auth,
        Who::GroupAdmin,
        granted.clone(),
        &["assigned_roles"],
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["permission"],
        "groups.roles.update"
    );
    auth.assert_unchanged(&app, &before).await;

    let mut with_roles = named("with-roles");
    with_roles.assigned_roles = roles(&["roles/owner"]);
    let status = auth
        .create(&app, Who::Creator, with_roles)
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

    let updated = update_as(&app, &auth, Who::Root, granted, &["assigned_roles"])
        .await
        .unwrap();
    assert_eq!(updated.assigned_roles, roles(&["roles/owner"]));
    // Naming the roles unchanged is not a change.
    let mut same = patch(&team.id);
    same.assigned_roles = roles(&["roles/owner"]);
    same.description = "still owner".into();
    let kept = update_as(
        &app,
        &auth,
        Who::GroupAdmin,
        same,
        &["assigned_roles", "description"],
    )
    .await
    .unwrap();
    assert_eq!(kept.description, "still owner");
}

pub(super) async fn a_group_keeps_an_admin_unless_groups_admin_says_otherwise(
    app: TestApp,
    auth: Auth,
) {
    let team = group_of(&app, &auth, "team", &["gadmin"], &["member"]).await;
    let before = auth.snapshot(&app, &team.id).await;

    let status = remove_as(&app, &auth, Who::GroupAdmin, &team.id, &["gadmin"], &[])
        .await
        .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "GROUP_WITHOUT_ADMINS");
    let status = remove_as(&app, &auth, Who::GroupAdmin, &team.id, &[], &["gadmin"])
        .await
        .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "GROUP_WITHOUT_ADMINS");
    let mut no_admins = patch(&team.id);
    no_admins.members = members(&["member"]);
    let status = update_as(
        &app,
        &auth,
        Who::GroupAdmin,
        no_admins,
        &["members", "admins"],
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "GROUP_WITHOUT_ADMINS");
    auth.assert_unchanged(&app, &before).await;

    // Handing over first, then leaving, works.
    let mut handed = patch(&team.id);
    handed.members = members(&["gadmin", "member"]);
    handed.admins = members(&["gadmin", "member"]);
    update_as(&app, &auth, Who::GroupAdmin, handed, &["members", "admins"])
        .await
        .unwrap();
    let left = remove_as(&app, &auth, Who::GroupAdmin, &team.id, &["gadmin"], &[])
        .await
        .unwrap();
    assert_eq!(left.member_count, 1);
    assert!(left.permissions.is_empty(), "{:?}", left.permissions);

    // groups.admin may leave a group without admins.
    let emptied = remove_as(&app, &auth, Who::Root, &team.id, &[], &["member"])
        .await
        .unwrap();
    assert_eq!(emptied.member_count, 1);
}

pub(super) async fn a_missing_group_is_refused_exactly_like_a_forbidden_one(
    app: TestApp,
    auth: Auth,
) {
    let team = group_of(&app, &auth, "team", &["gadmin"], &[]).await;
    for who in [Who::Stranger, Who::Creator] {
        let existing = auth.get(&app, who, &team.id).await.unwrap_err();
        let missing = auth.get(&app, who, "no-such-group").await.unwrap_err();
        assert_eq!(existing.code(), Code::PermissionDenied);
        assert_eq!(missing.code(), Code::PermissionDenied);
        let shown = |status: &tonic::Status| {
            status
                .message()
                .replace(&team.id, "ID")
                .replace("no-such-group", "ID")
        };
        assert_eq!(shown(&existing), shown(&missing));
        assert_eq!(
            existing.get_details_error_info().unwrap().metadata,
            missing.get_details_error_info().unwrap().metadata
        );
        let delete_missing = auth.delete(&app, who, "no-such-group").await.unwrap_err();
        assert_eq!(delete_missing.code(), Code::PermissionDenied);
    }
    // Those who may read every group learn that it does not exist.
    let missing = auth
        .get(&app, Who::Reader, "no-such-group")
        .await
        .unwrap_err();
    assert_not_found(&missing, "no-such-group");
    // Asking about oneself in a group one cannot read tells nothing either.
    let check = app
        .client()
        .check_membership(auth.request(
            Who::Stranger,
            pb::CheckMembershipRequest {
                id: "no-such-group".into(),
                member_id: "stranger".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!check.is_member);
}

pub(super) async fn callers_see_their_own_permissions_and_are_recorded_as_actors(
    app: TestApp,
    auth: Auth,
) {
    // A creator becomes the admin of what it creates, and its author.
    let made = auth
        .create(&app, Who::Creator, named("made"))
        .await
        .unwrap();
    assert_eq!(made.created_by, "creator");
    assert_eq!(ids(&made.admins), ["creator"]);
    assert_eq!(ids(&made.members), ["creator"]);
    assert!(made.permissions.contains(&"groups.update".to_owned()));

    let team = group_of(&app, &auth, "team", &["gadmin"], &["member"]).await;
    let as_admin = auth.get(&app, Who::GroupAdmin, &team.id).await.unwrap();
    assert_eq!(
        as_admin.permissions,
        [
            "groups.get",
            "groups.update",
            "groups.delete",
            "groups.undelete",
            "groups.members.update",
            "groups.changes.list"
        ]
    );
    let as_member = auth.get(&app, Who::Member, &team.id).await.unwrap();
    assert_eq!(as_member.permissions, ["groups.get", "groups.changes.list"]);
    let as_root = auth.get(&app, Who::Root, &team.id).await.unwrap();
    assert_eq!(as_root.permissions.len(), 7);
    assert!(
        as_root
            .permissions
            .contains(&"groups.roles.update".to_owned())
    );

    // The writer is the authenticated principal, never the request's.
    let mut described = patch(&team.id);
    described.description = "by the admin".into();
    described.updated_by = "someone-else".into();
    let updated = update_as(&app, &auth, Who::GroupAdmin, described, &["description"])
        .await
        .unwrap();
    assert_eq!(updated.updated_by, "gadmin");
    let history = app
        .client()
        .list_group_changes(auth.request(
            Who::Member,
            pb::ListGroupChangesRequest {
                id: team.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actors: Vec<&str> = history.iter().map(|c| c.actor.as_str()).collect();
    assert_eq!(actors, ["root", "gadmin"]);

    // ListGroups shows each caller the groups it may read, counted alone,
    // with its permissions on each.
    let listed = |who| {
        let auth = &auth;
        let mut client = app.client();
        async move {
            client
                .list_groups(auth.request(who, pb::ListGroupsRequest::default()))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let member_view = listed(Who::Member).await;
    assert_eq!(id_list(&member_view.groups), std::slice::from_ref(&team.id));
    assert_eq!(member_view.total_size, 1);
    assert_eq!(
        member_view.groups[0].permissions,
        ["groups.get", "groups.changes.list"]
    );
    let stranger_view = listed(Who::Stranger).await;
    assert!(stranger_view.groups.is_empty());
    assert_eq!(stranger_view.total_size, 0);
    let reader_view = listed(Who::Reader).await;
    assert_eq!(reader_view.total_size, 2);
    assert!(
        reader_view
            .groups
            .iter()
            .all(|g| g.permissions == ["groups.get", "groups.changes.list"]),
        "{:?}",
        reader_view.groups
    );
}
