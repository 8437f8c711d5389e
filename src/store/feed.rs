//! The change feed: every committed write's place in one order across all
//! groups (`change_feed`, beside the per-group history it points into).
//!
//! Positions are 1, 2, 3, … with no gap, in commit order, and a position
//! is only ever given to a committed write; so a reader that has seen
//! position `p` has seen everything before it, and a reader that finds
//! `p + 2` after `p` knows that `p + 1` was pruned. How positions are
//! given differs:
//!
//! - SQLite: the write takes one past the largest position as its last
//!   statement. Writers hold the database's write lock from their first
//!   statement to their commit, so no other write can commit in between.
//! - PostgreSQL: writes commit concurrently, so a position taken inside a
//!   transaction could commit after a larger one, and a reader that had
//!   moved past the larger would skip it forever. Serializing every commit
//!   behind one lock would fix that and cap the database's write rate at
//!   one commit per WAL flush. Instead a write leaves its position empty
//!   and draws `seq` from a sequence as its last statement, after every
//!   row lock it takes; the sequencer ([`Store::sequence_feed`]) numbers
//!   the committed rows it sees, in `seq` order, under a transaction-level
//!   advisory lock that only sequencers take. Rows still uncommitted are
//!   invisible to it, and get a larger position once they commit, so the
//!   order is the order in which writes became visible. Within one batch,
//!   `seq` order keeps each group's versions in order: a second write to a
//!   group waits for the first's commit before it locks the group, so it
//!   draws its `seq` later. The sequencer commits, and then notifies every
//!   replica (`NOTIFY`): notifying from the writes themselves would
//!   serialize their commits, as PostgreSQL orders notifications by
//!   commit under a database-wide lock.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectionTrait as _, FromQueryResult as _, Statement, TransactionTrait as _,
    sqlx::postgres::PgListener,
};
use tokio::sync::Notify;

use super::{
    ReadTx, Store, changes::to_change, dialect::FEED_LOCK, entities::group_changes,
    errors::Classify as _,
};
use crate::{domain::GroupChange, error::Error};

/// The PostgreSQL channel the sequencer notifies once it has numbered new
/// entries.
const CHANNEL: &str = "groupd_change_feed";

/// Most entries the sequencer numbers in one transaction.
const SEQUENCE_BATCH: i64 = 10_000;

/// Most entries one prune statement deletes.
const PRUNE_BATCH: i64 = 10_000;

/// A change with its position in the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// Its position: one more than the entry before it.
    pub position: i64,
    /// The change, as the group's history records it.
    pub change: GroupChange,
    /// The entry as a change stream sends it, encoded by the first stream
    /// that sends it and shared by every other (see [`EncodedOnce`]).
    pub encoded: EncodedOnce,
}

/// Bytes made from a value once and then shared: the change streams send
/// the same entry to every watcher, so it is encoded once rather than once
/// per stream, as a Kubernetes API server serializes a watch event once
/// for all its watchers. A clone starts empty, since a cloned entry may be
/// changed (a stream cuts an oversized one down to fit), and the bytes
/// never take part in a comparison.
#[derive(Debug, Default)]
pub struct EncodedOnce(OnceLock<Arc<[u8]>>);

impl EncodedOnce {
    /// The bytes, made by `encode` the first time they are asked for.
    pub fn get_or_init(&self, encode: impl FnOnce() -> Vec<u8>) -> Arc<[u8]> {
        Arc::clone(self.0.get_or_init(|| encode().into()))
    }

    /// The bytes, if they were made.
    #[cfg(test)]
    pub fn get(&self) -> Option<&[u8]> {
        self.0.get().map(|bytes| &**bytes)
    }
}

impl Clone for EncodedOnce {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
impl FeedEntry {
    /// An update of group `id` at `position` (its version too) that
    /// changes no membership, for tests to build on.
    pub fn update_for_tests(position: i64, id: &str) -> Self {
        use crate::domain::{ChangeKind, Group, GroupId, Timestamp};
        Self {
            position,
            change: GroupChange {
                version: position,
                change_time: Timestamp::from_micros(0),
                actor: "a".to_owned(),
                kind: ChangeKind::Update,
                update_mask: Vec::new(),
                group: Group::absent(GroupId::parse(id).unwrap_or_else(|_| panic!("{id:?}"))),
                members_added: Vec::new(),
                members_removed: Vec::new(),
                admins_added: Vec::new(),
                admins_removed: Vec::new(),
                delta_truncated: false,
            },
            encoded: EncodedOnce::default(),
        }
    }
}

/// What the feed holds: the positions of its oldest and newest entries
/// (`oldest` is `None` when it holds none, and `head` is then the last
/// position ever given, or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedBounds {
    /// The oldest position still held.
    pub oldest: Option<i64>,
    /// The newest position.
    pub head: i64,
}

