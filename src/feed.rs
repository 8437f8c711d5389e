//! The change feed as this process reads it: one reader, shared by every
//! WatchGroupChanges stream, that follows the feed (see `store::feed`)
//! and keeps its newest entries in memory.
//!
//! The reader wakes when a write of this process commits, when another
//! replica's sequencer notifies (PostgreSQL), and every `poll` interval
//! as a backstop for a lost notification or a replica that died between
//! its commit and the sequencing. It numbers what waits for a position
//! (PostgreSQL), reads what is new, and appends it to a ring of the newest
//! entries, bounded by count and by bytes. Streams that are up to date
//! take their entries from the ring, so a thousand streams cost one read
//! of the database per change, not a thousand; a stream behind the ring
//! reads the database a page at a time until it catches up. A stream
//! that was served from the ring and fell so far behind that the ring no
//! longer holds its next entry is ended (RESOURCE_EXHAUSTED): its client
//! reads slower than changes are written, and resumes from its cursor.
//!
//! The same task prunes the feed of changes older than the retention.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::reply,
    error::Error,
    index::MembershipIndex,
    store::{FeedEntry, FeedWakeups, Store},
};

/// Most entries read from the database in one statement.
const READ_PAGE: u64 = 500;

/// How long the reader may fail before streams are told the feed is
/// unavailable: one failed poll is retried first.
const FAILING_AFTER: Duration = Duration::from_secs(2);

/// How the feed is read and kept.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// How long the feed keeps a change (`--change-retention`).
    pub retention: Duration,
    /// How often the reader looks for changes nobody told it about.
    pub poll: Duration,
    /// Most entries the ring holds.
    pub ring_entries: usize,
    /// Most bytes of memory the ring's entries hold (see [`held_bytes`]).
    pub ring_bytes: usize,
    /// Most streams open at once (`--max-watch-streams`).
    pub max_streams: usize,
}

/// What the ring holds, as metrics.
#[derive(Debug, Clone, Default)]
pub struct BufferMetrics {
    /// Changes held now.
    pub changes: Gauge,
    /// Bytes of memory they hold, as the ring's bound counts them.
    pub bytes: Gauge,
}

/// The reader's state as streams see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The newest position read.
    pub head: i64,
    /// The reader has failed to read the database for a while.
    pub failing: bool,
}

/// What the ring holds after a position.
#[derive(Debug)]
pub enum Next {
    /// The entries after it (at least one).
    Entries(Vec<Arc<FeedEntry>>),
    /// Nothing after it yet.
    UpToDate,
    /// The ring no longer (or does not yet) hold the entry after it.
    Behind,
}

/// The shared reader of the change feed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    options: FeedOptions,
    ring: Mutex<Ring>,
    progress: watch::Sender<Progress>,
    stop: CancellationToken,
    streams: Arc<Semaphore>,
    open: Gauge,
    head_gauge: Gauge,
    buffer: BufferMetrics,
    /// The membership index the reader keeps up to date, when on.
    index: Option<MembershipIndex>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(Arc<FeedEntry>, usize)>,
    bytes: usize,
}

impl Ring {
    fn after(&self, position: i64, head: i64, most: usize) -> Next {
        let (Some((first, _)), Some((last, _))) = (self.entries.front(), self.entries.back())
        else {
            return if position >= head {
                Next::UpToDate
            } else {
                Next::Behind
            };
        };
        if position >= last.position {
            return Next::UpToDate;
        }
        if position < first.position - 1 {
            return Next::Behind;
        }
        let skip = usize::try_from(position + 1 - first.position).unwrap_or(0);
        Next::Entries(
            self.entries
                .iter()
                .skip(skip)
                .take(most.max(1))
                .map(|(entry, _)| Arc::clone(entry))
                .collect(),
        )
    }

