//! What an UpdateGroup changes, decided without the database.
//!
//! [`plan`] takes the stored group, the request, the group's current
//! membership (when the mask names it) and the limits, and returns the
//! merged group and the membership delta to write, or every violation at
//! once. The service loads what `plan` needs, asks the database only what
//! it alone knows (whether new parents are live, whether they would close a
//! cycle, whether a new name is free), and writes the plan.
//!
//! The rules, in order:
//! 1. The mask merges the request into the stored fields: a named field
//!    takes the request's value, `labels.<key>` sets or deletes one label,
//!    `*` replaces every writable field; `scope` is immutable (the same
//!    value is accepted, another is refused alone, before anything else).
//! 2. The merged group is validated as a whole, so that no mask can store
//!    an invalid group.
//! 3. When the mask names `members` or `admins`, the named list replaces
//!    the stored one; the other keeps its stored value. Admins must be
//!    members, and the group must stay within the members-per-group limit.
//!    The delta touches only the rows that differ.

use super::{
    FieldViolation, Group, GroupFields, Limits, MemberEntry, Membership,
    membership::{self, MembershipDelta},
    requests::UpdateGroup,
    validate,
};

/// The outcome of a valid update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The group's writable fields after the update: merged, valid, and
    /// normalized (set-valued fields sorted).
    pub fields: GroupFields,
    /// The membership rows to change.
    pub delta: MembershipDelta,
    /// The effective mask, as the history records it (see
    /// [`super::UpdateMask::effective_paths`]).
    pub mask_paths: Vec<String>,
}

impl UpdatePlan {
    /// Whether the update changes the group's parents, which must then be
    /// checked for liveness and cycles.
    pub fn changes_parents(&self, stored: &Group) -> bool {
        self.fields.member_of != stored.fields.member_of
    }

    /// Whether the update renames the group (other than by case), so the
    /// new name must be free in its scope.
    pub fn renames(&self, stored: &Group) -> bool {
        self.fields.name.to_lowercase() != stored.fields.name.to_lowercase()
    }
}

