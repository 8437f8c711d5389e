//! Membership changes as deltas: which rows to insert, delete, promote or
//! demote. Computing the delta first means a write touches only the rows
//! that change, and the history records exactly what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::MemberEntry;

/// The row changes one write makes to a group's membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipDelta {
    /// New members (with their admin flag), sorted by id.
    pub insert: Vec<MemberEntry>,
    /// Members removed, sorted by id.
    pub delete: Vec<String>,
    /// Existing members made admins, sorted by id.
    pub promote: Vec<String>,
    /// Existing members who stop being admins, sorted by id.
    pub demote: Vec<String>,
    /// Removed members who were admins, sorted by id.
    deleted_admins: Vec<String>,
}

impl MembershipDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty()
            && self.delete.is_empty()
            && self.promote.is_empty()
            && self.demote.is_empty()
    }

    /// How many principals the history entry of this delta lists: the
    /// members added and removed, and the admins added and removed (an
    /// admin who is also a new member is listed twice).
    pub fn entries(&self) -> usize {
        let admins_added = self.insert.iter().filter(|m| m.is_admin).count() + self.promote.len();
        let admins_removed = self.deleted_admins.len() + self.demote.len();
        self.insert.len() + self.delete.len() + admins_added + admins_removed
    }

    /// How the member count changes.
    pub fn count_change(&self) -> i64 {
        len_i64(self.insert.len()) - len_i64(self.delete.len())
    }

    /// The membership `current` (sorted by id) becomes with this delta,
    /// sorted by id.
    pub fn apply(&self, current: Vec<MemberEntry>) -> Vec<MemberEntry> {
        let deleted: HashSet<&str> = self.delete.iter().map(String::as_str).collect();
        let promoted: HashSet<&str> = self.promote.iter().map(String::as_str).collect();
        let demoted: HashSet<&str> = self.demote.iter().map(String::as_str).collect();
        let mut entries: Vec<MemberEntry> = current
            .into_iter()
            .filter(|m| !deleted.contains(m.id.as_str()))
            .map(|mut m| {
                if promoted.contains(m.id.as_str()) {
                    m.is_admin = true;
                } else if demoted.contains(m.id.as_str()) {
                    m.is_admin = false;
                }
                m
            })
            .collect();
        entries.extend(self.insert.iter().cloned());
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries
    }

    /// Principals that became members.
    pub fn members_added(&self) -> Vec<String> {
        self.insert.iter().map(|m| m.id.clone()).collect()
    }

    /// Principals that stopped being members.
    pub fn members_removed(&self) -> Vec<String> {
        self.delete.clone()
    }

    /// Principals that became admins, sorted.
    pub fn admins_added(&self) -> Vec<String> {
        let inserted = self.insert.iter().filter(|m| m.is_admin).map(|m| &m.id);
        sorted(inserted.chain(&self.promote))
    }

    /// Principals that stopped being admins, sorted.
    pub fn admins_removed(&self) -> Vec<String> {
        sorted(self.deleted_admins.iter().chain(&self.demote))
    }
}

fn sorted<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    ids.cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// The delta that adds `members`, and `admins` as admins (and members).
/// `existing` maps each of those principals that is already a member to its
/// admin flag; other members of the group need not be listed.
pub fn add(
    existing: &HashMap<String, bool>,
    members: &[String],
    admins: &[String],
) -> MembershipDelta {
    let mut wanted: BTreeMap<&str, bool> = members.iter().map(|m| (m.as_str(), false)).collect();
    for admin in admins {
        wanted.insert(admin, true);
    }
    let mut delta = MembershipDelta::default();
    for (id, admin) in wanted {
        match existing.get(id) {
            None => delta.insert.push(MemberEntry {
                id: id.to_owned(),
                is_admin: admin,
            }),
            Some(false) if admin => delta.promote.push(id.to_owned()),
            Some(_) => {}
        }
    }
    delta
}

