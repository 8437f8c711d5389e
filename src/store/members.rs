//! The `group_members` table: one row per (group, direct member), with the
//! admin flag. Membership is never stored in the group's row, so updating a
//! description touches one row, and adding a member reads and writes only
//! that member's row.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, DeleteMany, EntityTrait as _, InsertMany, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, QueryTrait as _, UpdateMany, sea_query::Expr,
};

use super::{
    BATCH, Dialect, ReadTx, WriteTx, dialect::Writes, entities::group_members,
    errors::Classify as _,
};
use crate::{
    domain::{GroupId, MemberEntry, PrincipalId, membership::MembershipDelta, policy::Standing},
    error::Error,
};

impl ReadTx {
    /// Every direct member of group `id`, sorted by id.
    pub async fn load_members(&self, id: &GroupId) -> Result<Vec<MemberEntry>, Error> {
        let rows = group_members::Entity::find()
            .filter(group_members::Column::GroupId.eq(id.as_str()))
            .order_by_asc(group_members::Column::MemberId)
            .all(self.conn()?)
            .await
            .classify(self.dialect)?;
        Ok(rows
            .into_iter()
            .map(|row| MemberEntry {
                id: row.member_id,
                is_admin: row.is_admin,
            })
            .collect())
    }

    /// A page of the direct members of group `id`, sorted by id, starting
    /// after `after`.
    pub async fn list_members(
        &self,
        id: &GroupId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<String>, Error> {
        let mut select = group_members::Entity::find()
            .filter(group_members::Column::GroupId.eq(id.as_str()))
            .order_by_asc(group_members::Column::MemberId)
            .limit(limit);
        if let Some(after) = after {
            select = select.filter(group_members::Column::MemberId.gt(after));
        }
        let rows = select.all(self.conn()?).await.classify(self.dialect)?;
        Ok(rows.into_iter().map(|row| row.member_id).collect())
    }

    /// Which of `ids` are members of group `id`, with their admin flags.
    /// Reads only those rows, never the whole membership.
    pub async fn members_among(
        &self,
        id: &GroupId,
        ids: &[String],
    ) -> Result<HashMap<String, bool>, Error> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let rows = group_members::Entity::find()
                .filter(group_members::Column::GroupId.eq(id.as_str()))
                .filter(self.dialect.one_of(group_members::Column::MemberId, chunk))
                .all(self.conn()?)
                .await
                .classify(self.dialect)?;
            found.extend(rows.into_iter().map(|row| (row.member_id, row.is_admin)));
        }
        Ok(found)
    }

    /// The standing of `principal` in group `id`: one row, read through the
    /// primary key.
    pub async fn standing(&self, id: &GroupId, principal: &str) -> Result<Standing, Error> {
        let row = group_members::Entity::find_by_id((id.as_str().to_owned(), principal.to_owned()))
            .one(self.conn()?)
            .await
            .classify(self.dialect)?;
        Ok(row.map_or(Standing::STRANGER, |row| Standing::of_member(row.is_admin)))
    }

    /// The standing of `principal` in each of `ids` where it has one (the
    /// others are [`Standing::STRANGER`]), through the index on members.
    pub async fn standings(
        &self,
        principal: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Standing>, Error> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let rows = group_members::Entity::find()
                .filter(group_members::Column::MemberId.eq(principal))
                .filter(self.dialect.one_of(group_members::Column::GroupId, chunk))
                .all(self.conn()?)
                .await
                .classify(self.dialect)?;
            found.extend(
                rows.into_iter()
                    .map(|row| (row.group_id, Standing::of_member(row.is_admin))),
            );
        }
        Ok(found)
    }

    /// How many admins group `id` has.
    pub async fn admin_count(&self, id: &GroupId) -> Result<u64, Error> {
        use sea_orm::PaginatorTrait as _;
        group_members::Entity::find()
            .filter(group_members::Column::GroupId.eq(id.as_str()))
            .filter(group_members::Column::IsAdmin.eq(true))
            .count(self.conn()?)
            .await
            .classify(self.dialect)
    }

    /// The live groups `member_id` is a direct member of, sorted by id
    /// (through the index `group_members_member_id`).
    pub async fn live_groups_of_member(
        &self,
        member_id: &PrincipalId,
    ) -> Result<Vec<String>, Error> {
        let sql = format!(
            "SELECT m.group_id AS group_id FROM group_members m \
             JOIN groups g ON g.id = m.group_id \
             WHERE m.member_id = {} AND g.delete_time IS NULL \
             ORDER BY m.group_id",
            self.dialect.placeholder(1)
        );
        let rows = self.query_raw(sql, [member_id.as_str().into()]).await?;
        rows.iter()
            .map(|row| row.try_get::<String>("", "group_id").classify(self.dialect))
            .collect()
    }
}