/// Plans `request` against `stored`. `current` is the stored membership,
/// sorted by id; it is needed, and read, only when the mask names `members`
/// or `admins` (see [`super::UpdateMask::replaces_membership`]): without
/// it, such a mask is planned as if the group had no members.
pub fn plan(
    stored: &Group,
    request: &UpdateGroup,
    current: Option<&[MemberEntry]>,
    limits: &Limits,
) -> Result<UpdatePlan, Vec<FieldViolation>> {
    let mut fields = request.mask.merge(&stored.fields, &request.fields)?;
    let mut violations = validate::group_fields(&fields, stored.id.as_str());
    let mut delta = MembershipDelta::default();
    if request.mask.replaces_membership() {
        let current = current.unwrap_or_default();
        let (sent_members, sent_admins) = request.masked_lists();
        let members: Vec<String> = if request.mask.replaces_members() {
            sent_members.to_vec()
        } else {
            current.iter().map(|m| m.id.clone()).collect()
        };
        let admins: Vec<String> = if request.mask.replaces_admins() {
            sent_admins.to_vec()
        } else {
            current
                .iter()
                .filter(|m| m.is_admin)
                .map(|m| m.id.clone())
                .collect()
        };
        let target = Membership { members, admins };
        violations.extend(validate::admins_are_members(&target, "group."));
        violations.extend(validate::member_count(
            target.members.len(),
            "group.members",
            limits,
        ));
        delta = membership::replace(current, &target.members, &target.admins);
        violations.extend(validate::change_size(&delta, "group.members", limits));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    fields.normalize();
    Ok(UpdatePlan {
        mask_paths: request.mask.effective_paths(&stored.fields, &fields),
        fields,
        delta,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::{GroupId, State, Timestamp, UpdateMask, fields_at};

    /// The stored group every test updates: two labels, one parent, and
    /// the members of [`current`].
    fn stored() -> Group {
        let at = Timestamp::from_micros(1);
        Group {
            id: GroupId::parse("g1").unwrap(),
            fields: GroupFields {
                name: "ops".into(),
                scope: "site".into(),
                description: "old".into(),
                member_of: vec!["p1".into()],
                labels: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
                ..GroupFields::default()
            },
            state: State::Active,
            create_time: at,
            update_time: at,
            delete_time: None,
            created_by: "alice".into(),
            updated_by: "alice".into(),
            member_count: 2,
            version: 3,
            members: None,
            permissions: Vec::new(),
        }
    }

    fn entry(id: &str, is_admin: bool) -> MemberEntry {
        MemberEntry {
            id: id.into(),
            is_admin,
        }
    }

    /// The stored membership: `ann` (an admin) and `bob`.
    fn current() -> Vec<MemberEntry> {
        vec![entry("ann", true), entry("bob", false)]
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn request(paths: &[&str], fields: GroupFields, membership: Membership) -> UpdateGroup {
        UpdateGroup {
            id: GroupId::parse("g1").unwrap(),
            etag: String::new(),
            fields,
            membership,
            mask: UpdateMask::parse(paths).unwrap(),
            allow_missing: false,
            validate_only: false,
        }
    }

    /// Plans an update of [`stored`] that sends `fields` under `paths`.
    fn plan_fields(paths: &[&str], fields: GroupFields) -> Result<UpdatePlan, Vec<FieldViolation>> {
        let request = request(paths, fields, Membership::default());
        plan(&stored(), &request, None, &Limits::default())
    }

    /// Plans an update of [`stored`] that sends `members` and `admins`
    /// under `paths`, within `limits`.
    fn plan_members(
        paths: &[&str],
        members: &[&str],
        admins: &[&str],
        limits: &Limits,
    ) -> Result<UpdatePlan, Vec<FieldViolation>> {
        let membership = Membership {
            members: ids(members),
            admins: ids(admins),
        };
        let request = request(paths, GroupFields::default(), membership);
        plan(&stored(), &request, Some(&current()), limits)
    }

    #[test]
    fn only_the_masked_fields_change() {
        let plan = plan_fields(
            &["description", "labels.b", "labels.c"],
            GroupFields {
                name: "ignored".into(),
                description: "new".into(),
                labels: BTreeMap::from([("c".into(), "3".into())]),
                ..GroupFields::default()
            },
        )
        .unwrap();
        assert_eq!(plan.fields.name, "ops");
        assert_eq!(plan.fields.description, "new");
        assert_eq!(
            plan.fields.labels,
            BTreeMap::from([("a".into(), "1".into()), ("c".into(), "3".into())])
        );
        assert!(plan.delta.is_empty());
        assert_eq!(
            plan.mask_paths,
            ids(&["description", "labels.b", "labels.c"])
        );
        assert!(!plan.renames(&stored()) && !plan.changes_parents(&stored()));
    }

    #[test]
    fn label_paths_that_change_nothing_are_not_recorded() {
        let fields = GroupFields {
            labels: BTreeMap::from([("a".into(), "1".into()), ("c".into(), "3".into())]),
            ..GroupFields::default()
        };
        let paths = [
            "labels.a",
            "labels.b",
            "labels.c",
            "labels.absent",
            "description",
        ];
        let plan = plan_fields(&paths, fields).unwrap();
        // `a` keeps its value and `absent` stays absent: neither is recorded.
        assert_eq!(
            plan.mask_paths,
            ids(&["description", "labels.b", "labels.c"])
        );
    }

    #[test]
    fn a_write_may_change_no_more_memberships_than_a_request_may_carry() {
        let limits = Limits {
            max_members_per_request: 2,
            ..Limits::default()
        };
        // Replacing ann (an admin) and bob with cat removes two members and
        // an admin role and adds one member: four changes.
        let violations = plan_members(&["members", "admins"], &["cat"], &[], &limits).unwrap_err();
        assert_eq!(fields_at(&violations), ["group.members"]);
        assert!(violations[0].description.contains("at most 2"));
        assert!(plan_members(&["members"], &["ann", "bob", "cat"], &[], &limits).is_ok());
    }

    #[test]
    fn the_merged_group_is_validated_and_every_problem_reported() {
        let fields = GroupFields {
            name: "two words".into(),
            email: "nope".into(),
            member_of: ids(&["g1"]),
            ..GroupFields::default()
        };
        let violations = plan_fields(&["name", "email", "member_of"], fields).unwrap_err();
        assert_eq!(
            fields_at(&violations),
            ["group.name", "group.email", "group.member_of[0].group_id"]
        );
    }

    #[test]
    fn a_changed_scope_is_refused_alone_and_the_same_scope_ignored() {
        let mut fields = stored().fields;
        fields.name = "bad name".into();
        fields.scope = "elsewhere".into();
        let refused = plan_fields(&["scope", "name"], fields.clone()).unwrap_err();
        assert_eq!(fields_at(&refused), ["group.scope"]);
        fields.scope = "site".into();
        fields.name = "renamed".into();
        let planned = plan_fields(&["scope", "name"], fields).unwrap();
        assert_eq!(planned.fields.scope, "site");
        assert!(planned.renames(&stored()));
    }

    #[test]
    fn replacing_members_keeps_stored_admins_who_stay_members() {
        let admins = ["ignored-because-unmasked"];
        let plan = plan_members(&["members"], &["ann", "cat"], &admins, &Limits::default());
        let delta = plan.unwrap().delta;
        assert_eq!(delta.members_added(), ids(&["cat"]));
        assert_eq!(delta.members_removed(), ids(&["bob"]));
        assert!(delta.admins_added().is_empty() && delta.admins_removed().is_empty());
    }

    #[test]
    fn replacing_members_must_keep_every_stored_admin() {
        let violations = plan_members(&["members"], &["bob"], &[], &Limits::default()).unwrap_err();
        assert_eq!(fields_at(&violations), ["group.admins[0].id"]);
    }

    #[test]
    fn the_members_limit_is_checked_on_the_result() {
        let limits = Limits {
            max_members_per_group: 2,
            ..Limits::default()
        };
        let violations =
            plan_members(&["members", "admins"], &["a", "b", "c"], &["a"], &limits).unwrap_err();
        assert_eq!(fields_at(&violations), ["group.members"]);
        assert!(violations[0].description.contains("at most 2 members"));
    }

    #[test]
    fn set_fields_are_normalized_and_a_reordering_is_no_change() {
        let fields = GroupFields {
            member_of: ids(&["p1"]),
            assigned_roles: ids(&["r2", "r1"]),
            ..GroupFields::default()
        };
        let plan = plan_fields(&["member_of", "assigned_roles"], fields).unwrap();
        assert_eq!(plan.fields.assigned_roles, ids(&["r1", "r2"]));
        assert!(!plan.changes_parents(&stored()));
    }

    fn arb_ids() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-e]", 0..5).prop_map(|set| set.into_iter().collect())
    }

    /// `picks` of `ids`: the entries whose pick is true.
    fn picked(ids: &[String], picks: &[bool]) -> Vec<String> {
        ids.iter()
            .zip(picks)
            .filter(|(_, pick)| **pick)
            .map(|(id, _)| id.clone())
            .collect()
    }

    proptest! {
        /// Whatever lists the mask replaces, the plan's delta turns the
        /// current membership into exactly the requested one, admins
        /// included, and counts the change right.
        #[test]
        fn the_delta_reaches_the_requested_membership(
            current_members in arb_ids(),
            current_admins in proptest::collection::vec(any::<bool>(), 5),
            members in arb_ids(),
            admins in proptest::collection::vec(any::<bool>(), 5),
            replace_members in any::<bool>(),
        ) {
            let current: Vec<MemberEntry> = current_members
                .iter()
                .zip(&current_admins)
                .map(|(id, admin)| entry(id, *admin))
                .collect();
            let (paths, wanted): (&[&str], _) = if replace_members {
                (&["members", "admins"], members.clone())
            } else {
                (&["admins"], current_members.clone())
            };
            // Admins must be members: pick them among the wanted members.
            let admins: Vec<String> = picked(&members, &admins)
                .into_iter()
                .filter(|a| wanted.contains(a))
                .collect();
            let membership = Membership { members, admins: admins.clone() };
            let request = request(paths, GroupFields::default(), membership);
            let plan = plan(&stored(), &request, Some(&current), &Limits::default())
                .map_err(|v| TestCaseError::fail(format!("{v:?}")))?;
            let after = plan.delta.apply(current.clone());
            let after_ids: Vec<String> = after.iter().map(|m| m.id.clone()).collect();
            prop_assert_eq!(&after_ids, &wanted);
            let after_admins: Vec<String> =
                after.iter().filter(|m| m.is_admin).map(|m| m.id.clone()).collect();
            prop_assert_eq!(after_admins, admins);
            let count = i64::try_from(current.len()).unwrap() + plan.delta.count_change();
            prop_assert_eq!(count, i64::try_from(wanted.len()).unwrap());
        }
    }
}
