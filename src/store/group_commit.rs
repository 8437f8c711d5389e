//! Group commit: SQLite's writes that arrive together share one database
//! transaction.
//!
//! SQLite has one writer. Committing every write on its own made each
//! one a `BEGIN IMMEDIATE … COMMIT` of its own, with writers waiting for
//! the write lock in SQLite's busy handler (which sleeps and polls). Here
//! the writers of this process queue on an async mutex instead, and the
//! holder of the mutex runs its write inside the group's transaction:
//!
//! - The first writer to find no transaction open begins one (`BEGIN
//!   IMMEDIATE`, which takes the database's write lock, across processes).
//! - Each write runs in a `SAVEPOINT` of its own inside it. A write that
//!   fails, is `validate_only`, or whose call ends, is rolled back to its
//!   savepoint and answers its own error; the others are untouched.
//! - [`Turn::commit`] releases the write's savepoint and adds the write to
//!   the group. It opens the next write's savepoint in the same statement
//!   (`RELEASE …; SAVEPOINT …`): every statement is a round trip to
//!   SQLite's thread, and the writes of a group run one after another, so
//!   one fewer per write is felt by all. For the same reason
//!   [`Turn::commit_after`] appends both to the write's last statement.
//!   A write that ends without committing cannot run SQL from a
//!   destructor: it leaves its savepoint abandoned, and whoever comes next
//!   rolls back to it first.
//! - The transaction is committed when no other writer waits (for the
//!   mutex, or as a guarded write: see below), when it holds
//!   [`MAX_WRITES`] writes, or once its first
//!   write has waited [`MAX_WAIT`]; whoever commits it tells every write of the
//!   group the outcome. No write's `commit()` returns before the
//!   transaction's COMMIT has succeeded, and when the COMMIT fails, every
//!   write of the group is answered an error (classified as any database
//!   error is): nothing acknowledged is lost, nothing refused is kept.
//! - The transaction stays open only while writers are queued, so another
//!   process on the same file (a second replica) gets the write lock
//!   between groups, waiting for it in SQLite's busy handler as before.
//!
//! A writer that waits for the mutex longer than the statement timeout is
//! answered UNAVAILABLE, as one kept waiting by SQLite's busy handler is.
//! The deadline of a call stays as it was: a write whose deadline passed
//! before its commit is rolled back to its savepoint (see
//! [`crate::deadline::begin_commit`]). Stopping a write's statements when
//! its call is over needs care, because SQLite rolls back the whole
//! transaction when it stops a write statement: see `calls.rs`.
//!
//! The change feed's positions stay gapless and in commit order: the
//! writes of a group run one after another, each taking one past the
//! largest position (a write rolled back to its savepoint gives its
//! position back), and they all become visible at the one COMMIT.
//!
//! A writer whose call is dropped, or that stops waiting for the mutex,
//! cannot commit the group from a destructor; whenever the mutex is left
//! with a transaction open and nobody waiting for it, a task is spawned
//! that commits it ([`GroupCommit::flush`]).
//!
//! # Guarded writes
//!
//! A write that holds the mutex runs its statements one after another,
//! each a round trip to SQLite's thread and a wake-up of the writer's
//! task, while every writer behind it waits. A write that only needs to
//! know that its group did not change since it read it outside the
//! transaction can instead hand over its statement ready made, guarded so
//! that it changes nothing when the group did change
//! ([`GroupCommit::apply`]). One task (`run_guarded`) takes the guarded
//! writes that arrived meanwhile (at most [`MAX_WRITES`]), takes the
//! mutex as a writer does, and runs them in the savepoint on top, each
//! followed by a `SELECT` of its index that returns a row only when its
//! guard held, in a few statements (see `run_in_parts`), then releases
//! the savepoint. Each write learns whether it is in the transaction; one
//! whose guard did not hold changed nothing and is done again the
//! ordinary way. When a statement fails, the savepoint is abandoned
//! (rolled back to by whoever comes next), or the transaction given up
//! when the release failed, and every write of it is told that it is not
//! in the transaction: each is done again the ordinary way, and answers
//! its own error if it has one. The task runs with no call's deadline
//! and cannot be dropped with a call, so no write is left not knowing
//! whether it is in.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, DbErr, Statement, Value, Values,
};
use tokio::{
    sync::{Mutex, OwnedMutexGuard, oneshot},
    time::Instant,
};

use super::{Commits, Dialect, calls::GroupLink, errors::Classify as _};
use crate::{deadline::CallWatch, error::Error, metrics::GroupCommitMetrics};

/// Most writes one transaction holds: the first ones are not kept waiting
/// for ever by a steady stream of writers behind them.
pub(super) const MAX_WRITES: usize = 64;

/// Longest the first write released into a transaction waits for its
/// commit while writers keep coming. (Unit tests count commits, so time
/// must not cut their groups short.)
#[cfg(not(test))]
const MAX_WAIT: Duration = Duration::from_millis(5);
#[cfg(test)]
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The group commit of one store (SQLite only).
#[derive(Debug)]
pub(super) struct GroupCommit {
    /// A pool of one connection, the group commit's own.
    db: DatabaseConnection,
    dialect: Dialect,
    /// The group's transaction, when one is open; held by one writer at a
    /// time.
    batch: Arc<Mutex<Batch>>,
    /// Writers waiting for the mutex.
    waiting: AtomicUsize,
    /// How long a writer waits for the mutex (the statement timeout).
    wait: Duration,
    /// Woken after every commit (see `Store::commits`).
    commits: Arc<Commits>,
    metrics: GroupCommitMetrics,
    /// Guarded writes waiting for `run_guarded` (see [`Self::apply`]).
    guarded: std::sync::Mutex<Guarded>,
}

/// The guarded writes handed over and not yet run.
#[derive(Debug, Default)]
struct Guarded {
    writes: Vec<GuardedWrite>,
    /// A task runs them (and will look for more before it ends).
    running: bool,
}

/// One guarded write: its statement, and where to tell whether it is in
/// the group's transaction.
#[derive(Debug)]
struct GuardedWrite {
    statement: Statement,
    /// The call it is made for (none outside a call): a call over before
    /// its write runs writes nothing.
    call: Option<CallWatch>,
    answer: oneshot::Sender<Applied>,
}

