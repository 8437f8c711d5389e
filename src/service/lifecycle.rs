//! GetGroup, and the soft delete and undelete of a group.

use super::{GroupService, check_etag, check_name_free, not_found, read_group, record, touch};
use crate::{
    domain::{
        ChangeKind, Group, Principal, State,
        membership::MembershipDelta,
        requests::{DeleteGroup, GetGroup, UndeleteGroup},
    },
    error::Error,
    store::WriteTx,
};

impl GroupService {
    /// Returns a group, live or deleted.
    pub async fn get_group(&self, request: GetGroup) -> Result<Group, Error> {
        let tx = self.store.read().await?;
        read_group(&tx, &request.id, request.view).await
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
                deleted.members = Some(tx.load_members(id).await?);
                return Ok(deleted);
            }
            None if request.allow_missing => return Ok(Group::absent(request.id)),
            _ => return Err(not_found(id)),
        };
        check_etag(&group, &request.etag)?;
        touch(&mut group, actor);
        group.state = State::Deleted;
        group.delete_time = Some(group.update_time);
        write_lifecycle(tx, actor, group, ChangeKind::Delete).await
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
        write_lifecycle(tx, actor, group, ChangeKind::Undelete).await
    }
}

/// Writes a delete or an undelete of `group` (already changed) with its
/// history entry, commits, and returns the group with its members.
async fn write_lifecycle(
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
    group.members = Some(tx.load_members(&group.id).await?);
    tx.commit().await?;
    Ok(group)
}
