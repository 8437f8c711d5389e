//! The database ceiling: the database work of each call kind, done
//! directly on the server's database with the statements groupd's store
//! runs for it (`src/store/*.rs`), in transactions of the same kinds, from
//! the same number of tasks, with no gRPC and no service code. It is what
//! the database alone allows for these calls on this machine.
//!
//! What each kind runs, for a caller whose rights do not depend on the
//! group (groups.admin, or authentication off), as groupd does:
//!
//! - get: a read transaction; the group's row by primary key; its parents.
//! - list: a read transaction; a page of 51 live groups in create-time
//!   order after the task's cursor, each with its parents; their count;
//!   the change feed's newest position (the listing's cursor).
//! - check: a read transaction; the asked group's row and parents; the
//!   principal's live groups; the recursive query of the ancestry's edges
//!   (`ancestry_edges` in `src/store/hierarchy.rs`).
//! - member-groups: the same walk, then the reached groups' rows, each
//!   with its parents.
//! - update: a write transaction (SQLite `BEGIN IMMEDIATE`); the task's
//!   group row locked (`FOR UPDATE` on PostgreSQL) and its parents; in one
//!   statement, the history entry (a JSON snapshot), every column a write
//!   changes written back with the new description, version and update
//!   time, and the change-feed row; the members read for the reply, when
//!   the row counts any; commit.
//! - add: a write transaction; the task's add group locked, its parents;
//!   the named principal's member row looked up; in one statement, the
//!   member row, the history entry, the group row written with one more
//!   member, and the change-feed row; commit.
//!
//! The writes are real: the update and add groups get new versions,
//! members and history entries (actor `groupd-load`), exactly as from the
//! API, so the dataset stays consistent and a watcher sees them as
//! changes. Left out, as not database work: authorization, the SQLite
//! progress handler that stops statements of calls that are over, the
//! walk and page slots (which bound how many walks run at once), and on
//! PostgreSQL the change feed's sequencer (which numbers committed feed
//! rows in the background).

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, QueryResult, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait as _, Value,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use serde_json::json;

use crate::{cli::Kind, dataset::Dataset, run::Worker, stats::Outcome};

/// The actor of the ceiling's writes in the groups' history.
const ACTOR: &str = "groupd-load";

/// Every column of `groups`, as sea-orm selects them.
const GROUP_COLUMNS: &str = "id, name, scope, description, email, inactive, provenance, labels, \
     assigned_roles, member_count, version, create_time, update_time, delete_time, created_by, \
     updated_by, request_id";

/// A pool on the server's database, configured as groupd configures its
/// own.
#[derive(Debug, Clone)]
pub struct Database {
    db: DatabaseConnection,
    backend: DbBackend,
    described: Arc<str>,
}

impl Database {
    pub async fn connect(url: &str, connections: u32) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(connections)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .statement_timeout(Duration::from_secs(10))
            .set_application_name("groupd-load")
            .sqlx_logging(false)
            // As groupd: a pooled connection is pinged only after a second
            // idle, not on every checkout.
            .test_before_acquire_if_idle_for(Duration::from_secs(1))
            .map_sqlx_sqlite_opts(|opts| {
                // The server's file, never a new one.
                opts.create_if_missing(false)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        let db = sea_orm::Database::connect(options)
            .await
            .with_context(|| format!("cannot connect to the database {}", redact(url)))?;
        let backend = db.get_database_backend();
        if !matches!(backend, DbBackend::Postgres | DbBackend::Sqlite) {
            anyhow::bail!("groupd runs on SQLite or PostgreSQL, not {backend:?}");
        }
        Ok(Self {
            db,
            backend,
            described: Arc::from(redact(url)),
        })
    }

    /// The database's URL without its password.
    pub fn describe(&self) -> &str {
        &self.described
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    /// A read transaction that sees one snapshot, as groupd begins them.
    async fn begin_read(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.db.begin().await,
        }
    }

    /// A write transaction: SQLite's takes the write lock at once.
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = match self.backend {
            DbBackend::Postgres => TransactionOptions::default(),
            _ => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
        };
        self.db.begin_with_options(options).await
    }
}

