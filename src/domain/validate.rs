//! Validation of group fields and membership lists. Every check collects
//! all violations, so a caller learns everything wrong with a request at
//! once.
//!
//! The patterns are simple character classes, checked by hand rather than
//! with a regex engine: they are fixed, short, and on every request path.

use std::collections::HashSet;

use super::{FieldViolation, GroupFields, Limits, Membership};

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
/// The pattern of names, scopes and chosen group ids ([`is_name`]), as a
/// regular expression for documents (OpenAPI); the check itself is by hand.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// The pattern of principal ids ([`is_principal_id`]).
pub const PRINCIPAL_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,255}$";
/// The pattern of role ids ([`is_role_id`]).
pub const ROLE_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,255}$";
/// The pattern of label keys ([`is_label_key`]).
pub const LABEL_KEY_PATTERN: &str = "^[a-z][a-z0-9_.-]{0,62}$";
/// Why text with a NUL character is refused: PostgreSQL cannot store it,
/// and no client means to send it.
const NUL_NOT_ALLOWED: &str = "must not contain NUL characters";

/// Whether `text` is an ASCII letter or digit followed by at most
/// `max_len - 1` letters, digits or `extra` characters.
fn is_token(text: &str, max_len: usize, extra: &[u8]) -> bool {
    let bytes = text.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= max_len
                && first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(b))
        }
        None => false,
    }
}

/// [`NAME_PATTERN`]: names, scopes and chosen group ids.
pub fn is_name(text: &str) -> bool {
    is_token(text, 128, b"._-")
}

/// [`PRINCIPAL_ID_PATTERN`]: principal ids.
pub fn is_principal_id(text: &str) -> bool {
    is_token(text, 256, b"._@-")
}

/// [`ROLE_ID_PATTERN`]: role ids.
pub fn is_role_id(text: &str) -> bool {
    is_token(text, 256, b"._@:/-")
}

/// Group ids: chosen ones follow the name pattern, and server-assigned
/// UUIDs fit it too.
pub fn is_group_id(text: &str) -> bool {
    is_name(text)
}

/// [`LABEL_KEY_PATTERN`]: label keys.
pub fn is_label_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= 63
                && first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(b))
        }
        None => false,
    }
}

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
    if !fields.email.is_empty() && !email_address::EmailAddress::is_valid(&fields.email) {
        violations.push(FieldViolation::new(
            "group.email",
            format!("{:?} is not a valid email address", fields.email),
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
        is_group_id,
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
        is_role_id,
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
                format!("label key {key:?} must match ^[a-z][a-z0-9_.-]{{0,62}}$"),
            ));
        }
        if value.contains('\0') {
            violations.push(FieldViolation::new(
                "group.labels",
                format!("label {key:?}: {NUL_NOT_ALLOWED}"),
            ));
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            violations.push(FieldViolation::new(
                "group.labels",
                format!("label {key:?} has a value longer than {MAX_LABEL_VALUE_CHARS} characters"),
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
            violations.push(FieldViolation::new(at, format!("{id:?} is not a valid id")));
        } else if !seen.insert(id.as_str()) {
            violations.push(FieldViolation::new(at, format!("{id:?} is listed twice")));
        }
    }
}

/// Checks member and admin lists as a request carries them: valid ids, no
/// duplicates within a list, and at most the per-request limit in all.
/// `prefix` is where the lists sit in the request (`group.` or ``).
pub fn membership_lists(
    membership: &Membership,
    prefix: &str,
    limits: &Limits,
) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let total = membership.members.len() + membership.admins.len();
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
    for (list, ids) in [
        ("members", &membership.members),
        ("admins", &membership.admins),
    ] {
        let mut seen = HashSet::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            let at = format!("{prefix}{list}[{index}].id");
            if !is_principal_id(id) {
                violations.push(FieldViolation::new(
                    at,
                    format!("{id:?} is not a valid principal id"),
                ));
            } else if !seen.insert(id.as_str()) {
                violations.push(FieldViolation::new(at, format!("{id:?} is listed twice")));
            }
        }
    }
    violations
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
pub fn admins_outside<'a>(
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
                format!("admin {admin:?} must also be a member"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_fields() -> GroupFields {
        GroupFields {
            name: "ops".into(),
            ..GroupFields::default()
        }
    }

    #[test]
    fn names_follow_the_one_word_pattern() {
        assert!(is_name("some-group"));
        assert!(is_name("a"));
        assert!(is_name(&"a".repeat(128)));
        assert!(!is_name(&"a".repeat(129)));
        assert!(!is_name("-leading"));
        assert!(!is_name("two words"));
        assert!(!is_name(""));
        assert!(!is_name("ünicode"));
    }

    #[test]
    fn principal_ids_allow_at_signs_and_role_ids_allow_slashes() {
        assert!(is_principal_id("alice@example.com"));
        assert!(!is_principal_id("alice/x"));
        assert!(is_role_id("roles/admin:read"));
        assert!(!is_role_id(":admin"));
    }

    #[test]
    fn label_keys_start_with_a_lowercase_letter() {
        assert!(is_label_key("team"));
        assert!(is_label_key("k8s.io-name_1"));
        assert!(!is_label_key("Team"));
        assert!(!is_label_key("1team"));
        assert!(!is_label_key(&format!("a{}", "b".repeat(63))));
    }

    #[test]
    fn a_valid_group_has_no_violations() {
        let mut fields = valid_fields();
        fields.email = "ops@example.com".into();
        fields.labels.insert("country".into(), "Guatemala".into());
        assert_eq!(group_fields(&fields, "g1"), vec![]);
    }

    proptest::proptest! {
        /// The documented patterns (served in the OpenAPI document) accept
        /// exactly what the hand-written checks accept.
        #[test]
        fn patterns_match_the_checks(text in "[A-Za-z0-9._@:/ -]{0,3}[a-z0-9_.@-]{0,300}") {
            for (pattern, check) in [
                (NAME_PATTERN, is_name as fn(&str) -> bool),
                (PRINCIPAL_ID_PATTERN, is_principal_id),
                (ROLE_ID_PATTERN, is_role_id),
                (LABEL_KEY_PATTERN, is_label_key),
            ] {
                let regex = regex::Regex::new(pattern).unwrap();
                proptest::prop_assert_eq!(regex.is_match(&text), check(&text), "{} on {:?}", pattern, text);
            }
        }
    }

    #[test]
    fn free_text_refuses_nul_characters() {
        let mut fields = valid_fields();
        fields.description = "a\0b".into();
        fields.provenance = "\0".into();
        fields.labels.insert("k".into(), "v\0".into());
        let fields_at: Vec<_> = group_fields(&fields, "g1")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields_at,
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
        let fields_at: Vec<_> = group_fields(&fields, "g1")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields_at,
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
        let fields_at: Vec<_> = membership_lists(&membership, "group.", &Limits::default())
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields_at,
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
            membership_lists(&membership, "", &limits)[0].field,
            "members"
        );
    }
}
