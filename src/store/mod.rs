//! Persistence with sea-orm, on SQLite or PostgreSQL behind the same code.
//!
//! Every write runs in a transaction from [`Store::begin_write`], which
//! serializes writers to the same group on both backends: PostgreSQL locks
//! the group's row (`SELECT … FOR UPDATE`, see [`find_group`]), and SQLite
//! starts the transaction `IMMEDIATE`, taking the database write lock before
//! the first read, so a read-merge-write can never act on a stale read.

pub mod entities;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use sea_orm::{
    AccessMode,
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, extension::postgres::PgFunc},
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use self::entities::{group_changes, group_members, group_parents, groups, server_secrets};
use crate::{
    domain::{
        ChangeKind, Group, GroupChange, GroupFields, MemberEntry, State, Timestamp,
        filter::{Filter, TextField, TextOp},
        listing::{CursorKey, GroupCursor, OrderBy, OrderField},
        membership::MembershipDelta,
    },
    error::Error,
};

/// Rows per statement in batched inserts and `IN (…)` lists, well below
/// both backends' bind-parameter limits.
const BATCH: usize = 500;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// The longest one statement may run (PostgreSQL), or wait for another
    /// writer's lock (SQLite's busy timeout).
    pub statement_timeout: Duration,
}

/// The database: a connection pool and the queries groupd runs.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Connects to `url`. A SQLite database file is created when missing,
    /// and put in WAL mode.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let busy_timeout = options.statement_timeout;
        let mut connect = ConnectOptions::new(url.to_owned());
        connect
            .max_connections(options.max_connections)
            .connect_timeout(options.connect_timeout)
            .acquire_timeout(options.acquire_timeout)
            .statement_timeout(options.statement_timeout)
            // Names groupd's sessions in pg_stat_activity.
            .set_application_name("groupd")
            .sqlx_logging_level(tracing::log::LevelFilter::Debug)
            .map_sqlx_sqlite_opts(move |opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL in WAL mode keeps every committed write across
                    // a process crash; only a power loss may lose the last
                    // commits.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true)
            });
        let db = Database::connect(connect).await.map_err(classify)?;
        Ok(Self { db })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), Error> {
        use migrations::MigratorTrait as _;
        migrations::Migrator::up(&self.db, None)
            .await
            .map_err(classify)
    }

    /// The names of the migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        use migrations::MigratorTrait as _;
        // The read-only check creates no migration table: a database never
        // migrated reports every migration pending.
        Ok(
            migrations::Migrator::get_pending_migrations_read_only(&self.db)
                .await
                .map_err(classify)?
                .iter()
                .map(|migration| migration.name().to_owned())
                .collect(),
        )
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.map_err(classify)
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), Error> {
        self.db.close().await.map_err(classify)
    }

    /// Starts a write transaction (see the module documentation).
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, Error> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(classify)
    }

    /// Starts a read-only transaction that sees one consistent snapshot, so
    /// a group and its members are read as of the same moment.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, Error> {
        let result = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            // A SQLite transaction in WAL mode reads one snapshot already.
            _ => self.db.begin().await,
        };
        result.map_err(classify)
    }

    /// The secret named `name`, shared by every replica on this database:
    /// created at random by whichever replica asks first.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>, Error> {
        let fresh: [u8; 32] = rand::random();
        server_secrets::Entity::insert(server_secrets::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(hex(&fresh)),
        })
        .on_conflict_do_nothing()
        .exec(&self.db)
        .await
        .map_err(classify)?;
        let stored = server_secrets::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await
            .map_err(classify)?
            .ok_or_else(|| Error::internal(format!("secret {name:?} vanished after insert")))?;
        Ok(stored.value.into_bytes())
    }
}

