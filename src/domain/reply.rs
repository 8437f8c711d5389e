//! How large a reply can be.
//!
//! Every reply must fit the configured message limit: a caller whose reply
//! is too large for the transport is told its call failed, even when its
//! write committed. So the service sizes what it answers before it commits:
//! these are upper bounds of the encoded size, in the API's binary
//! (protobuf) form, of the messages groupd answers, computed from domain
//! values without encoding them. The gRPC layer checks, in a property test,
//! that its encoding never exceeds them.
//!
//! The bounds assume the longest field tags (two bytes) and count every
//! length prefix exactly, so they are a few bytes per field above the
//! truth, never below.

use super::{
    Group, GroupChange, Limits, MemberEntry,
    hierarchy::MembershipCheck,
    ids::PRINCIPAL_ID_MAX_BYTES,
    mask::MAX_MASK_PATHS,
    validate::{
        GROUP_ID_MAX_BYTES, MAX_DESCRIPTION_CHARS, MAX_EMAIL_BYTES, MAX_LABEL_VALUE_CHARS,
        MAX_LABELS, MAX_PROVENANCE_CHARS, MAX_REFS, NAME_MAX_BYTES, ROLE_ID_MAX_BYTES,
    },
};

/// Bytes of a field's tag: the API's field numbers all fit two bytes.
const TAG: usize = 2;

/// The fixed-size fields of a group (state, inactive, member count, three
/// timestamps), its etag and its `permissions` (every name, each a field),
/// at most.
const GROUP_FIXED: usize = 128 + 256;

/// The fixed-size fields of a history entry (version, time, kind), at
/// most.
const CHANGE_FIXED: usize = 64;

/// The longest label key, in bytes.
const LABEL_KEY_MAX_BYTES: usize = 63;

/// The longest mask path a history entry records: `labels.` and a key.
const MASK_PATH_MAX_BYTES: usize = 7 + LABEL_KEY_MAX_BYTES;

/// UTF-8 takes at most this many bytes per character.
const UTF8_MAX: usize = 4;

/// Bytes of `n` as a varint.
fn varint(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// A length-delimited field (a string, or an embedded message) whose
/// content takes `len` bytes.
pub fn field(len: usize) -> usize {
    TAG + varint(len) + len
}

/// A `Member`, `GroupRef` or `RoleRef`: a message of one string field of
/// `id_len` bytes, as an entry of a repeated field.
pub fn reference(id_len: usize) -> usize {
    field(field(id_len))
}

/// A string field holding `text`, left out when empty.
fn text(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        field(text.len())
    }
}

/// References to each of `ids`.
fn references<'a>(ids: impl IntoIterator<Item = &'a String>) -> usize {
    ids.into_iter().map(|id| reference(id.len())).sum()
}

/// A group in the BASIC view: every field but the member and admin lists.
pub fn group_basic(group: &Group) -> usize {
    let fields = &group.fields;
    let labels: usize = fields
        .labels
        .iter()
        .map(|(key, value)| field(field(key.len()) + field(value.len())))
        .sum();
    GROUP_FIXED
        + text(group.id.as_str())
        + text(&fields.name)
        + text(&fields.scope)
        + text(&fields.description)
        + text(&fields.email)
        + references(&fields.member_of)
        + references(&fields.assigned_roles)
        + text(&fields.provenance)
        + labels
        + text(&group.created_by)
        + text(&group.updated_by)
}

/// The member and admin lists of the FULL view, for `members`.
pub fn membership(members: &[MemberEntry]) -> usize {
    members
        .iter()
        .map(|m| reference(m.id.len()) * if m.is_admin { 2 } else { 1 })
        .sum()
}

/// A group as it would be answered: the BASIC view, plus its members and
/// admins when it carries them.
pub fn group(group: &Group) -> usize {
    group_basic(group) + group.members.as_deref().map_or(0, membership)
}

/// A CheckMembership answer: its flags and its path of group ids.
pub fn membership_check(check: &MembershipCheck) -> usize {
    /// The two flags, at most.
    const FLAGS: usize = 8;
    FLAGS + check.path.iter().map(|id| field(id.len())).sum::<usize>()
}

/// A history entry.
pub fn change(change: &GroupChange) -> usize {
    let mask: usize = change.update_mask.iter().map(|p| field(p.len())).sum();
    CHANGE_FIXED
        + text(&change.actor)
        + field(mask)
        + field(group_basic(&change.group))
        + references(&change.members_added)
        + references(&change.members_removed)
        + references(&change.admins_added)
        + references(&change.admins_removed)
}

/// Makes a history entry fit in `room` bytes, for entries recorded before
/// the bounds that keep new ones small: first its mask's `labels.<key>`
/// paths become one `labels` path (a wider, still true, statement of what
/// the write touched); then, if it still does not fit, its member lists are
/// cut short and `delta_truncated` set. An entry that fits is unchanged.
pub fn fit_change(change: &mut GroupChange, room: usize) {
    if self::change(change) <= room {
        return;
    }
    if change.update_mask.iter().any(|p| p.starts_with("labels.")) {
        change.update_mask.retain(|p| !p.starts_with("labels."));
        if !change.update_mask.iter().any(|p| p == "labels" || p == "*") {
            change.update_mask.push("labels".to_owned());
            change.update_mask.sort();
        }
    }
    let mut over = self::change(change).saturating_sub(room);
    if over == 0 {
        return;
    }
    change.delta_truncated = true;
    for list in [
        &mut change.admins_removed,
        &mut change.admins_added,
        &mut change.members_removed,
        &mut change.members_added,
    ] {
        while over > 0 {
            let Some(id) = list.pop() else { break };
            over = over.saturating_sub(reference(id.len()));
        }
    }
}

