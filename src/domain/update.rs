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
    /// The effective mask, as the history records it.
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
        let sent = request.masked_membership();
        let members: Vec<String> = if request.mask.replaces_members() {
            sent.members
        } else {
            current.iter().map(|m| m.id.clone()).collect()
        };
        let admins: Vec<String> = if request.mask.replaces_admins() {
            sent.admins
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
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    fields.normalize();
    Ok(UpdatePlan {
        fields,
        delta,
        mask_paths: request.mask.to_paths(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::{GroupId, State, Timestamp, UpdateMask};

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
        }
    }

    fn entry(id: &str, is_admin: bool) -> MemberEntry {
        MemberEntry {
            id: id.into(),
            is_admin,
        }
    }

    fn current() -> Vec<MemberEntry> {
        vec![entry("ann", true), entry("bob", false)]
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

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn fields_at(violations: &[FieldViolation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn only_the_masked_fields_change() {
        let request = request(
            &["description", "labels.b", "labels.c"],
            GroupFields {
                name: "ignored".into(),
                description: "new".into(),
                labels: BTreeMap::from([("c".into(), "3".into())]),
                ..GroupFields::default()
            },
            Membership::default(),
        );
        let plan = plan(&stored(), &request, None, &Limits::default()).unwrap();
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
    fn the_merged_group_is_validated_and_every_problem_reported() {
        let request = request(
            &["name", "email", "member_of"],
            GroupFields {
                name: "two words".into(),
                email: "nope".into(),
                member_of: ids(&["g1"]),
                ..GroupFields::default()
            },
            Membership::default(),
        );
        let violations = plan(&stored(), &request, None, &Limits::default()).unwrap_err();
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
        let refused = plan(
            &stored(),
            &request(&["scope", "name"], fields.clone(), Membership::default()),
            None,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(fields_at(&refused), ["group.scope"]);
        fields.scope = "site".into();
        fields.name = "renamed".into();
        let planned = plan(
            &stored(),
            &request(&["scope", "name"], fields, Membership::default()),
            None,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(planned.fields.scope, "site");
        assert!(planned.renames(&stored()));
    }

    #[test]
    fn replacing_members_keeps_stored_admins_who_stay_members() {
        let request = request(
            &["members"],
            GroupFields::default(),
            Membership {
                members: ids(&["ann", "cat"]),
                admins: ids(&["ignored-because-unmasked"]),
            },
        );
        let plan = plan(&stored(), &request, Some(&current()), &Limits::default()).unwrap();
        assert_eq!(plan.delta.members_added(), ids(&["cat"]));
        assert_eq!(plan.delta.members_removed(), ids(&["bob"]));
        assert!(plan.delta.admins_added().is_empty() && plan.delta.admins_removed().is_empty());
    }

    #[test]
    fn replacing_members_must_keep_every_stored_admin() {
        let request = request(
            &["members"],
            GroupFields::default(),
            Membership {
                members: ids(&["bob"]),
                admins: Vec::new(),
            },
        );
        let violations =
            plan(&stored(), &request, Some(&current()), &Limits::default()).unwrap_err();
        assert_eq!(fields_at(&violations), ["group.admins[0].id"]);
    }

    #[test]
    fn the_members_limit_is_checked_on_the_result() {
        let limits = Limits {
            max_members_per_group: 2,
            ..Limits::default()
        };
        let request = request(
            &["members", "admins"],
            GroupFields::default(),
            Membership {
                members: ids(&["a", "b", "c"]),
                admins: ids(&["a"]),
            },
        );
        let violations = plan(&stored(), &request, Some(&current()), &limits).unwrap_err();
        assert_eq!(fields_at(&violations), ["group.members"]);
        assert!(violations[0].description.contains("at most 2 members"));
    }

    #[test]
    fn set_fields_are_normalized_and_a_reordering_is_no_change() {
        let request = request(
            &["member_of", "assigned_roles"],
            GroupFields {
                member_of: ids(&["p1"]),
                assigned_roles: ids(&["r2", "r1"]),
                ..GroupFields::default()
            },
            Membership::default(),
        );
        let plan = plan(&stored(), &request, None, &Limits::default()).unwrap();
        assert_eq!(plan.fields.assigned_roles, ids(&["r1", "r2"]));
        assert!(!plan.changes_parents(&stored()));
    }

    fn arb_ids() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-e]", 0..5).prop_map(|set| set.into_iter().collect())
    }

    proptest! {
        /// Whatever lists the mask replaces, the plan's delta turns the
        /// current membership into exactly the requested one, admins
        /// included, and counts the change right.
        #[test]
        fn the_delta_reaches_the_requested_membership(
            current_members in arb_ids(),
            current_admin_picks in proptest::collection::vec(any::<bool>(), 5),
            members in arb_ids(),
            admin_picks in proptest::collection::vec(any::<bool>(), 5),
            replace_members in any::<bool>(),
        ) {
            let current: Vec<MemberEntry> = current_members
                .iter()
                .enumerate()
                .map(|(i, id)| entry(id, current_admin_picks[i]))
                .collect();
            let admins: Vec<String> = members
                .iter()
                .enumerate()
                .filter(|(i, _)| admin_picks[*i])
                .map(|(_, id)| id.clone())
                .collect();
            let paths: &[&str] = if replace_members { &["members", "admins"] } else { &["admins"] };
            let wanted_members = if replace_members {
                members.clone()
            } else {
                current_members.clone()
            };
            let admins: Vec<String> = admins.into_iter().filter(|a| wanted_members.contains(a)).collect();
            let request = request(paths, GroupFields::default(), Membership { members, admins: admins.clone() });
            let plan = plan(&stored(), &request, Some(&current), &Limits::default())
                .map_err(|v| TestCaseError::fail(format!("{v:?}")))?;
            let after = plan.delta.apply(current.clone());
            let after_ids: Vec<String> = after.iter().map(|m| m.id.clone()).collect();
            prop_assert_eq!(&after_ids, &wanted_members);
            let after_admins: Vec<String> = after.iter().filter(|m| m.is_admin).map(|m| m.id.clone()).collect();
            prop_assert_eq!(after_admins, admins);
            let count = i64::try_from(current.len()).unwrap() + plan.delta.count_change();
            prop_assert_eq!(count, i64::try_from(wanted_members.len()).unwrap());
        }
    }
}
