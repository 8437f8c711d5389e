//! GetGroup, and the soft delete and undelete of a group.

use super::{GroupService, check_etag, check_name_free, not_found, record, touch};
use crate::{
    domain::{
        ChangeKind, Group, Principal, State, View,
        membership::MembershipDelta,
        requests::{DeleteGroup, GetGroup, UndeleteGroup},
    },
    error::Error,
    store::WriteTx,
};

impl GroupService {
    /// Returns a group, live or deleted. In the FULL view, a group whose
    /// members do not fit in one reply is FAILED_PRECONDITION, pointing at
    /// the BASIC view and ListGroupMembers.
    pub async fn get_group(&self, request: GetGroup) -> Result<Group, Error> {
        let tx = self.store.read().await?;
        let mut group = tx
            .find_group(&request.id)
            .await?
            .ok_or_else(|| not_found(&request.id))?;
        if request.view == View::Full && !self.attach_members(&tx, &mut group).await? {
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
        actor: &Principal,
        request: DeleteGroup,
    ) -> Result<Group, Error> {
        let id = &request.id;
        let tx = self.store.write().await?;
        let mut group = match tx.lock_group(id).await? {
            Some(group) if group.is_live() => group,
            Some(mut deleted) if request.allow_missing => {
                self.attach_members(&tx, &mut deleted).await?;
                return Ok(deleted);
            }
            None if request.allow_missing => return Ok(Group::absent(request.id)),
            _ => return Err(not_found(id)),
        };
        check_etag(&group, &request.etag)?;
        touch(&mut group, actor);
        group.state = State::Deleted;
        group.delete_time = Some(group.update_time);
        self.write_lifecycle(tx, actor, group, ChangeKind::Delete)
            .await
    }

    /// Brings a soft-deleted group back, unless a live group has taken its
    /// name meanwhile.
    pub async fn undelete_group(
        &self,
        actor: &Principal,
        request: UndeleteGroup,
    ) -> Result<Group, Error> {
        let id = &request.id;
        let tx = self.store.write().await?;
        let mut group = tx.lock_group(id).await?.ok_or_else(|| not_found(id))?;
        if group.is_live() {
            return Err(Error::AlreadyExists {
                reason: "GROUP_NOT_DELETED",
                message: format!("group {:?} is not deleted", id.as_str()),
                id: id.as_str().to_owned(),
            });
        }
        check_etag(&group, &request.etag)?;
        check_name_free(&tx, id, &group.fields).await?;
        touch(&mut group, actor);
        group.state = State::Active;
        group.delete_time = None;
        self.write_lifecycle(tx, actor, group, ChangeKind::Undelete)
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
        actor: &Principal,
        mut group: Group,
        kind: ChangeKind,
    ) -> Result<Group, Error> {
        tx.update_group(&group).await?;
        record(
            &tx,
            actor,
            &group,
            kind,
            Vec::new(),
            &MembershipDelta::default(),
        )
        .await?;
        self.attach_members(&tx, &mut group).await?;
        tx.commit().await?;
        Ok(group)
    }
}