/// What a guarded write is told once its statement has run.
#[derive(Debug)]
enum Applied {
    /// Its guard held: it is in the group's transaction, whose outcome
    /// the receiver tells.
    Yes(oneshot::Receiver<Result<(), Failure>>),
    /// Its guard did not hold, or the statement holding it failed:
    /// nothing of it will be committed.
    No,
    /// The statement waited for the other writers longer than the
    /// statement timeout and was not run.
    WaitedTooLong,
    /// Its call was over (past its deadline) before it could run: it was
    /// not run.
    Expired,
}

/// The savepoint each write runs in; one at a time, reused.
const SAVEPOINT: &str = "groupd_write";

/// What the mutex guards.
#[derive(Debug, Default)]
struct Batch {
    open: Option<Open>,
}

/// An open transaction and the writes waiting for its commit.
#[derive(Debug)]
struct Open {
    tx: DatabaseTransaction,
    link: Arc<GroupLink>,
    /// One per write released into the transaction.
    members: Vec<oneshot::Sender<Result<(), Failure>>>,
    /// When the first of them was released.
    since: Option<Instant>,
    /// The state of the savepoint on top.
    top: Top,
}

/// The state of the savepoint on top of the group's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// Open and empty: the next write runs in it.
    Ready,
    /// It holds the work of a write that ended without committing (whose
    /// statement may even still run): to be rolled back to before
    /// anything else runs.
    Abandoned,
    /// The statement releasing it failed, so whether the write it held is
    /// in the transaction is unknown: the transaction must not commit.
    Unknown,
}

impl Open {
    /// Rolls back to an abandoned savepoint. That statement runs after
    /// the abandoned write's last one, so the transaction's state is known
    /// afterwards: whether it is still usable is returned.
    async fn settle(&mut self) -> bool {
        if self.top == Top::Abandoned
            && self
                .tx
                .execute_unprepared(&format!("ROLLBACK TO {SAVEPOINT}"))
                .await
                .is_ok()
        {
            self.top = Top::Ready;
        }
        self.top == Top::Ready && !self.link.lost()
    }
}

/// Why a group's transaction did not commit, told to each of its writes.
#[derive(Debug, Clone)]
enum Failure {
    /// SQLite rolled the transaction back before its commit (a statement
    /// stopped at its call's end): a retry may succeed.
    Lost,
    /// The COMMIT failed, and the database says it may work later.
    Unavailable(Arc<str>),
    /// The COMMIT was stopped.
    DeadlineExceeded,
    /// The COMMIT failed otherwise.
    Internal(Arc<str>),
}

impl Failure {
    fn of(dialect: Dialect, error: DbErr) -> Self {
        let text: Arc<str> = Arc::from(error.to_string());
        match dialect.classify(error) {
            Error::Conflict => Self::Lost,
            Error::Unavailable(_) => Self::Unavailable(text),
            Error::DeadlineExceeded => Self::DeadlineExceeded,
            _ => Self::Internal(text),
        }
    }

    fn into_error(self) -> Error {
        match self {
            Self::Lost => Error::Conflict,
            Self::Unavailable(text) => Error::Unavailable(Box::new(CommitFailed(text))),
            Self::DeadlineExceeded => Error::DeadlineExceeded,
            Self::Internal(text) => Error::Internal(Box::new(CommitFailed(text))),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost => f.write_str("SQLite rolled the transaction back before its commit"),
            Self::Unavailable(text) | Self::Internal(text) => f.write_str(text),
            Self::DeadlineExceeded => f.write_str("the commit was stopped"),
        }
    }
}

/// The cause of a write's error when its group's COMMIT failed.
#[derive(Debug, thiserror::Error)]
#[error("the commit of this write's group failed: {0}")]
struct CommitFailed(Arc<str>);

/// The cause of UNAVAILABLE for a writer that waited too long for the
/// others.
#[derive(Debug, thiserror::Error)]
#[error("waited {0:?} for the other writers of this server")]
struct WritersAhead(Duration);

