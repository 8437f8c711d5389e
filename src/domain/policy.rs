//! Authorization: what a [`Caller`] may do, from its roles and its standing
//! in the group concerned. The whole policy is here, pure (the service
//! reads the standing and asks), so that it reads, and is tested, as one
//! table.
//!
//! - `groups.admin` may do everything.
//! - `groups.reader` may read every group, its members and its history, and
//!   ask about anyone's memberships.
//! - `groups.creator` may create groups; one who is not also `groups.admin`
//!   becomes an admin of what it creates (see [`creator_joins`]).
//! - A group's admins may read it and its history, update it, delete and
//!   undelete it, and change its members.
//! - A group's direct members may read it and its history.
//! - Anyone may ask about their own memberships.
//! - Adding or removing a parent (`member_of`) needs the right to change
//!   the parent's members, since it makes this group's members members of
//!   the parent; changing `assigned_roles` needs `groups.admin`.
//! - A write by a caller without `groups.admin` may not leave a group with
//!   no admins.
//!
//! A caller who may not read a group is refused the same way whether or
//! not it exists, so that ids cannot be probed: see [`reveals_absence`].

use super::{Caller, Role};

/// What a caller may do. The per-group ones ([`Permission::ON_GROUPS`])
/// are what a group's `permissions` field lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read the group and its members (GetGroup, ListGroupMembers,
    /// ListGroups).
    Get,
    /// Update the group's fields (UpdateGroup).
    Update,
    /// Delete the group.
    Delete,
    /// Undelete the group.
    Undelete,
    /// Add and remove members and admins, including by making a group a
    /// child of this one (AddGroupMembers, RemoveGroupMembers, UpdateGroup
    /// of `members`/`admins`, or of another group's `member_of`).
    UpdateMembers,
    /// Read the group's history (ListGroupChanges).
    ListChanges,
    /// Change the group's `assigned_roles`.
    UpdateRoles,
    /// Create groups (not about one group).
    Create,
    /// Ask about another principal's memberships (CheckMembership,
    /// ListMemberGroups; not about one group).
    ReadMemberships,
}

impl Permission {
    /// The permissions about one group, in the order `permissions` lists
    /// them.
    pub const ON_GROUPS: [Self; 7] = [
        Self::Get,
        Self::Update,
        Self::Delete,
        Self::Undelete,
        Self::UpdateMembers,
        Self::ListChanges,
        Self::UpdateRoles,
    ];

    /// The permission's name, as `permissions` and PERMISSION_DENIED's
    /// `ErrorInfo` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "groups.get",
            Self::Update => "groups.update",
            Self::Delete => "groups.delete",
            Self::Undelete => "groups.undelete",
            Self::UpdateMembers => "groups.members.update",
            Self::ListChanges => "groups.changes.list",
            Self::UpdateRoles => "groups.roles.update",
            Self::Create => "groups.create",
            Self::ReadMemberships => "groups.memberships.read",
        }
    }
}

/// A caller's place in one group: among its direct members, and among its
/// admins (who are members too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// The caller is a direct member.
    pub member: bool,
    /// The caller is an admin.
    pub admin: bool,
}

impl Standing {
    /// No place in the group.
    pub const STRANGER: Self = Self {
        member: false,
        admin: false,
    };

    /// The standing of a principal whose membership row says `is_admin`.
    pub fn of_member(is_admin: bool) -> Self {
        Self {
            member: true,
            admin: is_admin,
        }
    }
}

/// Whether `caller`, standing so in the group concerned, may do
/// `permission` (for [`Permission::Create`] and
/// [`Permission::ReadMemberships`], the standing is not consulted).
pub fn allows(caller: &Caller, standing: Standing, permission: Permission) -> bool {
    if caller.has(Role::Admin) {
        return true;
    }
    match permission {
        Permission::Get | Permission::ListChanges => {
            caller.has(Role::Reader) || standing.member || standing.admin
        }
        Permission::Update
        | Permission::Delete
        | Permission::Undelete
        | Permission::UpdateMembers => standing.admin,
        Permission::UpdateRoles => false,
        Permission::Create => caller.has(Role::Creator),
        Permission::ReadMemberships => caller.has(Role::Reader),
    }
}

/// Whether the caller's right to `permission` does not depend on its
/// standing in a group: then it may learn that a group does not exist
/// (NOT_FOUND); otherwise a missing group is refused exactly like an
/// existing one it may not touch (PERMISSION_DENIED).
pub fn reveals_absence(caller: &Caller, permission: Permission) -> bool {
    allows(caller, Standing::STRANGER, permission)
}

/// The per-group permissions `caller` holds, standing so: a group's
/// `permissions` field.
pub fn permissions(caller: &Caller, standing: Standing) -> Vec<Permission> {
    Permission::ON_GROUPS
        .into_iter()
        .filter(|permission| allows(caller, standing, *permission))
        .collect()
}

/// Whether `caller` may ask about `principal`'s memberships.
pub fn may_ask_about(caller: &Caller, principal: &str) -> bool {
    caller.principal().as_str() == principal
        || allows(caller, Standing::STRANGER, Permission::ReadMemberships)
}

