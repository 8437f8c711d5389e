//! Stopping SQLite's work for calls that are over.
//!
//! A call dropped at its deadline (or by its client) stops awaiting, but
//! its statement runs on in SQLite, on the connection's own thread, until
//! it ends: a costly query kept a core busy long after its caller was told
//! DEADLINE_EXCEEDED, and kept its connection from the others. So every
//! pooled SQLite connection has a progress handler, which SQLite calls
//! every [`PROGRESS_STEPS`] virtual-machine steps of a running statement,
//! and which stops the statement once the call that holds the connection
//! is over ([`CallWatch::is_over`]: dropped, or past its deadline, and not
//! committing). The statement then fails with `SQLITE_INTERRUPT`, which the
//! store reports as DEADLINE_EXCEEDED.
//!
//! The call is tied to the connection when the pool hands it out: the
//! pool's hooks run in the acquiring call's task, where its deadline is
//! known, and install a handler that watches that call (`after_connect` for
//! a new connection, `before_acquire` for a pooled one).
//!
//! A begun COMMIT is never cut (the watch says so), and COMMIT, ROLLBACK
//! and BEGIN are not stopped at all: sqlx runs them as freshly prepared
//! statements of a few steps, far fewer than [`PROGRESS_STEPS`], and SQLite
//! first calls the handler after that many steps of one statement.
//!
//! One case needs care: SQLite answers a write statement stopped inside a
//! transaction by rolling the whole transaction back, which sqlx does not
//! notice (its ROLLBACK then fails, and it keeps counting the transaction
//! as open). Handed out again, the connection would begin the next write
//! transaction as a mere savepoint, which takes no write lock. A pooled
//! connection that still looks in a transaction is therefore discarded
//! rather than reused (the pool opens another).
//!
//! The connection of a group commit (`group_commit.rs`) serves one write
//! after another inside one transaction, so it is tied to the group rather
//! than to the call that opened it: its progress handler asks the
//! [`GroupLink`] which write runs now, and stops that write's statements
//! only when nothing but that write would be lost. A write statement
//! stopped inside a transaction rolls back the whole transaction, with the
//! writes of the group that already finished and wait for its commit; so
//! once a write of the group has finished, the statements of the writes
//! after it are not stopped (the one whose call is over is rolled back to
//! its savepoint when its statement ends). The group's connection also
//! reports a transaction rolled back whole (SQLite's rollback hook) and
//! refuses every commit but the group's own (its commit hook), so that no
//! write after such a rollback, which SQLite would run outside any
//! transaction, is ever made durable unseen.
//!
//! PostgreSQL stops its own statements: see `Dialect::bound_statements`.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use sea_orm::sqlx::{
    self, Connection as _, pool::PoolConnectionMetadata, sqlite::SqliteConnection,
};

use crate::deadline::CallWatch;

tokio::task_local! {
    /// Set while a group commit opens its transaction: the pool's hooks
    /// then tie the connection to the group rather than to the call.
    static GROUP: Arc<GroupLink>;
}

/// What the connection of one group commit's transaction consults, from
/// SQLite's thread: whose statements run now, and what became of the
/// transaction. A new one for every transaction, so that a connection
/// that served an earlier one cannot speak for the current one.
#[derive(Debug, Default)]
pub(super) struct GroupLink {
    /// The call whose statements may be stopped now; `None` while the
    /// statements running must not be (see the module documentation).
    current: Mutex<Option<CallWatch>>,
    /// SQLite rolled the whole transaction back.
    lost: AtomicBool,
    /// The group commits its transaction now: the only commit allowed.
    committing: AtomicBool,
}

impl GroupLink {
    /// Runs `open`, which takes a pooled connection and begins the group's
    /// transaction on it, with the connection tied to this link.
    pub(super) async fn opening<F: Future>(self: &Arc<Self>, open: F) -> F::Output {
        GROUP.scope(Arc::clone(self), open).await
    }

    /// Lets the statements from now on be stopped once `call` is over, or
    /// (`None`) not at all.
    pub(super) fn watch(&self, call: Option<CallWatch>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = call;
    }

    /// Whether SQLite rolled the transaction back whole.
    pub(super) fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Allows (or forbids again) the commit of the transaction.
    pub(super) fn allow_commit(&self, allowed: bool) {
        self.committing.store(allowed, Ordering::Release);
    }

    /// The progress handler's answer: `true` lets the statement go on.
    fn goes_on(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|call| !call.is_over())
    }
}

/// Whom a connection's statements work for while it is handed out.
enum Tie {
    /// One call (or none: start-up, migrations).
    Call(Option<CallWatch>),
    /// A group commit's writes, one after another.
    Group(Arc<GroupLink>),
}

impl Tie {
    /// The tie of the task acquiring a connection now.
    fn current() -> Self {
        GROUP
            .try_with(Arc::clone)
            .map_or_else(|_| Self::Call(CallWatch::current()), Self::Group)
    }
}

