//! The initial schema: groups, their members and parents, their history, and
//! server-wide secrets.
//!
//! Membership lives in its own table, one row per (group, principal), so
//! that a group can hold 100,000 members while updating its description
//! touches one row and adding a member touches one more.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    Name,
    Scope,
    Description,
    Email,
    Inactive,
    Provenance,
    Labels,
    AssignedRoles,
    MemberCount,
    Version,
    CreateTime,
    UpdateTime,
    DeleteTime,
    CreatedBy,
    UpdatedBy,
    RequestId,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    GroupId,
    MemberId,
    IsAdmin,
}

#[derive(DeriveIden)]
enum GroupParents {
    Table,
    GroupId,
    ParentId,
}

#[derive(DeriveIden)]
enum GroupChanges {
    Table,
    GroupId,
    Version,
    ChangeTime,
    Actor,
    Kind,
    UpdateMask,
    Snapshot,
    MembersAdded,
    MembersRemoved,
    AdminsAdded,
    AdminsRemoved,
}

#[derive(DeriveIden)]
enum ServerSecrets {
    Table,
    Name,
    Value,
}

/// A text column compared and sorted byte-wise on every backend: ids and
/// names are ordered the same way by SQLite (BINARY) and PostgreSQL ("C"),
/// whatever the database's default collation.
fn key_text(backend: DbBackend, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.text().not_null();
    if backend == DbBackend::Postgres {
        def.extra("COLLATE \"C\"");
    }
    def
}

fn text(column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.text().not_null();
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
                    .table(Groups::Table)
                    .col(key_text(backend, Groups::Id).primary_key())
                    .col(key_text(backend, Groups::Name))
                    .col(key_text(backend, Groups::Scope))
                    .col(text(Groups::Description))
                    .col(text(Groups::Email))
                    .col(ColumnDef::new(Groups::Inactive).boolean().not_null())
                    .col(text(Groups::Provenance))
                    // Labels and roles are small, bounded, and always read
                    // with the group, so they are JSON in the group's row.
                    .col(text(Groups::Labels))
                    .col(text(Groups::AssignedRoles))
                    .col(big(Groups::MemberCount))
                    .col(big(Groups::Version))
                    // Times are microseconds since the Unix epoch: exact,
                    // and ordered the same way on both backends.
                    .col(big(Groups::CreateTime))
                    .col(big(Groups::UpdateTime))
                    .col(ColumnDef::new(Groups::DeleteTime).big_integer().null())
                    .col(text(Groups::CreatedBy))
                    .col(text(Groups::UpdatedBy))
                    .col(ColumnDef::new(Groups::RequestId).text().null())
                    .to_owned(),
            )
            .await?;

        // Names are unique per scope, case-insensitively, among live groups
        // only: a deleted group frees its name. Both backends support this
        // partial expression index with the same SQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX groups_live_scope_name_key \
                 ON groups (scope, lower(name)) WHERE delete_time IS NULL",
            )
            .await?;
        for (name, column) in [
            ("groups_name_id", Groups::Name),
            ("groups_create_time_id", Groups::CreateTime),
            ("groups_update_time_id", Groups::UpdateTime),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Groups::Table)
                        .col(column)
                        .col(Groups::Id)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("groups_request_id")
                    .table(Groups::Table)
                    .col(Groups::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GroupMembers::Table)
                    .col(key_text(backend, GroupMembers::GroupId))
                    .col(key_text(backend, GroupMembers::MemberId))
                    .col(ColumnDef::new(GroupMembers::IsAdmin).boolean().not_null())
                    .primary_key(
                        Index::create()
                            .col(GroupMembers::GroupId)
                            .col(GroupMembers::MemberId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupMembers::Table, GroupMembers::GroupId)
                            .to(Groups::Table, Groups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("group_members_member_id")
                    .table(GroupMembers::Table)
                    .col(GroupMembers::MemberId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GroupParents::Table)
                    .col(key_text(backend, GroupParents::GroupId))
                    .col(key_text(backend, GroupParents::ParentId))
                    .primary_key(
                        Index::create()
                            .col(GroupParents::GroupId)
                            .col(GroupParents::ParentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupParents::Table, GroupParents::GroupId)
                            .to(Groups::Table, Groups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupParents::Table, GroupParents::ParentId)
                            .to(Groups::Table, Groups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("group_parents_parent_id")
                    .table(GroupParents::Table)
                    .col(GroupParents::ParentId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GroupChanges::Table)
                    .col(key_text(backend, GroupChanges::GroupId))
                    .col(big(GroupChanges::Version))
                    .col(big(GroupChanges::ChangeTime))
                    .col(text(GroupChanges::Actor))
                    .col(text(GroupChanges::Kind))
                    .col(text(GroupChanges::UpdateMask))
                    .col(text(GroupChanges::Snapshot))
                    .col(text(GroupChanges::MembersAdded))
                    .col(text(GroupChanges::MembersRemoved))
                    .col(text(GroupChanges::AdminsAdded))
                    .col(text(GroupChanges::AdminsRemoved))
                    .primary_key(
                        Index::create()
                            .col(GroupChanges::GroupId)
                            .col(GroupChanges::Version),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupChanges::Table, GroupChanges::GroupId)
                            .to(Groups::Table, Groups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServerSecrets::Table)
                    .col(key_text(backend, ServerSecrets::Name).primary_key())
                    .col(text(ServerSecrets::Value))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