impl GroupCommit {
    pub(super) fn new(
        db: DatabaseConnection,
        dialect: Dialect,
        wait: Duration,
        commits: Arc<Commits>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            dialect,
            batch: Arc::new(Mutex::new(Batch::default())),
            waiting: AtomicUsize::new(0),
            wait,
            commits,
            metrics: GroupCommitMetrics::default(),
            guarded: std::sync::Mutex::default(),
        })
    }

    /// Runs `statement`, a write guarded so that it changes nothing when
    /// what it was made from changed (see the module documentation), in
    /// the group's transaction. It must end with a statement that changes
    /// one row exactly when the guard held (SQLite's `changes()` is then
    /// 1). Returns `Some` once the write is committed, `None` when the
    /// guard did not hold or the statement failed (nothing of it is
    /// kept), and an error when its group's commit failed (as
    /// [`Turn::commit`]), it waited for the others longer than the
    /// statement timeout, or its call was over before it ran (nothing of
    /// it is kept either way).
    pub(super) async fn apply(self: &Arc<Self>, statement: Statement) -> Result<Option<()>, Error> {
        let (answer, applied) = oneshot::channel();
        let start = {
            let mut guarded = self
                .guarded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guarded.writes.push(GuardedWrite {
                statement,
                call: CallWatch::current(),
                answer,
            });
            !std::mem::replace(&mut guarded.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).run_guarded());
        }
        // The statement holding this write is one round trip of the call,
        // though it holds others.
        super::statements::sent(1);
        match applied.await {
            Ok(Applied::Yes(outcome)) => match outcome.await {
                Ok(result) => result.map(Some).map_err(Failure::into_error),
                Err(_) => Err(Error::internal(
                    "a group of writes ended without telling its outcome",
                )),
            },
            Ok(Applied::No) => Ok(None),
            Ok(Applied::WaitedTooLong) => {
                Err(Error::Unavailable(Box::new(WritersAhead(self.wait))))
            }
            Ok(Applied::Expired) => Err(Error::DeadlineExceeded),
            Err(_) => Err(Error::internal(
                "the guarded writes ended without telling a write whether it ran",
            )),
        }
    }

    /// Runs the guarded writes handed over, as many as one transaction
    /// may hold at a time, until none is left.
    async fn run_guarded(self: Arc<Self>) {
        loop {
            let writes = {
                let mut guarded = self
                    .guarded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if guarded.writes.is_empty() {
                    guarded.running = false;
                    return;
                }
                let take = guarded.writes.len().min(MAX_WRITES);
                guarded.writes.drain(..take).collect::<Vec<_>>()
            };
            self.run_guarded_batch(writes).await;
        }
    }

    /// Whether guarded writes wait to be run.
    fn guarded_waiting(&self) -> bool {
        !self
            .guarded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .writes
            .is_empty()
    }

    /// Runs `writes` in the group's transaction (those whose call is not
    /// over), tells each whether it is in it, and commits the transaction
    /// when it is time to, as a writer does after its write.
    async fn run_guarded_batch(self: &Arc<Self>, writes: Vec<GuardedWrite>) {
        let queued = Queued::new(self);
        let Ok(batch) = tokio::time::timeout(self.wait, Arc::clone(&self.batch).lock_owned()).await
        else {
            for write in writes {
                let _ = write.answer.send(Applied::WaitedTooLong);
            }
            return;
        };
        queued.arrived();
        let mut turn = Turn {
            batch: Some(batch),
            group: Arc::clone(self),
            released: false,
        };
        if turn.begin().await.is_err() {
            // Each write, done again the ordinary way, meets the same
            // failure and answers it.
            for write in writes {
                self.metrics.record_guarded(false);
                let _ = write.answer.send(Applied::No);
            }
            return;
        }
        // The calls still waiting begin to commit now: their deadline no
        // longer cuts them. Those over write nothing.
        let (statements, answers): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .filter_map(|write| {
                if write.call.as_ref().is_none_or(CallWatch::begin_commit) {
                    Some((write.statement, (write.call, write.answer)))
                } else {
                    let _ = write.answer.send(Applied::Expired);
                    None
                }
            })
            .unzip();
        if statements.is_empty() {
            // The savepoint on top is as it was: ready for the next.
            turn.released = true;
            return;
        }
        let Some(open) = turn.batch.as_mut().and_then(|batch| batch.open.as_mut()) else {
            return;
        };
        let mut ran = run_in_parts(self.dialect, open, &statements).await;
        if open.link.lost() {
            // SQLite rolled the transaction back: it must not commit.
            open.top = Top::Unknown;
            turn.released = true;
            ran = None;
        }
        if ran.is_some() && turn.release().await.is_err() {
            ran = None;
        }
        let Some(batch) = turn.batch.as_deref_mut() else {
            return;
        };
        let (Some(applied), Some(open)) = (ran, batch.open.as_mut()) else {
            // The savepoint is left abandoned (see the module
            // documentation), or the transaction is to be given up:
            // nothing of these writes is kept.
            for answer in answers {
                self.metrics.record_guarded(false);
                not_applied(answer);
            }
            return;
        };
        for (answer, applied) in answers.into_iter().zip(applied) {
            self.metrics.record_guarded(applied);
            if applied {
                let (member, outcome) = oneshot::channel();
                open.members.push(member);
                let _ = answer.1.send(Applied::Yes(outcome));
            } else {
                not_applied(answer);
            }
        }
        // A transaction without writes is left to whoever comes next, or
        // to the flush the turn's end spawns when nobody does.
        if !open.members.is_empty() {
            self.commit_if_due(batch).await;
        }
    }

    /// Commits the open transaction, which holds a write just released,
    /// when it is time to: when it holds [`MAX_WRITES`] writes, when its
    /// first write has waited [`MAX_WAIT`], or when no writer waits to add
    /// to it (neither for the mutex nor as a guarded write).
    async fn commit_if_due(&self, batch: &mut Batch) {
        let Some(open) = batch.open.as_mut() else {
            return;
        };
        let since = *open.since.get_or_insert_with(Instant::now);
        if open.members.len() >= MAX_WRITES
            || since.elapsed() >= MAX_WAIT
            || (self.waiting.load(Ordering::SeqCst) == 0 && !self.guarded_waiting())
        {
            self.commit(batch).await;
        }
    }

    /// What the group commit counts.
    pub(super) fn metrics(&self) -> &GroupCommitMetrics {
        &self.metrics
    }

    /// Waits for this writer's turn (UNAVAILABLE after the statement
    /// timeout), and begins the group's transaction if none is open.
    pub(super) async fn join(self: &Arc<Self>) -> Result<Turn, Error> {
        let queued = Queued::new(self);
        let batch = tokio::time::timeout(self.wait, Arc::clone(&self.batch).lock_owned())
            .await
            .map_err(|_| Error::Unavailable(Box::new(WritersAhead(self.wait))))?;
        queued.arrived();
        let mut turn = Turn {
            batch: Some(batch),
            group: Arc::clone(self),
            released: false,
        };
        turn.begin().await?;
        Ok(turn)
    }

    /// Commits the open transaction, unless a writer waits to add to it.
    pub(super) async fn flush(&self) {
        let mut batch = self.batch.lock().await;
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.commit(&mut batch).await;
        }
    }

    /// Commits the open transaction, then closes the connection.
    pub(super) async fn close(&self) -> Result<(), DbErr> {
        self.flush().await;
        self.db.clone().close().await
    }

    /// Runs [`Self::flush`] in a task of its own.
    fn spawn_flush(self: &Arc<Self>) {
        let group = Arc::clone(self);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { group.flush().await });
            }
            Err(_) => tracing::error!(
                "a SQLite transaction of grouped writes was left open outside the runtime"
            ),
        }
    }

    /// Commits the open transaction, if any, and tells its writes.
    async fn commit(&self, batch: &mut Batch) {
        let Some(mut open) = batch.open.take() else {
            return;
        };
        if open.members.is_empty() {
            // Only writes that failed or were dropped ran in it, each
            // rolled back to its savepoint already.
            if let Err(error) = open.tx.rollback().await {
                tracing::debug!(%error, "ending an empty group of writes failed");
            }
            return;
        }
        if !open.settle().await {
            return fail(open, Failure::Lost);
        }
        let Open {
            tx, link, members, ..
        } = open;
        link.allow_commit(true);
        let committed = tx.commit().await;
        link.allow_commit(false);
        let outcome = match committed {
            Ok(()) => {
                self.metrics.record(members.len());
                // The change feed's reader in this process looks for the
                // writes now rather than at its next poll.
                self.commits.record();
                Ok(())
            }
            Err(error) => {
                let failure = Failure::of(self.dialect, error);
                tracing::warn!(writes = members.len(), %failure, "a group commit failed");
                Err(failure)
            }
        };
        for member in members {
            // A write whose call was dropped meanwhile no longer listens.
            let _ = member.send(outcome.clone());
        }
    }
}

