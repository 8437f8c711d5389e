//! WatchGroupChanges: a stream of the change feed, from a cursor, through
//! the caller's authorization and the request's filters.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::GroupService;
use crate::{
    domain::{
        Caller, GroupChange, Role,
        filter::Filter,
        policy::{self, Permission, Standing},
        reply,
        watch::{Cursor, Start, WatchChanges},
    },
    error::Error,
    feed::{Feed, Next, Progress, StreamSlot},
    store::{FeedBounds, FeedEntry},
};

/// Most entries a stream takes from the ring at once.
const RING_BATCH: usize = 16;

/// Most entries a stream behind the ring reads from the database at once.
const CATCH_UP_PAGE: u64 = 64;

/// Most groups whose standing a stream remembers; past it, it forgets them
/// all and reads them again as they come.
const MAX_REMEMBERED_STANDINGS: usize = 10_000;

/// One message of a stream.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A change, and the cursor just after it.
    Change {
        /// The cursor after the change.
        cursor: Cursor,
        /// The change, shared with the other streams that send it.
        entry: Arc<FeedEntry>,
    },
    /// Nothing was sent for the heartbeat interval.
    Heartbeat {
        /// The cursor after every change so far.
        cursor: Cursor,
    },
}

/// An open stream: call [`WatchStream::next`] until it returns `None`.
#[derive(Debug)]
pub struct WatchStream {
    feed: Feed,
    caller: Caller,
    /// The caller reads every group: no standing is read.
    sees_all: bool,
    filter: Option<Filter>,
    group_ids: std::collections::HashSet<String>,
    heartbeat: Duration,
    /// The room a change has in a message.
    room: usize,
    /// The position of the last entry looked at (sent or filtered out).
    cursor: i64,
    queue: VecDeque<Arc<FeedEntry>>,
    /// The stream has taken entries from the ring: falling behind it now
    /// means the client is too slow.
    live: bool,
    standings: HashMap<String, Standing>,
    last_sent: Instant,
    progress: watch::Receiver<Progress>,
    /// The feed's reader was not failing at some point since the stream
    /// opened: it failing now ends the stream. (A stream opened while the
    /// reader fails has just read the database itself, and waits.)
    failure_ends: bool,
    done: bool,
    _slot: StreamSlot,
}

impl GroupService {
    /// Opens a change stream for `caller`: checks the start (a cursor
    /// whose changes were pruned is OUT_OF_RANGE, reason
    /// `CURSOR_EXPIRED`) and takes one of the stream places.
    pub async fn watch_changes(
        &self,
        caller: &Caller,
        request: WatchChanges,
    ) -> Result<WatchStream, Error> {
        let feed = self.feed.clone();
        let slot = feed.open_stream()?;
        // Numbers what has committed and waits for a position, so that
        // "now" comes after every write acknowledged before this call.
        if self.store.feed_unsequenced().await? {
            self.store.sequence_feed().await?;
        }
        let bounds = self.store.read().await?.feed_bounds().await?;
        let cursor = match request.start {
            Start::Now => bounds.head,
            Start::Oldest => bounds.oldest.map_or(bounds.head, |oldest| oldest - 1),
            Start::After(cursor) => check_cursor(cursor, bounds)?,
        };
        let progress = feed.progress();
        let failure_ends = !progress.borrow().failing;
        Ok(WatchStream {
            sees_all: caller.has(Role::Admin) || caller.has(Role::Reader),
            caller: caller.clone(),
            filter: request.filter,
            group_ids: request.group_ids,
            heartbeat: request.heartbeat,
            room: self.page_room(),
            cursor,
            queue: VecDeque::new(),
            live: false,
            standings: HashMap::new(),
            last_sent: Instant::now(),
            progress,
            failure_ends,
            done: false,
            feed,
            _slot: slot,
        })
    }
}

/// The position of `cursor`, unless the feed no longer holds the change
/// after it, or never gave it.
fn check_cursor(cursor: Cursor, bounds: FeedBounds) -> Result<i64, Error> {
    let position = cursor.position();
    let pruned = bounds.oldest.is_some_and(|oldest| position + 1 < oldest);
    if position > bounds.head || pruned {
        return Err(expired(position > bounds.head));
    }
    Ok(position)
}

/// OUT_OF_RANGE for a cursor the stream cannot start from.
fn expired(ahead: bool) -> Error {
    let why = if ahead {
        "this cursor is ahead of the change feed (it comes from another database)"
    } else {
        "the changes after this cursor are no longer retained"
    };
    Error::OutOfRange {
        reason: "CURSOR_EXPIRED",
        message: format!("{why}; list the groups again and watch from the listing's cursor"),
    }
}