    fn push(&mut self, entry: FeedEntry, options: &FeedOptions) {
        if self
            .entries
            .back()
            .is_some_and(|(last, _)| last.position + 1 != entry.position)
        {
            // A gap (entries pruned before this process read them): the
            // ring holds one run of positions, so it starts again here.
            self.entries.clear();
            self.bytes = 0;
        }
        // The encoded reply is counted from the start: once a stream has
        // sent the entry, the entry holds it too.
        let size =
            held_bytes(&entry) + encoded_bytes(&entry) + size_of::<(Arc<FeedEntry>, usize)>();
        self.entries.push_back((Arc::new(entry), size));
        self.bytes += size;
        while self.entries.len() > options.ring_entries
            || (self.bytes > options.ring_bytes && self.entries.len() > 1)
        {
            if let Some((_, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
        }
    }
}

/// The heap memory an entry holds once shared in the ring: the entry
/// behind its `Arc`, and every string and list it owns, each allocation
/// counted as glibc's malloc lays it out (8 bytes of header, rounded up to
/// 16, at least 32). The ring is bounded by what the process holds, not
/// by the entries' encoded size: decoded, an entry takes two to three
/// times the bytes it takes on the wire.
///
/// Computed by hand, as no crate gives the heap size of a value without a
/// derive on every type it holds. `tests/feed_memory.rs` checks it against
/// what the allocator is asked for when an entry is made.
pub fn held_bytes(entry: &FeedEntry) -> usize {
    fn chunk(bytes: usize) -> usize {
        if bytes == 0 {
            0
        } else {
            (bytes + 8).next_multiple_of(16).max(32)
        }
    }
    fn list(list: &[String], capacity: usize) -> usize {
        chunk(capacity * size_of::<String>())
            + list.iter().map(|s| chunk(s.capacity())).sum::<usize>()
    }
    // A B-tree's leaf holds up to 11 pairs (node header, keys, values); a
    // map collected from sorted pairs fills its leaves, and the few
    // internal nodes above them are left out.
    const PAIRS_PER_LEAF: usize = 11;
    const LEAF: usize = 16 + PAIRS_PER_LEAF * 2 * size_of::<String>();
    let change = &entry.change;
    let group = &change.group;
    let fields = &group.fields;
    let labels = &fields.labels;
    chunk(size_of::<FeedEntry>() + 2 * size_of::<usize>())
        + chunk(change.actor.capacity())
        + list(&change.update_mask, change.update_mask.capacity())
        + list(&change.members_added, change.members_added.capacity())
        + list(&change.members_removed, change.members_removed.capacity())
        + list(&change.admins_added, change.admins_added.capacity())
        + list(&change.admins_removed, change.admins_removed.capacity())
        + chunk(group.id.as_str().len())
        + chunk(group.created_by.capacity())
        + chunk(group.updated_by.capacity())
        + chunk(fields.name.capacity())
        + chunk(fields.scope.capacity())
        + chunk(fields.description.capacity())
        + chunk(fields.email.capacity())
        + chunk(fields.provenance.capacity())
        + list(&fields.member_of, fields.member_of.capacity())
        + list(&fields.assigned_roles, fields.assigned_roles.capacity())
        + labels.len().div_ceil(PAIRS_PER_LEAF) * chunk(LEAF)
        + labels
            .iter()
            .map(|(key, value)| chunk(key.capacity()) + chunk(value.capacity()))
            .sum::<usize>()
}

/// Most bytes the entry's encoded reply (`FeedEntry::encoded`) holds: the
/// change as a reply encodes it, its group id, a cursor and the fields'
/// tags, in an `Arc`'s allocation.
fn encoded_bytes(entry: &FeedEntry) -> usize {
    /// The cursor (a few bytes of base64) and the tags and lengths of the
    /// reply's fields, with room to spare.
    const FRAMING: usize = 64;
    let reply = reply::change(&entry.change) + entry.change.group.id.as_str().len() + FRAMING;
    (reply + 2 * size_of::<usize>() + 8).next_multiple_of(16)
}

/// A stream's place among the open streams, given back when it ends.
#[derive(Debug)]
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Feed {
    /// The feed of `store`, read once [`Feed::spawn`] has started its task,
    /// which also builds `index` and keeps it up to date.
    pub fn new(
        store: Store,
        options: FeedOptions,
        open: Gauge,
        head_gauge: Gauge,
        buffer: BufferMetrics,
        index: Option<MembershipIndex>,
    ) -> Self {
        let (progress, _) = watch::channel(Progress {
            head: 0,
            failing: false,
        });
        Self {
            inner: Arc::new(Inner {
                store,
                streams: Arc::new(Semaphore::new(options.max_streams.max(1))),
                options,
                ring: Mutex::new(Ring::default()),
                progress,
                stop: CancellationToken::new(),
                open,
                head_gauge,
                buffer,
                index,
            }),
        }
    }

    /// The membership index this feed keeps up to date, when on.
    pub fn index(&self) -> Option<&MembershipIndex> {
        self.inner.index.as_ref()
    }

    /// The store the feed is read from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Fires when the server is shutting down: streams end.
    pub fn stopping(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// The reader's progress, to wait for new entries.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Up to `most` entries after `position`, from the ring.
    pub fn after(&self, position: i64, most: usize) -> Next {
        let head = self.inner.progress.borrow().head;
        self.ring().after(position, head, most)
    }

    /// A place for one more stream; RESOURCE_EXHAUSTED (reason
    /// `TOO_MANY_WATCHES`) when `--max-watch-streams` are open.
    pub fn open_stream(&self) -> Result<StreamSlot, Error> {
        let permit = Arc::clone(&self.inner.streams)
            .try_acquire_owned()
            .map_err(|_| Error::ResourceExhausted {
                reason: "TOO_MANY_WATCHES",
                message: format!(
                    "{} change streams are open on this server, the most it serves; \
                     retry later or on another replica",
                    self.inner.options.max_streams
                ),
            })?;
        self.inner.open.inc();
        Ok(StreamSlot {
            _permit: permit,
            open: self.inner.open.clone(),
        })
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves a consistent ring: entries
        // are pushed and popped whole.
        self.inner
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the reader; it stops, and ends every stream, when `draining`
    /// fires.
    pub fn spawn(&self, draining: CancellationToken) -> JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let stop = feed.inner.stop.clone();
            tokio::select! {
                () = feed.follow() => {}
                () = draining.cancelled() => {}
            }
            stop.cancel();
        })
    }

    /// Follows the feed until the task is stopped.
    async fn follow(&self) {
        let store = &self.inner.store;
        let poll = self.inner.options.poll;
        let commits = store.commits();
        let mut wakeups: Option<FeedWakeups> = None;
        let mut head: Option<i64> = None;
        let mut failing_since: Option<Instant> = None;
        let mut pruned_at: Option<Instant> = None;
        let mut woken_by_commit = true;
        let mut listen_failed = false;
        loop {
            if wakeups.is_none() {
                match store.feed_wakeups().await {
                    Ok(listening) => {
                        wakeups = Some(listening);
                        if listen_failed {
                            tracing::info!("listening for change feed notifications again");
                        }
                        listen_failed = false;
                    }
                    // Said once, not at every poll of an outage.
                    Err(error) if !listen_failed => {
                        listen_failed = true;
                        tracing::warn!(%error, "cannot listen for change feed notifications; polling");
                    }
                    Err(_) => {}
                }
            }
            match self.read_new(&mut head, woken_by_commit).await {
                Ok(()) => {
                    if failing_since.take().is_some() {
                        tracing::info!("the change feed is read again");
                    }
                    self.inner.progress.send_if_modified(|progress| {
                        let changed = progress.failing;
                        progress.failing = false;
                        changed
                    });
                }
                Err(error) => {
                    if failing_since.is_none() {
                        tracing::warn!(%error, "cannot read the change feed");
                    } else {
                        tracing::debug!(%error, "still cannot read the change feed");
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= FAILING_AFTER {
                        self.inner.progress.send_if_modified(|progress| {
                            let changed = !progress.failing;
                            progress.failing = true;
                            changed
                        });
                    }
                }
            }
            let prune_every = (self.inner.options.retention / 10).min(Duration::from_secs(600));
            if pruned_at.is_none_or(|at| at.elapsed() >= prune_every) {
                pruned_at = Some(Instant::now());
                self.prune().await;
            }
            woken_by_commit = tokio::select! {
                () = commits.notified() => true,
                () = next_wakeup(wakeups.as_mut(), poll) => false,
                () = tokio::time::sleep(poll) => false,
            };
        }
    }

    /// Numbers what waits for a position (after a commit of this process,
    /// or when the poll finds some), then reads every entry after `head`
    /// into the ring.
    async fn read_new(&self, head: &mut Option<i64>, after_commit: bool) -> Result<(), Error> {
        let store = &self.inner.store;
        let index = self.inner.index.as_ref();
        // Every write of this process counted here has committed, so the
        // read below reaches its entry (numbered first on PostgreSQL).
        let commits = store.commits().count();
        if after_commit || store.feed_unsequenced().await? {
            store.sequence_feed().await?;
        }
        if let Some(index) = index
            && index.needs_build()
        {
            let built = index.build(store).await?;
            head.get_or_insert(built);
        }
        let mut position = match *head {
            Some(position) => position,
            // The first read starts at the end: streams behind it read the
            // database themselves.
            None => store.read_for_feed().await?.feed_head().await?,
        };
        loop {
            let page = store
                .read_for_feed()
                .await?
                .feed_after(position, READ_PAGE)
                .await?;
            let full = page.len() as u64 == READ_PAGE;
            if let Some(last) = page.last() {
                position = last.position;
            }
            if let Some(index) = index {
                index.apply(&page);
            }
            {
                let mut ring = self.ring();
                for entry in page {
                    ring.push(entry, &self.inner.options);
                }
                let buffer = &self.inner.buffer;
                buffer
                    .changes
                    .set(i64::try_from(ring.entries.len()).unwrap_or(i64::MAX));
                buffer
                    .bytes
                    .set(i64::try_from(ring.bytes).unwrap_or(i64::MAX));
            }
            *head = Some(position);
            self.inner.head_gauge.set(position);
            self.inner.progress.send_if_modified(|progress| {
                let changed = progress.head != position;
                progress.head = position;
                changed
            });
            if !full {
                break;
            }
        }
        if let Some(index) = index {
            if index.needs_build() {
                // A gap: built again now rather than at the next pass.
                index.build(store).await?;
            }
            index.refreshed(commits);
        }
        Ok(())
    }

    /// Deletes what the retention no longer keeps.
    async fn prune(&self) {
        let retention = i64::try_from(self.inner.options.retention.as_micros()).unwrap_or(i64::MAX);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        match self
            .inner
            .store
            .prune_feed(now.saturating_sub(retention))
            .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned the change feed"),
            Err(error) => tracing::warn!(%error, "cannot prune the change feed"),
        }
    }
}

/// The next notification of another replica, or never without a listener.
async fn next_wakeup(wakeups: Option<&mut FeedWakeups>, pause: Duration) {
    match wakeups {
        Some(wakeups) => wakeups.next(pause).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: i64) -> FeedEntry {
        FeedEntry::update_for_tests(position, "g")
    }

    fn options(entries: usize) -> FeedOptions {
        FeedOptions {
            retention: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            ring_entries: entries,
            ring_bytes: usize::MAX,
            max_streams: 1,
        }
    }

    fn positions(next: Next) -> Vec<i64> {
        match next {
            Next::Entries(entries) => entries.iter().map(|e| e.position).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_ring_answers_after_a_position_from_what_it_holds() {
        let mut ring = Ring::default();
        assert!(matches!(ring.after(0, 0, 10), Next::UpToDate));
        assert!(matches!(ring.after(0, 3, 10), Next::Behind));
        for position in 1..=6 {
            ring.push(entry(position), &options(4));
        }
        // Holds 3..=6.
        assert!(matches!(ring.after(1, 6, 10), Next::Behind));
        assert_eq!(positions(ring.after(2, 6, 10)), [3, 4, 5, 6]);
        assert_eq!(positions(ring.after(4, 6, 1)), [5]);
        assert!(matches!(ring.after(6, 6, 10), Next::UpToDate));
        assert!(matches!(ring.after(9, 6, 10), Next::UpToDate));
    }

    #[test]
    fn a_gap_starts_the_ring_again_and_bytes_bound_it() {
        let mut ring = Ring::default();
        ring.push(entry(1), &options(10));
        ring.push(entry(2), &options(10));
        ring.push(entry(5), &options(10));
        assert!(matches!(ring.after(2, 5, 10), Next::Behind));
        assert_eq!(positions(ring.after(4, 5, 10)), [5]);

        let size =
            held_bytes(&entry(1)) + encoded_bytes(&entry(1)) + size_of::<(Arc<FeedEntry>, usize)>();
        let tight = FeedOptions {
            ring_bytes: size * 2,
            ..options(10)
        };
        let mut ring = Ring::default();
        for position in 1..=5 {
            ring.push(entry(position), &tight);
        }
        assert!(matches!(ring.after(0, 5, 10), Next::Behind));
        assert_eq!(positions(ring.after(3, 5, 10)), [4, 5]);
        assert!(ring.bytes <= size * 2);
    }
}