/// Rolls back `open` (by dropping it) and answers each of its writes
/// `failure`.
fn fail(open: Open, failure: Failure) {
    tracing::warn!(writes = open.members.len(), %failure, "a group of writes was rolled back");
    for member in open.members {
        let _ = member.send(Err(failure.clone()));
    }
}

/// A writer counted in [`GroupCommit::waiting`] until it holds the mutex.
struct Queued<'a> {
    group: &'a Arc<GroupCommit>,
    arrived: bool,
}

impl<'a> Queued<'a> {
    fn new(group: &'a Arc<GroupCommit>) -> Self {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        Self {
            group,
            arrived: false,
        }
    }

    /// The writer holds the mutex now.
    fn arrived(mut self) {
        self.arrived = true;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let left = self.group.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        // A writer that gave up waiting may have been the one the holder
        // left the transaction open for.
        if left == 0 && !self.arrived {
            self.group.spawn_flush();
        }
    }
}

/// One writer's hold on the group's transaction, from the start of its
/// write to its commit or rollback. Dropping it lets the next writer in.
#[derive(Debug)]
pub(super) struct Turn {
    batch: Option<OwnedMutexGuard<Batch>>,
    group: Arc<GroupCommit>,
    /// The write released its savepoint (or the transaction is given up
    /// anyway): when the turn ends, the savepoint is not abandoned.
    released: bool,
}

/// Releases the savepoint on top into the transaction and opens the next
/// write's, in one statement.
fn release() -> String {
    format!("RELEASE {SAVEPOINT}; SAVEPOINT {SAVEPOINT}")
}

/// Tells a guarded write that it is not in the transaction, its call no
/// longer committing: it is done again the ordinary way, which its
/// deadline cuts as any other.
fn not_applied((call, answer): (Option<CallWatch>, oneshot::Sender<Applied>)) {
    if let Some(call) = call {
        call.end_commit();
    }
    let _ = answer.send(Applied::No);
}

/// Runs the guarded `statements` in `open`'s savepoint on top. Those of
/// one text run together, in parts of 64, 32 or 16 writes and one of what
/// is left ([`part_size`]), each part one statement: so the texts SQLite's
/// driver prepares and keeps for them are at most eighteen per text of a
/// write, whatever the number of writes. The writes of one group are
/// ordered by their guards whatever the order they run in. Returns which
/// writes' guard held, or `None` when a part failed (the savepoint then
/// holds the parts before it, to be rolled back).
async fn run_in_parts(
    dialect: Dialect,
    open: &Open,
    statements: &[Statement],
) -> Option<Vec<bool>> {
    let mut by_text: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        match by_text.iter_mut().find(|(text, _)| *text == statement.sql) {
            Some((_, indexes)) => indexes.push(index),
            None => by_text.push((&statement.sql, vec![index])),
        }
    }
    let mut applied = vec![false; statements.len()];
    for (_, indexes) in by_text {
        let mut rest = indexes.as_slice();
        while !rest.is_empty() {
            let (part, after) = rest.split_at(part_size(rest.len()));
            rest = after;
            let rows = open
                .tx
                .query_all_raw(guarded_statement(dialect, statements, part))
                .await
                .ok()?;
            for row in &rows {
                if let Ok(index) = row.try_get::<i64>("", "applied")
                    && let Some(slot) = usize::try_from(index)
                        .ok()
                        .and_then(|index| applied.get_mut(index))
                {
                    *slot = true;
                }
            }
        }
    }
    Some(applied)
}

/// How many of `left` guarded writes of one text the next statement
/// holds: all of them below [`WHOLE_PARTS`], else the largest power of two
/// not above them. So the texts of a write are at most `WHOLE_PARTS - 1`
/// plus one per power of two up to [`MAX_WRITES`], and a group of fewer
/// than `WHOLE_PARTS` writes, as a few writers send, takes one round
/// trip.
fn part_size(left: usize) -> usize {
    if left < WHOLE_PARTS {
        left
    } else {
        1 << left.ilog2()
    }
}

/// See [`part_size`].
const WHOLE_PARTS: usize = 16;

/// One statement of the guarded writes `part` (indexes into `writes`, see
/// the module documentation): each write's statement, then a `SELECT` of
/// its index that returns a row when the write's last statement changed
/// one row.
fn guarded_statement(dialect: Dialect, writes: &[Statement], part: &[usize]) -> Statement {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (index, write) in part
        .iter()
        .filter_map(|&index| Some((index, writes.get(index)?)))
    {
        sql.push_str(&write.sql);
        sql.push_str("; SELECT ? AS applied WHERE changes() = 1; ");
        values.extend(
            write
                .values
                .as_ref()
                .map(|Values(values)| values.iter().cloned())
                .into_iter()
                .flatten(),
        );
        values.push(Value::from(i64::try_from(index).unwrap_or(i64::MAX)));
    }
    Statement::from_sql_and_values(dialect.backend(), sql, values)
}

/// The error of a turn that no longer holds the transaction it needs (a
/// bug).
fn no_transaction() -> Error {
    Error::internal("a grouped write has no open transaction")
}

impl Turn {
    /// The group's transaction, which the write's statements run in.
    pub(super) fn tx(&self) -> Result<&DatabaseTransaction, Error> {
        self.batch
            .as_ref()
            .and_then(|batch| batch.open.as_ref())
            .map(|open| &open.tx)
            .ok_or_else(no_transaction)
    }