/// The largest BASIC view any valid group can have, from the field limits.
pub fn largest_group_basic() -> usize {
    let label = field(field(LABEL_KEY_MAX_BYTES) + field(MAX_LABEL_VALUE_CHARS * UTF8_MAX));
    GROUP_FIXED
        + field(GROUP_ID_MAX_BYTES)
        + 2 * field(NAME_MAX_BYTES)
        + field(MAX_DESCRIPTION_CHARS * UTF8_MAX)
        + field(MAX_EMAIL_BYTES)
        + MAX_REFS * reference(GROUP_ID_MAX_BYTES)
        + MAX_REFS * reference(ROLE_ID_MAX_BYTES)
        + field(MAX_PROVENANCE_CHARS * UTF8_MAX)
        + MAX_LABELS * label
        + 2 * field(PRINCIPAL_ID_MAX_BYTES)
}

/// The largest history entry a write can record within `limits`: the
/// largest group, the longest mask, and as many membership changes as one
/// request may make, each with the longest principal id.
pub fn largest_change(limits: &Limits) -> usize {
    CHANGE_FIXED
        + field(PRINCIPAL_ID_MAX_BYTES)
        + field(MAX_MASK_PATHS * field(MASK_PATH_MAX_BYTES))
        + field(largest_group_basic())
        + limits.max_members_per_request * reference(PRINCIPAL_ID_MAX_BYTES)
}

/// A page token and the other fields of a page besides its items, at
/// most.
pub const PAGE_OVERHEAD: usize = 1024;

/// The smallest reply limit under which every reply groupd can give fits,
/// with `limits`' other bounds: the largest history entry (which is larger
/// than the largest BASIC view), in its page, with a page token.
pub fn smallest_reply_limit(limits: &Limits) -> usize {
    field(largest_change(limits)) + PAGE_OVERHEAD
}

/// The fewest bytes `count` members take in the FULL view: ids of one
/// byte, none an admin.
pub fn least_membership(count: usize) -> usize {
    count.saturating_mul(reference(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_take_seven_bits_a_byte() {
        assert_eq!(varint(0), 1);
        assert_eq!(varint(127), 1);
        assert_eq!(varint(128), 2);
        assert_eq!(varint(16_383), 2);
        assert_eq!(varint(16_384), 3);
    }

    #[test]
    fn the_default_limits_fit_the_default_message_size() {
        let limits = Limits::default();
        let needed = smallest_reply_limit(&limits);
        assert!(
            needed <= limits.max_reply_bytes,
            "{needed} > {}",
            limits.max_reply_bytes
        );
        // The history entry of a request of 10,000 longest ids alone is
        // most of it: about 2.6 MB.
        assert!(needed > 10_000 * (PRINCIPAL_ID_MAX_BYTES + 6));
    }

    fn change_with(mask: Vec<String>, added: usize) -> GroupChange {
        let group = crate::domain::create::new_group(
            crate::domain::GroupId::parse("g").unwrap(),
            crate::domain::GroupFields {
                name: "g".into(),
                ..Default::default()
            },
            &crate::domain::Membership::default(),
            &crate::domain::Principal::anonymous(),
            crate::domain::Timestamp::from_micros(1),
        )
        .0;
        GroupChange {
            version: 2,
            change_time: crate::domain::Timestamp::from_micros(2),
            actor: "anonymous".into(),
            kind: crate::domain::ChangeKind::Update,
            update_mask: mask,
            group,
            members_added: (0..added).map(|i| format!("member-{i:06}")).collect(),
            members_removed: Vec::new(),
            admins_added: Vec::new(),
            admins_removed: Vec::new(),
            delta_truncated: false,
        }
    }

    #[test]
    fn an_entry_that_fits_is_left_alone() {
        let mut change = change_with(vec!["labels.a".into(), "name".into()], 3);
        let before = change.clone();
        fit_change(&mut change, 1 << 20);
        assert_eq!(change, before);
    }

    #[test]
    fn many_label_paths_collapse_into_labels() {
        let mask: Vec<String> = (0..5000).map(|i| format!("labels.k{i:07}")).collect();
        let mut change = change_with([mask, vec!["name".into()]].concat(), 0);
        fit_change(&mut change, 4096);
        assert_eq!(change.update_mask, ["labels", "name"]);
        assert!(!change.delta_truncated);
        assert!(self::change(&change) <= 4096);
    }

    #[test]
    fn long_member_lists_are_cut_and_marked() {
        let mut change = change_with(vec!["members".into()], 10_000);
        fit_change(&mut change, 64 * 1024);
        assert!(change.delta_truncated);
        assert!(self::change(&change) <= 64 * 1024);
        assert!(
            change.members_added.len() > 1000,
            "cut only as much as needed"
        );
        assert_eq!(
            change.members_added[0], "member-000000",
            "the first ones are kept"
        );
    }

    #[test]
    fn a_membership_path_counts_each_group_id() {
        let check = MembershipCheck {
            is_member: true,
            direct: false,
            path: vec!["a".repeat(128), "b".into()],
        };
        assert_eq!(membership_check(&check), 8 + field(128) + field(1));
    }

    #[test]
    fn an_admin_is_listed_twice_in_the_full_view() {
        let entry = |id: &str, is_admin| MemberEntry {
            id: id.to_owned(),
            is_admin,
        };
        assert_eq!(
            membership(&[entry("a", true), entry("b", false)]),
            3 * reference(1)
        );
    }
}
