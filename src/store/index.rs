//! The reads that build the membership index (see `crate::index`): every
//! group with whether it is live, every `member_of` edge, and every
//! membership a page at a time, all from the snapshot of one [`ReadTx`].

use sea_orm::QueryResult;

use super::{ReadTx, errors::Classify as _};
use crate::error::Error;

impl ReadTx {
    /// Every group's id, and whether it is live.
    pub async fn all_groups_liveness(&self) -> Result<Vec<(String, bool)>, Error> {
        let rows = self
            .query_raw(
                "SELECT id, delete_time IS NULL AS live FROM groups".to_owned(),
                [],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String>("", "id").classify(self.dialect)?,
                    row.try_get::<bool>("", "live").classify(self.dialect)?,
                ))
            })
            .collect()
    }

    /// Every `member_of` edge (child, parent).
    pub async fn all_parent_edges(&self) -> Result<Vec<(String, String)>, Error> {
        let rows = self
            .query_raw(
                "SELECT group_id, parent_id FROM group_parents".to_owned(),
                [],
            )
            .await?;
        self.pairs(&rows, "group_id", "parent_id")
    }

    /// Up to `limit` memberships (group, principal) after `after`, in
    /// primary-key order: a page of a walk over every membership that
    /// never holds more than a page in memory.
    pub async fn memberships_after(
        &self,
        after: Option<&(String, String)>,
        limit: u64,
    ) -> Result<Vec<(String, String)>, Error> {
        let p = |n| self.dialect.placeholder(n);
        let (sql, values) = match after {
            None => (
                format!(
                    "SELECT group_id, member_id FROM group_members \
                     ORDER BY group_id, member_id LIMIT {}",
                    p(1)
                ),
                vec![i64::try_from(limit).unwrap_or(i64::MAX).into()],
            ),
            Some((group, member)) => (
                format!(
                    "SELECT group_id, member_id FROM group_members \
                     WHERE (group_id, member_id) > ({}, {}) \
                     ORDER BY group_id, member_id LIMIT {}",
                    p(1),
                    p(2),
                    p(3)
                ),
                vec![
                    group.clone().into(),
                    member.clone().into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            ),
        };
        let rows = self.query_raw(sql, values).await?;
        self.pairs(&rows, "group_id", "member_id")
    }

    /// The string columns `first` and `second` of each row.
    fn pairs(
        &self,
        rows: &[QueryResult],
        first: &str,
        second: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String>("", first).classify(self.dialect)?,
                    row.try_get::<String>("", second).classify(self.dialect)?,
                ))
            })
            .collect()
    }
}
