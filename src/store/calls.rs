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
//! notice; it would hand the connection out again believing a transaction
//! open. A pooled connection that still looks in a transaction is
//! therefore discarded rather than reused (the pool opens another).
//!
//! PostgreSQL stops its own statements: see `Dialect::bound_statements`.

use std::{future::Future, pin::Pin};

use sea_orm::sqlx::{
    self, Connection as _, pool::PoolConnectionMetadata, sqlite::SqliteConnection,
};

use crate::deadline::CallWatch;

/// Virtual-machine steps between two calls of the progress handler. A step
/// takes nanoseconds, so a statement is stopped within microseconds of its
/// call's end (a sort or a long string function can take longer per step),
/// while the handler (an atomic load and a clock read) costs well under one
/// percent of the statement.
const PROGRESS_STEPS: i32 = 1_000;

/// What the pool's hooks return.
type Hook<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// `after_connect`: a new connection watches the call that asked for it.
pub(super) fn watch_new(conn: &mut SqliteConnection, _: PoolConnectionMetadata) -> Hook<'_, ()> {
    let watch = CallWatch::current();
    Box::pin(async move { watch_call(conn, watch).await })
}

/// `before_acquire`: a pooled connection watches the call it is handed to,
/// unless a stopped statement left it inconsistent (see the module
/// documentation), in which case the pool discards it.
pub(super) fn watch_pooled(
    conn: &mut SqliteConnection,
    _: PoolConnectionMetadata,
) -> Hook<'_, bool> {
    let watch = CallWatch::current();
    Box::pin(async move {
        if conn.is_in_transaction() {
            tracing::debug!("discarding a connection whose transaction a stopped statement ended");
            return Ok(false);
        }
        watch_call(conn, watch).await?;
        Ok(true)
    })
}

/// Installs the progress handler that stops `conn`'s statements once the
/// call of `watch` is over; without a call (start-up, migrations), one that
/// never stops them.
async fn watch_call(
    conn: &mut SqliteConnection,
    watch: Option<CallWatch>,
) -> Result<(), sqlx::Error> {
    conn.lock_handle()
        .await?
        .set_progress_handler(PROGRESS_STEPS, move || {
            // `true` lets the statement go on.
            watch.as_ref().is_none_or(|call| !call.is_over())
        });
    Ok(())
}
