//! Every difference between the databases groupd runs on, in one
//! exhaustive enum: adding a backend makes the compiler list each place to
//! fill in. The error rules of each database are in `errors.rs`, as another
//! `impl Dialect`.

use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait as _, Value,
    sea_query::{
        Alias, Expr, ExprTrait as _, Func, PostgresQueryBuilder, QueryStatementBuilder,
        SqlWriterValues, SqliteQueryBuilder, Values, extension::postgres::PgFunc,
    },
};

use crate::error::Error;

/// A database groupd can store its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL, for production: several replicas may share one.
    Postgres,
    /// SQLite, embedded, for a laptop or a single replica.
    Sqlite,
}

/// An arbitrary constant naming groupd's hierarchy lock on PostgreSQL.
const HIERARCHY_LOCK: i64 = 0x6772_6f75_7064;

/// An arbitrary constant naming the change feed's sequencer lock on
/// PostgreSQL (see `feed.rs`).
pub(super) const FEED_LOCK: i64 = 0x6772_6f75_7065;

impl Dialect {
    /// The dialect of a connection to `backend`.
    pub fn of(backend: DbBackend) -> Result<Self, Error> {
        match backend {
            DbBackend::Postgres => Ok(Self::Postgres),
            DbBackend::Sqlite => Ok(Self::Sqlite),
            // sea-orm's enum is open to new members; none is served.
            unsupported => Err(Error::internal(format!(
                "groupd does not support {unsupported:?} databases"
            ))),
        }
    }

    /// sea-orm's name for the dialect, to build raw statements.
    pub fn backend(self) -> DbBackend {
        match self {
            Self::Postgres => DbBackend::Postgres,
            Self::Sqlite => DbBackend::Sqlite,
        }
    }

    /// Begins a write transaction. SQLite's is `IMMEDIATE`: the write lock
    /// is taken before the first read, and waiting writers queue on the
    /// busy timeout. PostgreSQL's runs READ COMMITTED, and the writes lock
    /// the rows they read.
    pub async fn begin_write(self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        let options = match self {
            Self::Postgres => TransactionOptions::default(),
            Self::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
        };
        db.begin_with_options(options).await
    }

    /// The statements that open and end a transaction, which sea-orm does
    /// not report to `statements.rs`: BEGIN, the `SET TRANSACTION` that
    /// follows it in a PostgreSQL read, and the COMMIT or ROLLBACK.
    pub fn transaction_statements(self, read: bool) -> u32 {
        match self {
            Self::Postgres if read => 3,
            Self::Postgres | Self::Sqlite => 2,
        }
    }

    /// The SQL of an aggregate: the text of a JSON array of `column` over
    /// the rows aggregated, `[]` when there are none.
    pub fn json_array_of(self, column: &str) -> String {
        match self {
            Self::Postgres => format!("COALESCE(json_agg({column}), '[]'::json)::text"),
            Self::Sqlite => format!("json_group_array({column})"),
        }
    }

    /// The statement that locks a group's row (id in the first placeholder)
    /// against other writers until the transaction ends. None on SQLite,
    /// whose write transaction holds the database's write lock from its
    /// start. On PostgreSQL it stays a statement of its own: one that also
    /// read the group's parents would, after waiting for another writer's
    /// lock, return the locked row as that writer left it but its parents
    /// as of before (the subquery keeps the statement's snapshot).
    pub fn group_row_lock(self) -> Option<String> {
        match self {
            Self::Postgres => Some(format!(
                "SELECT 1 FROM groups WHERE id = {} FOR UPDATE",
                self.placeholder(1)
            )),
            Self::Sqlite => None,
        }
    }

    /// Whether the writes that arrive together share one transaction (see
    /// `group_commit.rs`): SQLite's, whose one writer commits them one
    /// after another anyway. PostgreSQL's writers run and commit
    /// concurrently, each in its own transaction.
    pub fn commits_in_groups(self) -> bool {
        match self {
            Self::Postgres => false,
            Self::Sqlite => true,
        }
    }

    /// Begins a read-only transaction that sees one snapshot.
    pub async fn begin_read(self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        match self {
            Self::Postgres => {
                db.begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await
            }
            // A SQLite transaction in WAL mode reads one snapshot already.
            Self::Sqlite => db.begin().await,
        }
    }

