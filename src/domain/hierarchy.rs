//! Transitive membership: the walk up the `member_of` hierarchy from the
//! groups a principal is directly in. The store reads the edges (one
//! recursive query); the walk itself is plain code over them.

use std::collections::{BTreeSet, HashMap};

/// The answer of CheckMembership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipCheck {
    /// Whether the principal is a member, directly or through `member_of`.
    pub is_member: bool,
    /// Whether the principal is a direct member of the group.
    pub direct: bool,
    /// A shortest chain of group ids from a group the principal is directly
    /// in up to the asked group; empty when not a member.
    pub path: Vec<String>,
}

impl MembershipCheck {
    /// The answer for a direct member of `group`.
    pub fn direct(group: &str) -> Self {
        Self {
            is_member: true,
            direct: true,
            path: vec![group.to_owned()],
        }
    }
}

/// An upward walk of the hierarchy from the groups a principal is directly
/// in, breadth first: the first time a group is reached is by a shortest
/// chain.
#[derive(Debug, Default)]
pub struct Ancestry {
    /// Every group reached, the starting ones included.
    reached: BTreeSet<String>,
    /// For each group reached through `member_of`, the child it was first
    /// reached from.
    via: HashMap<String, String>,
}

impl Ancestry {
    /// Walks up from `start` (sorted) along `edges` (child, parent). Levels
    /// are taken in id order, so the chain found is the same on every run.
    pub fn walk(start: Vec<String>, edges: Vec<(String, String)>) -> Self {
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for (child, parent) in edges {
            parents.entry(child).or_default().push(parent);
        }
        let mut ancestry = Self {
            reached: start.iter().cloned().collect(),
            via: HashMap::new(),
        };
        let mut frontier = start;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for child in &frontier {
                for parent in parents.get(child).into_iter().flatten() {
                    if ancestry.reached.insert(parent.clone()) {
                        ancestry.via.insert(parent.clone(), child.clone());
                        next.push(parent.clone());
                    }
                }
            }
            next.sort_unstable();
            frontier = next;
        }
        ancestry
    }

    /// Every group reached, sorted by id.
    pub fn into_reached(self) -> BTreeSet<String> {
        self.reached
    }

    /// The answer to "is the principal a member of `target` through
    /// `member_of`", for a principal not directly in `target`.
    pub fn check(&self, target: &str) -> MembershipCheck {
        match self.path_to(target) {
            Some(path) => MembershipCheck {
                is_member: true,
                direct: false,
                path,
            },
            None => MembershipCheck::default(),
        }
    }

    /// The chain from a starting group up to `target`, if reached.
    fn path_to(&self, target: &str) -> Option<Vec<String>> {
        if !self.reached.contains(target) {
            return None;
        }
        let mut path = vec![target.to_owned()];
        let mut at = target;
        while let Some(child) = self.via.get(at) {
            path.push(child.clone());
            at = child;
        }
        path.reverse();
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(child: &str, parent: &str) -> (String, String) {
        (child.to_owned(), parent.to_owned())
    }

    #[test]
    fn the_shortest_chain_wins_and_ties_go_to_the_lowest_id() {
        // a → b → top, a → c → top, a → top is absent; d → top directly.
        let edges = vec![
            edge("a", "c"),
            edge("a", "b"),
            edge("b", "top"),
            edge("c", "top"),
            edge("d", "top"),
        ];
        let walk = Ancestry::walk(vec!["a".into(), "d".into()], edges);
        assert_eq!(walk.check("top").path, ["d", "top"]);
        assert_eq!(walk.check("c").path, ["a", "c"]);
        assert_eq!(walk.check("nowhere"), MembershipCheck::default());
        assert_eq!(
            walk.into_reached().into_iter().collect::<Vec<_>>(),
            ["a", "b", "c", "d", "top"]
        );
    }

    #[test]
    fn a_cycle_in_the_edges_ends_the_walk() {
        let walk = Ancestry::walk(vec!["a".into()], vec![edge("a", "b"), edge("b", "a")]);
        assert_eq!(walk.check("b").path, ["a", "b"]);
    }
}
