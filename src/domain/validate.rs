//! Validation of group fields and membership lists. Every check collects
//! all violations, so a caller learns everything wrong with a request at
//! once.
//!
//! Identifiers inside a group (parents, roles, members) stay text until
//! here: they are checked on the group as it would be stored, after an
//! update's mask has merged it, so a value outside the mask is ignored
//! rather than refused, and every problem is reported in one answer.

use std::collections::HashSet;

pub use super::ids::{
    LABEL_KEY_PATTERN, NAME_MAX_BYTES, NAME_PATTERN, PRINCIPAL_ID_PATTERN, ROLE_ID_MAX_BYTES,
    ROLE_ID_PATTERN, is_label_key, is_name,
};
use super::{
    FieldViolation, GroupFields, Limits, Membership,
    ids::{GroupId, PrincipalId, RoleId},
    membership::MembershipDelta,
    text::quote,
};

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest provenance, in characters.
pub const MAX_PROVENANCE_CHARS: usize = 256;
/// Most labels on a group.
pub const MAX_LABELS: usize = 64;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 256;
/// Most parent groups and most roles on a group.
pub const MAX_REFS: usize = 1000;
/// The longest email address, display name included, in bytes.
pub const MAX_EMAIL_BYTES: usize = 512;
/// The longest group id, in bytes: ids follow the name pattern.
pub const GROUP_ID_MAX_BYTES: usize = NAME_MAX_BYTES;

/// Why text with a NUL character is refused: PostgreSQL cannot store it,
/// and no client means to send it.
const NUL_NOT_ALLOWED: &str = "must not contain NUL characters";

