//! UpdateGroup: field-mask partial updates (see [`crate::domain::update`]
//! for what an update changes).

use super::{
    GroupService, authorize, change_of, check_admins_left, check_etag, check_name_free,
    check_parents,
    create::{NewGroup, check_may_create, creator_joins},
    denied, give_permissions, not_found, record, record_and_commit, standing_read_for, touch,
    with_standing,
};
use crate::{
    domain::{
        Caller, ChangeKind, FieldViolation, Group, create,
        policy::{self, Permission},
        requests::UpdateGroup,
        update, validate,
    },
    error::Error,
    store::{GroupRow, WriteTx},
};

impl GroupService {
    /// Updates a group through a field mask, in one transaction: two
    /// updates with disjoint masks both take effect, on any number of
    /// replicas.
    pub async fn update_group(
        &self,
        caller: &Caller,
        request: UpdateGroup,
    ) -> Result<Group, Error> {
        let (members, admins) = request.masked_lists();
        Error::check(validate::membership_lists(
            members,
            admins,
            "group.",
            &self.limits,
        ))?;
        if let Some(group) = self.update_own_row(caller, &request).await? {
            return Ok(group);
        }
        let tx = self.store.write().await?;
        if request.mask.updates_parents() {
            // Before the group's row lock, never after (see
            // `WriteTx::lock_hierarchy`): in this order the second of two
            // updates racing to close a cycle waits here holding nothing,
            // then sees the first's edge and answers MEMBER_OF_CYCLE.
            tx.lock_hierarchy().await?;
        }
        let (found, standing) = with_standing(
            tx.lock_group_for(&request.id, standing_read_for(caller))
                .await?,
        );
        if found.is_none() && request.allow_missing {
            return self.create_missing(tx, caller, request).await;
        }
        let mut group = match authorize(caller, found, standing, Permission::Update, &request.id)? {
            group if group.is_live() => group,
            _ => return Err(not_found(&request.id)),
        };
        check_etag(&group, &request.etag)?;

        let current = if request.mask.replaces_membership() {
            Some(tx.load_members(&group.id).await?)
        } else {
            None
        };
        let plan =
            update::plan(&group, &request, current.as_deref(), &self.limits).map_err(invalid)?;
        let changes_parents = plan.changes_parents(&group);
        if changes_parents {
            // Both the parents added and those removed: each gains or
            // loses this group's members.
            let changed: Vec<String> = plan
                .fields
                .member_of
                .iter()
                .filter(|p| !group.fields.member_of.contains(p))
                .chain(
                    group
                        .fields
                        .member_of
                        .iter()
                        .filter(|p| !plan.fields.member_of.contains(p)),
                )
                .cloned()
                .collect();
            check_parents(&tx, caller, &changed).await?;
        }
        if plan.fields.assigned_roles != group.fields.assigned_roles
            && !policy::allows(caller, standing, Permission::UpdateRoles)
        {
            return Err(denied(Permission::UpdateRoles, group.id.as_str()));
        }
        if let Some(current) = current.as_ref().filter(|_| !policy::may_orphan(caller)) {
            let admins_left = plan
                .delta
                .apply(current.clone())
                .iter()
                .filter(|m| m.is_admin)
                .count();
            check_admins_left(
                caller,
                &group.id,
                u64::try_from(admins_left).unwrap_or(u64::MAX),
            )?;
        }
        if changes_parents {
            let new: Vec<String> = request
                .fields
                .member_of
                .iter()
                .filter(|p| !group.fields.member_of.contains(p))
                .cloned()
                .collect();
            let live = tx.live_groups_among(&new).await?;
            Error::check(validate::dead_parents(
                &request.fields.member_of,
                &group.fields.member_of,
                &live,
            ))?;
            if tx.reaches(&plan.fields.member_of, &group.id).await? {
                return Err(Error::FailedPrecondition {
                    reason: "MEMBER_OF_CYCLE",
                    message: format!(
                        "group {:?} would become its own ancestor through member_of",
                        group.id.as_str()
                    ),
                });
            }
        }
        if plan.renames(&group) {
            check_name_free(&tx, &group.id, &plan.fields).await?;
        }

        let labels_before = std::mem::replace(&mut group.fields, plan.fields).labels;
        group.member_count += plan.delta.count_change();
        touch(&mut group, caller.principal());
        if !request.validate_only {
            if group.fields.labels != labels_before {
                tx.replace_labels(&group.id, &labels_before, &group.fields.labels)
                    .await?;
            }
            if changes_parents {
                tx.replace_parents(&group.id, &group.fields.member_of)
                    .await?;
            }
        }
        let replaced_membership = current.is_some();
        // The reply's members: the new membership when the mask replaced it,
        // else the stored one (which the update does not change, so it is
        // read before the write's last statement).
        match current {
            Some(current) => {
                self.attach_if_it_fits(&mut group, plan.delta.apply(current));
            }
            None => {
                self.attach_members(&tx, &mut group).await?;
            }
        }
        if request.validate_only {
            if replaced_membership {
                give_permissions(&tx, caller, &mut group).await?;
            } else {
                group.permissions = policy::permissions(caller, standing);
            }
            return Ok(group);
        }
        if replaced_membership {
            // The caller's standing may have changed with the membership:
            // read once the member rows are written.
            record(
                &tx,
                caller.principal(),
                &group,
                GroupRow::Update,
                ChangeKind::Update,
                plan.mask_paths,
                &plan.delta,
            )
            .await?;
            give_permissions(&tx, caller, &mut group).await?;
            tx.commit().await?;
        } else {
            // The standing read before the write still holds.
            group.permissions = policy::permissions(caller, standing);
            record_and_commit(
                tx,
                caller.principal(),
                &group,
                ChangeKind::Update,
                plan.mask_paths,
                &plan.delta,
            )
            .await?;
        }
        Ok(group)
    }
}

