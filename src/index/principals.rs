//! The principals of the membership index, compact: a million principals
//! with a membership each take about 180 MB as a `HashMap` of boxed
//! strings to vectors (a bucket array sized for the map's growth, and two
//! small heap blocks per principal). Here every name lives in one string,
//! a principal is an offset and length into it with its groups inline
//! when it has one, and the hash table holds only `u32` indexes into the
//! principals, hashed by name (hashbrown's `HashTable`, which lets the
//! table hash and compare through the names' string). A principal left
//! with no group keeps its place; building the index again drops it.

use std::hash::BuildHasher as _;

use hashbrown::{DefaultHashBuilder, HashTable};

/// A principal's direct groups, as indexes of the index's groups.
#[derive(Debug)]
pub enum Groups {
    /// Exactly one (most principals): no heap block.
    One(u32),
    /// None, or more than one.
    Many(Box<[u32]>),
}

impl Default for Groups {
    fn default() -> Self {
        Self::Many(Box::default())
    }
}

impl Groups {
    /// The groups, in no order.
    pub fn as_slice(&self) -> &[u32] {
        match self {
            Self::One(group) => std::slice::from_ref(group),
            Self::Many(groups) => groups,
        }
    }

    /// Adds `group`; false when it was there already.
    pub fn insert(&mut self, group: u32) -> bool {
        let current = self.as_slice();
        if current.contains(&group) {
            return false;
        }
        *self = if current.is_empty() {
            Self::One(group)
        } else {
            let mut more = Vec::with_capacity(current.len() + 1);
            more.extend_from_slice(current);
            more.push(group);
            Self::Many(more.into_boxed_slice())
        };
        true
    }

    /// Removes `group`; false when it was not there.
    pub fn remove(&mut self, group: u32) -> bool {
        let current = self.as_slice();
        if !current.contains(&group) {
            return false;
        }
        let rest: Vec<u32> = current.iter().copied().filter(|g| *g != group).collect();
        *self = match rest.as_slice() {
            [one] => Self::One(*one),
            _ => Self::Many(rest.into_boxed_slice()),
        };
        true
    }
}

#[derive(Debug)]
struct Principal {
    start: u32,
    len: u32,
    groups: Groups,
}

/// Every principal the index has seen, by name.
#[derive(Debug, Default)]
pub struct Principals {
    names: String,
    principals: Vec<Principal>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Principals {
    fn name<'a>(names: &'a str, principal: &Principal) -> &'a str {
        let start = principal.start as usize;
        names
            .get(start..start + principal.len as usize)
            .unwrap_or("")
    }

    fn find(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&index| {
                self.principals
                    .get(index as usize)
                    .is_some_and(|p| Self::name(&self.names, p) == name)
            })
            .copied()
    }

    /// The groups of `name` (empty for a principal never seen).
    pub fn groups(&self, name: &str) -> &[u32] {
        self.find(name)
            .and_then(|index| self.principals.get(index as usize))
            .map_or(&[], |p| p.groups.as_slice())
    }

    /// The groups of `name`, to change; the principal is added when new.
    pub fn groups_mut(&mut self, name: &str) -> &mut Groups {
        let index = match self.find(name) {
            Some(index) => index as usize,
            None => {
                let index = self.principals.len();
                let start = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
                self.names.push_str(name);
                self.principals.push(Principal {
                    start,
                    len: u32::try_from(name.len()).unwrap_or(0),
                    groups: Groups::default(),
                });
                let hash = self.hasher.hash_one(name);
                let (names, principals, hasher) = (&self.names, &self.principals, &self.hasher);
                self.table.insert_unique(
                    hash,
                    u32::try_from(index).unwrap_or(u32::MAX),
                    |&other| {
                        principals
                            .get(other as usize)
                            .map_or(0, |p| hasher.hash_one(Self::name(names, p)))
                    },
                );
                index
            }
        };
        let at = index.min(self.principals.len().saturating_sub(1));
        &mut self.principals[at].groups
    }

    /// How many principals it holds (those left with no group included).
    pub fn len(&self) -> usize {
        self.principals.len()
    }

    /// Gives back what growth left unused, once built.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.principals.shrink_to_fit();
        let (names, principals, hasher) = (&self.names, &self.principals, &self.hasher);
        self.table.shrink_to_fit(|&index| {
            principals
                .get(index as usize)
                .map_or(0, |p| hasher.hash_one(Self::name(names, p)))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_found_by_name_and_keep_their_groups() {
        let mut principals = Principals::default();
        for n in 0..1000_u32 {
            assert!(principals.groups_mut(&format!("p{n}")).insert(n));
        }
        assert!(principals.groups_mut("p7").insert(3));
        assert!(!principals.groups_mut("p7").insert(3));
        principals.shrink_to_fit();
        assert_eq!(principals.len(), 1000);
        assert_eq!(principals.groups("p7"), [7, 3]);
        assert_eq!(principals.groups("p999"), [999]);
        assert!(principals.groups("p1000").is_empty());
        assert!(principals.groups_mut("p7").remove(7));
        assert_eq!(principals.groups("p7"), [3]);
        assert!(!principals.groups_mut("p7").remove(7));
        assert!(principals.groups_mut("p7").remove(3));
        assert!(principals.groups("p7").is_empty());
        assert_eq!(principals.len(), 1000);
    }

    #[test]
    fn a_single_group_takes_no_heap_block() {
        assert_eq!(std::mem::size_of::<Groups>(), 16);
        let mut groups = Groups::default();
        assert!(groups.insert(5));
        assert!(matches!(groups, Groups::One(5)));
    }
}