impl WriteTx {
    /// Applies a membership delta to group `id`, touching only the rows
    /// that change: one statement per kind of change and batch of rows.
    /// A delta that fits one batch per kind goes out with the write's
    /// history entry instead ([`membership_writes`]).
    pub(super) async fn apply_membership(
        &self,
        id: &GroupId,
        delta: &MembershipDelta,
    ) -> Result<(), Error> {
        for chunk in delta.insert.chunks(BATCH) {
            insert_members(id, chunk)
                .exec_without_returning(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        for chunk in delta.delete.chunks(BATCH) {
            delete_members(self.dialect, id, chunk)
                .exec(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        for (ids, admin) in [(&delta.promote, true), (&delta.demote, false)] {
            for chunk in ids.chunks(BATCH) {
                set_admin(self.dialect, id, chunk, admin)
                    .exec(self.conn()?)
                    .await
                    .classify(self.dialect)?;
            }
        }
        Ok(())
    }
}

/// Whether `delta` is written with one statement per kind of change, so
/// that its rows can go out in the statement of the write's history entry.
pub(super) fn fits_one_batch(delta: &MembershipDelta) -> bool {
    [
        delta.insert.len(),
        delta.delete.len(),
        delta.promote.len(),
        delta.demote.len(),
    ]
    .into_iter()
    .all(|rows| rows <= BATCH)
}

/// Adds the writes of `delta`, which [fits one batch](fits_one_batch), to
/// `writes`. The kinds of change name different members (a delta never
/// inserts, deletes or changes the flag of one member twice), so they may
/// run as steps of one PostgreSQL statement, which all read one snapshot.
pub(super) fn membership_writes(
    writes: &mut Writes,
    dialect: Dialect,
    id: &GroupId,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    if !delta.insert.is_empty() {
        writes.push(insert_members(id, &delta.insert).as_query())?;
    }
    if !delta.delete.is_empty() {
        writes.push(delete_members(dialect, id, &delta.delete).as_query())?;
    }
    for (ids, admin) in [(&delta.promote, true), (&delta.demote, false)] {
        if !ids.is_empty() {
            writes.push(set_admin(dialect, id, ids, admin).as_query())?;
        }
    }
    Ok(())
}

/// The insert of `members` into group `id`.
fn insert_members(id: &GroupId, members: &[MemberEntry]) -> InsertMany<group_members::ActiveModel> {
    group_members::Entity::insert_many(members.iter().map(|member| group_members::ActiveModel {
        group_id: Set(id.as_str().to_owned()),
        member_id: Set(member.id.clone()),
        is_admin: Set(member.is_admin),
    }))
}

/// The delete of members `ids` of group `id`.
fn delete_members(
    dialect: Dialect,
    id: &GroupId,
    ids: &[String],
) -> DeleteMany<group_members::Entity> {
    group_members::Entity::delete_many()
        .filter(group_members::Column::GroupId.eq(id.as_str()))
        .filter(dialect.one_of(group_members::Column::MemberId, ids))
}

/// The update that makes members `ids` of group `id` admins or not.
fn set_admin(
    dialect: Dialect,
    id: &GroupId,
    ids: &[String],
    admin: bool,
) -> UpdateMany<group_members::Entity> {
    group_members::Entity::update_many()
        .col_expr(group_members::Column::IsAdmin, Expr::value(admin))
        .filter(group_members::Column::GroupId.eq(id.as_str()))
        .filter(dialect.one_of(group_members::Column::MemberId, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_fits_one_batch_up_to_a_batch_of_each_kind() {
        let ids = |n: usize| (0..n).map(|i| format!("p{i}")).collect::<Vec<_>>();
        let entries = |n: usize| {
            ids(n)
                .into_iter()
                .map(|id| MemberEntry {
                    id,
                    is_admin: false,
                })
                .collect::<Vec<_>>()
        };
        let mut full = MembershipDelta::default();
        full.insert = entries(BATCH);
        full.delete = ids(BATCH);
        full.promote = ids(BATCH);
        full.demote = ids(BATCH);
        assert!(fits_one_batch(&full));
        assert!(fits_one_batch(&MembershipDelta::default()));
        for kind in 0..4 {
            let mut over = full.clone();
            match kind {
                0 => over.insert = entries(BATCH + 1),
                1 => over.delete = ids(BATCH + 1),
                2 => over.promote = ids(BATCH + 1),
                _ => over.demote = ids(BATCH + 1),
            }
            assert!(!fits_one_batch(&over), "kind {kind}");
        }
    }
}