    /// `column` is one of `ids`. PostgreSQL gets a single array parameter
    /// (`= ANY($1)`), which it always plans as index probes: with a long
    /// `IN ($1, …)` list and no statistics yet (a freshly filled table), it
    /// scans every row of the group and compares each with the whole list,
    /// which turned adding 10,000 members to a large group from
    /// milliseconds into seconds. SQLite gets the plain `IN` list.
    pub fn one_of<C: ColumnTrait>(self, column: C, ids: &[String]) -> Expr {
        match self {
            Self::Postgres => Expr::col(column).eq(PgFunc::any(Expr::val(ids.to_vec()))),
            Self::Sqlite => column.is_in(ids.iter().cloned()),
        }
    }

    /// The same as [`Self::one_of`] for raw SQL: the condition that
    /// `column` (as written in the statement) is one of `ids`, with its
    /// bind values, numbered from 1.
    pub fn one_of_sql(self, column: &str, ids: &[String]) -> (String, Vec<Value>) {
        match self {
            Self::Postgres => (format!("{column} = ANY($1)"), vec![ids.to_vec().into()]),
            Self::Sqlite => (
                format!("{column} IN ({})", vec!["?"; ids.len()].join(", ")),
                ids.iter().map(|id| id.clone().into()).collect(),
            ),
        }
    }

    /// The `n`th (from 1) bind placeholder of a raw statement.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite => "?".to_owned(),
        }
    }

    /// `value` with ASCII letters lowercased and nothing else changed, so
    /// that matching ignores ASCII case the same way on both databases:
    /// SQLite's `lower()` folds ASCII only, and so does PostgreSQL's under
    /// the "C" collation (its default collation would fold `É` too).
    pub fn fold_ascii_case(self, value: Expr) -> Expr {
        match self {
            Self::Postgres => Expr::cust_with_expr("lower(($1) COLLATE \"C\")", value),
            Self::Sqlite => Expr::expr(Func::lower(value)),
        }
    }

    /// Bounds every statement of transaction `tx` to `left`, what remains of
    /// its call. On PostgreSQL the statement timeout of the transaction
    /// (`SET LOCAL`, which ends with it), so that the server cancels a
    /// statement still running when the call is over rather than finish
    /// work nobody waits for. The bound is per statement, from its start:
    /// a statement begun later in the transaction may outlive the call by
    /// the time spent before it. A begun COMMIT is not cut: PostgreSQL
    /// turns the statement timeout off before it commits. SQLite needs
    /// nothing here: its statements are stopped by the progress handler
    /// (`calls.rs`).
    pub async fn bound_statements(
        self,
        tx: &DatabaseTransaction,
        left: std::time::Duration,
    ) -> Result<(), DbErr> {
        match self {
            Self::Postgres => {
                // At least one millisecond: zero would turn the timeout off.
                let millis = left.as_millis().clamp(1, i32::MAX as u128);
                tx.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT set_config('statement_timeout', $1, true)",
                    [format!("{millis}ms").into()],
                ))
                .await?;
                Ok(())
            }
            Self::Sqlite => Ok(()),
        }
    }

    /// Whether `value`, with ASCII case folded, contains `needle` (already
    /// lowercase). A plain substring search (`instr`, `strpos`) rather than
    /// `LIKE '%needle%'`: LIKE compares character by character from every
    /// position of the value, which made a needle that almost matches
    /// (`aaaa…ab` in `aaaa…a`) cost 26 µs per 256-character value on
    /// PostgreSQL, where the search costs about one; and nothing in the
    /// needle needs escaping.
    pub fn contains(self, value: Expr, needle: &str) -> Expr {
        let search = match self {
            Self::Postgres => "strpos",
            Self::Sqlite => "instr",
        };
        Expr::expr(
            Func::cust(Alias::new(search)).args([self.fold_ascii_case(value), Expr::val(needle)]),
        )
        .gt(0)
    }

    /// Serializes changes to the parent graph across transactions, so two
    /// concurrent `member_of` changes cannot each pass the cycle check and
    /// together close a cycle. On PostgreSQL, a transaction-scoped advisory
    /// lock (held until commit, across every replica); SQLite write
    /// transactions are serialized already.
    pub async fn lock_hierarchy(self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        match self {
            Self::Postgres => {
                tx.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [HIERARCHY_LOCK.into()],
                ))
                .await?;
                Ok(())
            }
            Self::Sqlite => Ok(()),
        }
    }

    /// The statement that places a write's history entry in the change
    /// feed, the write's last statement (sent with the history entry, see
    /// [`Writes`]). SQLite's writers are serialized, so the next position
    /// (one past the largest) is taken at once, and commit order is
    /// position order. PostgreSQL's writers commit concurrently, so a write
    /// only draws `seq` from a sequence and the sequencer numbers it once
    /// committed ([`Self::sequences_feed`]). Its values are the group's
    /// id, the version and the change time, in placeholders numbered from
    /// `first`.
    pub fn feed_insert_sql(self, first: usize) -> String {
        let p = |n: usize| self.placeholder(first + n);
        match self {
            Self::Postgres => format!(
                "INSERT INTO change_feed (group_id, version, seq, change_time) \
                 VALUES ({}, {}, nextval('change_feed_seq'), {})",
                p(0),
                p(1),
                p(2)
            ),
            // The largest position is a scalar subquery of its own, so
            // that a condition added to the statement (a guarded write's,
            // see `group_commit`) cannot be pushed down into it: there it
            // would turn reading the index's last entry into a scan of
            // the whole feed.
            Self::Sqlite => format!(
                "INSERT INTO change_feed (group_id, version, seq, position, change_time) \
                 SELECT {}, {}, next, next, {} \
                 FROM (SELECT (SELECT COALESCE(MAX(position), 0) + 1 FROM change_feed) AS next)",
                p(0),
                p(1),
                p(2)
            ),
        }
    }

    /// Whether committed feed entries wait for the sequencer to get their
    /// position (see [`Self::feed_insert_sql`]).
    pub fn sequences_feed(self) -> bool {
        match self {
            Self::Postgres => true,
            Self::Sqlite => false,
        }
    }
}