/// The delta that removes `members` and demotes `admins`. `existing` maps
/// each of those principals that is a member to its admin flag.
pub fn remove(
    existing: &HashMap<String, bool>,
    members: &[String],
    admins: &[String],
) -> MembershipDelta {
    let removed: BTreeSet<&str> = members
        .iter()
        .map(String::as_str)
        .filter(|id| existing.contains_key(*id))
        .collect();
    let mut delta = MembershipDelta::default();
    for id in &removed {
        delta.delete.push((*id).to_owned());
        if existing.get(*id) == Some(&true) {
            delta.deleted_admins.push((*id).to_owned());
        }
    }
    let demoted: BTreeSet<&str> = admins
        .iter()
        .map(String::as_str)
        .filter(|id| existing.get(*id) == Some(&true) && !removed.contains(id))
        .collect();
    delta.demote = demoted.into_iter().map(str::to_owned).collect();
    delta
}

/// The delta that turns the `current` membership into exactly `members`
/// with `admins` as its admins.
pub fn replace(current: &[MemberEntry], members: &[String], admins: &[String]) -> MembershipDelta {
    let current: HashMap<&str, bool> = current
        .iter()
        .map(|m| (m.id.as_str(), m.is_admin))
        .collect();
    let admins: BTreeSet<&str> = admins.iter().map(String::as_str).collect();
    let target: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut delta = MembershipDelta::default();
    for id in &target {
        let admin = admins.contains(id);
        match current.get(id) {
            None => delta.insert.push(MemberEntry {
                id: (*id).to_owned(),
                is_admin: admin,
            }),
            Some(false) if admin => delta.promote.push((*id).to_owned()),
            Some(true) if !admin => delta.demote.push((*id).to_owned()),
            Some(_) => {}
        }
    }
    let mut removed: Vec<(&str, bool)> = current
        .iter()
        .filter(|(id, _)| !target.contains(*id))
        .map(|(id, admin)| (*id, *admin))
        .collect();
    removed.sort_unstable();
    for (id, admin) in removed {
        delta.delete.push(id.to_owned());
        if admin {
            delta.deleted_admins.push(id.to_owned());
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn entry(id: &str, is_admin: bool) -> MemberEntry {
        MemberEntry {
            id: id.to_owned(),
            is_admin,
        }
    }

    #[test]
    fn adding_present_members_changes_nothing_and_admins_become_members() {
        let existing = HashMap::from([("a".to_owned(), false), ("b".to_owned(), true)]);
        assert!(add(&existing, &ids(&["a", "b"]), &ids(&["b"])).is_empty());
        let delta = add(&existing, &ids(&["c"]), &ids(&["a", "d"]));
        assert_eq!(delta.members_added(), ids(&["c", "d"]));
        assert_eq!(delta.admins_added(), ids(&["a", "d"]));
        assert_eq!(delta.count_change(), 2);
        assert_eq!(delta.entries(), 4);
    }

    #[test]
    fn removing_members_drops_their_admin_role_and_demoting_keeps_membership() {
        let existing = HashMap::from([("a".to_owned(), true), ("b".to_owned(), true)]);
        let delta = remove(&existing, &ids(&["a", "zz"]), &ids(&["b", "a"]));
        assert_eq!(delta.members_removed(), ids(&["a"]));
        assert_eq!(delta.demote, ids(&["b"]));
        assert_eq!(delta.admins_removed(), ids(&["a", "b"]));
        assert_eq!(delta.count_change(), -1);
        assert_eq!(delta.entries(), 3);
        assert!(remove(&existing, &ids(&["x"]), &ids(&[])).is_empty());
    }

    #[test]
    fn applying_a_delta_yields_the_new_membership_sorted() {
        let current = vec![entry("a", true), entry("b", false), entry("c", false)];
        let delta = replace(&current, &ids(&["a", "c", "0"]), &ids(&["c"]));
        assert_eq!(
            delta.apply(current),
            vec![entry("0", false), entry("a", false), entry("c", true)]
        );
    }

    #[test]
    fn replacing_touches_only_what_differs() {
        let current = vec![entry("a", true), entry("b", false), entry("c", false)];
        let delta = replace(&current, &ids(&["a", "b", "d"]), &ids(&["b"]));
        assert_eq!(delta.members_added(), ids(&["d"]));
        assert_eq!(delta.members_removed(), ids(&["c"]));
        assert_eq!(delta.promote, ids(&["b"]));
        assert_eq!(delta.demote, ids(&["a"]));
        assert!(replace(&current, &ids(&["c", "b", "a"]), &ids(&["a"])).is_empty());
    }
}