/// Whether a group `caller` creates gets `caller` as an admin (and member)
/// beside those the request lists: a creator who is not `groups.admin`
/// could not manage the group otherwise.
pub fn creator_joins(caller: &Caller) -> bool {
    !caller.has(Role::Admin)
}

/// Whether `caller` may leave a group with no admins.
pub fn may_orphan(caller: &Caller) -> bool {
    caller.has(Role::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Principal;

    fn caller(roles: &[Role]) -> Caller {
        Caller::new(
            Principal::parse("alice").unwrap_or_else(Principal::anonymous),
            roles.iter().copied(),
        )
    }

    const ADMIN: Standing = Standing {
        member: true,
        admin: true,
    };
    const MEMBER: Standing = Standing {
        member: true,
        admin: false,
    };

    /// The policy as a table: who (roles, standing) may do what. `Y` is
    /// allowed, `.` refused, in the order of the permissions' columns.
    #[test]
    fn the_policy_table() {
        use Permission::*;
        let columns = [
            Get,
            Update,
            Delete,
            Undelete,
            UpdateMembers,
            ListChanges,
            UpdateRoles,
            Create,
            ReadMemberships,
        ];
        let rows: [(&str, &[Role], Standing, &str); 10] = [
            (
                "groups.admin",
                &[Role::Admin],
                Standing::STRANGER,
                "YYYYYYYYY",
            ),
            (
                "groups.reader",
                &[Role::Reader],
                Standing::STRANGER,
                "Y....Y..Y",
            ),
            (
                "groups.creator",
                &[Role::Creator],
                Standing::STRANGER,
                ".......Y.",
            ),
            ("group admin", &[], ADMIN, "YYYYYY..."),
            ("direct member", &[], MEMBER, "Y....Y..."),
            ("stranger", &[], Standing::STRANGER, "........."),
            (
                "reader and group admin",
                &[Role::Reader],
                ADMIN,
                "YYYYYY..Y",
            ),
            ("creator and member", &[Role::Creator], MEMBER, "Y....Y.Y."),
            ("admin and member", &[Role::Admin], MEMBER, "YYYYYYYYY"),
            (
                "every role",
                &[Role::Reader, Role::Creator],
                ADMIN,
                "YYYYYY.YY",
            ),
        ];
        for (who, roles, standing, expected) in rows {
            let caller = caller(roles);
            let got: String = columns
                .iter()
                .map(|p| {
                    if allows(&caller, standing, *p) {
                        'Y'
                    } else {
                        '.'
                    }
                })
                .collect();
            assert_eq!(got, expected, "{who}");
        }
    }

    #[test]
    fn absence_is_revealed_only_to_callers_whose_right_does_not_depend_on_the_group() {
        let reader = caller(&[Role::Reader]);
        assert!(reveals_absence(&reader, Permission::Get));
        assert!(reveals_absence(&reader, Permission::ListChanges));
        assert!(!reveals_absence(&reader, Permission::Update));
        let nobody = caller(&[]);
        for permission in Permission::ON_GROUPS {
            assert!(!reveals_absence(&nobody, permission), "{permission:?}");
            assert!(reveals_absence(&caller(&[Role::Admin]), permission));
        }
    }

    #[test]
    fn permissions_list_what_the_table_allows_in_a_fixed_order() {
        let names = |c: &Caller, s| -> Vec<&str> {
            permissions(c, s)
                .into_iter()
                .map(Permission::as_str)
                .collect()
        };
        assert_eq!(
            names(&caller(&[]), ADMIN),
            [
                "groups.get",
                "groups.update",
                "groups.delete",
                "groups.undelete",
                "groups.members.update",
                "groups.changes.list"
            ]
        );
        assert_eq!(
            names(&caller(&[]), MEMBER),
            ["groups.get", "groups.changes.list"]
        );
        assert!(names(&caller(&[Role::Creator]), Standing::STRANGER).is_empty());
        assert_eq!(
            names(&caller(&[Role::Admin]), Standing::STRANGER).len(),
            Permission::ON_GROUPS.len()
        );
    }

    #[test]
    fn anyone_may_ask_about_themselves_and_readers_about_anyone() {
        assert!(may_ask_about(&caller(&[]), "alice"));
        assert!(!may_ask_about(&caller(&[]), "bob"));
        assert!(!may_ask_about(&caller(&[Role::Creator]), "bob"));
        assert!(may_ask_about(&caller(&[Role::Reader]), "bob"));
        assert!(may_ask_about(&caller(&[Role::Admin]), "bob"));
    }

    #[test]
    fn only_callers_without_groups_admin_join_what_they_create_and_must_leave_an_admin() {
        assert!(creator_joins(&caller(&[Role::Creator])));
        assert!(!creator_joins(&caller(&[Role::Admin, Role::Creator])));
        assert!(!may_orphan(&caller(&[Role::Creator])));
        assert!(may_orphan(&caller(&[Role::Admin])));
    }
}
