//! The group resource and its parts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Principal, ids::GroupId, policy::Permission};

/// A point in time, in microseconds since the Unix epoch: exact, and ordered
/// the same way by every database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
}

/// The lifecycle state of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Live.
    Active,
    /// Soft-deleted.
    Deleted,
}

/// How much of a group a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Everything but the member and admin lists.
    Basic,
    /// Everything.
    Full,
}

/// The kind of write a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The group was created.
    Create,
    /// The group's fields were updated.
    Update,
    /// The group was soft-deleted.
    Delete,
    /// The group was undeleted.
    Undelete,
    /// Members or admins were added.
    AddMembers,
    /// Members were removed or admins demoted.
    RemoveMembers,
}

impl ChangeKind {
    /// Every kind, for parsing.
    const ALL: [Self; 6] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Undelete,
        Self::AddMembers,
        Self::RemoveMembers,
    ];

    /// The stable name under which the kind is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Undelete => "UNDELETE",
            Self::AddMembers => "ADD_MEMBERS",
            Self::RemoveMembers => "REMOVE_MEMBERS",
        }
    }

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// The writable fields of a group, other than membership, which is stored
/// and changed row by row (see [`Membership`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupFields {
    /// One word, unique (case-insensitive) among live groups of the scope.
    pub name: String,
    /// The tenant, site or folder; `""` is global. Immutable.
    pub scope: String,
    /// Free text.
    pub description: String,
    /// A distribution list, or empty.
    pub email: String,
    /// Ids of the parent groups.
    pub member_of: Vec<String>,
    /// Opaque role ids.
    pub assigned_roles: Vec<String>,
    /// The writable inactive flag.
    pub inactive: bool,
    /// Where the group comes from.
    pub provenance: String,
    /// Free attributes.
    pub labels: BTreeMap<String, String>,
}

impl GroupFields {
    /// Sorts the set-valued fields, so that equal sets compare and store
    /// equal whatever order a client sent them in.
    pub fn normalize(&mut self) {
        self.member_of.sort();
        self.member_of.dedup();
        self.assigned_roles.sort();
        self.assigned_roles.dedup();
    }
}

/// Member and admin ids as a request carries them, in the client's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Member ids.
    pub members: Vec<String>,
    /// Admin ids.
    pub admins: Vec<String>,
}

/// One direct member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The principal's id.
    pub id: String,
    /// Whether the principal is also an admin.
    pub is_admin: bool,
}

/// A stored group, as reads return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's id: chosen by its creator or a server-assigned UUID,
    /// and never changed.
    pub id: GroupId,
    /// The writable fields, except membership.
    pub fields: GroupFields,
    /// Live or deleted.
    pub state: State,
    /// When it was created.
    pub create_time: Timestamp,
    /// When it was last written.
    pub update_time: Timestamp,
    /// When it was soft-deleted.
    pub delete_time: Option<Timestamp>,
    /// Who created it.
    pub created_by: String,
    /// Who last wrote it.
    pub updated_by: String,
    /// How many direct members it has.
    pub member_count: i64,
    /// 1 when created, one more on every write. 0 only in the placeholder
    /// DeleteGroup answers (with `allow_missing`) for a group that never
    /// existed, which has no times and no etag.
    pub version: i64,
    /// The direct members sorted by id, in [`View::Full`] only.
    #[serde(skip)]
    pub members: Option<Vec<MemberEntry>>,
    /// What the caller who reads it may do with it (see `policy`); never
    /// stored.
    #[serde(skip)]
    pub permissions: Vec<Permission>,
}

impl Group {
    /// What DeleteGroup with `allow_missing` answers for a group that never
    /// existed: just its id, in the deleted state, with version 0 (no times
    /// and no etag).
    pub fn absent(id: GroupId) -> Self {
        let epoch = Timestamp::from_micros(0);
        Self {
            id,
            fields: GroupFields::default(),
            state: State::Deleted,
            create_time: epoch,
            update_time: epoch,
            delete_time: None,
            created_by: String::new(),
            updated_by: String::new(),
            member_count: 0,
            version: 0,
            members: None,
            permissions: Vec::new(),
        }
    }

    /// The group's current etag.
    pub fn etag(&self) -> String {
        etag_for(self.id.as_str(), self.version)
    }

    /// Records one more write, by `actor` at `now`: the next version.
    /// `now` must be later than the current `update_time`, so that it
    /// strictly increases with every write.
    pub fn touch(&mut self, actor: &Principal, now: Timestamp) {
        self.version += 1;
        self.update_time = now;
        actor.as_str().clone_into(&mut self.updated_by);
    }

    /// Whether the group is live.
    pub fn is_live(&self) -> bool {
        self.state == State::Active
    }

    /// Whether `etag`, as a client sent it (quoted or not), names this
    /// version of the group.
    pub fn etag_matches(&self, etag: &str) -> bool {
        let unquoted = |tag: &str| tag.trim().trim_matches('"').to_owned();
        unquoted(etag) == unquoted(&self.etag())
    }
}

/// One recorded write to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// The group's version after the change.
    pub version: i64,
    /// When the change was made.
    pub change_time: Timestamp,
    /// Who made it.
    pub actor: String,
    /// What kind of write it was.
    pub kind: ChangeKind,
    /// For updates, the effective mask paths.
    pub update_mask: Vec<String>,
    /// The group after the change, without its member list.
    pub group: Group,
    /// Principals that became members.
    pub members_added: Vec<String>,
    /// Principals that stopped being members.
    pub members_removed: Vec<String>,
    /// Principals that became admins.
    pub admins_added: Vec<String>,
    /// Principals that stopped being admins.
    pub admins_removed: Vec<String>,
    /// Whether the four lists above were cut short to fit a reply (see
    /// [`super::reply::fit_change`]).
    pub delta_truncated: bool,
}

/// The etag of version `version` of group `id`, in RFC 7232 quoted form.
///
/// Derived from the id and version rather than stored: every write bumps the
/// version, so the etag changes on every write and never repeats for a group.
pub fn etag_for(id: &str, version: i64) -> String {
    let digest = Sha256::new()
        .chain_update(id.as_bytes())
        .chain_update([0])
        .chain_update(version.to_be_bytes())
        .finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut etag = String::with_capacity(22);
    etag.push('"');
    for byte in &digest[..10] {
        etag.push(char::from(HEX[usize::from(byte >> 4)]));
        etag.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    etag.push('"');
    etag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_and_change_with_the_version() {
        let first = etag_for("g", 1);
        assert!(first.starts_with('"') && first.ends_with('"'));
        assert_ne!(first, etag_for("g", 2));
        assert_ne!(first, etag_for("h", 1));
        assert_eq!(first, etag_for("g", 1));
        // The first 10 bytes of SHA-256("g" 0x00 1 as 8 big-endian bytes),
        // in lower-case hex.
        let digest = Sha256::new()
            .chain_update(b"g\0")
            .chain_update(1_i64.to_be_bytes())
            .finalize();
        let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(first, format!("\"{hex}\""));
        assert_eq!(first.len(), 22);
    }

    #[test]
    fn change_kinds_round_trip_through_their_stored_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ChangeKind::parse("nope"), None);
    }
}