impl ReadTx {
    /// Up to `limit` entries after position `after`, in order.
    pub async fn feed_after(&self, after: i64, limit: u64) -> Result<Vec<FeedEntry>, Error> {
        let p = |n| self.dialect.placeholder(n);
        let sql = format!(
            "SELECT c.*, f.position AS feed_position FROM change_feed f \
             JOIN group_changes c ON c.group_id = f.group_id AND c.version = f.version \
             WHERE f.position > {} ORDER BY f.position LIMIT {}",
            p(1),
            p(2)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query_raw(sql, [after.into(), limit.into()]).await?;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get("", "feed_position").map_err(Error::internal)?;
                let model =
                    group_changes::Model::from_query_result(row, "").map_err(Error::internal)?;
                Ok(FeedEntry {
                    position,
                    change: to_change(model)?,
                    encoded: EncodedOnce::default(),
                })
            })
            .collect()
    }

    /// The newest position, as of this transaction's snapshot.
    pub async fn feed_head(&self) -> Result<i64, Error> {
        let rows = self
            .query_raw(
                "SELECT COALESCE(MAX(position), 0) AS head FROM change_feed".to_owned(),
                [],
            )
            .await?;
        rows.first()
            .ok_or_else(|| Error::internal("no row from an aggregate"))?
            .try_get("", "head")
            .map_err(Error::internal)
    }

    /// The oldest and newest positions the feed holds, as of this
    /// transaction's snapshot. Each bound is a subquery of its own: SQLite
    /// reads a lone `MIN` or `MAX` from one end of the index, but scans all
    /// of it for both in one select (tens of milliseconds for a few
    /// hundred thousand entries).
    pub async fn feed_bounds(&self) -> Result<FeedBounds, Error> {
        let rows = self
            .query_raw(
                "SELECT (SELECT MIN(position) FROM change_feed) AS oldest, \
                 (SELECT COALESCE(MAX(position), 0) FROM change_feed) AS head"
                    .to_owned(),
                [],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::internal("no row from an aggregate"))?;
        Ok(FeedBounds {
            oldest: row.try_get("", "oldest").map_err(Error::internal)?,
            head: row.try_get("", "head").map_err(Error::internal)?,
        })
    }
}

