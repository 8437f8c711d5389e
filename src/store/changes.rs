//! The `group_changes` table: a group's history, keyed by (group, version).
//! Each row holds a JSON snapshot of the group without its members, and the
//! membership delta of the write.

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, Condition, ConnectionTrait as _, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, QueryTrait as _, Statement,
};

use super::{
    ReadTx, WriteTx,
    dialect::Writes,
    entities::group_changes,
    errors::Classify as _,
    groups::{from_json, group_update, to_json},
    members::{fits_one_batch, membership_writes},
};
use crate::{
    domain::{ChangeKind, GroupChange, GroupId, Timestamp, membership::MembershipDelta},
    error::Error,
};

impl ReadTx {
    /// A page of group `id`'s history, oldest first, after version `after`.
    pub async fn list_changes(
        &self,
        id: &GroupId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<GroupChange>, Error> {
        let rows = group_changes::Entity::find()
            .filter(group_changes::Column::GroupId.eq(id.as_str()))
            .filter(group_changes::Column::Version.gt(after))
            .order_by_asc(group_changes::Column::Version)
            .limit(limit)
            .all(self.conn()?)
            .await
            .classify(self.dialect)?;
        rows.into_iter().map(to_change).collect()
    }

    /// The entries of group `id`'s history after version `after` whose
    /// membership delta names `principal`, newest first: what to undo
    /// from the principal's standing now to find its standing at
    /// `after`.
    pub async fn changes_naming(
        &self,
        id: &GroupId,
        after: i64,
        principal: &str,
    ) -> Result<Vec<GroupChange>, Error> {
        // The deltas are JSON arrays of ids, so an entry naming the
        // principal holds it quoted. The pattern only narrows the rows
        // read (`_` in an id matches any character, which keeps more);
        // the exact test is the caller's, on the parsed delta.
        let quoted = format!("%\"{principal}\"%");
        let rows = group_changes::Entity::find()
            .filter(group_changes::Column::GroupId.eq(id.as_str()))
            .filter(group_changes::Column::Version.gt(after))
            .filter(
                Condition::any()
                    .add(group_changes::Column::MembersAdded.like(quoted.as_str()))
                    .add(group_changes::Column::MembersRemoved.like(quoted.as_str()))
                    .add(group_changes::Column::AdminsAdded.like(quoted.as_str()))
                    .add(group_changes::Column::AdminsRemoved.like(quoted.as_str())),
            )
            .order_by_desc(group_changes::Column::Version)
            .all(self.conn()?)
            .await
            .classify(self.dialect)?;
        rows.into_iter().map(to_change).collect()
    }
}

/// What a write's history entry is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRow {
    /// Nothing: the group's row is written already. A create inserts it
    /// first, as its labels, parents and members refer to it.
    Written,
    /// The update of the group's row to the entry's snapshot
    /// ([`group_update`]), in the same statement.
    Update,
}

impl WriteTx {
    /// Writes the membership rows of `delta` (of group `change.group.id`),
    /// appends the write's history entry, places it in the change feed
    /// and, for [`GroupRow::Update`], writes the group's row: one round
    /// trip for all (see [`Writes`]), unless the delta is too large for one
    /// statement per kind of change, whose rows then go first, in batches.
    /// The steps write different tables or, for the members, different
    /// rows, so their order does not matter.
    pub async fn append_change(
        &self,
        change: &GroupChange,
        row: GroupRow,
        delta: &MembershipDelta,
    ) -> Result<(), Error> {
        let statement = self.change_statement(change, row, delta).await?;
        self.conn()?
            .execute_raw(statement)
            .await
            .classify(self.dialect)?;
        Ok(())
    }

    /// The one statement of [`Self::append_change`], after the membership
    /// rows that do not fit in it (written first, in batches).
    pub(super) async fn change_statement(
        &self,
        change: &GroupChange,
        row: GroupRow,
        delta: &MembershipDelta,
    ) -> Result<Statement, Error> {
        let mut snapshot = change.group.clone();
        snapshot.members = None;
        let history = group_changes::Entity::insert(group_changes::ActiveModel {
            group_id: Set(change.group.id.as_str().to_owned()),
            version: Set(change.version),
            change_time: Set(change.change_time.as_micros()),
            actor: Set(change.actor.clone()),
            kind: Set(change.kind.as_str().to_owned()),
            update_mask: Set(change.update_mask.join(",")),
            snapshot: Set(to_json(&snapshot)?),
            members_added: Set(to_json(&change.members_added)?),
            members_removed: Set(to_json(&change.members_removed)?),
            admins_added: Set(to_json(&change.admins_added)?),
            admins_removed: Set(to_json(&change.admins_removed)?),
        });
        let mut writes = Writes::new(self.dialect);
        if fits_one_batch(delta) {
            membership_writes(&mut writes, self.dialect, &change.group.id, delta)?;
        } else {
            self.apply_membership(&change.group.id, delta).await?;
        }
        writes.push(history.as_query())?;
        if row == GroupRow::Update {
            writes.push(&group_update(&change.group)?)?;
        }
        Ok(writes.then(
            |first| self.dialect.feed_insert_sql(first),
            [
                change.group.id.as_str().into(),
                change.version.into(),
                change.change_time.as_micros().into(),
            ],
        ))
    }
}

pub(super) fn to_change(row: group_changes::Model) -> Result<GroupChange, Error> {
    let kind = ChangeKind::parse(&row.kind)
        .ok_or_else(|| Error::internal(format!("unknown change kind {:?}", row.kind)))?;
    Ok(GroupChange {
        version: row.version,
        change_time: Timestamp::from_micros(row.change_time),
        actor: row.actor,
        kind,
        update_mask: row
            .update_mask
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        group: from_json(&row.snapshot)?,
        members_added: from_json(&row.members_added)?,
        members_removed: from_json(&row.members_removed)?,
        admins_added: from_json(&row.admins_added)?,
        admins_removed: from_json(&row.admins_removed)?,
        delta_truncated: false,
    })
}
