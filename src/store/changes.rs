//! The `group_changes` table: a group's history, keyed by (group, version).
//! Each row holds a JSON snapshot of the group without its members, and the
//! membership delta of the write.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait as _, ActiveValue,
    ActiveValue::Set,
    ColumnTrait as _, Condition, ConnectionTrait as _, EntityTrait as _, Iterable as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, QueryTrait as _, Statement, Value, Values,
    sea_query::{Expr, Query, SqliteQueryBuilder},
};

use super::{
    Dialect, ReadTx, Store, WriteTx,
    dialect::Writes,
    entities::{group_changes, groups},
    errors::Classify as _,
    groups::{from_json, group_update, label_changes, to_json},
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
        let history = group_changes::Entity::insert(history_row(change)?);
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

/// The history entry of `change`, as a row.
fn history_row(change: &GroupChange) -> Result<group_changes::ActiveModel, Error> {
    let mut snapshot = change.group.clone();
    snapshot.members = None;
    Ok(group_changes::ActiveModel {
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
}

impl Store {
    /// Writes `change`, a write of group `change.group.id`'s row and
    /// labels only (not its members or parents), whose labels were
    /// `labels_before`, in SQLite's group commit without reading in its
    /// transaction, unless the group's version is no longer `expected`:
    /// `Some` once committed, `None` when nothing was written (the group
    /// changed, the statement failed, or there is no group commit:
    /// PostgreSQL), and the write must be done the ordinary way. The
    /// call's deadline cuts it until its statement is about to run (in the
    /// group's transaction, which holds SQLite's write lock); from then
    /// on, it commits.
    ///
    /// The write is one guarded statement (see `group_commit`, "Guarded
    /// writes"): the label rows, the history entry and the change-feed row,
    /// each written only while the group's version is `expected`, then
    /// the row's update where it still is, last, so that it changes one
    /// row exactly when the guard held. Every write of a group's row
    /// raises its version, so an unchanged version means that the row, its
    /// labels, parents and members, and so the caller's standing read
    /// before, are still what they were.
    pub async fn update_if_unchanged(
        &self,
        change: &GroupChange,
        labels_before: &BTreeMap<String, String>,
        expected: i64,
    ) -> Result<Option<()>, Error> {
        let Some(group) = &self.group_commit else {
            return Ok(None);
        };
        let statement = guarded_update(self.dialect, change, labels_before, expected)?;
        group.apply(statement).await
    }
}

/// The statement of [`Store::update_if_unchanged`] (SQLite). Its text is
/// one of two (with label rows or without; the labels go as JSON
/// values), so that the statements of many such writes together take a
/// handful of texts, which SQLite's driver prepares once and keeps.
fn guarded_update(
    dialect: Dialect,
    change: &GroupChange,
    labels_before: &BTreeMap<String, String>,
    expected: i64,
) -> Result<Statement, Error> {
    let id = Value::from(change.group.id.as_str());
    let expected = Value::from(expected);
    let (stale, added) = label_changes(labels_before, &change.group.fields.labels);
    let added: BTreeMap<_, _> = added.into_iter().collect();
    let unchanged = || Expr::cust_with_values(UNCHANGED, [id.clone(), expected.clone()]);

    let history = history_row(change)?;
    let (columns, values): (Vec<_>, Vec<_>) = group_changes::Column::iter()
        .filter_map(|column| match history.get(column) {
            ActiveValue::Set(value) => Some((column, Expr::val(value))),
            _ => None,
        })
        .unzip();
    let mut insert = Query::insert();
    insert
        .into_table(group_changes::Entity)
        .columns(columns)
        .select_from(
            Query::select()
                .exprs(values)
                .and_where(unchanged())
                .to_owned(),
        )
        .map_err(Error::internal)?;
    let (history_sql, Values(history_values)) = insert.build(SqliteQueryBuilder);
    let mut update = group_update(&change.group)?;
    update.and_where(groups::Column::Version.eq(expected.clone()));
    let (update_sql, Values(update_values)) = update.build(SqliteQueryBuilder);

    // The label rows, when they change: the text is one of two, either
    // way.
    let mut sql = String::new();
    let mut all = Vec::new();
    if !stale.is_empty() || !added.is_empty() {
        sql.push_str(&format!(
            "DELETE FROM group_labels WHERE group_id = ? \
             AND key IN (SELECT value FROM json_each(?)) AND {UNCHANGED}; \
             INSERT INTO group_labels (group_id, key, value) \
             SELECT ?, key, value FROM json_each(?) WHERE {UNCHANGED}; "
        ));
        all.extend([
            id.clone(),
            to_json(&stale)?.into(),
            id.clone(),
            expected.clone(),
            id.clone(),
            to_json(&added)?.into(),
            id.clone(),
            expected.clone(),
        ]);
    }
    sql.push_str(&format!(
        "{history_sql}; {feed} WHERE {UNCHANGED}; {update_sql}",
        feed = dialect.feed_insert_sql(1),
    ));
    all.extend(history_values);
    all.extend([
        id.clone(),
        change.version.into(),
        change.change_time.as_micros().into(),
        id,
        expected,
    ]);
    all.extend(update_values);
    Ok(Statement::from_sql_and_values(dialect.backend(), sql, all))
}

/// The guard of [`guarded_update`]'s statements, with two values: the
/// group's id and the version it was read at.
const UNCHANGED: &str = "(SELECT version FROM groups WHERE id = ?) = ?";

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