    /// Makes the savepoint on top ready for this write, opening the group's
    /// transaction if none is. A transaction SQLite rolled back whole (a
    /// write's statement stopped at its call's end, see `calls.rs`) is
    /// given up, its writes answered ABORTED, and a new one begun.
    async fn begin(&mut self) -> Result<(), Error> {
        let dialect = self.group.dialect;
        let batch = self.batch.as_deref_mut().ok_or_else(no_transaction)?;
        if let Some(open) = batch.open.as_mut()
            && !open.settle().await
            && let Some(open) = batch.open.take()
        {
            fail(open, Failure::Lost);
        }
        let open = match &mut batch.open {
            Some(open) => open,
            None => {
                let link = Arc::new(GroupLink::default());
                let tx = link
                    .opening(dialect.begin_write(&self.group.db))
                    .await
                    .classify(dialect)?;
                tx.execute_unprepared(&format!("SAVEPOINT {SAVEPOINT}"))
                    .await
                    .classify(dialect)?;
                batch.open.insert(Open {
                    tx,
                    link,
                    members: Vec::new(),
                    since: None,
                    top: Top::Ready,
                })
            }
        };
        // Stopping a write statement rolls back the whole transaction:
        // only when no other write would be lost with it.
        open.link.watch(if open.members.is_empty() {
            CallWatch::current()
        } else {
            None
        });
        Ok(())
    }

    /// Releases the write's savepoint into the group's transaction (and
    /// opens the next write's) and returns once that transaction has
    /// committed (or failed to).
    pub(super) async fn commit(mut self) -> Result<(), Error> {
        self.release().await?;
        self.join_group().await
    }

    /// Releases the savepoint on top into the group's transaction and
    /// opens the next. When that fails, whether what the savepoint held
    /// is in the transaction is unknown, so the transaction must not
    /// commit (`Top::Unknown`).
    async fn release(&mut self) -> Result<(), Error> {
        let dialect = self.group.dialect;
        let batch = self.batch.as_deref_mut().ok_or_else(no_transaction)?;
        let open = batch.open.as_mut().ok_or_else(no_transaction)?;
        super::statements::sent(1);
        let released = open.tx.execute_unprepared(&release()).await;
        self.released = true;
        if open.link.lost() {
            open.top = Top::Unknown;
            return Err(Failure::Lost.into_error());
        }
        if let Err(error) = released {
            open.top = Top::Unknown;
            return Err(dialect.classify(error));
        }
        Ok(())
    }

    /// Runs `last`, the write's last statement, with the release of its
    /// savepoint (and the opening of the next write's) appended: one round
    /// trip where [`Self::commit`] after it would make two, and the writes
    /// of a group run one after another. Returns as [`Self::commit`] does.
    ///
    /// SQLite runs the statements of one string in order and stops at the
    /// first that fails. A failure of `last` leaves the savepoint
    /// unreleased: the write answers its own error and the savepoint is
    /// rolled back to by whoever comes next, as for any write that fails.
    /// Should the release itself have run and what follows it failed, that
    /// rollback finds no savepoint and the group's transaction is given
    /// up, its writes answered ABORTED: nothing the failed write did is
    /// kept.
    pub(super) async fn commit_after(mut self, mut last: Statement) -> Result<(), Error> {
        let dialect = self.group.dialect;
        let batch = self.batch.as_deref_mut().ok_or_else(no_transaction)?;
        let open = batch.open.as_mut().ok_or_else(no_transaction)?;
        last.sql.push_str("; ");
        last.sql.push_str(&release());
        let released = open.tx.execute_raw(last).await;
        if open.link.lost() {
            self.released = true;
            open.top = Top::Unknown;
            return Err(Failure::Lost.into_error());
        }
        released.map_err(|error| dialect.classify(error))?;
        self.released = true;
        self.join_group().await
    }