/// Virtual-machine steps between two calls of the progress handler. A step
/// takes nanoseconds, so a statement is stopped within microseconds of its
/// call's end (a sort or a long string function can take longer per step),
/// while the handler (an atomic load and a clock read) costs well under one
/// percent of the statement.
const PROGRESS_STEPS: i32 = 1_000;

/// What the pool's hooks return.
type Hook<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// `after_connect`: a new connection watches the call (or the group
/// commit) that asked for it.
pub(super) fn watch_new(conn: &mut SqliteConnection, _: PoolConnectionMetadata) -> Hook<'_, ()> {
    let tie = Tie::current();
    Box::pin(async move { watch_call(conn, tie).await })
}

/// `before_acquire`: a pooled connection watches the call (or the group
/// commit) it is handed to, unless a stopped statement left it
/// inconsistent (see the module documentation), in which case the pool
/// discards it.
pub(super) fn watch_pooled(
    conn: &mut SqliteConnection,
    _: PoolConnectionMetadata,
) -> Hook<'_, bool> {
    let tie = Tie::current();
    Box::pin(async move {
        if conn.is_in_transaction() {
            tracing::debug!("discarding a connection whose transaction a stopped statement ended");
            return Ok(false);
        }
        watch_call(conn, tie).await?;
        Ok(true)
    })
}

/// Installs the progress handler that stops `conn`'s statements once the
/// call they work for is over; without a call (start-up, migrations), one
/// that never stops them. A group commit's connection gets the handler
/// and the hooks of its [`GroupLink`]; any other has no commit or rollback
/// hook, whatever it served before.
async fn watch_call(conn: &mut SqliteConnection, tie: Tie) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    match tie {
        Tie::Call(watch) => {
            handle.set_progress_handler(PROGRESS_STEPS, move || {
                // `true` lets the statement go on.
                watch.as_ref().is_none_or(|call| !call.is_over())
            });
            handle.remove_commit_hook();
            handle.remove_rollback_hook();
        }
        Tie::Group(link) => {
            let progress = Arc::clone(&link);
            handle.set_progress_handler(PROGRESS_STEPS, move || progress.goes_on());
            let commits = Arc::clone(&link);
            // `false` turns the commit into a rollback.
            handle.set_commit_hook(move || commits.committing.load(Ordering::Acquire));
            handle.set_rollback_hook(move || link.lost.store(true, Ordering::Release));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::ConnectionTrait as _;
    use tokio::time::Instant;

    use super::super::{Store, StoreOptions};
    use crate::{deadline, domain::filter::FilterBudget, error::Error};

    /// A write that takes far longer than any deadline of these tests: a
    /// hundred million secrets.
    const ENDLESS_WRITE: &str = "WITH RECURSIVE n(i) AS \
        (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) \
        INSERT INTO server_secrets (name, value) SELECT 'stopped-' || i, 'x' FROM n";

    /// A pool of `connections`, waiting `busy` for another writer's lock.
    fn options(connections: u32, busy: Duration) -> StoreOptions {
        StoreOptions {
            max_connections: connections,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: busy,
            filter_budget: FilterBudget::DEFAULT,
            filtered_listings: 1,
            membership_walks: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_stopped_at_its_deadline_rolls_back_and_the_next_write_still_takes_the_lock() {
        let path =
            std::env::temp_dir().join(format!("groupd_calls_{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        // One pooled connection: the write after the stopped one gets the
        // same connection, or a new one if that one was discarded.
        let store = Store::connect(&url, &options(1, Duration::from_secs(5)))
            .await
            .unwrap();
        store.migrate().await.unwrap();

        let stopped = deadline::run(Instant::now() + Duration::from_millis(200), async {
            let tx = store.write().await?;
            tx.conn()?
                .execute_unprepared(ENDLESS_WRITE)
                .await
                .map_err(|error| tx.dialect.classify(error))?;
            tx.commit().await
        })
        .await;
        assert!(
            matches!(stopped, Err(Error::DeadlineExceeded)),
            "{stopped:?}"
        );

        // SQLite rolled the stopped write's transaction back. The next
        // write runs, as a real write transaction: it holds the write lock
        // before it writes anything (a connection left believing itself in
        // a transaction would open a mere savepoint instead, which takes no
        // lock), so another connection cannot write meanwhile. The bound is
        // against a hang: the stopped write would take minutes.
        let next = tokio::time::timeout(Duration::from_secs(60), store.write())
            .await
            .expect("the next write did not wait for the stopped one")
            .unwrap();
        let other = Store::connect(&url, &options(1, Duration::from_millis(100)))
            .await
            .unwrap();
        assert!(
            matches!(other.write().await, Err(Error::Unavailable(_))),
            "the next write holds the write lock"
        );
        next.conn()
            .unwrap()
            .execute_unprepared("INSERT INTO server_secrets (name, value) VALUES ('after', 'x')")
            .await
            .unwrap();
        next.commit().await.unwrap();
        assert_eq!(
            crate::store::scratch_stopped_writes(&store).await,
            0,
            "nothing of the stopped write"
        );

        other.close().await.unwrap();
        crate::store::scratch_remove(store, &path).await;
    }
}
