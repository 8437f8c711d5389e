//! The membership index: each replica's in-memory copy of what
//! CheckMembership and ListMemberGroups read (every group with whether it
//! is live and its `member_of` parents, and every principal's direct
//! groups), so that they answer without a database round trip.
//!
//! It is built from one snapshot of the database (with the change feed's
//! position in that snapshot) and then follows the change feed: the feed's
//! reader applies every entry it reads, in position order, before it
//! hands the entries to change streams. An entry carries the group as the
//! write left it (so its parents and whether it is live) and the members
//! it added and removed, which is all the index needs. Replaying an entry
//! the snapshot already held changes nothing, so a write committed in the
//! snapshot but numbered after it (PostgreSQL numbers entries after their
//! commit) is harmless. A gap in the positions (entries pruned before this
//! replica read them) means changes were missed: the index is built again.
//!
//! Freshness:
//! - Writes of this replica: every commit is counted. The reader notes the
//!   count before it reads the feed to its end, and once it has applied
//!   what it read, the index covers that many commits. A call waits (a few
//!   milliseconds, see [`CATCH_UP_WAIT`]) until the index covers every
//!   commit made before the call began, so a write acknowledged to a
//!   client is seen by its next call; past the wait, the call reads the
//!   database.
//! - Writes of other replicas: they reach the index as they reach this
//!   replica's change streams, when their sequencer's notification arrives
//!   (milliseconds), or at the reader's next poll (`--change-poll-interval`,
//!   1 s) if it was lost.
//! - A reader that cannot read the database: once the index has not been
//!   refreshed for two poll intervals, calls read the database.
//!
//! A request may ask for the database itself (`fully_consistent`).
//!
//! Memory: ids are held once (an `Arc<str>` per group; principals' names
//! side by side in one string, see `principals`); a membership is one
//! `u32` in its principal's list.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{sync::watch, time::Instant};

use self::principals::Principals;
use crate::{
    error::Error,
    store::{FeedEntry, Store},
};

mod principals;

/// The longest a call waits for the index to cover this replica's
/// commits before it reads the database instead.
pub const CATCH_UP_WAIT: Duration = Duration::from_millis(100);

/// Groups whose members are read per statement while the index is built.
const BUILD_PAGE: u64 = 1_000;

/// The index's metrics.
#[derive(Debug, Clone, Default)]
pub struct IndexMetrics {
    /// 1 when calls are answered from the index.
    pub ready: Gauge,
    /// Memberships held.
    pub memberships: Gauge,
    /// Groups held.
    pub groups: Gauge,
    /// Calls answered from the index.
    pub from_index: Counter,
    /// Calls answered from the database (asked to, or the index was not
    /// fresh enough).
    pub from_database: Counter,
}

/// A group as the index holds it.
#[derive(Debug)]
struct Node {
    id: Arc<str>,
    live: bool,
    /// Its `member_of` parents, sorted by id.
    parents: Vec<u32>,
}

#[derive(Debug, Default)]
struct State {
    /// The feed position applied last.
    position: i64,
    /// Built, with no gap since.
    ready: bool,
    groups: Vec<Node>,
    ids: HashMap<Arc<str>, u32>,
    /// Each principal's direct groups, live or not.
    members: Principals,
    memberships: usize,
}

