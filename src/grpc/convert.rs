//! Conversions between the generated protobuf types and domain values.
//! Generated types stop here: requests become domain requests through
//! `TryFrom`, which parses what needs neither the database nor the limits
//! (ids, masks, page sizes, filters), once; domain values become responses
//! through `From`.

use prost_types::{FieldMask, Timestamp as PbTimestamp};

use crate::{
    domain::{
        ChangeKind, FieldViolation, Group, GroupChange, GroupFields, GroupId, IdError, Membership,
        PrincipalId, State, Timestamp, UpdateMask, View, filter,
        hierarchy::MembershipCheck,
        listing::{self, OrderBy, Page},
        quote,
        requests::{
            ChangeMembers, CheckMembership, CreateGroup, DeleteGroup, GetGroup, ListGroups,
            ListMemberGroups, ListOfGroup, PageRequest, SetOperation, UndeleteGroup, UpdateGroup,
        },
        watch::{self, Cursor, Start, WatchChanges},
    },
    error::Error,
    pb,
    service::WatchEvent,
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

/// Implements `TryFrom<pb::Request>` for each domain request: each entry
/// names the generated request, the domain request, and the body of
/// `try_from` over the binding it names.
macro_rules! parse_requests {
    ($($request:ident => $domain:ident: |$binding:ident| $body:block;)+) => {
        $(
            impl TryFrom<pb::$request> for $domain {
                type Error = Error;

                fn try_from($binding: pb::$request) -> Result<Self, Error> $body
            }
        )+
    };
}

parse_requests! {
    CreateGroupRequest => CreateGroup: |request| {
        let group = request
            .group
            .ok_or_else(|| Error::invalid("group", "group is required"))?;
        let (fields, membership) = fields_of(group);
        Ok(Self {
            fields,
            membership,
            group_id: request.group_id,
            validate_only: request.validate_only,
            request_id: request.request_id,
        })
    };

    UpdateGroupRequest => UpdateGroup: |request| {
        let group = request
            .group
            .ok_or_else(|| Error::invalid("group", "group is required"))?;
        let id = GroupId::parse(group.id.as_str()).map_err(|problem| match problem {
            IdError::Empty => Error::invalid("group.id", "group.id is required"),
            IdError::Malformed => Error::invalid(
                "group.id",
                format!("{} is not a valid group id", quote(&group.id)),
            ),
        })?;
        let etag = group.etag.clone();
        let (fields, membership) = fields_of(group);
        let mask = match request.update_mask.map(|mask| mask.paths) {
            Some(paths) if !paths.is_empty() => UpdateMask::parse(&paths)
                .map_err(|violations| Error::InvalidArgument { violations })?,
            _ => UpdateMask::implied(&fields, &membership),
    };
        Ok(Self {
            id,
            etag,
            fields,
            membership,
            mask,
            allow_missing: request.allow_missing,
            validate_only: request.validate_only,
        })
    };

    GetGroupRequest => GetGroup: |request| {
        let view = view(request.view).map_err(|v| Error::InvalidArgument {
            violations: vec![v],
        })?;
        Ok(Self {
            id: existing(request.id)?,
            view: view.unwrap_or(View::Full),
        })
    };

    DeleteGroupRequest => DeleteGroup: |request| {
        Ok(Self {
            id: existing(request.id)?,
            etag: request.etag,
            allow_missing: request.allow_missing,
        })
    };

    UndeleteGroupRequest => UndeleteGroup: |request| {
        Ok(Self {
            id: existing(request.id)?,
            etag: request.etag,
        })
    };

    AddGroupMembersRequest => ChangeMembers: |request| {
        Ok(Self {
            id: existing(request.id)?,
            operation: SetOperation::Add,
            membership: membership(request.members, request.admins),
        })
    };

    RemoveGroupMembersRequest => ChangeMembers: |request| {
        Ok(Self {
            id: existing(request.id)?,
            operation: SetOperation::Remove,
            membership: membership(request.members, request.admins),
        })
    };

    ListGroupsRequest => ListGroups: |request| {
        let mut violations = Vec::new();
        let size = listing::page_size(request.page_size).map_err(|v| violations.push(v));
        let order = OrderBy::parse(&request.order_by).map_err(|v| violations.push(v));
        let filter = filter::parse(&request.filter).map_err(|v| violations.push(v));
        let view = view(request.view).map_err(|v| violations.push(v));
        let (Ok(size), Ok(order), Ok(filter), Ok(view)) = (size, order, filter, view) else {
            return Err(Error::InvalidArgument { violations });
    };
        Ok(Self {
            page: PageRequest {
                size,
                token: request.page_token,
            },
            filter,
            filter_text: request.filter,
            order,
            show_deleted: request.show_deleted,
            view: view.unwrap_or(View::Basic),
        })
    };

    ListGroupMembersRequest => ListOfGroup: |request| {
        let page = page(request.page_size, request.page_token)?;
        Ok(Self {
            id: existing(request.id)?,
            page,
        })
    };

    ListGroupChangesRequest => ListOfGroup: |request| {
        let page = page(request.page_size, request.page_token)?;
        Ok(Self {
            id: existing(request.id)?,
            page,
        })
    };

    CheckMembershipRequest => CheckMembership: |request| {
        let id = GroupId::parse(request.id.as_str()).map_err(|problem| match problem {
            IdError::Empty => FieldViolation::new("id", "id is required"),
            IdError::Malformed => {
                FieldViolation::new("id", format!("{} is not a valid group id", quote(&request.id)))
            }
        });
        let member_id = principal(&request.member_id);
        match (id, member_id) {
            (Ok(id), Ok(member_id)) => Ok(Self {
                id,
                member_id,
                fully_consistent: request.fully_consistent,
            }),
            (id, member_id) => Err(Error::InvalidArgument {
                violations: id.err().into_iter().chain(member_id.err()).collect(),
            }),
        }
    };

    ListMemberGroupsRequest => ListMemberGroups: |request| {
        let member_id = principal(&request.member_id);
        let size = listing::page_size(request.page_size);
        match (member_id, size) {
            (Ok(member_id), Ok(size)) => Ok(Self {
                member_id,
                transitive: request.transitive,
                page: PageRequest {
                    size,
                    token: request.page_token,
                },
                fully_consistent: request.fully_consistent,
            }),
            (member_id, size) => Err(Error::InvalidArgument {
                violations: member_id.err().into_iter().chain(size.err()).collect(),
            }),
        }
    };
}

/// The group a request names for a read or a write of an existing group.
/// An id that no group can have names no group: NOT_FOUND, as for any
/// other unknown id.
fn existing(id: String) -> Result<GroupId, Error> {
    GroupId::parse(id.as_str()).map_err(|_| Error::NotFound { id })
}

/// The principal a request asks about, in its `member_id` field.
fn principal(member_id: &str) -> Result<PrincipalId, FieldViolation> {
    PrincipalId::parse(member_id).map_err(|problem| match problem {
        IdError::Empty => FieldViolation::new("member_id", "member_id is required"),
        IdError::Malformed => FieldViolation::new(
            "member_id",
            format!("{} is not a valid principal id", quote(member_id)),
        ),
    })
}

/// The page a list request asks for.
fn page(size: i32, token: String) -> Result<PageRequest, Error> {
    Ok(PageRequest {
        size: listing::page_size(size).map_err(|v| Error::InvalidArgument {
            violations: vec![v],
        })?,
        token,
    })
}

/// The view a request asks for; `None` when unspecified. A number the
/// enum does not define is refused on the `view` field: serving a default
/// for it would hide the client's mistake.
fn view(value: i32) -> Result<Option<View>, FieldViolation> {
    match pb::GroupView::try_from(value) {
        Ok(pb::GroupView::Basic) => Ok(Some(View::Basic)),
        Ok(pb::GroupView::Full) => Ok(Some(View::Full)),
        Ok(pb::GroupView::Unspecified) => Ok(None),
        Err(_) => Err(FieldViolation::new(
            "view",
            format!("{value} is not a GroupView: use GROUP_VIEW_BASIC (1) or GROUP_VIEW_FULL (2)"),
        )),
    }
}

/// The members and admins of a request, as a domain membership.
fn membership(members: Vec<pb::Member>, admins: Vec<pb::Member>) -> Membership {
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
            id: group.id.into_string(),
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
            permissions: group
                .permissions
                .into_iter()
                .map(|permission| permission.as_str().to_owned())
                .collect(),
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
            delta_truncated: change.delta_truncated,
        }
    }
}

