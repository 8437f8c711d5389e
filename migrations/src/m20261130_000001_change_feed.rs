//! The change feed: every committed write's place in one order across all
//! groups, which WatchGroupChanges streams and its cursors name.
//!
//! A row names a history entry (`group_changes`, by group and version) and
//! gives it a `position`: 1, 2, 3, … with no gap, in the order the writes
//! committed. SQLite writes the position with the write (its writers are
//! serialized, so allocation order is commit order). PostgreSQL commits
//! writes concurrently, so a write only records `seq`, a number drawn from
//! a sequence as its last statement, and leaves `position` empty; a
//! sequencer, serialized by an advisory lock, later numbers the committed
//! rows it can see, in `seq` order (see the store's `feed` module).
//!
//! The history already recorded is numbered here, oldest first.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GroupChanges {
    Table,
    GroupId,
    Version,
}

#[derive(DeriveIden)]
enum ChangeFeed {
    Table,
    GroupId,
    Version,
    Seq,
    Position,
    ChangeTime,
}

/// A text column compared byte-wise on every backend (see the first
/// migration's `key_text`).
fn key_text(backend: DbBackend, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.text().not_null();
    if backend == DbBackend::Postgres {
        def.extra("COLLATE \"C\"");
    }
    def
}

fn big(column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.big_integer().not_null();
    def
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(ChangeFeed::Table)
                    .col(key_text(backend, ChangeFeed::GroupId))
                    .col(big(ChangeFeed::Version))
                    .col(big(ChangeFeed::Seq))
                    .col(ColumnDef::new(ChangeFeed::Position).big_integer().null())
                    .col(big(ChangeFeed::ChangeTime))
                    .primary_key(
                        Index::create()
                            .col(ChangeFeed::GroupId)
                            .col(ChangeFeed::Version),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                ChangeFeed::Table,
                                (ChangeFeed::GroupId, ChangeFeed::Version),
                            )
                            .to(
                                GroupChanges::Table,
                                (GroupChanges::GroupId, GroupChanges::Version),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Watchers read by position; the sequencer finds the head with it.
        manager
            .create_index(
                Index::create()
                    .name("change_feed_position")
                    .table(ChangeFeed::Table)
                    .col(ChangeFeed::Position)
                    .unique()
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        if backend == DbBackend::Postgres {
            connection
                .execute_unprepared("CREATE SEQUENCE change_feed_seq")
                .await?;
            // The sequencer's work list: committed rows not yet numbered.
            connection
                .execute_unprepared(
                    "CREATE INDEX change_feed_unsequenced ON change_feed (seq) \
                     WHERE position IS NULL",
                )
                .await?;
        }
        // The history already recorded, in the order it was written.
        connection
            .execute_unprepared(
                "INSERT INTO change_feed (group_id, version, seq, position, change_time) \
                 SELECT group_id, version, n, n, change_time FROM ( \
                   SELECT group_id, version, change_time, \
                     ROW_NUMBER() OVER (ORDER BY change_time, group_id, version) AS n \
                   FROM group_changes) numbered",
            )
            .await?;
        if backend == DbBackend::Postgres {
            connection
                .execute_unprepared(
                    "SELECT setval('change_feed_seq', \
                       (SELECT COALESCE(MAX(seq), 0) + 1 FROM change_feed), false)",
                )
                .await?;
        }
        Ok(())
    }

    /// Drops the feed; the per-group history is untouched.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChangeFeed::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP SEQUENCE IF EXISTS change_feed_seq")
                .await?;
        }
        Ok(())
    }
}
