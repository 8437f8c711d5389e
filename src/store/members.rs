//! The `group_members` table: one row per (group, direct member), with the
//! admin flag. Membership is never stored in the group's row, so updating a
//! description touches one row, and adding a member reads and writes only
//! that member's row.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, sea_query::Expr,
};

use super::{BATCH, ReadTx, WriteTx, entities::group_members, errors::Classify as _};
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
    /// that change.
    pub async fn apply_membership(
        &self,
        id: &GroupId,
        delta: &MembershipDelta,
    ) -> Result<(), Error> {
        for chunk in delta.insert.chunks(BATCH) {
            let rows = chunk.iter().map(|member| group_members::ActiveModel {
                group_id: Set(id.as_str().to_owned()),
                member_id: Set(member.id.clone()),
                is_admin: Set(member.is_admin),
            });
            group_members::Entity::insert_many(rows)
                .exec_without_returning(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        for chunk in delta.delete.chunks(BATCH) {
            group_members::Entity::delete_many()
                .filter(group_members::Column::GroupId.eq(id.as_str()))
                .filter(self.dialect.one_of(group_members::Column::MemberId, chunk))
                .exec(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        for (ids, admin) in [(&delta.promote, true), (&delta.demote, false)] {
            for chunk in ids.chunks(BATCH) {
                group_members::Entity::update_many()
                    .col_expr(group_members::Column::IsAdmin, Expr::value(admin))
                    .filter(group_members::Column::GroupId.eq(id.as_str()))
                    .filter(self.dialect.one_of(group_members::Column::MemberId, chunk))
                    .exec(self.conn()?)
                    .await
                    .classify(self.dialect)?;
            }
        }
        Ok(())
    }
}
