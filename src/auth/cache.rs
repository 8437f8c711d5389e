//! A bounded cache of verified credentials, keyed by a 32-byte digest of
//! the credential (SHA-256 of a token, an HMAC of a Basic header), never the
//! credential itself.
//!
//! Each entry holds until its expiry and belongs to a generation (of the
//! key set, or of the users file): an entry of an older generation is a
//! miss. When full, an insert first drops expired and stale entries, then
//! the oldest, so a flood of distinct credentials cannot grow memory past
//! the bound.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant, SystemTime},
};

/// How many credentials a cache holds by default.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The least time between two sweeps of a full cache for expired entries;
/// between them a full cache drops its oldest entry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A bounded map from credential digests to what they verified as.
#[derive(Debug)]
pub struct BoundedCache<V> {
    entries: HashMap<[u8; 32], Entry<V>>,
    /// Digests in insertion order with their insertion number; an item
    /// whose number no longer matches its entry is stale and skipped.
    order: VecDeque<([u8; 32], u64)>,
    next: u64,
    capacity: usize,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: SystemTime,
    generation: u64,
    inserted: u64,
}

impl<V: Clone> BoundedCache<V> {
    /// An empty cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
            last_sweep: None,
        }
    }

    /// The value cached for `digest`, if it has not expired at `now` and
    /// belongs to `generation`. An expired or stale entry is dropped.
    pub fn get(&mut self, digest: &[u8; 32], now: SystemTime, generation: u64) -> Option<V> {
        let entry = self.entries.get(digest)?;
        if entry.generation == generation && now <= entry.expires {
            return Some(entry.value.clone());
        }
        self.entries.remove(digest);
        None
    }

    /// Caches `value` for `digest` until `expires`, in `generation`.
    pub fn insert(&mut self, digest: [u8; 32], value: V, expires: SystemTime, generation: u64) {
        if !self.entries.contains_key(&digest) && self.entries.len() >= self.capacity {
            self.make_room(SystemTime::now(), generation);
        }
        let inserted = self.next;
        self.next += 1;
        self.entries.insert(
            digest,
            Entry {
                value,
                expires,
                generation,
                inserted,
            },
        );
        self.order.push_back((digest, inserted));
        if self.order.len() > 2 * self.capacity {
            self.compact_order();
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frees at least one place: expired and stale entries first (at most
    /// one sweep a second), else the oldest entry.
    fn make_room(&mut self, now: SystemTime, generation: u64) {
        let sweep_due = self
            .last_sweep
            .is_none_or(|last| last.elapsed() >= SWEEP_INTERVAL);
        if sweep_due {
            self.last_sweep = Some(Instant::now());
            self.entries
                .retain(|_, entry| entry.generation == generation && now <= entry.expires);
            if self.entries.len() < self.capacity {
                self.compact_order();
                return;
            }
        }
        while let Some((digest, inserted)) = self.order.pop_front() {
            if self
                .entries
                .get(&digest)
                .is_some_and(|entry| entry.inserted == inserted)
            {
                self.entries.remove(&digest);
                return;
            }
        }
    }

    /// Rebuilds the insertion order from the live entries.
    fn compact_order(&mut self) {
        let mut live: Vec<([u8; 32], u64)> = self
            .entries
            .iter()
            .map(|(digest, entry)| (*digest, entry.inserted))
            .collect();
        live.sort_by_key(|(_, inserted)| *inserted);
        self.order = live.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> [u8; 32] {
        let mut digest = [0; 32];
        digest[..4].copy_from_slice(&n.to_be_bytes());
        digest
    }

    #[test]
    fn entries_hold_until_they_expire_and_only_in_their_generation() {
        let mut cache = BoundedCache::new(10);
        let now = SystemTime::now();
        cache.insert(digest(1), "alice", now + Duration::from_secs(60), 1);
        assert_eq!(cache.get(&digest(1), now, 1), Some("alice"));
        assert_eq!(cache.get(&digest(2), now, 1), None);
        assert_eq!(
            cache.get(&digest(1), now + Duration::from_secs(61), 1),
            None,
            "expired"
        );
        assert!(cache.is_empty(), "an expired entry is dropped when met");
        cache.insert(digest(1), "alice", now + Duration::from_secs(60), 1);
        assert_eq!(cache.get(&digest(1), now, 2), None, "another generation");
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_the_oldest() {
        let mut cache = BoundedCache::new(3);
        let now = SystemTime::now();
        let later = now + Duration::from_secs(600);
        cache.insert(digest(1), 1, later, 0);
        cache.insert(digest(2), 2, now - Duration::from_secs(1), 0);
        cache.insert(digest(3), 3, later, 0);
        cache.insert(digest(4), 4, later, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.get(&digest(1), now, 0),
            Some(1),
            "the expired one went"
        );
        assert_eq!(cache.get(&digest(4), now, 0), Some(4));
        // Full of live entries, within a second of the last sweep: the
        // oldest goes.
        cache.insert(digest(5), 5, later, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&digest(1), now, 0), None, "the oldest went");
        assert_eq!(cache.get(&digest(5), now, 0), Some(5));
    }

    #[test]
    fn a_flood_of_distinct_entries_stays_within_the_bound() {
        let mut cache = BoundedCache::new(100);
        let later = SystemTime::now() + Duration::from_secs(600);
        for n in 0..10_000 {
            cache.insert(digest(n), n, later, 0);
            assert!(cache.len() <= 100);
            assert!(cache.order.len() <= 200, "the order queue is bounded too");
        }
        let now = SystemTime::now();
        assert_eq!(cache.get(&digest(9_999), now, 0), Some(9_999));
        assert_eq!(cache.get(&digest(0), now, 0), None);
    }
}