/// Writes sent to the database as one statement with one list of values,
/// so that they cost one round trip, not one each. PostgreSQL runs each
/// write but the last as a data-modifying `WITH` step: every step runs,
/// whether or not the rest reads it, all against the statement's one
/// snapshot, so no step may depend on another's effect. SQLite takes them
/// as statements in one string, run in order, and its driver binds the
/// unnumbered placeholders in order across them.
#[derive(Debug)]
pub struct Writes {
    dialect: Dialect,
    /// The text so far and its values, numbering PostgreSQL's
    /// placeholders on from one step to the next.
    sql: SqlWriterValues,
    steps: usize,
}

impl Writes {
    pub fn new(dialect: Dialect) -> Self {
        let sql = match dialect {
            Dialect::Postgres => SqlWriterValues::new("$", true),
            Dialect::Sqlite => SqlWriterValues::new("?", false),
        };
        Self {
            dialect,
            sql,
            steps: 0,
        }
    }

    /// Adds `write`, after those added before.
    pub fn push(&mut self, write: &impl QueryStatementBuilder) -> Result<(), Error> {
        use std::fmt::Write as _;
        let step = self.steps;
        self.steps += 1;
        match self.dialect {
            Dialect::Postgres => {
                let keyword = if step == 0 { "WITH" } else { "," };
                write!(self.sql, "{keyword} step{step} AS (").map_err(Error::internal)?;
                write.build_collect_any_into(&PostgresQueryBuilder, &mut self.sql);
                self.sql.write_str(") ").map_err(Error::internal)
            }
            Dialect::Sqlite => {
                write.build_collect_any_into(&SqliteQueryBuilder, &mut self.sql);
                self.sql.write_str("; ").map_err(Error::internal)
            }
        }
    }

    /// The statement: the writes added, then `last`, built from the number
    /// of its first placeholder, with `values` for its placeholders.
    pub fn then(
        self,
        last: impl FnOnce(usize) -> String,
        values: impl IntoIterator<Item = Value>,
    ) -> Statement {
        let (mut sql, Values(mut all)) = self.sql.into_parts();
        sql.push_str(&last(all.len() + 1));
        all.extend(values);
        Statement::from_sql_and_values(self.dialect.backend(), sql, all)
    }
}