/// `url` with its password replaced.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A statement's text with `$n` placeholders turned into SQLite's `?` (the
/// statements here bind each value once, in order).
fn sql(backend: DbBackend, text: &str) -> String {
    match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

/// A failed statement, counted by the database error's class.
fn failed(error: &DbErr) -> Outcome {
    let code = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => "database: connection",
        DbErr::Exec(_) => "database: execution",
        DbErr::Query(_) => "database: query",
        _ => "database: other",
    };
    Outcome::NotOk {
        code: code.to_owned(),
        message: error.to_string(),
    }
}

/// One group row, as the store reads it.
#[derive(Debug, Clone)]
struct GroupRow {
    id: String,
    name: String,
    scope: String,
    description: String,
    email: String,
    inactive: bool,
    provenance: String,
    labels: String,
    assigned_roles: String,
    member_count: i64,
    version: i64,
    create_time: i64,
    update_time: i64,
    delete_time: Option<i64>,
    created_by: String,
    updated_by: String,
}

impl GroupRow {
    fn read(row: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.try_get("", "id")?,
            name: row.try_get("", "name")?,
            scope: row.try_get("", "scope")?,
            description: row.try_get("", "description")?,
            email: row.try_get("", "email")?,
            inactive: row.try_get("", "inactive")?,
            provenance: row.try_get("", "provenance")?,
            labels: row.try_get("", "labels")?,
            assigned_roles: row.try_get("", "assigned_roles")?,
            member_count: row.try_get("", "member_count")?,
            version: row.try_get("", "version")?,
            create_time: row.try_get("", "create_time")?,
            update_time: row.try_get("", "update_time")?,
            delete_time: row.try_get("", "delete_time")?,
            created_by: row.try_get("", "created_by")?,
            updated_by: row.try_get("", "updated_by")?,
        })
    }

    /// The history snapshot groupd stores for the group as it stands: its
    /// JSON form, without members.
    fn snapshot(&self, parents: &[String]) -> String {
        let labels: serde_json::Value =
            serde_json::from_str(&self.labels).unwrap_or_else(|_| json!({}));
        let roles: serde_json::Value =
            serde_json::from_str(&self.assigned_roles).unwrap_or_else(|_| json!([]));
        json!({
            "id": self.id,
            "fields": {
                "name": self.name,
                "scope": self.scope,
                "description": self.description,
                "email": self.email,
                "member_of": parents,
                "assigned_roles": roles,
                "inactive": self.inactive,
                "provenance": self.provenance,
                "labels": labels,
            },
            "state": if self.delete_time.is_some() { "Deleted" } else { "Active" },
            "create_time": self.create_time,
            "update_time": self.update_time,
            "delete_time": self.delete_time,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "member_count": self.member_count,
            "version": self.version,
        })
        .to_string()
    }
}

/// One task's database work.
#[derive(Debug)]
pub struct DbWorker {
    database: Database,
    data: Arc<Dataset>,
    rng: StdRng,
    run: String,
    task: usize,
    calls: u64,
    /// The last group of the previous ListGroups page: (create time, id).
    list_after: Option<(i64, String)>,
}

impl DbWorker {
    pub fn new(database: Database, data: Arc<Dataset>, run: &str, task: usize) -> Self {
        Self {
            database,
            data,
            rng: StdRng::seed_from_u64(0x6462 ^ task as u64),
            run: run.to_owned(),
            task,
            calls: 0,
            list_after: None,
        }
    }

    fn backend(&self) -> DbBackend {
        self.database.backend
    }