/// `column` is one of `ids`. PostgreSQL gets a single array parameter
/// (`= ANY($1)`), which it always plans as index probes: with a long
/// `IN ($1, …)` list and no statistics yet (a freshly filled table), it
/// scans every row of the group and compares each with the whole list,
/// which turned adding 10,000 members to a large group from milliseconds
/// into seconds. SQLite gets the plain `IN` list.
fn one_of<C: ColumnTrait>(backend: DbBackend, column: C, ids: &[String]) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::col(column).eq(PgFunc::any(Expr::val(ids.to_vec()))),
        _ => column.is_in(ids.iter().cloned()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Commits a write transaction, unless the call's deadline has passed
/// (then the transaction is dropped, which rolls it back); see
/// [`crate::deadline`].
pub async fn commit(tx: DatabaseTransaction) -> Result<(), Error> {
    crate::deadline::begin_commit()?;
    tx.commit().await.map_err(classify)
}

/// Turns a database error into the service error a caller should see. The
/// only place that inspects database errors.
pub fn classify(err: DbErr) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => {
            return if message.contains("groups_live_scope_name_key") {
                Error::AlreadyExists {
                    reason: "GROUP_NAME_TAKEN",
                    message: "a live group with this name already exists in its scope".into(),
                    id: String::new(),
                }
            } else if message.contains("request_id") {
                Error::AlreadyExists {
                    reason: "REQUEST_ID_TAKEN",
                    message: "this request_id was used by a concurrent request".into(),
                    id: String::new(),
                }
            } else if message.contains("groups_pkey") || message.contains("groups.id") {
                Error::AlreadyExists {
                    reason: "GROUP_ID_TAKEN",
                    message: "a group with this id already exists".into(),
                    id: String::new(),
                }
            } else {
                Error::internal(err)
            };
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return Error::internal(err),
        _ => {}
    }
    if let DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) = &err
        && let sea_orm::sqlx::Error::Database(db) = e.as_ref()
        // PostgreSQL's serialization_failure and deadlock_detected.
        && matches!(db.code().as_deref(), Some("40001" | "40P01"))
    {
        return Error::Conflict;
    }
    if let DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) = &err
        && let sea_orm::sqlx::Error::Database(db) = e.as_ref()
        // PostgreSQL's query_canceled: `statement_timeout` passed.
        && db.code().as_deref() == Some("57014")
    {
        return Error::DeadlineExceeded;
    }
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            use sea_orm::sqlx::Error as Sqlx;
            match e.as_ref() {
                Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::Tls(_) => true,
                // SQLite answers "database is locked" when another process
                // held the write lock past the busy timeout: worth a retry.
                Sqlx::Database(db) => db.message().contains("database is locked"),
                _ => false,
            }
        }
        _ => false,
    };
    if unavailable {
        Error::Unavailable(Box::new(err))
    } else {
        Error::internal(err)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(Error::internal)
}

fn to_group(row: groups::Model, member_of: Vec<String>) -> Result<Group, Error> {
    Ok(Group {
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
        id: row.id,
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
    })
}