/// Checks every writable field of a group (as it would be stored) except
/// membership. `id` is the group's own id, which `member_of` must not name.
pub fn group_fields(fields: &GroupFields, id: &str) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if fields.name.is_empty() {
        violations.push(FieldViolation::new("group.name", "name is required"));
    } else if !is_name(&fields.name) {
        violations.push(FieldViolation::new(
            "group.name",
            "name must be one word matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        ));
    }
    if !fields.scope.is_empty() && !is_name(&fields.scope) {
        violations.push(FieldViolation::new(
            "group.scope",
            "scope must be empty or match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        ));
    }
    if fields.description.chars().count() > MAX_DESCRIPTION_CHARS {
        violations.push(FieldViolation::new(
            "group.description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if fields.email.len() > MAX_EMAIL_BYTES {
        violations.push(FieldViolation::new(
            "group.email",
            format!("email must be at most {MAX_EMAIL_BYTES} bytes"),
        ));
    } else if !fields.email.is_empty() && !email_address::EmailAddress::is_valid(&fields.email) {
        violations.push(FieldViolation::new(
            "group.email",
            format!("{} is not a valid email address", quote(&fields.email)),
        ));
    }
    for (field, text) in [
        ("group.description", &fields.description),
        ("group.provenance", &fields.provenance),
    ] {
        if text.contains('\0') {
            violations.push(FieldViolation::new(field, NUL_NOT_ALLOWED));
        }
    }
    if fields.provenance.chars().count() > MAX_PROVENANCE_CHARS {
        violations.push(FieldViolation::new(
            "group.provenance",
            format!("provenance must be at most {MAX_PROVENANCE_CHARS} characters"),
        ));
    }
    check_labels(fields, &mut violations);
    check_refs(
        &fields.member_of,
        "group.member_of",
        "group_id",
        GroupId::is_valid,
        &mut violations,
    );
    for (index, parent) in fields.member_of.iter().enumerate() {
        if !id.is_empty() && parent == id {
            violations.push(FieldViolation::new(
                format!("group.member_of[{index}].group_id"),
                "a group cannot be a member of itself",
            ));
        }
    }
    check_refs(
        &fields.assigned_roles,
        "group.assigned_roles",
        "role_id",
        RoleId::is_valid,
        &mut violations,
    );
    violations
}

fn check_labels(fields: &GroupFields, violations: &mut Vec<FieldViolation>) {
    if fields.labels.len() > MAX_LABELS {
        violations.push(FieldViolation::new(
            "group.labels",
            format!("a group has at most {MAX_LABELS} labels"),
        ));
    }
    for (key, value) in &fields.labels {
        if !is_label_key(key) {
            violations.push(FieldViolation::new(
                "group.labels",
                format!(
                    "label key {} must match ^[a-z][a-z0-9_.-]{{0,62}}$",
                    quote(key)
                ),
            ));
        }
        if value.contains('\0') {
            violations.push(FieldViolation::new(
                "group.labels",
                format!("label {}: {NUL_NOT_ALLOWED}", quote(key)),
            ));
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            violations.push(FieldViolation::new(
                "group.labels",
                format!(
                    "label {} has a value longer than {MAX_LABEL_VALUE_CHARS} characters",
                    quote(key)
                ),
            ));
        }
    }
}

fn check_refs(
    ids: &[String],
    field: &str,
    id_field: &str,
    valid: fn(&str) -> bool,
    violations: &mut Vec<FieldViolation>,
) {
    if ids.len() > MAX_REFS {
        violations.push(FieldViolation::new(
            field,
            format!("at most {MAX_REFS} entries are allowed"),
        ));
    }
    let mut seen = HashSet::new();
    for (index, id) in ids.iter().enumerate() {
        let at = format!("{field}[{index}].{id_field}");
        if !valid(id) {
            violations.push(FieldViolation::new(
                at,
                format!("{} is not a valid id", quote(id)),
            ));
        } else if !seen.insert(id.as_str()) {
            violations.push(FieldViolation::new(
                at,
                format!("{} is listed twice", quote(id)),
            ));
        }
    }
}

/// Checks member and admin lists as a request carries them: valid ids, no
/// duplicates within a list, and at most the per-request limit in all.
/// `prefix` is where the lists sit in the request (`group.` or ``).
pub fn membership_lists(
    members: &[String],
    admins: &[String],
    prefix: &str,
    limits: &Limits,
) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let total = members.len() + admins.len();
    if total > limits.max_members_per_request {
        violations.push(FieldViolation::new(
            format!("{prefix}members"),
            format!(
                "a request may carry at most {} members and admins; it has {total}",
                limits.max_members_per_request
            ),
        ));
        return violations;
    }
    for (list, ids) in [("members", members), ("admins", admins)] {
        let mut seen = HashSet::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            let at = format!("{prefix}{list}[{index}].id");
            if !PrincipalId::is_valid(id) {
                violations.push(FieldViolation::new(
                    at,
                    format!("{} is not a valid principal id", quote(id)),
                ));
            } else if !seen.insert(id.as_str()) {
                violations.push(FieldViolation::new(
                    at,
                    format!("{} is listed twice", quote(id)),
                ));
            }
        }
    }
    violations
}

/// The one check of the members-per-group limit, whatever operation would
/// leave a group with `count` direct members; `field` is where the request
/// carries them.
pub fn member_count(count: usize, field: &str, limits: &Limits) -> Option<FieldViolation> {
    (count > limits.max_members_per_group).then(|| {
        FieldViolation::new(
            field,
            format!(
                "a group has at most {} members; this request would leave it with {count}",
                limits.max_members_per_group
            ),
        )
    })
}

/// The one check of how much membership one write may change: as many
/// memberships and admin roles as a request may carry principals, so that
/// the write's history entry always fits a reply.
pub fn change_size(
    delta: &MembershipDelta,
    field: &str,
    limits: &Limits,
) -> Option<FieldViolation> {
    let entries = delta.entries();
    (entries > limits.max_members_per_request).then(|| {
        FieldViolation::new(
            field,
            format!(
                "one request may change at most {} memberships and admin roles (a new member \
                 who is also a new admin counts twice); this one would change {entries}: split \
                 it, e.g. with AddGroupMembers and RemoveGroupMembers",
                limits.max_members_per_request
            ),
        )
    })
}

/// Which of `parents` (a request's `member_of`, in request order) are
/// neither in `live` nor in `already` (parents the group had before, which
/// stay even if they were deleted since), as violations.
pub fn dead_parents(
    parents: &[String],
    already: &[String],
    live: &HashSet<String>,
) -> Vec<FieldViolation> {
    parents
        .iter()
        .enumerate()
        .filter(|(_, p)| !already.contains(p) && !live.contains(*p))
        .map(|(index, p)| {
            FieldViolation::new(
                format!("group.member_of[{index}].group_id"),
                format!("group {} does not exist or is deleted", quote(p)),
            )
        })
        .collect()
}

/// Checks that every admin is also a member, both lists coming from one
/// request.
pub fn admins_are_members(membership: &Membership, prefix: &str) -> Vec<FieldViolation> {
    let members: HashSet<&str> = membership.members.iter().map(String::as_str).collect();
    admins_outside(
        membership.admins.iter().map(String::as_str),
        prefix,
        |admin| members.contains(admin),
    )
}

/// Violations for each admin that `is_member` says is not a member.
fn admins_outside<'a>(
    admins: impl IntoIterator<Item = &'a str>,
    prefix: &str,
    is_member: impl Fn(&str) -> bool,
) -> Vec<FieldViolation> {
    admins
        .into_iter()
        .enumerate()
        .filter(|(_, admin)| !is_member(admin))
        .map(|(index, admin)| {
            FieldViolation::new(
                format!("{prefix}admins[{index}].id"),
                format!("admin {} must also be a member", quote(admin)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fields_at;

    fn valid_fields() -> GroupFields {
        GroupFields {
            name: "ops".into(),
            ..GroupFields::default()
        }
    }

    #[test]
    fn a_valid_group_has_no_violations() {
        let mut fields = valid_fields();
        fields.email = "ops@example.com".into();
        fields.labels.insert("country".into(), "Guatemala".into());
        assert_eq!(group_fields(&fields, "g1"), vec![]);
    }

    #[test]
    fn free_text_refuses_nul_characters() {
        let mut fields = valid_fields();
        fields.description = "a\0b".into();
        fields.provenance = "\0".into();
        fields.labels.insert("k".into(), "v\0".into());
        assert_eq!(
            fields_at(&group_fields(&fields, "g1")),
            vec!["group.description", "group.provenance", "group.labels"]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut fields = valid_fields();
        fields.name = "two words".into();
        fields.email = "not-an-email".into();
        fields.description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        fields.member_of = vec!["g1".into(), "p".into(), "p".into()];
        assert_eq!(
            fields_at(&group_fields(&fields, "g1")),
            vec![
                "group.name",
                "group.description",
                "group.email",
                "group.member_of[2].group_id",
                "group.member_of[0].group_id",
            ]
        );
    }

    #[test]
    fn membership_lists_reject_duplicates_bad_ids_and_oversized_requests() {
        let membership = Membership {
            members: vec!["a".into(), "a".into(), "bad id".into()],
            admins: vec!["b".into()],
        };
        assert_eq!(
            fields_at(&membership_lists(
                &membership.members,
                &membership.admins,
                "group.",
                &Limits::default()
            )),
            vec!["group.members[1].id", "group.members[2].id"]
        );
        assert_eq!(
            admins_are_members(&membership, "group.")[0].field,
            "group.admins[0].id"
        );
        let limits = Limits {
            max_members_per_request: 3,
            ..Limits::default()
        };
        assert_eq!(
            membership_lists(&membership.members, &membership.admins, "", &limits)[0].field,
            "members"
        );
    }
}
