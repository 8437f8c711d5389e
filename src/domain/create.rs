//! What a new group is, decided without the database: for CreateGroup, and
//! for UpdateGroup with `allow_missing` on a group that does not exist.
//! What only the database knows (whether the id and the name are free,
//! whether the parents are live) the service asks afterwards.

use super::{
    FieldViolation, Group, GroupFields, Limits, Membership, Principal, State, Timestamp,
    ids::GroupId,
    membership::{self, MembershipDelta},
    requests::CreateGroup,
    validate,
};

/// Checks a CreateGroup request as a whole, reporting every problem at
/// once; returns the id the client chose, if it chose one.
pub fn check_request(
    request: &CreateGroup,
    limits: &Limits,
) -> Result<Option<GroupId>, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let chosen = if request.group_id.is_empty() {
        None
    } else if let Ok(id) = GroupId::parse(request.group_id.as_str()) {
        Some(id)
    } else {
        violations.push(FieldViolation::new(
            "group_id",
            format!("group_id must match {}", validate::NAME_PATTERN),
        ));
        None
    };
    if !request.request_id.is_empty() && uuid::Uuid::parse_str(&request.request_id).is_err() {
        violations.push(FieldViolation::new(
            "request_id",
            "request_id must be a UUID",
        ));
    }
    violations.extend(check_new_group(
        &request.group_id,
        &request.fields,
        &request.membership,
        limits,
    ));
    if violations.is_empty() {
        Ok(chosen)
    } else {
        Err(violations)
    }
}

/// What is wrong with a group about to be created with id `id` (empty when
/// the server will assign one).
pub fn check_new_group(
    id: &str,
    fields: &GroupFields,
    membership: &Membership,
    limits: &Limits,
) -> Vec<FieldViolation> {
    let mut violations = validate::group_fields(fields, id);
    violations.extend(validate::membership_lists(
        &membership.members,
        &membership.admins,
        "group.",
        limits,
    ));
    violations.extend(validate::admins_are_members(membership, "group."));
    violations.extend(validate::member_count(
        membership.members.len(),
        "group.members",
        limits,
    ));
    violations
}

/// The group to insert, already checked by [`check_new_group`]: version 1,
/// created by `actor` at `now`, with its set-valued fields normalized; and
/// the membership rows to insert with it.
pub fn new_group(
    id: GroupId,
    mut fields: GroupFields,
    membership: &Membership,
    actor: &Principal,
    now: Timestamp,
) -> (Group, MembershipDelta) {
    fields.normalize();
    let delta = membership::replace(&[], &membership.members, &membership.admins);
    let group = Group {
        id,
        fields,
        state: State::Active,
        create_time: now,
        update_time: now,
        delete_time: None,
        created_by: actor.as_str().to_owned(),
        updated_by: actor.as_str().to_owned(),
        member_count: delta.count_change(),
        version: 1,
        members: None,
        permissions: Vec::new(),
    };
    (group, delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(group_id: &str, request_id: &str, name: &str) -> CreateGroup {
        CreateGroup {
            fields: GroupFields {
                name: name.into(),
                ..GroupFields::default()
            },
            group_id: group_id.into(),
            request_id: request_id.into(),
            ..CreateGroup::default()
        }
    }

    #[test]
    fn a_chosen_id_is_returned_parsed() {
        let chosen = check_request(&request("team-1", "", "ops"), &Limits::default());
        assert_eq!(
            chosen.map(|id| id.map(GroupId::into_string)),
            Ok(Some("team-1".into()))
        );
        assert_eq!(
            check_request(&request("", "", "ops"), &Limits::default()),
            Ok(None)
        );
    }

    #[test]
    fn the_id_the_request_id_and_the_fields_are_checked_together() {
        let violations =
            check_request(&request("bad id", "not-a-uuid", ""), &Limits::default()).unwrap_err();
        assert_eq!(
            crate::domain::fields_at(&violations),
            ["group_id", "request_id", "group.name"]
        );
    }

    #[test]
    fn a_new_group_counts_its_members_and_sorts_its_sets() {
        let fields = GroupFields {
            name: "ops".into(),
            assigned_roles: vec!["r2".into(), "r1".into()],
            ..GroupFields::default()
        };
        let membership = Membership {
            members: vec!["b".into(), "a".into()],
            admins: vec!["a".into()],
        };
        let (group, delta) = new_group(
            GroupId::parse("g").unwrap(),
            fields,
            &membership,
            &Principal::anonymous(),
            Timestamp::from_micros(7),
        );
        assert_eq!(group.member_count, 2);
        assert_eq!(group.version, 1);
        assert_eq!(group.fields.assigned_roles, ["r1", "r2"]);
        assert_eq!(delta.admins_added(), ["a"]);
        assert_eq!(group.created_by, "anonymous");
    }
}
