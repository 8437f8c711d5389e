//! The `groups` table: one row per group with every scalar field; labels
//! and roles are small bounded JSON columns, times are microseconds since
//! the epoch, and `delete_time IS NULL` means live. The labels are also
//! rows of `group_labels`, for filters; this file builds every write of
//! both, and they are written in the same transaction (a write's row
//! update goes out with its history entry, from `changes.rs`).

use std::collections::{BTreeMap, HashSet};

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait as _, Condition, ConnectionTrait as _, EntityName as _, EntityTrait as _,
    FromQueryResult as _, Order, PaginatorTrait as _, QueryFilter as _, QueryOrder as _,
    QueryResult, QuerySelect as _, QueryTrait as _, Select, Statement, Value,
    sea_query::{Expr, ExprTrait as _, Func, UpdateStatement},
};

use super::{
    BATCH, Dialect, ReadTx, Store, WriteTx,
    entities::{group_labels, group_members, groups},
    errors::Classify as _,
    filter,
};
use crate::{
    domain::{
        Group, GroupFields, GroupId, State, Timestamp,
        filter::Filter,
        listing::{CursorKey, GroupCursor, OrderBy, OrderField},
        policy::Standing,
    },
    error::Error,
};

/// What a group listing asks for.
#[derive(Debug, Clone)]
pub struct GroupQuery {
    /// Whether deleted groups are listed too.
    pub show_deleted: bool,
    /// Only groups matching this filter; `None` for every group.
    pub filter: Option<Filter>,
    /// The order of the listing (ties broken by id).
    pub order: OrderBy,
    /// Start strictly after this group; `None` for the first page.
    pub after: Option<GroupCursor>,
    /// Most groups to return.
    pub limit: u64,
    /// Only the groups this principal is a direct member of; `None` for
    /// every group.
    pub member: Option<String>,
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::internal)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(Error::internal)
}

fn to_group(row: groups::Model, member_of: Vec<String>) -> Result<Group, Error> {
    Ok(Group {
        id: GroupId::parse(row.id)
            .map_err(|_| Error::internal("a stored group id does not parse"))?,
        fields: GroupFields {
            name: row.name,
            scope: row.scope,
            description: row.description,
            email: row.email,
            member_of,
            assigned_roles: from_json(&row.assigned_roles)?,
            inactive: row.inactive,
            provenance: row.provenance,
            labels: from_json(&row.labels)?,
        },
        state: if row.delete_time.is_some() {
            State::Deleted
        } else {
            State::Active
        },
        create_time: Timestamp::from_micros(row.create_time),
        update_time: Timestamp::from_micros(row.update_time),
        delete_time: row.delete_time.map(Timestamp::from_micros),
        created_by: row.created_by,
        updated_by: row.updated_by,
        member_count: row.member_count,
        version: row.version,
        members: None,
        permissions: Vec::new(),
    })
}

fn group_row(group: &Group) -> Result<groups::ActiveModel, Error> {
    Ok(groups::ActiveModel {
        id: Set(group.id.as_str().to_owned()),
        name: Set(group.fields.name.clone()),
        scope: Set(group.fields.scope.clone()),
        description: Set(group.fields.description.clone()),
        email: Set(group.fields.email.clone()),
        inactive: Set(group.fields.inactive),
        provenance: Set(group.fields.provenance.clone()),
        labels: Set(to_json(&group.fields.labels)?),
        assigned_roles: Set(to_json(&group.fields.assigned_roles)?),
        member_count: Set(group.member_count),
        version: Set(group.version),
        create_time: Set(group.create_time.as_micros()),
        update_time: Set(group.update_time.as_micros()),
        delete_time: Set(group.delete_time.map(Timestamp::as_micros)),
        created_by: Set(group.created_by.clone()),
        updated_by: Set(group.updated_by.clone()),
        request_id: NotSet,
    })
}

/// The update that writes the columns a write can change of an existing
/// group's row (all but its id, creation and request id). Labels, parents
/// and members are written separately, and only when they change. A write
/// sends it with its history entry (see `WriteTx::append_change`).
pub(super) fn group_update(group: &Group) -> Result<UpdateStatement, Error> {
    let mut row = group_row(group)?;
    row.id = NotSet;
    row.create_time = NotSet;
    row.created_by = NotSet;
    Ok(groups::Entity::update_many()
        .set(row)
        .filter(groups::Column::Id.eq(group.id.as_str()))
        .into_query())
}

