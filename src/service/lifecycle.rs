//! GetGroup, and the soft delete and undelete of a group.

use super::{
    GroupService, authorize, check_etag, check_name_free, not_found, record_and_commit,
    standing_read_for, touch, with_standing,
};
use crate::{
    domain::{
        Caller, ChangeKind, Group, State, View,
        membership::MembershipDelta,
        policy::{self, Permission},
        requests::{DeleteGroup, GetGroup, UndeleteGroup},
    },
    error::Error,
    store::WriteTx,
};

impl GroupService {
    /// Returns a group, live or deleted. In the FULL view, a group whose
    /// members do not fit in one reply is FAILED_PRECONDITION, pointing at
    /// the BASIC view and ListGroupMembers.
    pub async fn get_group(&self, caller: &Caller, request: GetGroup) -> Result<Group, Error> {
        let reader = standing_read_for(caller);
        if request.view == View::Basic {
            // One statement, outside any transaction.
            let (found, standing) =
                with_standing(self.store.find_group_for(&request.id, reader).await?);
            let mut group = authorize(caller, found, standing, Permission::Get, &request.id)?;
            group.permissions = policy::permissions(caller, standing);
            return Ok(group);
        }
        // The group and its members, of one snapshot.
        let tx = self.store.read().await?;
        let (found, standing) = with_standing(tx.find_group_for(&request.id, reader).await?);
        let mut group = authorize(caller, found, standing, Permission::Get, &request.id)?;
        group.permissions = policy::permissions(caller, standing);
        if !self.attach_members(&tx, &mut group).await? {
            return Err(Error::FailedPrecondition {
                reason: "GROUP_TOO_LARGE",
                message: format!(
                    "group {:?} has {} members, too many to return in one reply: read it in \
                     GROUP_VIEW_BASIC and its members with ListGroupMembers",
                    request.id.as_str(),
                    group.member_count
                ),
            });
        }
        Ok(group)
    }

    /// Soft-deletes a group: it keeps its members and history, leaves every
    /// listing and membership, and can be undeleted.
    pub async fn delete_group(
        &self,
        caller: &Caller,
        request: DeleteGroup,
    ) -> Result<Group, Error> {
        let id = &request.id;
        let tx = self.store.write().await?;
        let (found, standing) =
            with_standing(tx.lock_group_for(id, standing_read_for(caller)).await?);
        // A missing group: PERMISSION_DENIED unless the caller may delete
        // any group, who learns that it is missing (and, with
        // `allow_missing`, succeeds).
        if found.is_some() || !policy::reveals_absence(caller, Permission::Delete) {
            authorize(caller, found.as_ref(), standing, Permission::Delete, id)?;
        }
        let mut group = match found {
            Some(group) if group.is_live() => group,
            Some(mut deleted) if request.allow_missing => {
                self.attach_members(&tx, &mut deleted).await?;
                deleted.permissions = policy::permissions(caller, standing);
                return Ok(deleted);
            }
            None if request.allow_missing => return Ok(Group::absent(request.id)),
            _ => return Err(not_found(id)),
        };
        check_etag(&group, &request.etag)?;
        touch(&mut group, caller.principal());
        group.state = State::Deleted;
        group.delete_time = Some(group.update_time);
        group.permissions = policy::permissions(caller, standing);
        self.write_lifecycle(tx, caller, group, ChangeKind::Delete)
            .await
    }

    /// Brings a soft-deleted group back, unless a live group has taken its
    /// name meanwhile.
    pub async fn undelete_group(
        &self,
        caller: &Caller,
        request: UndeleteGroup,
    ) -> Result<Group, Error> {
        let id = &request.id;
        let tx = self.store.write().await?;
        let (found, standing) =
            with_standing(tx.lock_group_for(id, standing_read_for(caller)).await?);
        let mut group = authorize(caller, found, standing, Permission::Undelete, id)?;
        if group.is_live() {
            return Err(Error::AlreadyExists {
                reason: "GROUP_NOT_DELETED",
                message: format!("group {:?} is not deleted", id.as_str()),
                id: id.as_str().to_owned(),
            });
        }
        check_etag(&group, &request.etag)?;
        check_name_free(&tx, id, &group.fields).await?;
        touch(&mut group, caller.principal());
        group.state = State::Active;
        group.delete_time = None;
        group.permissions = policy::permissions(caller, standing);
        self.write_lifecycle(tx, caller, group, ChangeKind::Undelete)
            .await
    }
}

impl GroupService {
    /// Writes a delete or an undelete of `group` (already changed) with its
    /// history entry, commits, and returns the group, with its members when
    /// they fit in the reply.
    async fn write_lifecycle(
        &self,
        tx: WriteTx,
        caller: &Caller,
        mut group: Group,
        kind: ChangeKind,
    ) -> Result<Group, Error> {
        // The members before the write's last statement, which does not
        // change them.
        self.attach_members(&tx, &mut group).await?;
        record_and_commit(
            tx,
            caller.principal(),
            &group,
            kind,
            Vec::new(),
            &MembershipDelta::default(),
        )
        .await?;
        Ok(group)
    }
}
