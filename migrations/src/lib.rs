//! Schema migrations for groupd, applied by `groupd migrate` and, unless
//! turned off, when `groupd serve` starts.
//!
//! The schema is written once for SQLite and PostgreSQL; where the two
//! differ (collation), the migration asks the backend.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_groups;
mod m20261122_000001_group_labels;
mod m20261130_000001_change_feed;

/// Applies groupd's migrations in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_groups::Migration),
            Box::new(m20261122_000001_group_labels::Migration),
            Box::new(m20261130_000001_change_feed::Migration),
        ]
    }
}