impl State {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&index) = self.ids.get(id) {
            return index;
        }
        let index = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        let id: Arc<str> = Arc::from(id);
        self.groups.push(Node {
            id: Arc::clone(&id),
            live: false,
            parents: Vec::new(),
        });
        self.ids.insert(id, index);
        index
    }

    fn set_parents(&mut self, child: u32, parents: &[String]) {
        let mut indexes: Vec<u32> = parents.iter().map(|p| self.intern(p)).collect();
        indexes.sort_unstable_by(|a, b| self.id(*a).cmp(self.id(*b)));
        indexes.dedup();
        if let Some(node) = self.groups.get_mut(child as usize) {
            node.parents = indexes;
        }
    }

    fn id(&self, index: u32) -> &str {
        self.groups.get(index as usize).map_or("", |node| &node.id)
    }

    fn live(&self, index: u32) -> bool {
        self.groups
            .get(index as usize)
            .is_some_and(|node| node.live)
    }

    fn add_member(&mut self, principal: &str, group: u32) {
        if self.members.groups_mut(principal).insert(group) {
            self.memberships += 1;
        }
    }

    fn remove_member(&mut self, principal: &str, group: u32) {
        if !self.members.groups(principal).is_empty()
            && self.members.groups_mut(principal).remove(group)
        {
            self.memberships -= 1;
        }
    }

    fn apply(&mut self, entry: &FeedEntry) {
        let change = &entry.change;
        let group = self.intern(change.group.id.as_str());
        if let Some(node) = self.groups.get_mut(group as usize) {
            node.live = change.group.is_live();
        }
        self.set_parents(group, &change.group.fields.member_of);
        for principal in &change.members_removed {
            self.remove_member(principal, group);
        }
        for principal in &change.members_added {
            self.add_member(principal, group);
        }
        self.position = entry.position;
    }

    /// The live groups `principal` is directly in, sorted by id.
    fn own(&self, principal: &str) -> Vec<u32> {
        let mut own: Vec<u32> = self
            .members
            .groups(principal)
            .iter()
            .copied()
            .filter(|g| self.live(*g))
            .collect();
        own.sort_unstable_by(|a, b| self.id(*a).cmp(self.id(*b)));
        own
    }

    /// The `member_of` edges between live groups above `start`: those
    /// leaving the start groups and every live group reached from them,
    /// as the database's recursive query reads them.
    fn edges(&self, start: &[u32]) -> Vec<(String, String)> {
        let mut seen: Vec<bool> = vec![false; self.groups.len()];
        let mut stack: Vec<u32> = start.to_vec();
        for g in start {
            if let Some(flag) = seen.get_mut(*g as usize) {
                *flag = true;
            }
        }
        let mut edges = Vec::new();
        while let Some(child) = stack.pop() {
            let Some(node) = self.groups.get(child as usize) else {
                continue;
            };
            for parent in &node.parents {
                if !self.live(*parent) {
                    continue;
                }
                edges.push((node.id.to_string(), self.id(*parent).to_owned()));
                if let Some(flag) = seen.get_mut(*parent as usize)
                    && !*flag
                {
                    *flag = true;
                    stack.push(*parent);
                }
            }
        }
        edges.sort_unstable();
        edges
    }
}

/// What the index knows of a CheckMembership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No group has that id.
    Missing,
    /// The group is deleted.
    Deleted,
    /// The group is live: the principal's live direct groups (sorted) and
    /// the edges above them, as the database would give them.
    Live {
        /// The principal's live direct groups.
        own: Vec<String>,
        /// The `member_of` edges above them (empty when `own` holds the
        /// group asked about).
        edges: Vec<(String, String)>,
    },
}

/// How fresh the index is.
#[derive(Debug, Clone, Copy)]
struct Freshness {
    ready: bool,
    /// This replica's commits the index has applied.
    commits: u64,
    /// When a pass of the reader last ended with everything applied.
    refreshed: Option<Instant>,
}

/// The membership index of this replica. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MembershipIndex {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    fresh: watch::Sender<Freshness>,
    /// How long the index may go without a refresh and still answer.
    max_staleness: Duration,
    metrics: IndexMetrics,
}

