//! CreateGroup, and the creation UpdateGroup does with `allow_missing`.

use super::{
    GroupService, answer_group, check_name_free, check_parents, give_permissions, now_after, record,
};
use crate::{
    domain::{
        Caller, ChangeKind, Group, GroupFields, GroupId, Membership, create,
        policy::{self, Permission, Standing},
        requests::CreateGroup,
        validate,
    },
    error::Error,
    store::{GroupRow, WriteTx},
};

/// A group about to be inserted, already checked by
/// [`create::check_new_group`].
pub(super) struct NewGroup<'a> {
    pub id: GroupId,
    pub fields: GroupFields,
    pub membership: &'a Membership,
    pub validate_only: bool,
    pub request_id: Option<&'a str>,
}

impl GroupService {
    /// Creates a group. A retry with the same `request_id` answers with the
    /// group the first call created, in its current state.
    pub async fn create_group(
        &self,
        caller: &Caller,
        request: CreateGroup,
    ) -> Result<Group, Error> {
        let request_id = request.request_id.clone();
        match self.try_create_group(caller, request).await {
            // A concurrent call with the same request_id (a retry racing
            // the first attempt) committed first, and this one ran into one
            // of the constraints its group holds: the request id, or the
            // name and id the retry repeats. Answer with the group that
            // call created, as a later retry would get.
            Err(error @ Error::AlreadyExists { .. }) if !request_id.is_empty() => {
                let tx = self.store.read().await?;
                match tx.find_by_request_id(&request_id).await? {
                    Some(id) => answer_group(self, &tx, caller, &id).await,
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    async fn try_create_group(
        &self,
        caller: &Caller,
        mut request: CreateGroup,
    ) -> Result<Group, Error> {
        check_may_create(caller, &request.fields)?;
        creator_joins(caller, &mut request.membership);
        let chosen = create::check_request(&request, &self.limits)
            .map_err(|violations| Error::InvalidArgument { violations })?;
        let id = match chosen {
            Some(id) => id,
            None => GroupId::parse(uuid::Uuid::new_v4().to_string())
                .map_err(|_| Error::internal("a generated UUID is not a group id"))?,
        };
        let tx = self.store.write().await?;
        if !request.request_id.is_empty()
            && let Some(existing) = tx.find_by_request_id(&request.request_id).await?
        {
            return answer_group(self, &tx, caller, &existing).await;
        }
        if tx.group_exists(&id).await? {
            return Err(Error::id_taken(id.as_str()));
        }
        let new = NewGroup {
            id,
            fields: request.fields,
            membership: &request.membership,
            validate_only: request.validate_only,
            request_id: (!request.request_id.is_empty()).then_some(request.request_id.as_str()),
        };
        self.insert_new_group(tx, caller, new).await
    }

    /// Inserts a new group inside `tx`; what needs the database (the
    /// caller's rights on the parents, live parents, a free name) is
    /// checked here.
    pub(super) async fn insert_new_group(
        &self,
        tx: WriteTx,
        caller: &Caller,
        new: NewGroup<'_>,
    ) -> Result<Group, Error> {
        check_parents(&tx, caller, &new.fields.member_of).await?;
        let actor = caller.principal();
        let live = tx.live_groups_among(&new.fields.member_of).await?;
        Error::check(validate::dead_parents(&new.fields.member_of, &[], &live))?;
        check_name_free(&tx, &new.id, &new.fields).await?;
        let (mut group, delta) =
            create::new_group(new.id, new.fields, new.membership, actor, now_after(None));
        if new.validate_only {
            let standing = delta
                .insert
                .iter()
                .find(|m| m.id == actor.as_str())
                .map_or(Standing::STRANGER, |m| Standing::of_member(m.is_admin));
            group.permissions = policy::permissions(caller, standing);
        } else {
            tx.insert_group(&group, new.request_id).await?;
            record(
                &tx,
                actor,
                &group,
                GroupRow::Written,
                ChangeKind::Create,
                Vec::new(),
                &delta,
            )
            .await?;
            give_permissions(&tx, caller, &mut group).await?;
            tx.commit().await?;
        }
        self.attach_if_it_fits(&mut group, delta.insert);
        Ok(group)
    }
}

/// PERMISSION_DENIED unless `caller` may create a group with `fields`:
/// creating needs `groups.creator` (or `groups.admin`), and granting roles
/// needs `groups.admin`.
pub(super) fn check_may_create(caller: &Caller, fields: &GroupFields) -> Result<(), Error> {
    let standing = Standing::STRANGER;
    if !policy::allows(caller, standing, Permission::Create) {
        return Err(Error::PermissionDenied {
            permission: Permission::Create.as_str(),
            message: format!(
                "permission {} is denied: creating groups needs the role groups.creator",
                Permission::Create.as_str()
            ),
        });
    }
    if !fields.assigned_roles.is_empty()
        && !policy::allows(caller, standing, Permission::UpdateRoles)
    {
        return Err(Error::PermissionDenied {
            permission: Permission::UpdateRoles.as_str(),
            message: format!(
                "permission {} is denied: granting roles needs the role groups.admin",
                Permission::UpdateRoles.as_str()
            ),
        });
    }
    Ok(())
}

/// Adds `caller` to the admins (and members) of the group it creates, when
/// the policy says it joins and the request does not already list it.
pub(super) fn creator_joins(caller: &Caller, membership: &mut Membership) {
    if !policy::creator_joins(caller) {
        return;
    }
    let me = caller.principal().as_str();
    if !membership.admins.iter().any(|a| a == me) {
        membership.admins.push(me.to_owned());
    }
    if !membership.members.iter().any(|m| m == me) {
        membership.members.push(me.to_owned());
    }
}