    fn statement(&self, text: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql(self.backend(), text), values)
    }

    /// The condition that `column` is one of `ids`, and its values, with
    /// placeholders from `$first`: one array on PostgreSQL, a list on
    /// SQLite (`Dialect::one_of_sql`).
    fn one_of(&self, column: &str, ids: &[String], first: usize) -> (String, Vec<Value>) {
        match self.backend() {
            DbBackend::Postgres => (
                format!("{column} = ANY(${first})"),
                vec![ids.to_vec().into()],
            ),
            _ => (
                format!(
                    "{column} IN ({})",
                    (0..ids.len())
                        .map(|n| format!("${}", first + n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ids.iter().map(|id| id.clone().into()).collect(),
            ),
        }
    }

    /// The parents of the group of the row of `table`, as a JSON array
    /// (`parents_of_row`).
    fn parents_of_row(&self, table: &str) -> String {
        let parents = match self.backend() {
            DbBackend::Postgres => "COALESCE(json_agg(p.parent_id), '[]'::json)::text",
            _ => "json_group_array(p.parent_id)",
        };
        format!("(SELECT {parents} FROM group_parents p WHERE p.group_id = {table}.id)")
    }

    /// The statement of `find_group_for`: group `id`, its parents as a
    /// JSON array, and the standing of a principal (none here, as
    /// `groups.admin` reads) in it.
    fn group_read(&self, id: &str) -> Statement {
        let text = format!(
            "SELECT g.*, {} AS parents, m.is_admin AS caller_is_admin \
             FROM groups g \
             LEFT JOIN group_members m ON m.group_id = g.id AND m.member_id = $1 \
             WHERE g.id = $2",
            self.parents_of_row("g")
        );
        self.statement(&text, vec![Option::<String>::None.into(), id.into()])
    }

    /// A row of [`Self::group_read`]: the group and its parents.
    fn read_group(row: &QueryResult) -> Result<(GroupRow, Vec<String>), DbErr> {
        let _standing: Option<bool> = row.try_get("", "caller_is_admin")?;
        Self::read_group_with_parents(row)
    }

    /// A row of a group's columns and its `parents`.
    fn read_group_with_parents(row: &QueryResult) -> Result<(GroupRow, Vec<String>), DbErr> {
        let parents: String = row.try_get("", "parents")?;
        let mut parents: Vec<String> =
            serde_json::from_str(&parents).map_err(|error| DbErr::Json(error.to_string()))?;
        parents.sort_unstable();
        Ok((GroupRow::read(row)?, parents))
    }

    /// The live groups `member` is a direct member of
    /// (`live_groups_of_member`).
    async fn groups_of(
        &self,
        tx: &DatabaseTransaction,
        member: &str,
    ) -> Result<Vec<String>, DbErr> {
        let text = "SELECT m.group_id AS group_id FROM group_members m \
                    JOIN groups g ON g.id = m.group_id \
                    WHERE m.member_id = $1 AND g.delete_time IS NULL \
                    ORDER BY m.group_id";
        tx.query_all_raw(self.statement(text, vec![member.into()]))
            .await?
            .iter()
            .map(|row| row.try_get("", "group_id"))
            .collect()
    }

    /// The `member_of` edges above `start` (`ancestry_edges`).
    async fn ancestry(
        &self,
        tx: &DatabaseTransaction,
        start: &[String],
    ) -> Result<Vec<(String, String)>, DbErr> {
        if start.is_empty() {
            return Ok(Vec::new());
        }
        let (condition, values) = self.one_of("p.group_id", start, 1);
        let text = format!(
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
        let mut edges = tx
            .query_all_raw(self.statement(&text, values))
            .await?
            .iter()
            .map(|row| Ok((row.try_get("", "group_id")?, row.try_get("", "parent_id")?)))
            .collect::<Result<Vec<(String, String)>, DbErr>>()?;
        edges.sort_unstable();
        edges.dedup();
        Ok(edges)
    }

    async fn get(&mut self) -> Result<Outcome, DbErr> {
        let id = self.data.groups[self.rng.random_range(0..self.data.groups.len())].clone();
        // One statement outside any transaction, as groupd's BASIC view.
        let row = self.database.db.query_one_raw(self.group_read(&id)).await?;
        Ok(match row.as_ref().map(Self::read_group).transpose()? {
            Some((row, _)) if row.id == id => Outcome::Right,
            _ => Outcome::Wrong("the group's row is missing".into()),
        })
    }

    async fn list(&mut self) -> Result<Outcome, DbErr> {
        let page = crate::calls::LIST_PAGE;
        let tx = self.database.begin_read().await?;
        let (after, mut values): (&str, Vec<Value>) = match &self.list_after {
            Some((time, id)) => (
                " AND (create_time > $1 OR (create_time = $2 AND id > $3))",
                vec![(*time).into(), (*time).into(), id.clone().into()],
            ),
            None => ("", Vec::new()),
        };
        let limit = format!("${}", values.len() + 1);
        values.push(((page + 1) as i64).into());
        let text = format!(
            "SELECT {GROUP_COLUMNS}, {parents} AS parents FROM groups \
             WHERE delete_time IS NULL{after} ORDER BY create_time ASC, id ASC LIMIT {limit}",
            parents = self.parents_of_row("groups"),
        );
        let rows = tx.query_all_raw(self.statement(&text, values)).await?;
        let rows = rows
            .iter()
            .map(|row| Self::read_group_with_parents(row).map(|(row, _)| row))
            .collect::<Result<Vec<_>, _>>()?;
        let count = format!(
            "SELECT COUNT(*) AS num_items FROM (SELECT {GROUP_COLUMNS} FROM groups \
             WHERE delete_time IS NULL) AS sub_query"
        );
        tx.query_all_raw(self.statement(&count, Vec::new())).await?;
        // The listing's cursor (`feed_head`).
        tx.query_all_raw(self.statement(
            "SELECT COALESCE(MAX(position), 0) AS head FROM change_feed",
            Vec::new(),
        ))
        .await?;
        drop(tx);
        self.list_after = if rows.len() > page {
            rows.get(page - 1)
                .map(|last| (last.create_time, last.id.clone()))
        } else {
            None
        };
        Ok(if rows.len() <= page + 1 {
            Outcome::Right
        } else {
            Outcome::Wrong("more rows than the limit".into())
        })
    }

    /// The walk of CheckMembership and ListMemberGroups: the principal's
    /// groups and the edges above them.
    async fn walk(
        &self,
        tx: &DatabaseTransaction,
    ) -> Result<(Vec<String>, Vec<(String, String)>), DbErr> {
        let own = self.groups_of(tx, &self.data.chain_member).await?;
        let edges = self.ancestry(tx, &own).await?;
        Ok((own, edges))
    }

    async fn check(&mut self) -> Result<Outcome, DbErr> {
        let top = self.data.chain[0].clone();
        let tx = self.database.begin_read().await?;
        let group = tx.query_one_raw(self.group_read(&top)).await?;
        let (own, edges) = self.walk(&tx).await?;
        drop(tx);
        let bottom = self.data.chain.last().cloned().unwrap_or_default();
        Ok(if group.is_none() {
            Outcome::Wrong("the group's row is missing".into())
        } else if own != [bottom] || edges.len() != self.data.chain.len() - 1 {
            Outcome::Wrong(format!(
                "{} own groups and {} edges, expected 1 and {}",
                own.len(),
                edges.len(),
                self.data.chain.len() - 1
            ))
        } else {
            Outcome::Right
        })
    }

    async fn member_groups(&mut self) -> Result<Outcome, DbErr> {
        let tx = self.database.begin_read().await?;
        let (own, edges) = self.walk(&tx).await?;
        let reached: BTreeSet<String> = own
            .into_iter()
            .chain(edges.into_iter().map(|(_, parent)| parent))
            .collect();
        let ids: Vec<String> = reached
            .into_iter()
            .take(crate::calls::LIST_PAGE + 1)
            .collect();
        let (condition, values) = self.one_of("id", &ids, 1);
        let text = format!(
            "SELECT {GROUP_COLUMNS}, {parents} AS parents FROM groups WHERE {condition}",
            parents = self.parents_of_row("groups"),
        );
        let rows = tx.query_all_raw(self.statement(&text, values)).await?;
        for row in &rows {
            Self::read_group_with_parents(row)?;
        }
        drop(tx);
        Ok(if rows.len() == self.data.chain.len() {
            Outcome::Right
        } else {
            Outcome::Wrong(format!(
                "{} groups, expected {}",
                rows.len(),
                self.data.chain.len()
            ))
        })
    }

    /// Inserts the member rows of `added` (new members, not admins),
    /// appends the history entry of `row`'s new version, writes the row
    /// back (every column a write can change) and appends the change-feed
    /// row, in one statement (`append_change`).
    async fn record(
        &self,
        tx: &DatabaseTransaction,
        row: &GroupRow,
        parents: &[String],
        kind: &str,
        mask: &str,
        added: &[String],
    ) -> Result<(), DbErr> {
        let mut steps = vec![
            "INSERT INTO group_changes (group_id, version, change_time, actor, kind, \
             update_mask, snapshot, members_added, members_removed, admins_added, \
             admins_removed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                .to_owned(),
            "UPDATE groups SET name = $12, scope = $13, description = $14, \
             email = $15, inactive = $16, provenance = $17, labels = $18, \
             assigned_roles = $19, member_count = $20, version = $21, \
             update_time = $22, delete_time = $23, updated_by = $24 WHERE id = $25"
                .to_owned(),
        ];
        let mut values: Vec<Value> = vec![
            row.id.clone().into(),
            row.version.into(),
            row.update_time.into(),
            ACTOR.into(),
            kind.into(),
            mask.into(),
            row.snapshot(parents).into(),
            json!(added).to_string().into(),
            "[]".into(),
            "[]".into(),
            "[]".into(),
            row.name.clone().into(),
            row.scope.clone().into(),
            row.description.clone().into(),
            row.email.clone().into(),
            row.inactive.into(),
            row.provenance.clone().into(),
            row.labels.clone().into(),
            row.assigned_roles.clone().into(),
            row.member_count.into(),
            row.version.into(),
            row.update_time.into(),
            row.delete_time.into(),
            row.updated_by.clone().into(),
            row.id.clone().into(),
        ];
        if !added.is_empty() {
            let rows: Vec<String> = (0..added.len())
                .map(|i| {
                    let n = values.len() + 3 * i;
                    format!("(${}, ${}, ${})", n + 1, n + 2, n + 3)
                })
                .collect();
            steps.push(format!(
                "INSERT INTO group_members (group_id, member_id, is_admin) VALUES {}",
                rows.join(", ")
            ));
            for member in added {
                values.extend([row.id.clone().into(), member.clone().into(), false.into()]);
            }
        }
        let feed = values.len();
        values.extend([
            row.id.clone().into(),
            row.version.into(),
            row.update_time.into(),
        ]);
        // `Writes`, ending with `Dialect::feed_insert_sql`.
        let (a, b, c) = (feed + 1, feed + 2, feed + 3);
        let text = match self.backend() {
            DbBackend::Postgres => {
                let steps: Vec<String> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, step)| format!("step{i} AS ({step})"))
                    .collect();
                format!(
                    "WITH {} INSERT INTO change_feed (group_id, version, seq, change_time) \
                     VALUES (${a}, ${b}, nextval('change_feed_seq'), ${c})",
                    steps.join(", ")
                )
            }
            _ => format!(
                "{}; INSERT INTO change_feed (group_id, version, seq, position, change_time) \
                 SELECT ${a}, ${b}, next, next, ${c} \
                 FROM (SELECT COALESCE(MAX(position), 0) + 1 AS next FROM change_feed)",
                steps.join("; ")
            ),
        };
        tx.execute_raw(self.statement(&text, values)).await?;
        Ok(())
    }

    /// The group row `id`, locked, and its parents, as a write begins
    /// (`lock_group_for`): one statement on SQLite, whose transaction holds
    /// the write lock already; the row lock first on PostgreSQL.
    async fn lock(
        &self,
        tx: &DatabaseTransaction,
        id: &str,
    ) -> Result<Option<(GroupRow, Vec<String>)>, DbErr> {
        if self.backend() == DbBackend::Postgres {
            tx.query_all_raw(self.statement(
                "SELECT 1 FROM groups WHERE id = $1 FOR UPDATE",
                vec![id.into()],
            ))
            .await?;
        }
        tx.query_one_raw(self.group_read(id))
            .await?
            .as_ref()
            .map(Self::read_group)
            .transpose()
    }

    async fn update(&mut self) -> Result<Outcome, DbErr> {
        let id = self.data.update_groups[self.task].clone();
        let tx = self.database.begin_write().await?;
        let Some((mut row, parents)) = self.lock(&tx, &id).await? else {
            return Ok(Outcome::Wrong("the group's row is missing".into()));
        };
        row.description = format!(
            "groupd-load {} database task {} call {}",
            self.run, self.task, self.calls
        );
        touch(&mut row);
        self.record(&tx, &row, &parents, "UPDATE", "description", &[])
            .await?;
        // The reply's members (`attach_members`), unless the row counts none.
        if row.member_count > 0 {
            tx.query_all_raw(self.statement(
                "SELECT group_id, member_id, is_admin FROM group_members WHERE group_id = $1 \
                 ORDER BY member_id ASC",
                vec![id.into()],
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(Outcome::Right)
    }

    async fn add(&mut self) -> Result<Outcome, DbErr> {
        let id = self.data.add_groups[self.task].0.clone();
        let principal = format!(
            "{}-t{}-{}-db{}",
            self.data.name, self.task, self.run, self.calls
        );
        let tx = self.database.begin_write().await?;
        let Some((mut row, parents)) = self.lock(&tx, &id).await? else {
            return Ok(Outcome::Wrong("the group's row is missing".into()));
        };
        let (condition, mut values) = self.one_of("member_id", std::slice::from_ref(&principal), 2);
        values.insert(0, id.clone().into());
        let text = format!(
            "SELECT group_id, member_id, is_admin FROM group_members \
             WHERE group_id = $1 AND {condition}"
        );
        let existing = tx.query_all_raw(self.statement(&text, values)).await?;
        if !existing.is_empty() {
            return Ok(Outcome::Wrong(
                "the new principal is a member already".into(),
            ));
        }
        row.member_count += 1;
        touch(&mut row);
        self.record(&tx, &row, &parents, "ADD_MEMBERS", "", &[principal])
            .await?;
        tx.commit().await?;
        Ok(Outcome::Right)
    }
}

/// A write's new version, time and author (`touch`): the time never
/// earlier than one microsecond after the previous write's.
fn touch(row: &mut GroupRow) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        });
    row.version += 1;
    row.update_time = now.max(row.update_time.saturating_add(1));
    row.updated_by = ACTOR.to_owned();
}

impl Worker for DbWorker {
    async fn call(&mut self, kind: Kind) -> Outcome {
        self.calls += 1;
        let done = match kind {
            Kind::Get => self.get().await,
            Kind::List => self.list().await,
            Kind::Check => self.check().await,
            Kind::MemberGroups => self.member_groups().await,
            Kind::Update => self.update().await,
            Kind::Add => self.add().await,
        };
        done.unwrap_or_else(|error| failed(&error))
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::{redact, sql};

    #[test]
    fn placeholders_follow_the_database() {
        let text = "SELECT a FROM t WHERE b = $1 AND c IN ($2, $13) AND d = '$'";
        assert_eq!(sql(DbBackend::Postgres, text), text);
        assert_eq!(
            sql(DbBackend::Sqlite, text),
            "SELECT a FROM t WHERE b = ? AND c IN (?, ?) AND d = '$'"
        );
    }

    #[test]
    fn a_password_is_not_shown() {
        assert_eq!(
            redact("postgres://user:secret@db:5432/groupd"),
            "postgres://user:***@db:5432/groupd"
        );
        assert_eq!(redact("sqlite:///tmp/g.db"), "sqlite:///tmp/g.db");
    }
}
