//! The `group_parents` table: one row per (group, parent), the `member_of`
//! edges. The graph never holds a cycle: an update that changes a group's
//! parents takes [`WriteTx::lock_hierarchy`] first thing in its
//! transaction, then checks [`WriteTx::reaches`] before it writes.

use sea_orm::{ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _, Value};

use super::{BATCH, ReadTx, WriteTx, entities::group_parents, errors::Classify as _};
use crate::{domain::GroupId, error::Error};

impl ReadTx {
    /// Every `member_of` edge `(child, parent)` between live groups above
    /// `start`: the edges leaving the start groups, and those leaving every
    /// live group reachable from them upward. One recursive query, whatever
    /// the depth; `UNION` keeps each edge once, so the work is the size of
    /// the ancestry. Sorted by child, then parent.
    pub async fn ancestry_edges(&self, start: &[String]) -> Result<Vec<(String, String)>, Error> {
        let mut edges = Vec::new();
        for chunk in start.chunks(BATCH) {
            let (condition, values) = self.dialect.one_of_sql("p.group_id", chunk);
            // The recursion carries the edges themselves, so each step looks
            // up one group's parents through the primary key of
            // `group_parents` (a final join against the whole table was
            // planned as a scan by SQLite).
            let sql = format!(
                "WITH RECURSIVE up(child, parent) AS ( \
                   SELECT p.group_id, p.parent_id FROM group_parents p \
                   JOIN groups g ON g.id = p.parent_id \
                   WHERE {condition} AND g.delete_time IS NULL \
                   UNION \
                   SELECT p.group_id, p.parent_id FROM up \
                   JOIN group_parents p ON p.group_id = up.parent \
                   JOIN groups g ON g.id = p.parent_id \
                   WHERE g.delete_time IS NULL \
                 ) \
                 SELECT child AS group_id, parent AS parent_id FROM up"
            );
            for row in self.query_raw(sql, values).await? {
                edges.push((
                    row.try_get::<String>("", "group_id")
                        .classify(self.dialect)?,
                    row.try_get::<String>("", "parent_id")
                        .classify(self.dialect)?,
                ));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        Ok(edges)
    }
}

impl WriteTx {
    /// Serializes changes to the parent graph across transactions (see
    /// [`super::Dialect::lock_hierarchy`]). Taken before the group's row
    /// lock, never after: two updates racing to close a cycle from both ends
    /// would otherwise each hold its row and wait for the other.
    pub async fn lock_hierarchy(&self) -> Result<(), Error> {
        self.dialect
            .lock_hierarchy(self.conn()?)
            .await
            .classify(self.dialect)
    }

    /// Whether group `id` is among `parents` or their ancestors, that is,
    /// whether making `parents` the parents of `id` would close a cycle.
    pub async fn reaches(&self, parents: &[String], id: &GroupId) -> Result<bool, Error> {
        if parents.is_empty() {
            return Ok(false);
        }
        let list: Vec<String> = (1..=parents.len())
            .map(|n| self.dialect.placeholder(n))
            .collect();
        // UNION (not UNION ALL) makes the walk end even on a graph that
        // already holds a cycle.
        let sql = format!(
            "WITH RECURSIVE ancestors(id) AS ( \
               SELECT id FROM groups WHERE id IN ({list}) \
               UNION \
               SELECT p.parent_id FROM group_parents p JOIN ancestors a ON p.group_id = a.id \
             ) SELECT COUNT(*) AS hits FROM ancestors WHERE id = {target}",
            list = list.join(", "),
            target = self.dialect.placeholder(parents.len() + 1),
        );
        let mut values: Vec<Value> = parents.iter().map(|p| p.clone().into()).collect();
        values.push(id.as_str().into());
        let rows = self.query_raw(sql, values).await?;
        let hits: i64 = match rows.first() {
            Some(row) => row.try_get("", "hits").classify(self.dialect)?,
            None => 0,
        };
        Ok(hits > 0)
    }

    /// Replaces the parents of group `id`.
    pub async fn replace_parents(&self, id: &GroupId, parents: &[String]) -> Result<(), Error> {
        group_parents::Entity::delete_many()
            .filter(group_parents::Column::GroupId.eq(id.as_str()))
            .exec(self.conn()?)
            .await
            .classify(self.dialect)?;
        self.insert_parents(id, parents).await
    }

    /// Inserts the parents of a group that has none yet.
    pub(super) async fn insert_parents(
        &self,
        id: &GroupId,
        parents: &[String],
    ) -> Result<(), Error> {
        for chunk in parents.chunks(BATCH) {
            let rows = chunk.iter().map(|parent| group_parents::ActiveModel {
                group_id: Set(id.as_str().to_owned()),
                parent_id: Set(parent.clone()),
            });
            group_parents::Entity::insert_many(rows)
                .exec_without_returning(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        Ok(())
    }
}
