//! UpdateGroup: field-mask partial updates (see [`crate::domain::update`]
//! for what an update changes).

use super::{
    GroupService, check_etag, check_name_free, create::NewGroup, not_found, record, touch,
};
use crate::{
    domain::{
        ChangeKind, FieldViolation, Group, Principal, create, requests::UpdateGroup, update,
        validate,
    },
    error::Error,
    store::WriteTx,
};

impl GroupService {
    /// Updates a group through a field mask, in one transaction: two
    /// updates with disjoint masks both take effect, on any number of
    /// replicas.
    pub async fn update_group(
        &self,
        actor: &Principal,
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
        let mut group = match tx.lock_group(&request.id).await? {
            Some(group) if group.is_live() => group,
            None if request.allow_missing => return self.create_missing(tx, actor, request).await,
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
        touch(&mut group, actor);
        if !request.validate_only {
            tx.update_group(&group).await?;
            if group.fields.labels != labels_before {
                tx.replace_labels(&group.id, &labels_before, &group.fields.labels)
                    .await?;
            }
            if changes_parents {
                tx.replace_parents(&group.id, &group.fields.member_of)
                    .await?;
            }
            record(
                &tx,
                actor,
                &group,
                ChangeKind::Update,
                plan.mask_paths,
                &plan.delta,
            )
            .await?;
        }
        // The reply's members: the new membership when the mask replaced it,
        // else the stored one (which the update did not change).
        match current {
            Some(current) => {
                self.attach_if_it_fits(&mut group, plan.delta.apply(current));
            }
            None => {
                self.attach_members(&tx, &mut group).await?;
            }
        }
        if !request.validate_only {
            tx.commit().await?;
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
        actor: &Principal,
        request: UpdateGroup,
    ) -> Result<Group, Error> {
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
        self.insert_new_group(tx, actor, new).await
    }
}

fn invalid(violations: Vec<FieldViolation>) -> Error {
    Error::InvalidArgument { violations }
}
