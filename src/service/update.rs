//! UpdateGroup: field-mask partial updates (see [`crate::domain::update`]
//! for what an update changes).

use super::{
    GroupService, authorize, check_admins_left, check_etag, check_name_free, check_parents,
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
