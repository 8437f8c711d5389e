//! The `group_changes` table: a group's history, keyed by (group, version).
//! Each row holds a JSON snapshot of the group without its members, and the
//! membership delta of the write.

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
};

use super::{
    ReadTx, WriteTx,
    entities::group_changes,
    errors::Classify as _,
    groups::{from_json, to_json},
};
use crate::{
    domain::{ChangeKind, GroupChange, GroupId, Timestamp},
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
            .all(&self.tx)
            .await
            .classify(self.dialect)?;
        rows.into_iter().map(to_change).collect()
    }
}

impl WriteTx {
    /// Appends a history entry for group `change.group.id`, and places it
    /// in the change feed.
    pub async fn append_change(&self, change: &GroupChange) -> Result<(), Error> {
        let mut snapshot = change.group.clone();
        snapshot.members = None;
        group_changes::Entity::insert(group_changes::ActiveModel {
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
        })
        .exec_without_returning(&self.tx)
        .await
        .classify(self.dialect)?;
        self.append_to_feed(
            &change.group.id,
            change.version,
            change.change_time.as_micros(),
        )
        .await
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