impl WatchStream {
    /// The next message, or `None` once the stream has ended (after an
    /// error, which ends it).
    pub async fn next(&mut self) -> Option<Result<WatchEvent, Error>> {
        if self.done {
            return None;
        }
        let next = self.advance().await;
        if next.is_err() {
            self.done = true;
        }
        Some(next)
    }

    async fn advance(&mut self) -> Result<WatchEvent, Error> {
        loop {
            if self.feed.stopping().is_cancelled() {
                return Err(Error::NotServing {
                    reason: "SERVER_SHUTTING_DOWN",
                    message: "the server is shutting down; watch again from the last cursor \
                              (another replica can serve it)"
                        .to_owned(),
                });
            }
            while let Some(entry) = self.queue.pop_front() {
                self.cursor = entry.position;
                if self.visible(&entry.change).await? {
                    self.last_sent = Instant::now();
                    return Ok(WatchEvent::Change {
                        cursor: Cursor::at(entry.position),
                        entry: self.fitted(entry),
                    });
                }
            }
            // Marks the progress seen before the ring is read, so that an
            // entry added after the read wakes the wait below.
            let failing = self.progress.borrow_and_update().failing;
            if !failing {
                self.failure_ends = true;
            } else if self.failure_ends {
                return Err(Error::NotServing {
                    reason: "CHANGE_FEED_UNAVAILABLE",
                    message: "this server cannot read the change feed from its database; \
                              watch again from the last cursor"
                        .to_owned(),
                });
            }
            match self.feed.after(self.cursor, RING_BATCH) {
                Next::Entries(entries) => {
                    self.live = true;
                    self.queue.extend(entries);
                }
                Next::Behind if self.live => {
                    return Err(Error::ResourceExhausted {
                        reason: "WATCH_TOO_SLOW",
                        message: "this stream fell too far behind the changes being made; \
                                  watch again from the last cursor"
                            .to_owned(),
                    });
                }
                Next::Behind => {
                    if !self.catch_up().await?
                        && let Some(event) = self.wait().await
                    {
                        return Ok(event);
                    }
                }
                Next::UpToDate => {
                    if let Some(event) = self.wait().await {
                        return Ok(event);
                    }
                }
            }
        }
    }

    /// `entry`, its member lists cut short (`delta_truncated`) when it
    /// would not fit in a message, as ListGroupChanges does; only entries
    /// recorded before writes were bounded can be that large.
    fn fitted(&self, entry: Arc<FeedEntry>) -> Arc<FeedEntry> {
        if reply::change(&entry.change) <= self.room {
            return entry;
        }
        let mut cut = FeedEntry::clone(&entry);
        reply::fit_change(&mut cut.change, self.room);
        Arc::new(cut)
    }

    /// Reads the next page from the database; whether it found any.
    async fn catch_up(&mut self) -> Result<bool, Error> {
        let page = self
            .feed
            .store()
            .read()
            .await?
            .feed_after(self.cursor, CATCH_UP_PAGE)
            .await?;
        match page.first() {
            None => Ok(false),
            // Positions have no gaps: a missing one was pruned while the
            // stream was on its way to it.
            Some(first) if first.position != self.cursor + 1 => Err(expired(false)),
            Some(_) => {
                self.queue.extend(page.into_iter().map(Arc::new));
                Ok(true)
            }
        }
    }

    /// Waits for new entries, the shutdown, or the heartbeat, which it
    /// returns.
    async fn wait(&mut self) -> Option<WatchEvent> {
        let beat = self.last_sent + self.heartbeat;
        tokio::select! {
            () = self.feed.stopping().cancelled() => None,
            changed = self.progress.changed() => {
                if changed.is_err() {
                    // The reader is gone: only at shutdown.
                    self.feed.stopping().cancel();
                }
                None
            }
            () = tokio::time::sleep_until(beat) => {
                self.last_sent = Instant::now();
                Some(WatchEvent::Heartbeat { cursor: Cursor::at(self.cursor) })
            }
        }
    }