impl GroupService {
    /// UpdateGroup of a group's own row and labels (not its members,
    /// parents or name), read outside the write's transaction and written only
    /// if its version is still the one read
    /// ([`crate::store::Store::update_if_unchanged`]): on SQLite the
    /// writes of a group then no longer wait for each other's reads.
    /// `None` when the update is not of that kind, would be refused
    /// (the ordinary way finds the same refusal and answers it), or found
    /// the group changed: the caller then does it the ordinary way, which
    /// reads in the write's transaction. Every check is made on what was
    /// read, and what was read is what is written over.
    async fn update_own_row(
        &self,
        caller: &Caller,
        request: &UpdateGroup,
    ) -> Result<Option<Group>, Error> {
        if !self.store.writes_guarded()
            || request.validate_only
            || request.mask.updates_parents()
            || request.mask.replaces_membership()
        {
            return Ok(None);
        }
        let Some((group, standing)) = self
            .store
            .find_group_for(&request.id, standing_read_for(caller))
            .await?
        else {
            return Ok(None);
        };
        let Ok(mut group) = authorize(
            caller,
            Some(group),
            standing,
            Permission::Update,
            &request.id,
        ) else {
            return Ok(None);
        };
        if !group.is_live() || check_etag(&group, &request.etag).is_err() {
            return Ok(None);
        }
        let Ok(plan) = update::plan(&group, request, None, &self.limits) else {
            return Ok(None);
        };
        if plan.changes_parents(&group)
            || plan.renames(&group)
            || !plan.delta.is_empty()
            || (plan.fields.assigned_roles != group.fields.assigned_roles
                && !policy::allows(caller, standing, Permission::UpdateRoles))
        {
            return Ok(None);
        }
        let read = group.version;
        let labels_before = std::mem::replace(&mut group.fields, plan.fields).labels;
        touch(&mut group, caller.principal());
        // The reply's members, which the update does not change: read
        // after the group, so a change to them since has raised the
        // version and the write below does not happen.
        if group.member_count > 0 {
            let tx = self.store.read().await?;
            self.attach_members(&tx, &mut group).await?;
        } else {
            self.attach_if_it_fits(&mut group, Vec::new());
        }
        group.permissions = policy::permissions(caller, standing);
        let change = change_of(
            caller.principal(),
            &group,
            ChangeKind::Update,
            plan.mask_paths,
            &plan.delta,
        );
        Ok(self
            .store
            .update_if_unchanged(&change, &labels_before, read)
            .await?
            .map(|()| group))
    }

    /// UpdateGroup with `allow_missing` on a group that does not exist:
    /// creates it from the request, as CreateGroup would (the mask is
    /// ignored). An etag cannot match a group that does not exist.
    async fn create_missing(
        &self,
        tx: WriteTx,
        caller: &Caller,
        mut request: UpdateGroup,
    ) -> Result<Group, Error> {
        check_may_create(caller, &request.fields)?;
        creator_joins(caller, &mut request.membership);
        if !request.etag.is_empty() {
            return Err(Error::EtagMismatch {
                id: request.id.as_str().to_owned(),
            });
        }
        Error::check(create::check_new_group(
            request.id.as_str(),
            &request.fields,
            &request.membership,
            &self.limits,
        ))?;
        let new = NewGroup {
            id: request.id,
            fields: request.fields,
            membership: &request.membership,
            validate_only: request.validate_only,
            request_id: None,
        };
        self.insert_new_group(tx, caller, new).await
    }
}

fn invalid(violations: Vec<FieldViolation>) -> Error {
    Error::InvalidArgument { violations }
}
