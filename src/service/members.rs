//! AddGroupMembers and RemoveGroupMembers: set operations on the named
//! principals only.

use std::collections::HashSet;

use super::{
    GroupService, authorize, check_admins_left, give_permissions, not_found, record_update,
    standing_read_for, touch, with_standing,
};
use crate::{
    domain::{
        Caller, ChangeKind, Group, membership,
        policy::{self, Permission},
        requests::{ChangeMembers, SetOperation},
        validate,
    },
    error::Error,
};

impl GroupService {
    /// Applies a set operation on membership, reading only the rows of the
    /// principals the request names, and returns the group in the BASIC
    /// view: echoing a membership of up to the group limit back would read
    /// every member to add one. A request that changes nothing writes
    /// nothing, not even a new version.
    pub async fn change_members(
        &self,
        caller: &Caller,
        request: ChangeMembers,
    ) -> Result<Group, Error> {
        let ChangeMembers {
            id,
            operation,
            membership,
        } = request;
        Error::check(validate::membership_lists(
            &membership.members,
            &membership.admins,
            "",
            &self.limits,
        ))?;
        let tx = self.store.write().await?;
        let (found, standing) =
            with_standing(tx.lock_group_for(&id, standing_read_for(caller)).await?);
        let mut group = match authorize(caller, found, standing, Permission::UpdateMembers, &id)? {
            group if group.is_live() => group,
            _ => return Err(not_found(&id)),
        };
        let named: Vec<String> = membership
            .members
            .iter()
            .chain(&membership.admins)
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let existing = tx.members_among(&id, &named).await?;
        let (delta, kind) = match operation {
            SetOperation::Add => (
                membership::add(&existing, &membership.members, &membership.admins),
                ChangeKind::AddMembers,
            ),
            SetOperation::Remove => (
                membership::remove(&existing, &membership.members, &membership.admins),
                ChangeKind::RemoveMembers,
            ),
        };
        if delta.is_empty() {
            group.permissions = policy::permissions(caller, standing);
            return Ok(group);
        }
        let removed = delta.admins_removed().len();
        if removed > 0 && !policy::may_orphan(caller) {
            let removed = u64::try_from(removed).unwrap_or(u64::MAX);
            let admins = tx.admin_count(&id).await?;
            check_admins_left(caller, &id, admins.saturating_sub(removed))?;
        }
        if let Some(violation) = validate::change_size(&delta, "members", &self.limits) {
            return Err(Error::InvalidArgument {
                violations: vec![violation],
            });
        }
        let count = group.member_count + delta.count_change();
        let after = usize::try_from(count).unwrap_or(usize::MAX);
        if let Some(violation) = validate::member_count(after, "members", &self.limits) {
            return Err(Error::InvalidArgument {
                violations: vec![violation],
            });
        }
        group.member_count = count;
        touch(&mut group, caller.principal());
        record_update(&tx, caller.principal(), &group, kind, &delta).await?;
        give_permissions(&tx, caller, &mut group).await?;
        tx.commit().await?;
        Ok(group)
    }
}