impl MembershipIndex {
    /// An empty index, answering nothing until built; it answers only
    /// while refreshed within `max_staleness`.
    pub fn new(max_staleness: Duration, metrics: IndexMetrics) -> Self {
        let (fresh, _) = watch::channel(Freshness {
            ready: false,
            commits: 0,
            refreshed: None,
        });
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                fresh,
                max_staleness,
                metrics,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Updates leave the state whole or not at all before a panic could
        // happen, so a poisoned lock still guards a usable state.
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the index must be built (at start, or after a gap).
    pub fn needs_build(&self) -> bool {
        !self.read().ready
    }

    /// Builds the index from one snapshot of `store`; returns the feed
    /// position it holds everything up to.
    pub async fn build(&self, store: &Store) -> Result<i64, Error> {
        let started = Instant::now();
        let tx = store.read_for_feed().await?;
        let position = tx.feed_head().await?;
        let mut state = State {
            position,
            ready: true,
            ..State::default()
        };
        for (id, live) in tx.all_groups_liveness().await? {
            let index = state.intern(&id);
            if let Some(node) = state.groups.get_mut(index as usize) {
                node.live = live;
            }
        }
        let mut parents: HashMap<u32, Vec<String>> = HashMap::new();
        for (child, parent) in tx.all_parent_edges().await? {
            let child = state.intern(&child);
            parents.entry(child).or_default().push(parent);
        }
        for (child, list) in parents {
            state.set_parents(child, &list);
        }
        let mut after = String::new();
        loop {
            let page = tx.members_of_groups_after(&after, BUILD_PAGE).await?;
            let full = page.len() as u64 == BUILD_PAGE;
            for (group, principals) in &page {
                let group = state.intern(group);
                for principal in principals {
                    state.add_member(principal, group);
                }
            }
            match page.into_iter().last() {
                Some((last, _)) if full => after = last,
                _ => break,
            }
        }
        drop(tx);
        state.members.shrink_to_fit();
        tracing::info!(
            groups = state.groups.len(),
            principals = state.members.len(),
            memberships = state.memberships,
            position,
            elapsed_ms = started.elapsed().as_millis(),
            "built the membership index"
        );
        *self.write() = state;
        self.publish();
        Ok(position)
    }

    /// Applies feed entries read in position order. A gap (an entry that
    /// does not follow the last applied) leaves the index to be built
    /// again, and it stops answering until then.
    pub fn apply(&self, entries: &[FeedEntry]) {
        let mut state = self.write();
        if !state.ready {
            return;
        }
        for entry in entries {
            if entry.position <= state.position {
                // Already in the snapshot the index was built from.
                continue;
            }
            if entry.position != state.position + 1 {
                tracing::warn!(
                    applied = state.position,
                    next = entry.position,
                    "the change feed skipped entries the membership index had not applied; \
                     building it again"
                );
                state.ready = false;
                break;
            }
            state.apply(entry);
        }
        drop(state);
        self.publish();
    }

    /// Records that the index holds every change of `commits` commits of
    /// this replica and everything of the others read so far.
    pub fn refreshed(&self, commits: u64) {
        let ready = self.read().ready;
        self.inner.fresh.send_modify(|fresh| {
            fresh.ready = ready;
            if ready {
                fresh.commits = fresh.commits.max(commits);
                fresh.refreshed = Some(Instant::now());
            }
        });
    }

    fn publish(&self) {
        let state = self.read();
        let metrics = &self.inner.metrics;
        metrics.ready.set(i64::from(state.ready));
        metrics
            .memberships
            .set(i64::try_from(state.memberships).unwrap_or(i64::MAX));
        metrics
            .groups
            .set(i64::try_from(state.groups.len()).unwrap_or(i64::MAX));
        let ready = state.ready;
        drop(state);
        if !ready {
            self.inner.fresh.send_modify(|fresh| fresh.ready = false);
        }
    }

    /// Whether the index may answer a call that began after `commits`
    /// commits of this replica: it waits up to [`CATCH_UP_WAIT`] for the
    /// index to cover them, and refuses an index not refreshed recently.
    pub async fn usable(&self, commits: u64) -> bool {
        let mut fresh = self.inner.fresh.subscribe();
        let covered = tokio::time::timeout(
            CATCH_UP_WAIT,
            fresh.wait_for(|fresh| fresh.ready && fresh.commits >= commits),
        )
        .await;
        let usable = match covered {
            Ok(Ok(fresh)) => fresh
                .refreshed
                .is_some_and(|at| at.elapsed() <= self.inner.max_staleness),
            _ => false,
        };
        if usable {
            self.inner.metrics.from_index.inc();
        } else {
            self.inner.metrics.from_database.inc();
        }
        usable
    }

    /// Counts a call answered from the database because it asked to be.
    pub fn asked_for_database(&self) {
        self.inner.metrics.from_database.inc();
    }

    /// What the index knows for "is `principal` a member of `group`".
    pub fn lookup(&self, group: &str, principal: &str) -> Lookup {
        let state = self.read();
        let Some(&target) = state.ids.get(group) else {
            return Lookup::Missing;
        };
        if !state.live(target) {
            return Lookup::Deleted;
        }
        let own = state.own(principal);
        let edges = if own.contains(&target) {
            Vec::new()
        } else {
            state.edges(&own)
        };
        Lookup::Live {
            own: own.iter().map(|g| state.id(*g).to_owned()).collect(),
            edges,
        }
    }

    /// The live groups `principal` is directly in (and, with
    /// `transitive`, reaches through `member_of`), sorted by id.
    pub fn groups_of(
        &self,
        principal: &str,
        transitive: bool,
    ) -> (Vec<String>, Vec<(String, String)>) {
        let state = self.read();
        let own = state.own(principal);
        let edges = if transitive {
            state.edges(&own)
        } else {
            Vec::new()
        };
        (own.iter().map(|g| state.id(*g).to_owned()).collect(), edges)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every group reached from `own` along `edges`.
    fn reached(own: Vec<String>, edges: Vec<(String, String)>) -> BTreeSet<String> {
        crate::domain::hierarchy::Ancestry::walk(own, edges).into_reached()
    }
    use crate::domain::group::State as Life;

    fn entry(
        position: i64,
        id: &str,
        parents: &[&str],
        added: &[&str],
        removed: &[&str],
    ) -> FeedEntry {
        let mut entry = FeedEntry::update_for_tests(position, id);
        let group = &mut entry.change.group;
        group.state = Life::Active;
        group.delete_time = None;
        group.fields.member_of = parents.iter().map(|p| (*p).to_owned()).collect();
        let names = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect();
        entry.change.members_added = names(added);
        entry.change.members_removed = names(removed);
        entry
    }

    fn ready_index() -> MembershipIndex {
        let index = MembershipIndex::new(Duration::from_secs(2), IndexMetrics::default());
        index.write().ready = true;
        index
    }

    #[test]
    fn entries_move_memberships_and_parents_and_a_replay_changes_nothing() {
        let index = ready_index();
        let entries = [
            entry(1, "top", &[], &[], &[]),
            entry(2, "mid", &["top"], &[], &[]),
            entry(3, "low", &["mid"], &["alice", "bob"], &[]),
            entry(4, "low", &["mid"], &[], &["bob"]),
        ];
        index.apply(&entries);
        let (own, edges) = index.groups_of("alice", true);
        assert_eq!(own, ["low"]);
        assert_eq!(
            reached(own, edges),
            BTreeSet::from(["low".to_owned(), "mid".to_owned(), "top".to_owned()])
        );
        assert_eq!(index.groups_of("bob", true).0, Vec::<String>::new());
        // Entries already applied are skipped.
        index.apply(&entries[1..]);
        assert_eq!(index.read().memberships, 1);
        assert_eq!(index.lookup("nowhere", "alice"), Lookup::Missing);
        match index.lookup("top", "alice") {
            Lookup::Live { own, edges } => {
                assert_eq!(own, ["low"]);
                assert_eq!(
                    edges,
                    [
                        ("low".to_owned(), "mid".to_owned()),
                        ("mid".to_owned(), "top".to_owned())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_deleted_group_cuts_the_chains_through_it_and_a_gap_stops_the_index() {
        let index = ready_index();
        let mut deleted = entry(4, "mid", &["top"], &[], &[]);
        deleted.change.group.state = Life::Deleted;
        index.apply(&[
            entry(1, "top", &[], &[], &[]),
            entry(2, "mid", &["top"], &[], &[]),
            entry(3, "low", &["mid"], &["alice"], &[]),
            deleted,
        ]);
        assert_eq!(index.lookup("mid", "alice"), Lookup::Deleted);
        let (own, edges) = index.groups_of("alice", true);
        assert_eq!(reached(own, edges), BTreeSet::from(["low".to_owned()]));
        assert!(!index.needs_build());
        index.apply(&[entry(6, "low", &[], &[], &[])]);
        assert!(index.needs_build());
        // Nothing more is applied until it is built again.
        index.apply(&[entry(7, "low", &[], &["carol"], &[])]);
        assert!(index.groups_of("carol", false).0.is_empty());
    }
}