    /// Adds the released write to the group, commits the group when it is
    /// time to, and waits for the group's outcome.
    async fn join_group(mut self) -> Result<(), Error> {
        let batch = self.batch.as_deref_mut().ok_or_else(no_transaction)?;
        let open = batch.open.as_mut().ok_or_else(no_transaction)?;
        let (member, outcome) = oneshot::channel();
        open.members.push(member);
        self.group.commit_if_due(batch).await;
        // Lets the next writer in (or leaves the transaction to a flush).
        drop(self);
        match outcome.await {
            Ok(result) => result.map_err(Failure::into_error),
            Err(_) => Err(Error::internal(
                "a group of writes ended without telling its outcome",
            )),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(mut batch) = self.batch.take() else {
            return;
        };
        let open = match batch.open.as_mut() {
            Some(open) => {
                if !self.released {
                    open.top = Top::Abandoned;
                }
                true
            }
            None => false,
        };
        drop(batch);
        // Nobody else would come to commit it.
        if open && self.group.waiting.load(Ordering::SeqCst) == 0 {
            self.group.spawn_flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use sea_orm::ConnectionTrait as _;
    use tokio::time::Instant;

    use super::super::{GroupRow, Store, Tx};
    use crate::{
        deadline,
        domain::{ChangeKind, GroupChange, membership::MembershipDelta},
        error::Error,
        store::{scratch_group as group, scratch_remove},
    };

    /// A migrated SQLite database in a fresh file, whose writers wait
    /// `wait` for the others, and its path.
    async fn sqlite(wait: Duration) -> (Store, std::path::PathBuf) {
        crate::store::scratch_sqlite("group_commit", Duration::from_secs(5), wait).await
    }

    /// A task for each `i` of `ids`, inserting group `w-<i>` in a write of
    /// its own.
    fn spawn_writers(
        store: &Store,
        ids: std::ops::Range<usize>,
    ) -> Vec<tokio::task::JoinHandle<Result<(), Error>>> {
        ids.map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let tx = store.write().await?;
                tx.insert_group(&group(&format!("w-{i}")), None).await?;
                tx.commit().await
            })
        })
        .collect()
    }

    /// The ids of the groups committed, read on a connection of their own.
    async fn committed(store: &Store) -> Vec<String> {
        texts(store, "SELECT id AS v FROM groups ORDER BY id").await
    }

    /// The text column `v` of the rows of `sql`, read on a connection of
    /// their own.
    async fn texts(store: &Store, sql: &str) -> Vec<String> {
        let rows = store
            .read()
            .await
            .unwrap()
            .query_raw(sql.to_owned(), [])
            .await
            .unwrap();
        rows.iter()
            .map(|row| row.try_get::<String>("", "v").unwrap())
            .collect()
    }

    /// Waits until `writers` writers queue for the store's group commit.
    async fn until_queued(store: &Store, writers: usize) {
        let group = store.group_commit.as_ref().unwrap();
        let start = Instant::now();
        while group.waiting.load(super::Ordering::SeqCst) < writers {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the writers did not queue"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// What one writer of the group did, and so what it must be answered.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Writer {
        Commits,
        /// Writes a group, then one whose name is taken.
        Fails,
        /// Writes, then drops its transaction (as `validate_only` does).
        Drops,
        /// Writes, then commits after its deadline.
        Late,
    }

    fn role(i: usize) -> Writer {
        match i % 5 {
            1 => Writer::Fails,
            2 => Writer::Drops,
            3 => Writer::Late,
            _ => Writer::Commits,
        }
    }

    /// One writer's work: writes `w-<i>` and ends as `role(i)` says.
    async fn write(store: Store, i: usize) -> Result<(), Error> {
        let run = async {
            let tx = store.write().await?;
            tx.insert_group(&group(&format!("w-{i}")), None).await?;
            match role(i) {
                Writer::Commits => tx.commit().await,
                Writer::Fails => {
                    tx.insert_group(&group("first"), None).await?;
                    tx.commit().await
                }
                Writer::Drops => Ok(()),
                Writer::Late => {
                    // Blocks (rather than awaits) past the deadline, so
                    // that the call is not dropped before it commits.
                    std::thread::sleep(Duration::from_millis(150));
                    tx.commit().await
                }
            }
        };
        match role(i) {
            Writer::Late => deadline::run(Instant::now() + Duration::from_millis(100), run).await,
            _ => run.await,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_together_commit_once_and_each_gets_its_own_answer() {
        const WRITERS: usize = 30;
        let (store, path) = sqlite(Duration::from_secs(30)).await;

        // The first write holds the turn until every other writer queues
        // behind it, so that they all join its transaction.
        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| tokio::spawn(write(store.clone(), i)))
            .collect();
        until_queued(&store, WRITERS).await;
        first.commit().await.unwrap();
        // Acknowledged only once durable: another connection sees it.
        assert!(committed(&store).await.contains(&"first".to_owned()));

        let mut expected = vec!["first".to_owned()];
        for (i, writer) in writers.into_iter().enumerate() {
            let answer = writer.await.unwrap();
            match role(i) {
                Writer::Commits => {
                    assert!(answer.is_ok(), "writer {i}: {answer:?}");
                    expected.push(format!("w-{i}"));
                }
                Writer::Fails => assert!(
                    matches!(
                        answer,
                        Err(Error::AlreadyExists {
                            reason: "GROUP_NAME_TAKEN",
                            ..
                        })
                    ),
                    "writer {i}: {answer:?}"
                ),
                Writer::Drops => assert!(answer.is_ok(), "writer {i}: {answer:?}"),
                Writer::Late => assert!(
                    matches!(answer, Err(Error::DeadlineExceeded)),
                    "writer {i}: {answer:?}"
                ),
            }
        }
        expected.sort();
        assert_eq!(
            committed(&store).await,
            expected,
            "the committed writes and nothing of the others"
        );
        let metrics = store.group_commit_metrics();
        assert_eq!(
            metrics.commits(),
            1,
            "{} writes committed in one transaction",
            WRITERS + 1
        );
        scratch_remove(store, &path).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_writers_than_one_transaction_holds_commit_in_several() {
        const WRITERS: usize = 2 * super::MAX_WRITES + 10;
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let first = store.write().await.unwrap();
        let writers = spawn_writers(&store, 0..WRITERS);
        until_queued(&store, WRITERS).await;
        first.commit().await.unwrap();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(committed(&store).await.len(), WRITERS);
        // No transaction holds more than its share (the first one holds
        // the first write, which wrote nothing, too).
        assert_eq!(store.group_commit_metrics().commits(), 3);
        scratch_remove(store, &path).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_stopped_at_its_deadline_loses_its_transaction_and_the_writes_behind_it_begin_another()
     {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let stopped = {
            let store = store.clone();
            tokio::spawn(deadline::run(
                Instant::now() + Duration::from_millis(300),
                async move {
                    let tx = store.write().await?;
                    tx.insert_group(&group("stopped"), None).await?;
                    // Far longer than the deadline: SQLite stops it, and
                    // rolls the whole transaction back.
                    tx.conn()?
                        .execute_unprepared(
                            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                             WHERE i < 100000000) INSERT INTO server_secrets (name, value) \
                             SELECT 'stopped-' || i, 'x' FROM n",
                        )
                        .await
                        .map_err(|error| tx.dialect.classify(error))?;
                    tx.commit().await
                },
            ))
        };
        // Queued behind the stopped write.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let writers = spawn_writers(&store, 0..3);
        let stopped = tokio::time::timeout(Duration::from_secs(60), stopped)
            .await
            .expect("the write was stopped")
            .unwrap();
        assert!(
            matches!(stopped, Err(Error::DeadlineExceeded)),
            "{stopped:?}"
        );
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(committed(&store).await, ["w-0", "w-1", "w-2"]);
        assert_eq!(crate::store::scratch_stopped_writes(&store).await, 0);
        scratch_remove(store, &path).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_kept_waiting_for_the_others_past_the_statement_timeout_is_unavailable() {
        let (store, path) = sqlite(Duration::from_millis(100)).await;
        let holder = store.write().await.unwrap();
        let refused = store.write().await.map(|_| ());
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        drop(holder);
        let next = store.write().await.unwrap();
        next.insert_group(&group("after"), None).await.unwrap();
        next.commit().await.unwrap();
        assert_eq!(committed(&store).await, ["after"]);
        scratch_remove(store, &path).await;
    }

    /// The history entry of creating `group(id)`.
    fn created(id: &str) -> GroupChange {
        let group = group(id);
        GroupChange {
            version: group.version,
            change_time: group.update_time,
            actor: "test".to_owned(),
            kind: ChangeKind::Create,
            update_mask: Vec::new(),
            group,
            members_added: Vec::new(),
            members_removed: Vec::new(),
            admins_added: Vec::new(),
            admins_removed: Vec::new(),
            delta_truncated: false,
        }
    }

    /// A writer that creates `w-<i>` and records it in the statement that
    /// releases its savepoint; with `twice`, records it once before, so
    /// that that statement fails.
    fn spawn_recording(
        store: &Store,
        i: usize,
        twice: bool,
    ) -> tokio::task::JoinHandle<Result<(), Error>> {
        let store = store.clone();
        tokio::spawn(async move {
            let change = created(&format!("w-{i}"));
            let none = MembershipDelta::default();
            let tx = store.write().await?;
            tx.insert_group(&change.group, None).await?;
            if twice {
                tx.append_change(&change, GroupRow::Written, &none).await?;
            }
            tx.append_change_and_commit(&change, GroupRow::Written, &none)
                .await
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_last_statement_releases_its_savepoint_joins_the_group_and_one_that_fails_there_keeps_nothing()
     {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        // In this order behind the first: each waits until the one before
        // it queues.
        let mut writers = Vec::new();
        for (i, twice) in [false, true, false].into_iter().enumerate() {
            writers.push(spawn_recording(&store, i, twice));
            until_queued(&store, i + 1).await;
        }
        first.commit().await.unwrap();
        let answers: Vec<_> = futures_util::future::join_all(writers)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(answers[0].is_ok(), "{answers:?}");
        assert!(answers[1].is_err(), "{answers:?}");
        assert!(answers[2].is_ok(), "{answers:?}");
        assert_eq!(committed(&store).await, ["first", "w-0", "w-2"]);
        assert_eq!(store.group_commit_metrics().commits(), 1);
        // Each recorded write has its history entry and its place in the
        // change feed, and the failed one neither.
        let read = store.read().await.unwrap();
        for (id, entries) in [("w-0", 1), ("w-1", 0), ("w-2", 1)] {
            let history = read
                .list_changes(&created(id).group.id, 0, 10)
                .await
                .unwrap();
            assert_eq!(history.len(), entries, "{id}");
        }
        let feed = read.feed_after(0, 10).await.unwrap();
        let fed: Vec<_> = feed.iter().map(|e| e.change.group.id.as_str()).collect();
        assert_eq!(fed, ["w-0", "w-2"]);
        drop(read);
        scratch_remove(store, &path).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_last_statement_that_fails_after_releasing_its_savepoint_gives_up_the_group() {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        let mut writers = spawn_writers(&store, 0..1);
        until_queued(&store, 1).await;
        // A last statement that releases the savepoint itself and then
        // fails: the case the release appended to it cannot rule out.
        let odd = {
            let store = store.clone();
            tokio::spawn(async move {
                let tx = store.write().await?;
                tx.insert_group(&group("odd"), None).await?;
                let Tx::Grouped(turn) = tx.read.tx else {
                    panic!("SQLite's writes are grouped");
                };
                let last = sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    format!(
                        "RELEASE {0}; SELECT no_such_column FROM groups",
                        super::SAVEPOINT
                    ),
                );
                turn.commit_after(last).await
            })
        };
        until_queued(&store, 2).await;
        writers.extend(spawn_writers(&store, 1..2));
        until_queued(&store, 3).await;
        first.commit().await.unwrap_err();
        assert!(odd.await.unwrap().is_err());
        let answers: Vec<_> = futures_util::future::join_all(writers).await;
        // w-0 joined the group that had to be given up; the writer after
        // the odd one began a transaction of its own.
        assert!(
            matches!(answers[0], Ok(Err(Error::Conflict))),
            "{answers:?}"
        );
        assert!(matches!(answers[1], Ok(Ok(()))), "{answers:?}");
        assert_eq!(committed(&store).await, ["w-1"]);
        scratch_remove(store, &path).await;
    }

    /// Group `w-<i>` as [`spawn_writers`] writes it, changed by an update
    /// of its description (and, with `label`, of a label), and its labels
    /// before.
    fn described(i: usize, label: bool) -> (GroupChange, BTreeMap<String, String>) {
        let mut change = created(&format!("w-{i}"));
        let before = change.group.fields.labels.clone();
        change.group.fields.description = format!("w-{i} described");
        if label {
            change
                .group
                .fields
                .labels
                .insert("team".to_owned(), "sre".to_owned());
        }
        change.group.version += 1;
        change.version = change.group.version;
        change.kind = ChangeKind::Update;
        change.update_mask = vec!["description".to_owned()];
        (change, before)
    }

    /// Hands over the guarded update of each of `writes` (a group's index,
    /// and the version it is said to have been read at) from one task, so
    /// that they all wait for the same turn.
    fn spawn_guarded(
        store: &Store,
        writes: Vec<(usize, i64)>,
    ) -> tokio::task::JoinHandle<Vec<Result<Option<()>, Error>>> {
        let store = store.clone();
        tokio::spawn(async move {
            futures_util::future::join_all(writes.into_iter().map(|(i, read)| {
                let store = store.clone();
                async move {
                    let (change, before) = described(i, i == 2);
                    store.update_if_unchanged(&change, &before, read).await
                }
            }))
            .await
        })
    }

    /// Creates groups `w-0` to `w-<n-1>`, each in a write of its own, and
    /// returns their version.
    async fn created_groups(store: &Store, n: usize) -> i64 {
        for answer in futures_util::future::join_all(spawn_writers(store, 0..n)).await {
            answer.unwrap().unwrap();
        }
        group("w-0").version
    }

    // On one thread, so that the guarded writes are all handed over before
    // the task that runs them looks for them.
    #[tokio::test]
    async fn guarded_writes_handed_over_together_are_written_only_where_the_group_is_as_read() {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let read = created_groups(&store, 6).await;
        let metrics = store.group_commit_metrics();
        let commits = metrics.commits();

        // A write holds the turn while the guarded writes are handed over;
        // the odd ones say they read a version the group never had.
        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        let guarded = spawn_guarded(
            &store,
            (0..6)
                .map(|i| (i, if i % 2 == 0 { read } else { read + 5 }))
                .collect(),
        );
        until_queued(&store, 1).await;
        first.commit().await.unwrap();
        let answers = guarded.await.unwrap();
        for (i, answer) in answers.iter().enumerate() {
            if i % 2 == 0 {
                assert!(matches!(answer, Ok(Some(()))), "{i}: {answer:?}");
            } else {
                assert!(matches!(answer, Ok(None)), "{i}: {answer:?}");
            }
        }

        let after = read + 1;
        assert_eq!(
            texts(
                &store,
                "SELECT id || ' ' || version || ' ' || description AS v FROM groups \
                 WHERE id LIKE 'w-%' ORDER BY id"
            )
            .await,
            [
                format!("w-0 {after} w-0 described"),
                format!("w-1 {read} "),
                format!("w-2 {after} w-2 described"),
                format!("w-3 {read} "),
                format!("w-4 {after} w-4 described"),
                format!("w-5 {read} "),
            ],
            "the rows of the writes whose guard held, and only those"
        );
        assert_eq!(
            texts(
                &store,
                "SELECT group_id || ' ' || key || ' ' || value AS v FROM group_labels"
            )
            .await,
            ["w-2 team sre"],
            "the label rows written with the row"
        );
        assert_eq!(
            texts(
                &store,
                "SELECT group_id || ' ' || version AS v FROM group_changes ORDER BY group_id"
            )
            .await,
            [
                format!("w-0 {after}"),
                format!("w-2 {after}"),
                format!("w-4 {after}")
            ],
            "one history entry for each write written"
        );
        // The writes of one text (w-2's has label rows) run together.
        assert_eq!(
            texts(
                &store,
                "SELECT group_id || ' ' || position AS v FROM change_feed ORDER BY position"
            )
            .await,
            ["w-0 1", "w-4 2", "w-2 3"],
            "one feed entry each, in the order they ran, without a gap"
        );
        assert_eq!(
            committed(&store).await.first().map(String::as_str),
            Some("first")
        );
        assert_eq!(
            metrics.commits() - commits,
            1,
            "the write holding the turn and the guarded ones committed together"
        );

        // A guarded write that removes the label removes its row.
        let (mut change, _) = described(2, false);
        let (with_label, _) = described(2, true);
        change.group.version = after + 1;
        change.version = after + 1;
        assert!(matches!(
            store
                .update_if_unchanged(&change, &with_label.group.fields.labels, after)
                .await,
            Ok(Some(()))
        ));
        assert!(
            texts(&store, "SELECT key AS v FROM group_labels")
                .await
                .is_empty()
        );
        scratch_remove(store, &path).await;
    }

    #[tokio::test]
    async fn a_guarded_statement_that_fails_keeps_none_of_its_writes_and_each_is_done_again() {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let read = created_groups(&store, 2).await;
        // w-1's history holds the entry its update would add already, so
        // that the statement holding both updates fails there.
        let (taken, _) = described(1, false);
        let tx = store.write().await.unwrap();
        tx.append_change(&taken, GroupRow::Written, &MembershipDelta::default())
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        let guarded = spawn_guarded(&store, vec![(0, read), (1, read)]);
        until_queued(&store, 1).await;
        first.commit().await.unwrap();
        let answers = guarded.await.unwrap();
        assert!(
            answers.iter().all(|answer| matches!(answer, Ok(None))),
            "{answers:?}"
        );
        assert_eq!(
            texts(
                &store,
                "SELECT id || ' ' || version AS v FROM groups WHERE id LIKE 'w-%' ORDER BY id"
            )
            .await,
            [format!("w-0 {read}"), format!("w-1 {read}")],
            "neither row was written"
        );
        assert_eq!(
            texts(
                &store,
                "SELECT group_id || ' ' || version AS v FROM group_changes ORDER BY group_id"
            )
            .await,
            [format!("w-1 {}", read + 1)],
            "only the entry written before"
        );
        assert!(committed(&store).await.contains(&"first".to_owned()));

        // The transaction goes on: w-0's update, handed over alone, is
        // written; past its call's deadline, nothing is handed over.
        let (change, before) = described(0, false);
        let late = deadline::run(
            Instant::now(),
            store.update_if_unchanged(&change, &before, read),
        )
        .await;
        assert!(matches!(late, Err(Error::DeadlineExceeded)), "{late:?}");
        assert!(matches!(
            store.update_if_unchanged(&change, &before, read).await,
            Ok(Some(()))
        ));
        assert_eq!(
            texts(
                &store,
                "SELECT id || ' ' || version AS v FROM groups WHERE id = 'w-0'"
            )
            .await,
            [format!("w-0 {}", read + 1)]
        );
        scratch_remove(store, &path).await;
    }

    #[tokio::test]
    async fn a_guarded_write_whose_call_is_over_before_it_runs_writes_nothing() {
        let (store, path) = sqlite(Duration::from_secs(30)).await;
        let read = created_groups(&store, 2).await;
        let first = store.write().await.unwrap();
        first.insert_group(&group("first"), None).await.unwrap();
        // Handed over while the turn is held, then cut at its deadline.
        let late = {
            let store = store.clone();
            tokio::spawn(async move {
                let (change, before) = described(0, false);
                deadline::run(
                    Instant::now() + Duration::from_millis(100),
                    store.update_if_unchanged(&change, &before, read),
                )
                .await
            })
        };
        let on_time = spawn_guarded(&store, vec![(1, read)]);
        until_queued(&store, 1).await;
        let late = late.await.unwrap();
        assert!(matches!(late, Err(Error::DeadlineExceeded)), "{late:?}");
        first.commit().await.unwrap();
        let on_time = on_time.await.unwrap();
        assert!(matches!(on_time[..], [Ok(Some(()))]), "{on_time:?}");
        assert_eq!(
            texts(
                &store,
                "SELECT id || ' ' || version AS v FROM groups WHERE id LIKE 'w-%' ORDER BY id"
            )
            .await,
            [format!("w-0 {read}"), format!("w-1 {}", read + 1)],
            "the write of the call cut at its deadline was left out"
        );
        assert_eq!(
            texts(&store, "SELECT group_id AS v FROM group_changes").await,
            ["w-1"]
        );
        scratch_remove(store, &path).await;
    }
}
