//! Field masks (AIP-134, AIP-161): which paths a mask may name, and how a
//! mask merges a request's fields into a stored group.

use std::collections::BTreeSet;

use super::{FieldViolation, GroupFields, Membership, text::quote, validate};

/// A writable path of a group that an update mask can name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MaskPath {
    /// `name`.
    Name,
    /// `scope` (immutable: only the same value is accepted).
    Scope,
    /// `description`.
    Description,
    /// `email`.
    Email,
    /// `members`, replaced whole.
    Members,
    /// `admins`, replaced whole.
    Admins,
    /// `member_of`, replaced whole.
    MemberOf,
    /// `assigned_roles`, replaced whole.
    AssignedRoles,
    /// `inactive`.
    Inactive,
    /// `provenance`.
    Provenance,
    /// `labels`, replaced whole.
    Labels,
    /// `labels.<key>`: one label, set or deleted.
    Label(String),
}

/// Most paths one mask may name: enough to name every writable field and
/// to delete every label of a group while setting as many new ones, and
/// small enough that the history entry recording the mask stays small.
pub const MAX_MASK_PATHS: usize = 200;

/// The writable top-level fields, in proto order; what `*` stands for.
const WRITABLE: [(&str, MaskPath); 11] = [
    ("name", MaskPath::Name),
    ("scope", MaskPath::Scope),
    ("description", MaskPath::Description),
    ("email", MaskPath::Email),
    ("members", MaskPath::Members),
    ("admins", MaskPath::Admins),
    ("member_of", MaskPath::MemberOf),
    ("assigned_roles", MaskPath::AssignedRoles),
    ("inactive", MaskPath::Inactive),
    ("provenance", MaskPath::Provenance),
    ("labels", MaskPath::Labels),
];

/// Output-only fields: a mask may name them, and they are ignored (AIP-203).
const OUTPUT_ONLY: [&str; 9] = [
    "id",
    "state",
    "create_time",
    "update_time",
    "delete_time",
    "created_by",
    "updated_by",
    "member_count",
    "etag",
];

/// Output-only fields of message type, whose sub-paths are ignored too.
const OUTPUT_ONLY_MESSAGES: [&str; 3] = ["create_time", "update_time", "delete_time"];

/// Fields of `Timestamp`, the only message type among the output-only fields.
const TIMESTAMP_FIELDS: [&str; 2] = ["seconds", "nanos"];

impl MaskPath {
    /// The path as a field mask writes it.
    pub fn to_path(&self) -> String {
        match self {
            Self::Label(key) => format!("labels.{key}"),
            other => WRITABLE
                .iter()
                .find(|(_, path)| path == other)
                .map_or_else(String::new, |(name, _)| (*name).to_owned()),
        }
    }
}

/// A parsed, normalized update mask: the writable paths an update applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateMask {
    paths: BTreeSet<MaskPath>,
    /// Whether the mask was `*`, under which absent fields become empty.
    full_replacement: bool,
}

impl UpdateMask {
    /// `*`: every writable field.
    pub fn all() -> Self {
        Self {
            paths: WRITABLE.into_iter().map(|(_, path)| path).collect(),
            full_replacement: true,
        }
    }