impl From<Page<Group>> for pb::ListGroupsResponse {
    fn from(page: Page<Group>) -> Self {
        Self {
            groups: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
            total_size: page
                .total_size
                .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            cursor: page.cursor.map(Cursor::encode).unwrap_or_default(),
        }
    }
}

impl From<Page<Group>> for pb::ListMemberGroupsResponse {
    fn from(page: Page<Group>) -> Self {
        Self {
            groups: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

impl From<Page<String>> for pb::ListGroupMembersResponse {
    fn from(page: Page<String>) -> Self {
        Self {
            members: page.items.into_iter().map(member).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

impl From<Page<GroupChange>> for pb::ListGroupChangesResponse {
    fn from(page: Page<GroupChange>) -> Self {
        Self {
            changes: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

impl From<MembershipCheck> for pb::CheckMembershipResponse {
    fn from(check: MembershipCheck) -> Self {
        Self {
            is_member: check.is_member,
            direct: check.direct,
            path: check.path,
        }
    }
}

impl TryFrom<pb::WatchGroupChangesRequest> for WatchChanges {
    type Error = Error;

    fn try_from(request: pb::WatchGroupChangesRequest) -> Result<Self, Error> {
        let mut violations = Vec::new();
        let starts = [
            !request.cursor.is_empty(),
            request.start_from_now,
            request.start_from_oldest,
        ];
        if starts.iter().filter(|set| **set).count() > 1 {
            violations.push(FieldViolation::new(
                "cursor",
                "set at most one of cursor, start_from_now and start_from_oldest",
            ));
        }
        let start = if request.start_from_oldest {
            Start::Oldest
        } else if request.cursor.is_empty() {
            Start::Now
        } else {
            match Cursor::parse(&request.cursor, "cursor") {
                Ok(cursor) => Start::After(cursor),
                Err(violation) => {
                    violations.push(violation);
                    Start::Now
                }
            }
        };
        let filter = filter::parse(&request.filter).unwrap_or_else(|violation| {
            violations.push(violation);
            None
        });
        if request.group_ids.len() > watch::MAX_WATCHED_IDS {
            violations.push(FieldViolation::new(
                "group_ids",
                format!(
                    "{} ids, more than the {} allowed",
                    request.group_ids.len(),
                    watch::MAX_WATCHED_IDS
                ),
            ));
        }
        for (index, id) in request
            .group_ids
            .iter()
            .enumerate()
            .take(watch::MAX_WATCHED_IDS)
        {
            if GroupId::parse(id).is_err() {
                violations.push(FieldViolation::new(
                    format!("group_ids[{index}]"),
                    format!("{} is not a valid group id", quote(id)),
                ));
            }
        }
        let asked = match request.heartbeat_interval {
            None => Ok(None),
            Some(interval) => std::time::Duration::try_from(interval).map(Some),
        };
        let heartbeat = asked
            .map_err(|_| FieldViolation::new("heartbeat_interval", "must not be negative"))
            .and_then(watch::heartbeat)
            .unwrap_or_else(|violation| {
                violations.push(violation);
                watch::DEFAULT_HEARTBEAT
            });
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        Ok(Self {
            start,
            filter,
            group_ids: request.group_ids.into_iter().collect(),
            heartbeat,
        })
    }
}

impl From<WatchEvent> for pb::WatchGroupChangesResponse {
    fn from(event: WatchEvent) -> Self {
        match event {
            WatchEvent::Change { cursor, entry } => Self {
                cursor: cursor.encode(),
                group_id: entry.change.group.id.as_str().to_owned(),
                event: Some(pb::watch_group_changes_response::Event::Change(
                    entry.change.clone().into(),
                )),
            },
            WatchEvent::Heartbeat { cursor } => Self {
                cursor: cursor.encode(),
                group_id: String::new(),
                event: Some(pb::watch_group_changes_response::Event::Heartbeat(
                    pb::Heartbeat {},
                )),
            },
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

    mod reply_bounds {
        use proptest::prelude::*;
        use prost::Message as _;

        use crate::domain::{
            ChangeKind, Group, GroupChange, GroupFields, GroupId, MemberEntry, State, Timestamp,
            reply,
        };
        use crate::pb;

        /// Text of any length up to `max` characters, multibyte ones
        /// included, so that byte lengths differ from character counts.
        fn text(max: usize) -> impl Strategy<Value = String> {
            proptest::collection::vec(prop_oneof![Just('a'), Just('é'), Just('😀')], 0..max)
                .prop_map(|chars| chars.into_iter().collect())
        }

        fn ids(max: usize) -> impl Strategy<Value = Vec<String>> {
            proptest::collection::vec("[a-z0-9]{1,300}", 0..max)
        }

        fn group() -> impl Strategy<Value = Group> {
            (
                (
                    text(200),
                    text(200),
                    text(2000),
                    text(100),
                    ids(20),
                    ids(20),
                ),
                (
                    text(300),
                    proptest::collection::btree_map("[a-z]{1,63}", text(300), 0..10),
                    proptest::option::of(proptest::collection::vec(
                        ("[a-z0-9]{1,300}", any::<bool>()),
                        0..50,
                    )),
                    any::<i64>(),
                    any::<i64>(),
                    any::<bool>(),
                ),
            )
                .prop_map(
                    |(
                        (name, scope, description, email, member_of, assigned_roles),
                        (provenance, labels, members, version, count, deleted),
                    )| Group {
                        id: GroupId::parse("g-1").unwrap(),
                        fields: GroupFields {
                            name,
                            scope,
                            description,
                            email,
                            member_of,
                            assigned_roles,
                            inactive: deleted,
                            provenance,
                            labels,
                        },
                        state: if deleted {
                            State::Deleted
                        } else {
                            State::Active
                        },
                        create_time: Timestamp::from_micros(version),
                        update_time: Timestamp::from_micros(count),
                        delete_time: deleted.then(|| Timestamp::from_micros(version)),
                        created_by: "someone@example.com".into(),
                        updated_by: "anonymous".into(),
                        member_count: count,
                        version,
                        members: members.map(|list| {
                            list.into_iter()
                                .map(|(id, is_admin)| MemberEntry { id, is_admin })
                                .collect()
                        }),
                        // Every permission: the largest the field gets.
                        permissions: crate::domain::policy::Permission::ON_GROUPS.to_vec(),
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// The service sizes replies with the domain's bounds before it
            /// commits; the encoding must never be larger.
            #[test]
            fn a_group_never_encodes_larger_than_its_bound(group in group()) {
                let bound = reply::group(&group);
                let encoded = pb::Group::from(group).encoded_len();
                prop_assert!(encoded <= bound, "{encoded} > {bound}");
            }

            #[test]
            fn a_membership_check_never_encodes_larger_than_its_bound(
                path in ids(40),
                is_member in any::<bool>(),
                direct in any::<bool>(),
            ) {
                let check = crate::domain::hierarchy::MembershipCheck { is_member, direct, path };
                let bound = reply::membership_check(&check);
                let encoded = pb::CheckMembershipResponse::from(check).encoded_len();
                prop_assert!(encoded <= bound, "{encoded} > {bound}");
            }

            #[test]
            fn a_change_never_encodes_larger_than_its_bound(
                mut group in group(),
                mask in proptest::collection::vec("[a-z_.]{1,70}", 0..20),
                lists in (ids(30), ids(30), ids(30), ids(30)),
            ) {
                group.members = None;
                let change = GroupChange {
                    version: 7,
                    change_time: Timestamp::from_micros(-5),
                    actor: "anonymous".into(),
                    kind: ChangeKind::Update,
                    update_mask: mask,
                    group,
                    members_added: lists.0,
                    members_removed: lists.1,
                    admins_added: lists.2,
                    admins_removed: lists.3,
                    delta_truncated: true,
                };
                let bound = reply::change(&change);
                let encoded = pb::GroupChange::from(change).encoded_len();
                prop_assert!(encoded <= bound, "{encoded} > {bound}");
            }
        }
    }
}