impl Store {
    /// Numbers the committed feed entries that have no position yet (on
    /// PostgreSQL; SQLite's have theirs already), a batch per transaction
    /// until none is left, and notifies every replica after each batch.
    /// Returns how many it numbered.
    pub async fn sequence_feed(&self) -> Result<u64, Error> {
        if !self.dialect.sequences_feed() {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let numbered = self.sequence_batch().await?;
            total += numbered;
            if numbered < SEQUENCE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// Numbers up to [`SEQUENCE_BATCH`] entries in one transaction.
    async fn sequence_batch(&self) -> Result<u64, Error> {
        let backend = self.dialect.backend();
        let tx = self.db.begin().await.classify(self.dialect)?;
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [FEED_LOCK.into()],
        ))
        .await
        .classify(self.dialect)?;
        // READ COMMITTED: this statement's snapshot is taken after the lock
        // was granted, so it sees every position an earlier sequencer gave.
        let numbered = tx
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE change_feed f SET position = head.p + todo.n \
                 FROM (SELECT COALESCE(MAX(position), 0) AS p FROM change_feed) head, \
                      (SELECT group_id, version, ROW_NUMBER() OVER (ORDER BY seq) AS n \
                       FROM (SELECT group_id, version, seq FROM change_feed \
                             WHERE position IS NULL ORDER BY seq LIMIT $1) batch) todo \
                 WHERE f.group_id = todo.group_id AND f.version = todo.version",
                [SEQUENCE_BATCH.into()],
            ))
            .await
            .classify(self.dialect)?
            .rows_affected();
        if numbered > 0 {
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_notify($1, '')",
                [CHANNEL.into()],
            ))
            .await
            .classify(self.dialect)?;
        }
        tx.commit().await.classify(self.dialect)?;
        Ok(numbered)
    }

    /// Whether committed feed entries wait for [`Self::sequence_feed`].
    pub async fn feed_unsequenced(&self) -> Result<bool, Error> {
        if !self.dialect.sequences_feed() {
            return Ok(false);
        }
        let rows = self
            .read()
            .await?
            .query_raw(
                "SELECT EXISTS (SELECT 1 FROM change_feed WHERE position IS NULL) AS waiting"
                    .to_owned(),
                [],
            )
            .await?;
        rows.first()
            .map_or(Ok(false), |row| row.try_get("", "waiting"))
            .map_err(Error::internal)
    }

    /// Deletes the feed entries of changes made before `before`
    /// (microseconds since the epoch), always keeping the newest entry, so
    /// that positions keep growing from it. The per-group history is kept.
    /// Returns how many entries it deleted. Each batch is a write of its
    /// own.
    pub async fn prune_feed(&self, before: i64) -> Result<u64, Error> {
        let mut deleted = 0;
        loop {
            let p = |n| self.dialect.placeholder(n);
            // In batches of positions, so that no statement holds locks on
            // an unbounded number of rows.
            let sql = format!(
                "DELETE FROM change_feed WHERE position IS NOT NULL AND change_time < {} \
                 AND position < (SELECT MAX(position) FROM change_feed) \
                 AND position < (SELECT MIN(position) FROM change_feed) + {}",
                p(1),
                p(2)
            );
            let statement = Statement::from_sql_and_values(
                self.dialect.backend(),
                sql,
                [before.into(), PRUNE_BATCH.into()],
            );
            let done = if self.group_commit.is_some() {
                // On SQLite, in turn with the writes (see `group_commit`):
                // the group's transaction holds the write lock while
                // writes keep coming, which a statement of its own would
                // wait for in SQLite's busy handler, up to its timeout.
                let tx = self.write().await?;
                let done = tx
                    .conn()?
                    .execute_raw(statement)
                    .await
                    .classify(self.dialect)?
                    .rows_affected();
                tx.commit().await?;
                done
            } else {
                self.db
                    .execute_raw(statement)
                    .await
                    .classify(self.dialect)?
                    .rows_affected()
            };
            deleted += done;
            if done == 0 {
                return Ok(deleted);
            }
        }
    }

    /// What wakes a reader of the feed when another replica's writes were
    /// numbered: a PostgreSQL `LISTEN` on its own connection; nothing on
    /// SQLite, whose writers are all in this process.
    pub async fn feed_wakeups(&self) -> Result<FeedWakeups, Error> {
        if !self.dialect.sequences_feed() {
            return Ok(FeedWakeups {
                listener: None,
                lost: false,
            });
        }
        let mut listener = PgListener::connect(&self.url)
            .await
            .map_err(|error| Error::Unavailable(Box::new(error)))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|error| Error::Unavailable(Box::new(error)))?;
        Ok(FeedWakeups {
            listener: Some(listener),
            lost: false,
        })
    }

    /// The commits of writes in this process: counted, and announced to
    /// the change feed's reader.
    pub fn commits(&self) -> Arc<Commits> {
        Arc::clone(&self.commits)
    }
}

/// The writes this process has committed: how many, and a wakeup after
/// each. A reader that notes the count, then reads the feed to its end,
/// has seen every write this process acknowledged before it noted it.
#[derive(Debug, Default)]
pub struct Commits {
    count: AtomicU64,
    notify: Notify,
}

impl Commits {
    /// Records one more commit, once it has happened.
    pub(super) fn record(&self) {
        self.count.fetch_add(1, Ordering::Release);
        self.notify.notify_one();
    }

    /// How many writes have committed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Waits for the next commit (or returns at once when one happened
    /// since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

/// Notifications from the other replicas (see [`Store::feed_wakeups`]).
#[derive(Debug)]
pub struct FeedWakeups {
    listener: Option<PgListener>,
    /// The connection was lost and has not delivered since: said once.
    lost: bool,
}

impl FeedWakeups {
    /// Waits for the next notification; never returns without a listener.
    /// A lost connection is reconnected by the next wait, after `pause`;
    /// notifications sent meanwhile are lost, which the reader's periodic
    /// poll makes up for.
    pub async fn next(&mut self, pause: Duration) {
        match self.listener.as_mut() {
            Some(listener) => match listener.recv().await {
                Ok(_) => {
                    if self.lost {
                        tracing::info!("change feed notifications arrive again");
                    }
                    self.lost = false;
                }
                Err(error) => {
                    if !self.lost {
                        tracing::warn!(%error, "change feed notifications lost; reconnecting");
                    }
                    self.lost = true;
                    tokio::time::sleep(pause).await;
                }
            },
            None => std::future::pending().await,
        }
    }
}
