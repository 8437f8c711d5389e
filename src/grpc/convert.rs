//! Conversions between the generated protobuf types and domain values.
//! Generated types stop here: requests become domain requests, domain
//! values become responses.

use prost_types::{FieldMask, Timestamp as PbTimestamp};

use crate::{
    domain::{ChangeKind, Group, GroupChange, GroupFields, Membership, State, Timestamp, View},
    pb,
    service::{CreateGroup, ListGroups, UpdateGroup},
};

/// The writable fields and membership a request's `Group` carries.
fn fields_of(group: pb::Group) -> (GroupFields, Membership) {
    let fields = GroupFields {
        name: group.name,
        scope: group.scope,
        description: group.description,
        email: group.email,
        member_of: group.member_of.into_iter().map(|r| r.group_id).collect(),
        assigned_roles: group
            .assigned_roles
            .into_iter()
            .map(|r| r.role_id)
            .collect(),
        inactive: group.inactive,
        provenance: group.provenance,
        labels: group.labels.into_iter().collect(),
    };
    let membership = Membership {
        members: group.members.into_iter().map(|m| m.id).collect(),
        admins: group.admins.into_iter().map(|m| m.id).collect(),
    };
    (fields, membership)
}

impl From<pb::CreateGroupRequest> for CreateGroup {
    fn from(request: pb::CreateGroupRequest) -> Self {
        let (fields, membership) = fields_of(request.group.unwrap_or_default());
        Self {
            fields,
            membership,
            group_id: request.group_id,
            validate_only: request.validate_only,
            request_id: request.request_id,
        }
    }
}

impl From<pb::UpdateGroupRequest> for UpdateGroup {
    fn from(request: pb::UpdateGroupRequest) -> Self {
        let group = request.group.unwrap_or_default();
        let id = group.id.clone();
        let etag = group.etag.clone();
        let (fields, membership) = fields_of(group);
        Self {
            id,
            etag,
            fields,
            membership,
            update_mask: request.update_mask.map(|mask| mask.paths),
            allow_missing: request.allow_missing,
            validate_only: request.validate_only,
        }
    }
}

impl From<pb::ListGroupsRequest> for ListGroups {
    fn from(request: pb::ListGroupsRequest) -> Self {
        Self {
            page_size: request.page_size,
            page_token: request.page_token,
            filter: request.filter,
            order_by: request.order_by,
            show_deleted: request.show_deleted,
            view: view(request.view),
        }
    }
}

/// The view a request asks for; `None` when unspecified (or unknown).
pub fn view(value: i32) -> Option<View> {
    match pb::GroupView::try_from(value) {
        Ok(pb::GroupView::Basic) => Some(View::Basic),
        Ok(pb::GroupView::Full) => Some(View::Full),
        _ => None,
    }
}

/// The members and admins of a request, as a domain membership.
pub fn membership(members: Vec<pb::Member>, admins: Vec<pb::Member>) -> Membership {
    Membership {
        members: members.into_iter().map(|m| m.id).collect(),
        admins: admins.into_iter().map(|m| m.id).collect(),
    }
}

fn timestamp(time: Timestamp) -> PbTimestamp {
    let micros = time.as_micros();
    PbTimestamp {
        seconds: micros.div_euclid(1_000_000),
        // In 0..1_000_000_000, so the conversion never saturates.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(i32::MAX),
    }
}

fn member(id: String) -> pb::Member {
    pb::Member { id }
}

impl From<Group> for pb::Group {
    fn from(group: Group) -> Self {
        // Version 0 is a group that was never stored (see `Group::version`):
        // it has no etag and no times.
        let etag = if group.version > 0 {
            group.etag()
        } else {
            String::new()
        };
        let (members, admins) = match group.members {
            Some(entries) => {
                let admins = entries
                    .iter()
                    .filter(|m| m.is_admin)
                    .map(|m| member(m.id.clone()))
                    .collect();
                (entries.into_iter().map(|m| member(m.id)).collect(), admins)
            }
            None => (Vec::new(), Vec::new()),
        };
        let fields = group.fields;
        Self {
            id: group.id,
            name: fields.name,
            scope: fields.scope,
            description: fields.description,
            email: fields.email,
            state: match group.state {
                State::Active => pb::State::Active,
                State::Deleted => pb::State::Deleted,
            }
            .into(),
            members,
            admins,
            member_of: fields
                .member_of
                .into_iter()
                .map(|group_id| pb::GroupRef { group_id })
                .collect(),
            assigned_roles: fields
                .assigned_roles
                .into_iter()
                .map(|role_id| pb::RoleRef { role_id })
                .collect(),
            inactive: fields.inactive,
            provenance: fields.provenance,
            labels: fields.labels.into_iter().collect(),
            create_time: (group.version > 0).then(|| timestamp(group.create_time)),
            update_time: (group.version > 0).then(|| timestamp(group.update_time)),
            delete_time: group.delete_time.map(timestamp),
            created_by: group.created_by,
            updated_by: group.updated_by,
            member_count: i32::try_from(group.member_count).unwrap_or(i32::MAX),
            etag,
        }
    }
}

impl From<GroupChange> for pb::GroupChange {
    fn from(change: GroupChange) -> Self {
        let members = |ids: Vec<String>| ids.into_iter().map(member).collect();
        let kind = match change.kind {
            ChangeKind::Create => pb::ChangeKind::Create,
            ChangeKind::Update => pb::ChangeKind::Update,
            ChangeKind::Delete => pb::ChangeKind::Delete,
            ChangeKind::Undelete => pb::ChangeKind::Undelete,
            ChangeKind::AddMembers => pb::ChangeKind::AddMembers,
            ChangeKind::RemoveMembers => pb::ChangeKind::RemoveMembers,
        };
        Self {
            version: change.version,
            change_time: Some(timestamp(change.change_time)),
            actor: change.actor,
            kind: kind.into(),
            update_mask: (!change.update_mask.is_empty()).then_some(FieldMask {
                paths: change.update_mask,
            }),
            group: Some(change.group.into()),
            members_added: members(change.members_added),
            members_removed: members(change.members_removed),
            admins_added: members(change.admins_added),
            admins_removed: members(change.admins_removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_microseconds_including_before_the_epoch() {
        let t = timestamp(Timestamp::from_micros(1_500_001));
        assert_eq!((t.seconds, t.nanos), (1, 500_001_000));
        let t = timestamp(Timestamp::from_micros(-1));
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_000));
    }
}
