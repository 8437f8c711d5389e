//! What operators rely on: request ids, deadlines, draining on SIGTERM,
//! health through a database network cut, and configuration that is
//! checked and logged without secrets. One file per theme; the write lock
//! and the checks the slow calls share are here.
//!
//! Slow calls are made slow for real: the test holds a write lock on the
//! database from its own connection (`SELECT … FOR UPDATE` on PostgreSQL,
//! `BEGIN IMMEDIATE` on SQLite), so groupd's write waits for it.

mod configuration;
mod deadlines;
mod health;
mod request_ids;
mod shutdown;

use std::time::Duration;

use groupd::pb;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::helpers::*;

/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A write lock on a group, held by the test's own database connection:
/// groupd's writes to that group wait until [`WriteLock::release`].
struct WriteLock {
    db: DatabaseConnection,
    tx: DatabaseTransaction,
}

async fn hold_write_lock(app: &TestApp, group_id: &str) -> WriteLock {
    let db = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    let tx = match db.get_database_backend() {
        // SQLite has one writer: holding it stops every groupd write.
        DbBackend::Sqlite => db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .expect("BEGIN IMMEDIATE"),
        _ => {
            let tx = db.begin().await.expect("BEGIN");
            let locked = tx
                .execute_unprepared(&format!(
                    "SELECT id FROM groups WHERE id = '{group_id}' FOR UPDATE"
                ))
                .await
                .expect("SELECT … FOR UPDATE");
            assert_eq!(locked.rows_affected(), 1, "the group's row is locked");
            tx
        }
    };
    WriteLock { db, tx }
}

impl WriteLock {
    async fn release(self) {
        self.tx.rollback().await.expect("ROLLBACK");
        self.db.close().await.expect("the test's connection closes");
    }
}

/// An UpdateGroup request setting `labels.<key>` to `value`.
fn set_label(id: &str, key: &str, value: &str) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(pb::Group {
            labels: [(key.to_owned(), value.to_owned())].into(),
            ..patch(id)
        }),
        update_mask: Some(mask(&[&format!("labels.{key}")])),
        ..Default::default()
    }
}

/// Releases `lock`, then checks that the group is as `before`, and that
/// the next write (which would queue behind any write still on its way) is
/// the only change recorded since.
async fn assert_nothing_written(app: &TestApp, lock: WriteLock, before: &pb::Group) {
    let history = changes(app, &before.id).await;
    lock.release().await;
    assert_eq!(
        &get(app, &before.id).await,
        before,
        "the group is unchanged"
    );
    let next = update_request(app, set_label(&before.id, "after", "1"))
        .await
        .expect("a write after the lock is released");
    assert_ne!(next.etag, before.etag);
    assert!(!next.labels.contains_key("late"), "{next:?}");
    let after = changes(app, &before.id).await;
    assert_eq!(
        after.len(),
        history.len() + 1,
        "one change since: {after:?}"
    );
}
