//! Persistence, on SQLite or PostgreSQL behind the same code.
//!
//! The store is a boundary: the service holds a [`ReadTx`] or a
//! [`WriteTx`], whose methods are the queries it needs, and never sees
//! sea-orm. Inside, one file per table or concern (groups, members, the
//! hierarchy, the history, filters, secrets), and every difference between
//! the databases goes through the exhaustive [`Dialect`] enum, so a new
//! backend does not compile until every place is filled in.
//!
//! Every write runs in a transaction from [`Store::write`], which
//! serializes writers to the same group on both backends: PostgreSQL locks
//! the group's row (`SELECT … FOR UPDATE`, see [`WriteTx::lock_group`]), and
//! SQLite starts the transaction `IMMEDIATE`, taking the database write lock
//! before the first read, so a read-merge-write never acts on a stale read.
//! Reads run in a [`ReadTx`] that sees one consistent snapshot.

mod changes;
mod dialect;
mod entities;
mod errors;
mod filter;
mod groups;
mod hierarchy;
mod members;
mod secrets;

use std::{ops::Deref, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    QueryResult, Statement, Value,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use self::errors::Classify as _;
pub use self::{dialect::Dialect, groups::GroupQuery};
use crate::error::Error;

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

/// The database: a connection pool, and the transactions groupd runs on it.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    dialect: Dialect,
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
        let db = Database::connect(connect)
            .await
            .map_err(errors::connect_error)?;
        let dialect = Dialect::of(db.get_database_backend())?;
        Ok(Self { db, dialect })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), Error> {
        use migrations::MigratorTrait as _;
        migrations::Migrator::up(&self.db, None)
            .await
            .classify(self.dialect)
    }

    /// The names of the migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        use migrations::MigratorTrait as _;
        // The read-only check creates no migration table: a database never
        // migrated reports every migration pending.
        Ok(
            migrations::Migrator::get_pending_migrations_read_only(&self.db)
                .await
                .classify(self.dialect)?
                .iter()
                .map(|migration| migration.name().to_owned())
                .collect(),
        )
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.classify(self.dialect)
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), Error> {
        self.db.close().await.classify(self.dialect)
    }

    /// Starts a write transaction (see the module documentation).
    pub async fn write(&self) -> Result<WriteTx, Error> {
        let tx = self.dialect.begin_write(&self.db).await;
        Ok(WriteTx {
            read: self.transaction(tx)?,
        })
    }

    /// Starts a read-only transaction that sees one consistent snapshot, so
    /// that a group and its members are read as of the same moment.
    pub async fn read(&self) -> Result<ReadTx, Error> {
        let tx = self.dialect.begin_read(&self.db).await;
        self.transaction(tx)
    }

    fn transaction(&self, begun: Result<DatabaseTransaction, DbErr>) -> Result<ReadTx, Error> {
        Ok(ReadTx {
            tx: begun.classify(self.dialect)?,
            dialect: self.dialect,
        })
    }
}

/// A transaction that reads. Dropping it ends it.
#[derive(Debug)]
pub struct ReadTx {
    tx: DatabaseTransaction,
    dialect: Dialect,
}

impl ReadTx {
    /// Runs a raw statement (the recursive queries sea-orm's builder does
    /// not express), written with this dialect's placeholders, and returns
    /// its rows.
    async fn query_raw(
        &self,
        sql: String,
        values: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<QueryResult>, Error> {
        let statement = Statement::from_sql_and_values(self.dialect.backend(), sql, values);
        self.tx
            .query_all_raw(statement)
            .await
            .classify(self.dialect)
    }
}

/// A transaction that writes: every read of a [`ReadTx`] (through
/// `Deref`), the locks and writes, and [`WriteTx::commit`]. Dropping it
/// without committing rolls it back, which is how every failed or
/// `validate_only` request ends.
#[derive(Debug)]
pub struct WriteTx {
    read: ReadTx,
}

impl Deref for WriteTx {
    type Target = ReadTx;

    fn deref(&self) -> &ReadTx {
        &self.read
    }
}

impl WriteTx {
    /// Commits, unless the call's deadline has passed (then the transaction
    /// is dropped, which rolls it back); see [`crate::deadline`].
    pub async fn commit(self) -> Result<(), Error> {
        crate::deadline::begin_commit()?;
        let dialect = self.read.dialect;
        self.read.tx.commit().await.classify(dialect)
    }
}