/// What turns label rows `before` into `after`: the keys whose rows go
/// (removed or changed), and the rows to insert (added or changed).
pub(super) fn label_changes<'a>(
    before: &BTreeMap<String, String>,
    after: &'a BTreeMap<String, String>,
) -> (Vec<String>, Vec<(&'a String, &'a String)>) {
    let stale = before
        .iter()
        .filter(|(key, value)| after.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    let added = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .collect();
    (stale, added)
}

/// The statement that reads one group (live or deleted, without members),
/// its parents and the standing of one principal in it: one round trip
/// where there were three. Its values are [`group_read_values`], in the
/// order of their placeholders (SQLite's `?` are numbered by position).
fn group_read(dialect: Dialect) -> String {
    format!(
        "SELECT g.*, {parents} AS parents, m.is_admin AS caller_is_admin \
         FROM groups g \
         LEFT JOIN group_members m ON m.group_id = g.id AND m.member_id = {principal} \
         WHERE g.id = {id}",
        parents = parents_of_row(dialect, "g"),
        principal = dialect.placeholder(1),
        id = dialect.placeholder(2),
    )
}

/// The parents of the group of the row of `table` (a name or an alias),
/// as the text of a JSON array: a subquery for a statement's select list,
/// so that groups come with their parents in the statement that reads
/// them (it reads `group_parents` by its primary key).
fn parents_of_row(dialect: Dialect, table: &str) -> String {
    format!(
        "(SELECT {} FROM group_parents p WHERE p.group_id = {table}.id)",
        dialect.json_array_of("p.parent_id"),
    )
}

/// The values of [`group_read`]: `principal` (NULL, which matches no
/// member, for nobody), and group `id`.
fn group_read_values(id: &GroupId, principal: Option<&str>) -> [Value; 2] {
    [principal.map(str::to_owned).into(), id.as_str().into()]
}

/// A group and a standing from a row of [`group_read`].
fn read_group_row(row: &QueryResult) -> Result<(Group, Standing), Error> {
    let is_admin: Option<bool> = row
        .try_get("", "caller_is_admin")
        .map_err(Error::internal)?;
    let standing = is_admin.map_or(Standing::STRANGER, Standing::of_member);
    Ok((read_group(row)?, standing))
}

/// A group from a row of its table's columns and `parents`
/// ([`parents_of_row`]).
fn read_group(row: &QueryResult) -> Result<Group, Error> {
    let model = groups::Model::from_query_result(row, "").map_err(Error::internal)?;
    let parents: String = row.try_get("", "parents").map_err(Error::internal)?;
    let mut member_of: Vec<String> = from_json(&parents)?;
    member_of.sort_unstable();
    to_group(model, member_of)
}

impl Store {
    /// Group `id`, live or deleted, without its members, with the standing
    /// of `principal` in it (`None`: nobody's): one statement outside any
    /// transaction, for a call that reads nothing else (GetGroup in its
    /// BASIC view). One statement sees one snapshot, so the group, its
    /// parents and the standing are of the same moment. The call's deadline
    /// bounds it as any statement on SQLite (see `calls.rs`); on PostgreSQL
    /// the statement timeout does, as a primary-key read.
    pub async fn find_group_for(
        &self,
        id: &GroupId,
        principal: Option<&str>,
    ) -> Result<Option<(Group, Standing)>, Error> {
        let sql = group_read(self.dialect);
        let row = self
            .on_open_connection(|| {
                self.db.query_one_raw(Statement::from_sql_and_values(
                    self.dialect.backend(),
                    sql.clone(),
                    group_read_values(id, principal),
                ))
            })
            .await
            .classify(self.dialect)?;
        row.as_ref().map(read_group_row).transpose()
    }
}

impl ReadTx {
    /// The groups `select` reads, each with its parents, in one statement
    /// ([`parents_of_row`]).
    async fn groups_with_parents(
        &self,
        select: Select<groups::Entity>,
    ) -> Result<Vec<Group>, Error> {
        let statement = select
            .column_as(
                Expr::cust(parents_of_row(self.dialect, groups::Entity.table_name())),
                "parents",
            )
            .build(self.dialect.backend());
        let rows = self
            .conn()?
            .query_all_raw(statement)
            .await
            .classify(self.dialect)?;
        rows.iter().map(read_group).collect()
    }

    /// Group `id`, live or deleted, without its members.
    pub async fn find_group(&self, id: &GroupId) -> Result<Option<Group>, Error> {
        Ok(self.find_group_for(id, None).await?.map(|(group, _)| group))
    }

    /// Group `id`, live or deleted, without its members, with the standing
    /// of `principal` in it (`None`: nobody's), in one statement.
    pub async fn find_group_for(
        &self,
        id: &GroupId,
        principal: Option<&str>,
    ) -> Result<Option<(Group, Standing)>, Error> {
        let rows = self
            .query_raw(group_read(self.dialect), group_read_values(id, principal))
            .await?;
        rows.first().map(read_group_row).transpose()
    }

    /// The id of the group created with `request_id`, if any.
    pub async fn find_by_request_id(&self, request_id: &str) -> Result<Option<GroupId>, Error> {
        let row = groups::Entity::find()
            .filter(groups::Column::RequestId.eq(request_id))
            .one(self.conn()?)
            .await
            .classify(self.dialect)?;
        row.map(|row| GroupId::parse(row.id))
            .transpose()
            .map_err(|_| Error::internal("a stored group id does not parse"))
    }

    /// Whether any group, live or deleted, has id `id`.
    pub async fn group_exists(&self, id: &GroupId) -> Result<bool, Error> {
        let count = groups::Entity::find_by_id(id.as_str())
            .count(self.conn()?)
            .await
            .classify(self.dialect)?;
        Ok(count > 0)
    }

    /// Groups `ids` (those that exist), without members, sorted by id.
    pub async fn groups_by_ids(&self, ids: &[String]) -> Result<Vec<Group>, Error> {
        let mut groups = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            groups.extend(
                self.groups_with_parents(
                    groups::Entity::find().filter(self.dialect.one_of(groups::Column::Id, chunk)),
                )
                .await?,
            );
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    /// A page of groups, without members.
    pub async fn list_groups(&self, query: &GroupQuery) -> Result<Vec<Group>, Error> {
        let column = match query.order.field {
            OrderField::Name => groups::Column::Name,
            OrderField::CreateTime => groups::Column::CreateTime,
            OrderField::UpdateTime => groups::Column::UpdateTime,
        };
        let order = if query.order.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let mut select = groups::Entity::find()
            .filter(filter::matching(
                self.dialect,
                query.show_deleted,
                query.filter.as_ref(),
            ))
            .filter(member_of(query.member.as_deref()))
            .order_by(column, order.clone())
            .order_by(groups::Column::Id, order)
            .limit(query.limit);
        if let Some(after) = &query.after {
            let key: sea_orm::Value = match &after.key {
                CursorKey::Text(text) => text.clone().into(),
                CursorKey::Micros(micros) => (*micros).into(),
            };
            let (past_key, past_id) = if query.order.descending {
                (
                    column.lt(key.clone()),
                    groups::Column::Id.lt(after.id.clone()),
                )
            } else {
                (
                    column.gt(key.clone()),
                    groups::Column::Id.gt(after.id.clone()),
                )
            };
            select = select.filter(
                Condition::any()
                    .add(past_key)
                    .add(Condition::all().add(column.eq(key)).add(past_id)),
            );
        }
        self.groups_with_parents(select).await
    }

    /// How many groups a listing matches across all pages.
    pub async fn count_groups(
        &self,
        show_deleted: bool,
        filter: Option<&Filter>,
        member: Option<&str>,
    ) -> Result<u64, Error> {
        groups::Entity::find()
            .filter(filter::matching(self.dialect, show_deleted, filter))
            .filter(member_of(member))
            .count(self.conn()?)
            .await
            .classify(self.dialect)
    }
}

/// The groups `member` is a direct member of (through the index on
/// members), or every group when `None`.
fn member_of(member: Option<&str>) -> Condition {
    match member {
        None => Condition::all(),
        Some(member) => Condition::all().add(
            groups::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(group_members::Column::GroupId)
                    .from(group_members::Entity)
                    .and_where(group_members::Column::MemberId.eq(member))
                    .to_owned(),
            ),
        ),
    }
}

impl WriteTx {
    /// Group `id`, live or deleted, without its members, locked against
    /// other writers until the transaction ends, with the standing of
    /// `principal` in it (`None`: nobody's): one statement on SQLite, whose
    /// write transaction holds the lock already, and a lock before it on
    /// PostgreSQL (see [`Dialect::group_row_lock`](super::Dialect::group_row_lock)).
    pub async fn lock_group_for(
        &self,
        id: &GroupId,
        principal: Option<&str>,
    ) -> Result<Option<(Group, Standing)>, Error> {
        if let Some(lock) = self.dialect.group_row_lock() {
            self.query_raw(lock, [id.as_str().into()]).await?;
        }
        self.find_group_for(id, principal).await
    }

    /// Which of `ids` are live groups. On PostgreSQL the rows are
    /// share-locked, so they cannot be deleted before this transaction
    /// commits.
    pub async fn live_groups_among(&self, ids: &[String]) -> Result<HashSet<String>, Error> {
        let mut live = HashSet::new();
        for chunk in ids.chunks(BATCH) {
            let rows = groups::Entity::find()
                .filter(self.dialect.one_of(groups::Column::Id, chunk))
                .filter(groups::Column::DeleteTime.is_null())
                .lock_shared()
                .all(self.conn()?)
                .await
                .classify(self.dialect)?;
            live.extend(rows.into_iter().map(|row| row.id));
        }
        Ok(live)
    }

    /// Whether a live group other than `except` has `name` (compared
    /// case-insensitively) in `scope`. The unique index on the same
    /// expression is what guarantees it; this check lets the common case
    /// answer with the group's id in the error.
    pub async fn name_taken(
        &self,
        scope: &str,
        name: &str,
        except: &GroupId,
    ) -> Result<bool, Error> {
        let count = groups::Entity::find()
            .filter(groups::Column::Scope.eq(scope))
            .filter(
                Expr::expr(Func::lower(Expr::col(groups::Column::Name))).eq(name.to_lowercase()),
            )
            .filter(groups::Column::DeleteTime.is_null())
            .filter(groups::Column::Id.ne(except.as_str()))
            .count(self.conn()?)
            .await
            .classify(self.dialect)?;
        Ok(count > 0)
    }

    /// Inserts a new group's row and its parents.
    pub async fn insert_group(&self, group: &Group, request_id: Option<&str>) -> Result<(), Error> {
        let mut row = group_row(group)?;
        row.request_id = Set(request_id.map(str::to_owned));
        groups::Entity::insert(row)
            .exec_without_returning(self.conn()?)
            .await
            .classify(self.dialect)?;
        self.insert_labels(&group.id, group.fields.labels.iter())
            .await?;
        self.insert_parents(&group.id, &group.fields.member_of)
            .await
    }

    /// Turns the label rows of group `id` from `before` (what they hold)
    /// into `after`: the rows of removed or changed keys are deleted and
    /// those of added or changed keys inserted; the others are left alone.
    pub async fn replace_labels(
        &self,
        id: &GroupId,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let (stale, added) = label_changes(before, after);
        for chunk in stale.chunks(BATCH) {
            group_labels::Entity::delete_many()
                .filter(group_labels::Column::GroupId.eq(id.as_str()))
                .filter(self.dialect.one_of(group_labels::Column::Key, chunk))
                .exec(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        self.insert_labels(id, added.into_iter()).await
    }

    /// Inserts label rows of group `id`, which has none for these keys.
    async fn insert_labels<'a>(
        &self,
        id: &GroupId,
        labels: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Result<(), Error> {
        let rows: Vec<group_labels::ActiveModel> = labels
            .map(|(key, value)| group_labels::ActiveModel {
                group_id: Set(id.as_str().to_owned()),
                key: Set(key.clone()),
                value: Set(value.clone()),
            })
            .collect();
        for chunk in rows.chunks(BATCH) {
            group_labels::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(self.conn()?)
                .await
                .classify(self.dialect)?;
        }
        Ok(())
    }
}
