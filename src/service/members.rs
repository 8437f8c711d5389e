//! AddGroupMembers and RemoveGroupMembers: set operations on the named
//! principals only.

use std::collections::HashSet;

use super::{GroupService, lock_live, record, touch};
use crate::{
    domain::{
        ChangeKind, Group, Principal, membership,
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
        actor: &Principal,
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
        let mut group = lock_live(&tx, &id).await?;
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
            return Ok(group);
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
        touch(&mut group, actor);
        tx.update_group(&group).await?;
        record(&tx, actor, &group, kind, Vec::new(), &delta).await?;
        tx.commit().await?;
        Ok(group)
    }
}
