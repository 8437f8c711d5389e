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

    /// The direct members of up to `limit` groups whose id sorts after
    /// `after` (`""` for the first), in id order: a page of a walk over
    /// every membership. Each group's members come as one JSON array
    /// aggregated by the database, so that a million memberships cross
    /// the driver as thousands of rows, not a million (the driver's cost
    /// per row, not the database's work, bounded the build).
    pub async fn members_of_groups_after(
        &self,
        after: &str,
        limit: u64,
    ) -> Result<Vec<(String, Vec<String>)>, Error> {
        let sql = format!(
            "SELECT group_id, {members} AS members FROM group_members \
             WHERE group_id > {after} GROUP BY group_id ORDER BY group_id LIMIT {limit}",
            members = self.dialect.json_array_of("member_id"),
            after = self.dialect.placeholder(1),
            limit = self.dialect.placeholder(2),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query_raw(sql, [after.into(), limit.into()]).await?;
        let pairs = self.pairs(&rows, "group_id", "members")?;
        pairs
            .into_iter()
            .map(|(group, members)| Ok((group, super::groups::from_json(&members)?)))
            .collect()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::store::{scratch_group, scratch_remove, scratch_sqlite};

    #[tokio::test]
    async fn the_members_of_every_group_come_a_page_of_groups_at_a_time() {
        let (store, path) = scratch_sqlite(
            "index_pages",
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await;
        let tx = store.write().await.unwrap();
        for id in ["a", "b", "c", "empty"] {
            tx.insert_group(&scratch_group(id), None).await.unwrap();
        }
        for (group, member) in [("a", "p1"), ("a", "p2"), ("b", "p1"), ("c", "p3")] {
            tx.query_raw(
                "INSERT INTO group_members (group_id, member_id, is_admin) VALUES (?, ?, false)"
                    .to_owned(),
                [group.into(), member.into()],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        let tx = store.read().await.unwrap();
        let first = tx.members_of_groups_after("", 2).await.unwrap();
        let mut sorted = first.clone();
        for (_, members) in &mut sorted {
            members.sort();
        }
        assert_eq!(
            sorted,
            [
                ("a".to_owned(), vec!["p1".to_owned(), "p2".to_owned()]),
                ("b".to_owned(), vec!["p1".to_owned()]),
            ]
        );
        let second = tx.members_of_groups_after("b", 2).await.unwrap();
        // A group without members has no row.
        assert_eq!(second, [("c".to_owned(), vec!["p3".to_owned()])]);
        assert!(tx.members_of_groups_after("c", 2).await.unwrap().is_empty());
        drop(tx);
        scratch_remove(store, &path).await;
    }
}