fn group_row(group: &Group) -> Result<groups::ActiveModel, Error> {
    Ok(groups::ActiveModel {
        id: Set(group.id.clone()),
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

/// The parents of each of `ids`, sorted.
async fn parents_of<C: ConnectionTrait>(
    c: &C,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut parents: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let rows = group_parents::Entity::find()
            .filter(one_of(
                c.get_database_backend(),
                group_parents::Column::GroupId,
                chunk,
            ))
            .order_by_asc(group_parents::Column::ParentId)
            .all(c)
            .await
            .map_err(classify)?;
        for row in rows {
            parents.entry(row.group_id).or_default().push(row.parent_id);
        }
    }
    Ok(parents)
}

/// Whether `text` could be stored at all. PostgreSQL text cannot hold NUL,
/// so no stored id has one, and asking for one would be a database error.
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// The group `id`, live or deleted, without its members. With `lock`, the
/// row stays locked against other writers until the transaction ends.
pub async fn find_group<C: ConnectionTrait>(
    c: &C,
    id: &str,
    lock: bool,
) -> Result<Option<Group>, Error> {
    if !storable(id) {
        return Ok(None);
    }
    let mut select = groups::Entity::find_by_id(id.to_owned());
    if lock {
        select = select.lock_exclusive();
    }
    let Some(row) = select.one(c).await.map_err(classify)? else {
        return Ok(None);
    };
    let mut parents = parents_of(c, std::slice::from_ref(&row.id)).await?;
    let member_of = parents.remove(&row.id).unwrap_or_default();
    to_group(row, member_of).map(Some)
}

/// The id of the group created with `request_id`, if any.
pub async fn find_by_request_id<C: ConnectionTrait>(
    c: &C,
    request_id: &str,
) -> Result<Option<String>, Error> {
    let row = groups::Entity::find()
        .filter(groups::Column::RequestId.eq(request_id))
        .one(c)
        .await
        .map_err(classify)?;
    Ok(row.map(|row| row.id))
}

/// Whether any group, live or deleted, has id `id`.
pub async fn group_exists<C: ConnectionTrait>(c: &C, id: &str) -> Result<bool, Error> {
    if !storable(id) {
        return Ok(false);
    }
    let count = groups::Entity::find_by_id(id.to_owned())
        .count(c)
        .await
        .map_err(classify)?;
    Ok(count > 0)
}

/// Which of `ids` are live groups. On PostgreSQL the rows are share-locked,
/// so they cannot be deleted before the calling transaction commits.
pub async fn live_groups_among<C: ConnectionTrait>(
    c: &C,
    ids: &[String],
) -> Result<HashSet<String>, Error> {
    let mut live = HashSet::new();
    for chunk in ids.chunks(BATCH) {
        let rows = groups::Entity::find()
            .filter(one_of(c.get_database_backend(), groups::Column::Id, chunk))
            .filter(groups::Column::DeleteTime.is_null())
            .lock_shared()
            .all(c)
            .await
            .map_err(classify)?;
        live.extend(rows.into_iter().map(|row| row.id));
    }
    Ok(live)
}

/// Serializes changes to the parent graph across transactions on
/// PostgreSQL (a transaction-scoped advisory lock), so two concurrent
/// `member_of` changes cannot each pass the cycle check and together close
/// a cycle. SQLite write transactions are serialized already.
pub async fn lock_hierarchy<C: ConnectionTrait>(c: &C) -> Result<(), Error> {
    if c.get_database_backend() == DbBackend::Postgres {
        // An arbitrary constant naming groupd's hierarchy lock.
        const HIERARCHY_LOCK: i64 = 0x6772_6f75_7064;
        c.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [HIERARCHY_LOCK.into()],
        ))
        .await
        .map_err(classify)?;
    }
    Ok(())
}

/// Whether group `id` is among `parents` or their ancestors, that is,
/// whether making `parents` the parents of `id` would close a cycle.
pub async fn reaches<C: ConnectionTrait>(
    c: &C,
    parents: &[String],
    id: &str,
) -> Result<bool, Error> {
    if parents.is_empty() {
        return Ok(false);
    }
    let backend = c.get_database_backend();
    let placeholder = |n: usize| placeholder(backend, n);
    let list: Vec<String> = (1..=parents.len()).map(placeholder).collect();
    // UNION (not UNION ALL) makes the walk terminate even on a graph that
    // already holds a cycle.
    let sql = format!(
        "WITH RECURSIVE ancestors(id) AS ( \
           SELECT id FROM groups WHERE id IN ({list}) \
           UNION \
           SELECT p.parent_id FROM group_parents p JOIN ancestors a ON p.group_id = a.id \
         ) SELECT COUNT(*) AS hits FROM ancestors WHERE id = {target}",
        list = list.join(", "),
        target = placeholder(parents.len() + 1),
    );
    let mut values: Vec<sea_orm::Value> = parents.iter().map(|p| p.clone().into()).collect();
    values.push(id.to_owned().into());
    let row = c
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(classify)?;
    let hits: i64 = match row {
        Some(row) => row.try_get("", "hits").map_err(classify)?,
        None => 0,
    };
    Ok(hits > 0)
}

/// The live groups `member_id` is a direct member of, sorted by id.
pub async fn live_groups_of_member<C: ConnectionTrait>(
    c: &C,
    member_id: &str,
) -> Result<Vec<String>, Error> {
    if !storable(member_id) {
        return Ok(Vec::new());
    }
    let backend = c.get_database_backend();
    let sql = format!(
        "SELECT m.group_id AS group_id FROM group_members m \
         JOIN groups g ON g.id = m.group_id \
         WHERE m.member_id = {} AND g.delete_time IS NULL \
         ORDER BY m.group_id",
        placeholder(backend, 1)
    );
    let rows = c
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [member_id.to_owned().into()],
        ))
        .await
        .map_err(classify)?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "group_id").map_err(classify))
        .collect()
}