    /// Parses the paths of an explicit, non-empty mask. Output-only paths
    /// are dropped; `labels` absorbs `labels.<key>`.
    pub fn parse<S: AsRef<str>>(paths: &[S]) -> Result<Self, Vec<FieldViolation>> {
        if paths.iter().any(|p| p.as_ref() == "*") {
            return if paths.len() == 1 {
                Ok(Self::all())
            } else {
                Err(vec![FieldViolation::new(
                    "update_mask",
                    "\"*\" must be the only path of the mask",
                )])
            };
        }
        if paths.len() > MAX_MASK_PATHS {
            return Err(vec![FieldViolation::new(
                "update_mask",
                format!(
                    "a mask may name at most {MAX_MASK_PATHS} paths; this one names {}",
                    paths.len()
                ),
            )]);
        }
        let mut parsed = BTreeSet::new();
        let mut violations = Vec::new();
        for path in paths {
            match parse_path(path.as_ref()) {
                Ok(Some(mask_path)) => {
                    parsed.insert(mask_path);
                }
                Ok(None) => {}
                Err(problem) => violations.push(FieldViolation::new(
                    "update_mask",
                    format!("path {} {problem}", quote(path.as_ref())),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        if parsed.contains(&MaskPath::Labels) {
            parsed.retain(|path| !matches!(path, MaskPath::Label(_)));
        }
        Ok(Self {
            paths: parsed,
            full_replacement: false,
        })
    }

    /// The mask implied when a gRPC request sends none: every field with a
    /// non-default value (AIP-134).
    pub fn implied(fields: &GroupFields, membership: &Membership) -> Self {
        let populated = [
            (!fields.name.is_empty(), MaskPath::Name),
            (!fields.scope.is_empty(), MaskPath::Scope),
            (!fields.description.is_empty(), MaskPath::Description),
            (!fields.email.is_empty(), MaskPath::Email),
            (!membership.members.is_empty(), MaskPath::Members),
            (!membership.admins.is_empty(), MaskPath::Admins),
            (!fields.member_of.is_empty(), MaskPath::MemberOf),
            (!fields.assigned_roles.is_empty(), MaskPath::AssignedRoles),
            (fields.inactive, MaskPath::Inactive),
            (!fields.provenance.is_empty(), MaskPath::Provenance),
            (!fields.labels.is_empty(), MaskPath::Labels),
        ];
        Self {
            paths: populated
                .into_iter()
                .filter_map(|(set, path)| set.then_some(path))
                .collect(),
            full_replacement: false,
        }
    }

    /// Whether the mask names `path`.
    pub fn contains(&self, path: &MaskPath) -> bool {
        self.paths.contains(path)
    }

    /// The normalized paths, as recorded in the history.
    pub fn to_paths(&self) -> Vec<String> {
        if self.full_replacement {
            return vec!["*".to_owned()];
        }
        self.paths.iter().map(MaskPath::to_path).collect()
    }

    /// Whether the mask replaces the member list.
    pub fn replaces_members(&self) -> bool {
        self.contains(&MaskPath::Members)
    }

    /// Whether the mask replaces the admin list.
    pub fn replaces_admins(&self) -> bool {
        self.contains(&MaskPath::Admins)
    }

    /// Whether the mask replaces members or admins, so that the current
    /// membership must be read.
    pub fn replaces_membership(&self) -> bool {
        self.replaces_members() || self.replaces_admins()
    }

    /// The paths the history records for an update from `before` to
    /// `after` under this mask: the normalized paths, except `labels.<key>`
    /// paths that changed nothing (deleting a label that was not there, or
    /// setting one to the value it had), so that a mask naming many absent
    /// labels records nothing for them.
    pub fn effective_paths(&self, before: &GroupFields, after: &GroupFields) -> Vec<String> {
        if self.full_replacement {
            return vec!["*".to_owned()];
        }
        self.paths
            .iter()
            .filter(|path| match path {
                MaskPath::Label(key) => before.labels.get(key) != after.labels.get(key),
                _ => true,
            })
            .map(MaskPath::to_path)
            .collect()
    }

    /// Whether the mask touches `member_of`, which needs the parents checked.
    pub fn updates_parents(&self) -> bool {
        self.contains(&MaskPath::MemberOf)
    }

    /// Applies the request's fields to the current ones: every path in the
    /// mask takes the request's value, everything else keeps the current
    /// one. Membership paths are not applied here; the caller replaces
    /// membership rows. The result is not validated yet (see
    /// [`validate::group_fields`]); only the immutable `scope` is checked.
    pub fn merge(
        &self,
        current: &GroupFields,
        request: &GroupFields,
    ) -> Result<GroupFields, Vec<FieldViolation>> {
        let mut merged = current.clone();
        for path in &self.paths {
            match path {
                MaskPath::Name => merged.name.clone_from(&request.name),
                MaskPath::Scope => {
                    let unsent = self.full_replacement && request.scope.is_empty();
                    if request.scope != current.scope && !unsent {
                        return Err(vec![FieldViolation::new(
                            "group.scope",
                            format!(
                                "scope is immutable: the group's scope is {}, not {}",
                                quote(&current.scope),
                                quote(&request.scope)
                            ),
                        )]);
                    }
                }
                MaskPath::Description => merged.description.clone_from(&request.description),
                MaskPath::Email => merged.email.clone_from(&request.email),
                MaskPath::Members | MaskPath::Admins => {}
                MaskPath::MemberOf => merged.member_of.clone_from(&request.member_of),
                MaskPath::AssignedRoles => {
                    merged.assigned_roles.clone_from(&request.assigned_roles);
                }
                MaskPath::Inactive => merged.inactive = request.inactive,
                MaskPath::Provenance => merged.provenance.clone_from(&request.provenance),
                MaskPath::Labels => merged.labels.clone_from(&request.labels),
                MaskPath::Label(key) => match request.labels.get(key) {
                    Some(value) => {
                        merged.labels.insert(key.clone(), value.clone());
                    }
                    None => {
                        merged.labels.remove(key);
                    }
                },
            }
        }
        Ok(merged)
    }
}

/// Parses one path: `Ok(None)` for an output-only path (ignored), or why
/// the path is not acceptable.
fn parse_path(path: &str) -> Result<Option<MaskPath>, &'static str> {
    if path.contains('[') || path.contains(']') {
        return Err("indexes into a field; name the whole field instead");
    }
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    if let Some((_, mask_path)) = WRITABLE.iter().find(|(name, _)| *name == head) {
        return match (mask_path, rest) {
            (path, None) => Ok(Some(path.clone())),
            (MaskPath::Labels, Some(key)) if validate::is_label_key(key) => {
                Ok(Some(MaskPath::Label(key.to_owned())))
            }
            (MaskPath::Labels, Some(_)) => {
                Err("names a label key that does not match ^[a-z][a-z0-9_.-]{0,62}$")
            }
            (
                MaskPath::Members | MaskPath::Admins | MaskPath::MemberOf | MaskPath::AssignedRoles,
                Some(_),
            ) => Err("indexes into a repeated field; name the whole field instead"),
            (_, Some(_)) => Err("traverses a scalar field"),
        };
    }
    if OUTPUT_ONLY.contains(&head) {
        return match rest {
            None => Ok(None),
            Some(sub)
                if OUTPUT_ONLY_MESSAGES.contains(&head) && TIMESTAMP_FIELDS.contains(&sub) =>
            {
                Ok(None)
            }
            Some(_) => Err("traverses a field that has no such sub-field"),
        };
    }
    if head == "group" {
        return Err("must be relative to the group: drop the \"group.\" prefix");
    }
    Err("names no field of Group")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn parse_ok(paths: &[&str]) -> UpdateMask {
        UpdateMask::parse(paths).unwrap_or_else(|v| panic!("{paths:?} rejected: {v:?}"))
    }

    fn rejected(path: &str) -> String {
        match UpdateMask::parse(&[path]) {
            Ok(mask) => panic!("{path:?} accepted as {mask:?}"),
            Err(violations) => {
                assert_eq!(violations.len(), 1);
                assert_eq!(violations[0].field, "update_mask");
                assert!(violations[0].description.contains(path));
                violations[0].description.clone()
            }
        }
    }

    #[test]
    fn writable_paths_parse_and_render_back() {
        for (name, path) in WRITABLE {
            assert_eq!(parse_ok(&[name]).to_paths(), vec![name.to_owned()]);
            assert_eq!(path.to_path(), name);
        }
        assert_eq!(parse_ok(&["labels.team"]).to_paths(), vec!["labels.team"]);
    }

    #[test]
    fn output_only_paths_are_ignored() {
        let mask = parse_ok(&[
            "id",
            "etag",
            "create_time.seconds",
            "member_count",
            "description",
        ]);
        assert_eq!(mask.to_paths(), vec!["description"]);
    }

    #[test]
    fn bad_paths_are_rejected_with_a_reason() {
        assert!(rejected("nope").contains("names no field"));
        assert!(rejected("group.description").contains("relative to the group"));
        assert!(rejected("members.0").contains("repeated"));
        assert!(rejected("members[0]").contains("indexes"));
        assert!(rejected("description.text").contains("scalar"));
        assert!(rejected("labels.Bad Key").contains("label key"));
        assert!(rejected("memberOf").contains("names no field"));
        assert!(rejected("etag.value").contains("no such sub-field"));
        assert!(rejected("").contains("names no field"));
    }

    #[test]
    fn star_must_stand_alone() {
        assert_eq!(parse_ok(&["*"]), UpdateMask::all());
        assert!(UpdateMask::parse(&["*", "name"]).is_err());
    }

    #[test]
    fn labels_absorb_single_label_paths() {
        assert_eq!(parse_ok(&["labels.a", "labels"]).to_paths(), vec!["labels"]);
    }

    #[test]
    fn the_implied_mask_holds_the_populated_fields() {
        let fields = GroupFields {
            description: "d".into(),
            inactive: true,
            ..GroupFields::default()
        };
        let membership = Membership {
            members: vec!["a".into()],
            admins: vec![],
        };
        assert_eq!(
            UpdateMask::implied(&fields, &membership).to_paths(),
            vec!["description", "members", "inactive"]
        );
    }

    #[test]
    fn scope_is_immutable_but_the_same_value_is_ignored() {
        let current = GroupFields {
            scope: "site".into(),
            ..GroupFields::default()
        };
        let mut request = current.clone();
        assert!(parse_ok(&["scope"]).merge(&current, &request).is_ok());
        request.scope = "other".into();
        let violations = parse_ok(&["scope"])
            .merge(&current, &request)
            .expect_err("scope change accepted");
        assert_eq!(violations[0].field, "group.scope");
        request.scope = String::new();
        assert!(parse_ok(&["scope"]).merge(&current, &request).is_err());
        assert_eq!(
            UpdateMask::all().merge(&current, &request).map(|m| m.scope),
            Ok("site".to_owned())
        );
    }

    fn arb_fields() -> impl Strategy<Value = GroupFields> {
        (
            "[a-z]{1,8}",
            "[a-z ]{0,12}",
            proptest::option::of("[a-z]{1,6}@example\\.com"),
            proptest::collection::vec("[a-z]{1,4}", 0..3),
            proptest::collection::vec("[a-z]{1,4}", 0..3),
            any::<bool>(),
            "[a-z]{0,6}",
            proptest::collection::btree_map("[a-c]", "[a-z]{0,3}", 0..3),
        )
            .prop_map(
                |(
                    name,
                    description,
                    email,
                    member_of,
                    assigned_roles,
                    inactive,
                    provenance,
                    labels,
                )| {
                    GroupFields {
                        name,
                        scope: "s".to_owned(),
                        description,
                        email: email.unwrap_or_default(),
                        member_of,
                        assigned_roles,
                        inactive,
                        provenance,
                        labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
                    }
                },
            )
    }

    fn arb_path() -> impl Strategy<Value = MaskPath> {
        prop_oneof![
            Just(MaskPath::Name),
            Just(MaskPath::Description),
            Just(MaskPath::Email),
            Just(MaskPath::MemberOf),
            Just(MaskPath::AssignedRoles),
            Just(MaskPath::Inactive),
            Just(MaskPath::Provenance),
            Just(MaskPath::Labels),
            "[a-c]".prop_map(MaskPath::Label),
        ]
    }

    fn mask_of(paths: &BTreeSet<MaskPath>) -> UpdateMask {
        let rendered: Vec<String> = paths.iter().map(MaskPath::to_path).collect();
        parse_ok(&rendered.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The value of one path in a group, for comparing merge results.
    fn value_at(fields: &GroupFields, path: &MaskPath) -> String {
        match path {
            MaskPath::Name => fields.name.clone(),
            MaskPath::Scope => fields.scope.clone(),
            MaskPath::Description => fields.description.clone(),
            MaskPath::Email => fields.email.clone(),
            MaskPath::Members | MaskPath::Admins => String::new(),
            MaskPath::MemberOf => format!("{:?}", fields.member_of),
            MaskPath::AssignedRoles => format!("{:?}", fields.assigned_roles),
            MaskPath::Inactive => fields.inactive.to_string(),
            MaskPath::Provenance => fields.provenance.clone(),
            MaskPath::Labels => format!("{:?}", fields.labels),
            MaskPath::Label(key) => format!("{:?}", fields.labels.get(key)),
        }
    }

    fn all_paths() -> Vec<MaskPath> {
        let mut paths: Vec<MaskPath> = WRITABLE.into_iter().map(|(_, p)| p).collect();
        paths.extend(["a", "b", "c"].map(|k| MaskPath::Label(k.to_owned())));
        paths
    }

    proptest! {
        #[test]
        fn masks_round_trip_through_their_rendered_paths(
            paths in proptest::collection::btree_set(arb_path(), 1..6)
        ) {
            let mask = mask_of(&paths);
            let rendered = mask.to_paths();
            prop_assert_eq!(mask_of_strings(&rendered), mask);
        }

        #[test]
        fn merge_takes_masked_paths_from_the_request_and_keeps_the_rest(
            current in arb_fields(),
            request in arb_fields(),
            paths in proptest::collection::btree_set(arb_path(), 1..6),
        ) {
            let mask = mask_of(&paths);
            let merged = mask.merge(&current, &request).map_err(|v| TestCaseError::fail(format!("{v:?}")))?;
            for path in all_paths() {
                let named = mask.contains(&path)
                    || matches!(&path, MaskPath::Label(_)) && mask.contains(&MaskPath::Labels);
                let labels_touched = matches!(&path, MaskPath::Labels)
                    && mask.paths.iter().any(|p| matches!(p, MaskPath::Label(_)));
                if labels_touched {
                    continue;
                }
                let expected = if named { &request } else { &current };
                prop_assert_eq!(value_at(&merged, &path), value_at(expected, &path), "path {:?}", path);
            }
        }

        #[test]
        fn disjoint_masks_commute(
            current in arb_fields(),
            first in arb_fields(),
            second in arb_fields(),
            paths in proptest::collection::btree_set(arb_path(), 2..8),
            split in any::<proptest::sample::Index>(),
        ) {
            // Split one set of distinct paths in two, dropping `labels`
            // (which overlaps every `labels.<key>`), so the masks are disjoint.
            let paths: Vec<MaskPath> = paths.into_iter().filter(|p| *p != MaskPath::Labels).collect();
            prop_assume!(paths.len() >= 2);
            let at = 1 + split.index(paths.len() - 1);
            let a = mask_of(&paths[..at].iter().cloned().collect());
            let b = mask_of(&paths[at..].iter().cloned().collect());
            let one_way = b.merge(&a.merge(&current, &first).map_err(|v| TestCaseError::fail(format!("{v:?}")))?, &second);
            let other_way = a.merge(&b.merge(&current, &second).map_err(|v| TestCaseError::fail(format!("{v:?}")))?, &first);
            prop_assert_eq!(one_way, other_way);
        }

        #[test]
        fn star_replaces_everything_but_the_scope(current in arb_fields(), request in arb_fields()) {
            let merged = UpdateMask::all().merge(&current, &request).map_err(|v| TestCaseError::fail(format!("{v:?}")))?;
            let mut expected = request.clone();
            expected.scope = current.scope.clone();
            prop_assert_eq!(merged, expected);
        }

        #[test]
        fn any_path_is_either_understood_or_named_in_the_error(path in "[a-z_.\\[\\]0-9*]{0,20}") {
            match UpdateMask::parse(&[path.as_str()]) {
                Ok(mask) => prop_assert!(mask.to_paths().len() <= 1 || path == "*"),
                Err(violations) => {
                    let quoted = format!("{path:?}");
                    prop_assert!(violations[0].description.contains(&quoted));
                }
            }
        }
    }

    fn mask_of_strings(paths: &[String]) -> UpdateMask {
        parse_ok(&paths.iter().map(String::as_str).collect::<Vec<_>>())
    }
}