    /// Whether the stream sends `change`: it passes the request's filters,
    /// and the caller may read the group, before or after the change (so a
    /// member sees the change that removes it, and the one that adds it).
    async fn visible(&mut self, change: &GroupChange) -> Result<bool, Error> {
        let id = change.group.id.as_str();
        if !self.group_ids.is_empty() && !self.group_ids.contains(id) {
            return Ok(false);
        }
        if self
            .filter
            .as_ref()
            .is_some_and(|filter| !filter.matches(&change.group))
        {
            return Ok(false);
        }
        if self.sees_all {
            return Ok(true);
        }
        let me = self.caller.principal().as_str();
        let (before, after) = match self.standings.get(id) {
            Some(before) => (*before, apply(*before, change, me)),
            None => {
                // The standing now, with every later change that named the
                // principal undone, is its standing just after this
                // change; undoing this one too gives the one before. Both
                // reads see one snapshot, so "later" is exactly what the
                // standing read includes.
                let tx = self.feed.store().read().await?;
                let mut after = tx.standing(&change.group.id, me).await?;
                for later in tx
                    .changes_naming(&change.group.id, change.version, me)
                    .await?
                {
                    after = undo(after, &later, me);
                }
                (undo(after, change, me), after)
            }
        };
        if self.standings.len() >= MAX_REMEMBERED_STANDINGS {
            self.standings.clear();
        }
        self.standings.insert(id.to_owned(), after);
        Ok(policy::allows(&self.caller, before, Permission::Get)
            || policy::allows(&self.caller, after, Permission::Get))
    }
}

/// `standing` after `change`'s membership delta, for principal `me`.
fn apply(mut standing: Standing, change: &GroupChange, me: &str) -> Standing {
    let has = |list: &[String]| list.iter().any(|id| id == me);
    if has(&change.members_removed) {
        standing = Standing::STRANGER;
    }
    if has(&change.admins_removed) {
        standing.admin = false;
    }
    if has(&change.members_added) {
        standing.member = true;
    }
    if has(&change.admins_added) {
        standing = Standing::of_member(true);
    }
    standing
}

/// `standing` before `change`'s membership delta, for principal `me`.
fn undo(mut standing: Standing, change: &GroupChange, me: &str) -> Standing {
    let has = |list: &[String]| list.iter().any(|id| id == me);
    if has(&change.admins_added) {
        standing.admin = false;
    }
    if has(&change.members_added) {
        standing = Standing::STRANGER;
    }
    if has(&change.admins_removed) {
        standing = Standing::of_member(true);
    }
    if has(&change.members_removed) {
        standing.member = true;
    }
    standing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeKind, Group, GroupId, Timestamp};

    fn change(
        members_added: &[&str],
        members_removed: &[&str],
        admins_added: &[&str],
        admins_removed: &[&str],
    ) -> GroupChange {
        let list = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect();
        GroupChange {
            version: 2,
            change_time: Timestamp::from_micros(0),
            actor: "a".to_owned(),
            kind: ChangeKind::AddMembers,
            update_mask: Vec::new(),
            group: Group::absent(GroupId::parse("g").unwrap()),
            members_added: list(members_added),
            members_removed: list(members_removed),
            admins_added: list(admins_added),
            admins_removed: list(admins_removed),
            delta_truncated: false,
        }
    }

    #[test]
    fn a_change_moves_the_standing_of_the_principals_it_names_and_undo_reverses_it() {
        let member = Standing::of_member(false);
        let admin = Standing::of_member(true);
        let cases = [
            (change(&["me"], &[], &[], &[]), Standing::STRANGER, member),
            (
                change(&["me"], &[], &["me"], &[]),
                Standing::STRANGER,
                admin,
            ),
            (
                change(&[], &["me"], &[], &["me"]),
                admin,
                Standing::STRANGER,
            ),
            (change(&[], &["me"], &[], &[]), member, Standing::STRANGER),
            (change(&[], &[], &[], &["me"]), admin, member),
            (change(&["other"], &[], &[], &[]), member, member),
        ];
        for (change, before, after) in cases {
            assert_eq!(apply(before, &change, "me"), after, "{change:?}");
            assert_eq!(undo(after, &change, "me"), before, "{change:?}");
        }
    }

    #[test]
    fn cursors_of_pruned_or_unknown_positions_are_refused() {
        let bounds = FeedBounds {
            oldest: Some(10),
            head: 20,
        };
        assert_eq!(check_cursor(Cursor::at(9), bounds).ok(), Some(9));
        assert_eq!(check_cursor(Cursor::at(20), bounds).ok(), Some(20));
        for bad in [0, 8, 21] {
            assert!(matches!(
                check_cursor(Cursor::at(bad), bounds),
                Err(Error::OutOfRange {
                    reason: "CURSOR_EXPIRED",
                    ..
                })
            ));
        }
        let empty = FeedBounds {
            oldest: None,
            head: 0,
        };
        assert_eq!(check_cursor(Cursor::at(0), empty).ok(), Some(0));
    }
}