/// Every `member_of` edge `(child, parent)` between live groups above
/// `start`: the edges leaving the start groups, and those leaving every
/// live group reachable from them upward. One recursive query, whatever
/// the depth; `UNION` keeps each group once, so the work is the size of
/// the ancestry. Sorted by child, then parent.
pub async fn ancestry_edges<C: ConnectionTrait>(
    c: &C,
    start: &[String],
) -> Result<Vec<(String, String)>, Error> {
    let backend = c.get_database_backend();
    let mut edges = Vec::new();
    for chunk in start.chunks(BATCH) {
        // PostgreSQL binds the ids as one array (see `one_of`).
        let (condition, values): (String, Vec<sea_orm::Value>) = match backend {
            DbBackend::Postgres => (
                "p.group_id = ANY($1)".to_owned(),
                vec![chunk.to_vec().into()],
            ),
            _ => (
                format!("p.group_id IN ({})", vec!["?"; chunk.len()].join(", ")),
                chunk.iter().map(|id| id.clone().into()).collect(),
            ),
        };
        // The recursion carries the edges themselves, so each step looks up
        // one group's parents through the primary key of `group_parents`
        // (a final join against the whole table was planned as a scan by
        // SQLite). UNION keeps each edge once, so the walk ends.
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
        let rows = c
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(classify)?;
        for row in rows {
            edges.push((
                row.try_get::<String>("", "group_id").map_err(classify)?,
                row.try_get::<String>("", "parent_id").map_err(classify)?,
            ));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    Ok(edges)
}

/// Groups `ids` (those that exist), without members, sorted by id.
pub async fn groups_by_ids<C: ConnectionTrait>(c: &C, ids: &[String]) -> Result<Vec<Group>, Error> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        rows.extend(
            groups::Entity::find()
                .filter(one_of(c.get_database_backend(), groups::Column::Id, chunk))
                .all(c)
                .await
                .map_err(classify)?,
        );
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let found: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut parents = parents_of(c, &found).await?;
    rows.into_iter()
        .map(|row| {
            let member_of = parents.remove(&row.id).unwrap_or_default();
            to_group(row, member_of)
        })
        .collect()
}

/// The `n`th (from 1) bind placeholder of `backend`'s SQL.
fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// Whether a live group other than `except_id` has `name` (compared
/// case-insensitively) in `scope`. The unique index on the same expression
/// is what guarantees it; this check lets the common case answer with the
/// group's id in the error.
pub async fn name_taken<C: ConnectionTrait>(
    c: &C,
    scope: &str,
    name: &str,
    except_id: &str,
) -> Result<bool, Error> {
    let count = groups::Entity::find()
        .filter(groups::Column::Scope.eq(scope))
        .filter(Expr::expr(Func::lower(Expr::col(groups::Column::Name))).eq(name.to_lowercase()))
        .filter(groups::Column::DeleteTime.is_null())
        .filter(groups::Column::Id.ne(except_id))
        .count(c)
        .await
        .map_err(classify)?;
    Ok(count > 0)
}

/// Inserts a new group's row and its parents.
pub async fn insert_group<C: ConnectionTrait>(
    c: &C,
    group: &Group,
    request_id: Option<&str>,
) -> Result<(), Error> {
    let mut row = group_row(group)?;
    row.request_id = Set(request_id.map(str::to_owned));
    groups::Entity::insert(row)
        .exec_without_returning(c)
        .await
        .map_err(classify)?;
    insert_parents(c, &group.id, &group.fields.member_of).await
}

/// Writes every column of an existing group's row. Parents and members are
/// written separately, and only when they change.
pub async fn update_group<C: ConnectionTrait>(c: &C, group: &Group) -> Result<(), Error> {
    groups::Entity::update(group_row(group)?)
        .exec(c)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Replaces the parents of group `id`.
pub async fn replace_parents<C: ConnectionTrait>(
    c: &C,
    id: &str,
    parents: &[String],
) -> Result<(), Error> {
    group_parents::Entity::delete_many()
        .filter(group_parents::Column::GroupId.eq(id))
        .exec(c)
        .await
        .map_err(classify)?;
    insert_parents(c, id, parents).await
}

async fn insert_parents<C: ConnectionTrait>(
    c: &C,
    id: &str,
    parents: &[String],
) -> Result<(), Error> {
    for chunk in parents.chunks(BATCH) {
        let rows = chunk.iter().map(|parent| group_parents::ActiveModel {
            group_id: Set(id.to_owned()),
            parent_id: Set(parent.clone()),
        });
        group_parents::Entity::insert_many(rows)
            .exec_without_returning(c)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

/// Every direct member of group `id`, sorted by id.
pub async fn load_members<C: ConnectionTrait>(c: &C, id: &str) -> Result<Vec<MemberEntry>, Error> {
    let rows = group_members::Entity::find()
        .filter(group_members::Column::GroupId.eq(id))
        .order_by_asc(group_members::Column::MemberId)
        .all(c)
        .await
        .map_err(classify)?;
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
pub async fn list_members<C: ConnectionTrait>(
    c: &C,
    id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, Error> {
    let mut select = group_members::Entity::find()
        .filter(group_members::Column::GroupId.eq(id))
        .order_by_asc(group_members::Column::MemberId)
        .limit(limit);
    if let Some(after) = after {
        select = select.filter(group_members::Column::MemberId.gt(after));
    }
    let rows = select.all(c).await.map_err(classify)?;
    Ok(rows.into_iter().map(|row| row.member_id).collect())
}

/// Which of `ids` are members of group `id`, with their admin flags. Reads
/// only those rows, never the whole membership.
pub async fn members_among<C: ConnectionTrait>(
    c: &C,
    id: &str,
    ids: &[String],
) -> Result<HashMap<String, bool>, Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let rows = group_members::Entity::find()
            .filter(group_members::Column::GroupId.eq(id))
            .filter(one_of(
                c.get_database_backend(),
                group_members::Column::MemberId,
                chunk,
            ))
            .all(c)
            .await
            .map_err(classify)?;
        found.extend(rows.into_iter().map(|row| (row.member_id, row.is_admin)));
    }
    Ok(found)
}

/// Applies a membership delta to group `id`, touching only changed rows.
pub async fn apply_membership<C: ConnectionTrait>(
    c: &C,
    id: &str,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    for chunk in delta.insert.chunks(BATCH) {
        let rows = chunk.iter().map(|member| group_members::ActiveModel {
            group_id: Set(id.to_owned()),
            member_id: Set(member.id.clone()),
            is_admin: Set(member.is_admin),
        });
        group_members::Entity::insert_many(rows)
            .exec_without_returning(c)
            .await
            .map_err(classify)?;
    }
    for chunk in delta.delete.chunks(BATCH) {
        group_members::Entity::delete_many()
            .filter(group_members::Column::GroupId.eq(id))
            .filter(one_of(
                c.get_database_backend(),
                group_members::Column::MemberId,
                chunk,
            ))
            .exec(c)
            .await
            .map_err(classify)?;
    }
    for (ids, admin) in [(&delta.promote, true), (&delta.demote, false)] {
        for chunk in ids.chunks(BATCH) {
            group_members::Entity::update_many()
                .col_expr(group_members::Column::IsAdmin, Expr::value(admin))
                .filter(group_members::Column::GroupId.eq(id))
                .filter(one_of(
                    c.get_database_backend(),
                    group_members::Column::MemberId,
                    chunk,
                ))
                .exec(c)
                .await
                .map_err(classify)?;
        }
    }
    Ok(())
}

/// Appends a history entry for group `change.group.id`.
pub async fn append_change<C: ConnectionTrait>(c: &C, change: &GroupChange) -> Result<(), Error> {
    let mut snapshot = change.group.clone();
    snapshot.members = None;
    group_changes::Entity::insert(group_changes::ActiveModel {
        group_id: Set(change.group.id.clone()),
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
    .exec_without_returning(c)
    .await
    .map_err(classify)?;
    Ok(())
}

/// A page of group `id`'s history, oldest first, after version `after`.
pub async fn list_changes<C: ConnectionTrait>(
    c: &C,
    id: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<GroupChange>, Error> {
    let rows = group_changes::Entity::find()
        .filter(group_changes::Column::GroupId.eq(id))
        .filter(group_changes::Column::Version.gt(after))
        .order_by_asc(group_changes::Column::Version)
        .limit(limit)
        .all(c)
        .await
        .map_err(classify)?;
    rows.into_iter()
        .map(|row| {
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
            })
        })
        .collect()
}

/// What a group listing asks for.
#[derive(Debug, Clone)]
pub struct GroupQuery {
    /// Include deleted groups.
    pub show_deleted: bool,
    /// Only groups matching this filter.
    pub filter: Option<Filter>,
    /// The order.
    pub order: OrderBy,
    /// Start after this group.
    pub after: Option<GroupCursor>,
    /// Most groups to return.
    pub limit: u64,
}

/// The groups a listing matches, on every page.
fn matching(backend: DbBackend, show_deleted: bool, filter: Option<&Filter>) -> Condition {
    let mut condition = Condition::all();
    if !show_deleted {
        condition = condition.add(groups::Column::DeleteTime.is_null());
    }
    if let Some(filter) = filter {
        condition = condition.add(filter_condition(backend, filter));
    }
    condition
}

/// The value of label `key` of a group, or NULL when it has none. Labels
/// are a JSON object in the row; the two backends spell JSON access
/// differently.
fn label_value(backend: DbBackend, key: &str) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::cust_with_values("(\"labels\"::jsonb ->> $1)", [key]),
        // Label keys match ^[a-z][a-z0-9_.-]*$, so quoting them in a JSON
        // path needs no escaping.
        _ => Expr::cust_with_values("json_extract(\"labels\", ?)", [format!("$.\"{key}\"")]),
    }
}

/// Escapes LIKE's wildcards, so a filter value matches only itself.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn filter_condition(backend: DbBackend, filter: &Filter) -> Condition {
    match filter {
        Filter::And(parts) => parts.iter().fold(Condition::all(), |all, part| {
            all.add(filter_condition(backend, part))
        }),
        Filter::Or(parts) => parts.iter().fold(Condition::any(), |any, part| {
            any.add(filter_condition(backend, part))
        }),
        Filter::Not(inner) => filter_condition(backend, inner).not(),
        Filter::Inactive(inactive) => Condition::all().add(groups::Column::Inactive.eq(*inactive)),
        Filter::Deleted(true) => Condition::all().add(groups::Column::DeleteTime.is_not_null()),
        Filter::Deleted(false) => Condition::all().add(groups::Column::DeleteTime.is_null()),
        Filter::HasLabel(key) => Condition::all().add(label_value(backend, key).is_not_null()),
        Filter::Text { field, op } => {
            let value = match field {
                TextField::Name => Expr::col(groups::Column::Name),
                TextField::Scope => Expr::col(groups::Column::Scope),
                TextField::Email => Expr::col(groups::Column::Email),
                TextField::Provenance => Expr::col(groups::Column::Provenance),
                // A missing label compares as the empty string, so that
                // `labels.k != "x"` holds for groups without `k`.
                TextField::Label(key) => {
                    Expr::expr(Func::coalesce([label_value(backend, key), Expr::val("")]))
                }
            };
            let condition = match op {
                TextOp::Equals(text) => value.eq(text.as_str()),
                // "Ignoring ASCII case" on both backends: SQLite's lower()
                // folds ASCII only, and so does PostgreSQL's under the "C"
                // collation (its default collation would fold `É` too).
                TextOp::Contains(text) => {
                    let folded = match backend {
                        DbBackend::Postgres => {
                            Expr::cust_with_expr("lower(($1) COLLATE \"C\")", value)
                        }
                        _ => Expr::expr(Func::lower(value)),
                    };
                    folded.like(
                        LikeExpr::new(format!("%{}%", like_literal(&text.to_ascii_lowercase())))
                            .escape('\\'),
                    )
                }
                TextOp::Present => value.ne(""),
            };
            Condition::all().add(condition)
        }
    }
}

/// A page of groups, without members.
pub async fn list_groups<C: ConnectionTrait>(
    c: &C,
    query: &GroupQuery,
) -> Result<Vec<Group>, Error> {
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
        .filter(matching(
            c.get_database_backend(),
            query.show_deleted,
            query.filter.as_ref(),
        ))
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
    let rows = select.all(c).await.map_err(classify)?;
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut parents = parents_of(c, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let member_of = parents.remove(&row.id).unwrap_or_default();
            to_group(row, member_of)
        })
        .collect()
}

/// How many groups a listing matches across all pages.
pub async fn count_groups<C: ConnectionTrait>(
    c: &C,
    show_deleted: bool,
    filter: Option<&Filter>,
) -> Result<u64, Error> {
    groups::Entity::find()
        .filter(matching(c.get_database_backend(), show_deleted, filter))
        .count(c)
        .await
        .map_err(classify)
}
