//! Labels as rows: one per (group, key), beside the JSON column the group
//! is read from, so that filters on labels look them up through an index
//! instead of parsing every group's JSON.
//!
//! The JSON column stays the source a group is read from; `group_labels`
//! is kept equal to it by the store, which writes both in the same
//! transaction. This migration fills the table from the groups already
//! there.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum GroupLabels {
    Table,
    GroupId,
    Key,
    Value,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(GroupLabels::Table)
                    .col(key_text(backend, GroupLabels::GroupId))
                    .col(key_text(backend, GroupLabels::Key))
                    .col(key_text(backend, GroupLabels::Value))
                    .primary_key(
                        Index::create()
                            .col(GroupLabels::GroupId)
                            .col(GroupLabels::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupLabels::Table, GroupLabels::GroupId)
                            .to(Groups::Table, Groups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Filters look labels up by key (presence), by key and value
        // (equality), or scan one key's values (substrings). The group id
        // is the last column so that each of these reads the index alone.
        manager
            .create_index(
                Index::create()
                    .name("group_labels_key_value")
                    .table(GroupLabels::Table)
                    .col(GroupLabels::Key)
                    .col(GroupLabels::Value)
                    .col(GroupLabels::GroupId)
                    .to_owned(),
            )
            .await?;

        // The labels of the groups already stored: each database reads the
        // JSON object with its own function.
        let fill = match backend {
            DbBackend::Postgres => {
                "INSERT INTO group_labels (group_id, key, value) \
                 SELECT g.id, l.key, l.value \
                 FROM groups g, jsonb_each_text(g.labels::jsonb) l"
            }
            _ => {
                "INSERT INTO group_labels (group_id, key, value) \
                 SELECT g.id, l.key, l.value \
                 FROM groups g, json_each(g.labels) l"
            }
        };
        manager.get_connection().execute_unprepared(fill).await?;
        Ok(())
    }

    /// Drops the rows; the JSON column still holds every label.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GroupLabels::Table).to_owned())
            .await
    }
}
