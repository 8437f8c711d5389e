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
//! the group's row (`SELECT … FOR UPDATE`, see [`WriteTx::lock_group_for`]), and
//! SQLite runs one write at a time under the database write lock, taken
//! before the first read (`BEGIN IMMEDIATE`), so a read-merge-write never
//! acts on a stale read. On SQLite the writes that arrive together share
//! one transaction, each in a savepoint of its own, committed once for
//! them all (see [`group_commit`]). Reads run in a [`ReadTx`] that sees one
//! consistent snapshot.
//!
//! Work is bounded per call: a statement stops once its call's deadline
//! has passed or the call was dropped (see [`calls`]); ListGroups filters
//! must fit a [`FilterBudget`]; filtered listings and membership walks
//! each hold one of a fixed number of slots of their own, together fewer
//! than the pooled connections (see [`Store::read_listing`] and
//! [`Store::read_walk`]). The health ping has a connection of its own,
//! so that callers holding every pooled connection do not make the
//! database look unreachable.

mod calls;
mod changes;
mod dialect;
mod entities;
mod errors;
mod feed;
mod filter;
mod group_commit;
mod groups;
mod hierarchy;
mod index;
mod members;
mod secrets;
pub mod statements;

use std::{future::Future, ops::Deref, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    QueryResult, Statement, Value,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::errors::Classify as _;
pub use self::{
    changes::GroupRow,
    dialect::Dialect,
    feed::{Commits, EncodedOnce, FeedBounds, FeedEntry, FeedWakeups},
    groups::GroupQuery,
};
use crate::{
    domain::{
        GroupChange,
        filter::{Filter, FilterBudget},
        membership::MembershipDelta,
    },
    error::Error,
    metrics::GroupCommitMetrics,
};

/// Rows per statement in batched inserts and `IN (…)` lists, well below
/// both backends' bind-parameter limits.
const BATCH: usize = 500;

/// How long a pooled connection may sit idle before it is pinged on its
/// next checkout.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

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
    /// The budget every ListGroups filter must fit.
    pub filter_budget: FilterBudget,
    /// Most filtered listings running at once (see [`Store::read_listing`]).
    pub filtered_listings: u32,
    /// Most membership walks running at once (see [`Store::read_walk`]).
    pub membership_walks: u32,
}

/// The database: a connection pool, and the transactions groupd runs on it.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// One connection of its own for the health ping.
    probe: DatabaseConnection,
    /// One connection of its own for the change feed's reader, so that
    /// calls holding every pooled connection do not delay the feed (and
    /// the membership index) behind them.
    feed: DatabaseConnection,
    dialect: Dialect,
    filter_budget: FilterBudget,
    listings: Arc<Slots>,
    walks: Arc<Slots>,
    statement_timeout: Duration,
    /// How many times a call's first statement is tried again on another
    /// connection when the one it met had been closed (see
    /// [`Store::on_open_connection`]).
    retries: u32,
    /// Where the change feed's notifications are listened for (see
    /// [`Store::feed_wakeups`]).
    url: Arc<str>,
    /// Counted and announced after every commit of a write (see
    /// [`Store::commits`]).
    commits: Arc<Commits>,
    /// On SQLite, the transaction the writes share (see [`group_commit`]).
    group_commit: Option<Arc<group_commit::GroupCommit>>,
}

/// A fixed number of slots for one kind of expensive read, each held with
/// its connection until the read's transaction ends.
#[derive(Debug)]
struct Slots {
    slots: Arc<Semaphore>,
    size: u32,
    /// How long a read waits for a slot.
    wait: Duration,
    /// The ErrorInfo reason of a read that found none.
    reason: &'static str,
    /// What the reads are, for the error message.
    what: &'static str,
}

impl Slots {
    fn new(size: u32, wait: Duration, reason: &'static str, what: &'static str) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(usize::try_from(size).unwrap_or(1))),
            size,
            wait,
            reason,
            what,
        })
    }

    /// Takes a slot, waiting up to `wait`; RESOURCE_EXHAUSTED when none
    /// comes free (the call's deadline, when shorter, ends the wait first).
    async fn take(&self) -> Result<OwnedSemaphorePermit, Error> {
        let waiting = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.wait, waiting).await {
            Ok(Ok(slot)) => Ok(slot),
            // The semaphore is never closed.
            Ok(Err(closed)) => Err(Error::internal(closed)),
            Err(_) => Err(Error::ResourceExhausted {
                reason: self.reason,
                message: format!(
                    "{} {} are running and none ended within {:?}; retry later",
                    self.size, self.what, self.wait
                ),
            }),
        }
    }
}

impl Store {
    /// Connects to `url`: the pool, the health probe's own connection, and
    /// on SQLite the group commit's own connection. A SQLite database file
    /// is created when missing, and put in WAL mode.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let mut db = Database::connect(connect_options(url, options, options.max_connections))
            .await
            .map_err(errors::connect_error)?;
        db.set_metric_callback(statements::on_statement);
        let probe = Database::connect(connect_options(url, options, 1))
            .await
            .map_err(errors::connect_error)?;
        let feed = Database::connect(connect_options(url, options, 1))
            .await
            .map_err(errors::connect_error)?;
        let dialect = Dialect::of(db.get_database_backend())?;
        let wait = options.acquire_timeout;
        let commits = Arc::new(Commits::default());
        let group_commit = if dialect.commits_in_groups() {
            // A connection of its own, the same one for every group: SQLite
            // empties a connection's page cache whenever another connection
            // has written, so the writer keeps its cache warm only when it
            // is the only connection that writes.
            let mut writer = Database::connect(writer_options(url, options))
                .await
                .map_err(errors::connect_error)?;
            writer.set_metric_callback(statements::on_statement);
            Some(group_commit::GroupCommit::new(
                writer,
                dialect,
                options.statement_timeout,
                Arc::clone(&commits),
            ))
        } else {
            None
        };
        Ok(Self {
            db,
            probe,
            feed,
            dialect,
            filter_budget: options.filter_budget,
            listings: Slots::new(
                options.filtered_listings,
                wait,
                "TOO_MANY_FILTERED_LISTINGS",
                "filtered listings",
            ),
            walks: Slots::new(
                options.membership_walks,
                wait,
                "TOO_MANY_MEMBERSHIP_WALKS",
                "membership walks",
            ),
            statement_timeout: options.statement_timeout,
            retries: options.max_connections,
            url: Arc::from(url),
            commits,
            group_commit,
        })
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

    /// Checks that the database answers, on the probe's own connection:
    /// callers holding every pooled connection do not make it fail.
    pub async fn ping(&self) -> Result<(), Error> {
        self.probe.ping().await.classify(self.dialect)
    }

    /// Closes the pool, the probe's and feed reader's connections, and on
    /// SQLite the group commit's connection once the writes waiting for it
    /// are committed.
    pub async fn close(self) -> Result<(), Error> {
        if let Some(group) = &self.group_commit {
            group.close().await.classify(self.dialect)?;
        }
        let probe = self.probe.close().await.classify(self.dialect);
        self.feed.close().await.classify(self.dialect)?;
        self.db.close().await.classify(self.dialect)?;
        probe
    }

    /// Starts a write transaction (see the module documentation): on
    /// SQLite, a savepoint in the group's transaction, once the writes
    /// before it are done (UNAVAILABLE when that takes longer than the
    /// statement timeout).
    pub async fn write(&self) -> Result<WriteTx, Error> {
        if let Some(group) = &self.group_commit {
            // The group's BEGIN and COMMIT are shared; the savepoint's
            // release is counted where it is sent.
            return Ok(WriteTx {
                read: ReadTx {
                    tx: Tx::Grouped(group.join().await?),
                    dialect: self.dialect,
                    slot: None,
                },
                commits: Arc::clone(&self.commits),
            });
        }
        let tx = self
            .on_open_connection(|| self.dialect.begin_write(&self.db))
            .await;
        Ok(WriteTx {
            read: self.transaction(tx, false).await?,
            commits: Arc::clone(&self.commits),
        })
    }

    /// Whether writes of a group's own row can be handed over guarded
    /// ([`Self::update_if_unchanged`]): on SQLite, whose writes are
    /// grouped.
    pub fn writes_guarded(&self) -> bool {
        self.group_commit.is_some()
    }

    /// What the group commit counts (SQLite; nothing is ever counted on
    /// PostgreSQL), for `/metrics`.
    pub fn group_commit_metrics(&self) -> GroupCommitMetrics {
        self.group_commit
            .as_ref()
            .map(|group| group.metrics().clone())
            .unwrap_or_default()
    }

    /// Starts a read-only transaction that sees one consistent snapshot, so
    /// that a group and its members are read as of the same moment.
    pub async fn read(&self) -> Result<ReadTx, Error> {
        let tx = self
            .on_open_connection(|| self.dialect.begin_read(&self.db))
            .await;
        self.transaction(tx, true).await
    }

    /// Starts a read like [`Store::read`], on the change feed reader's own
    /// connection.
    pub async fn read_for_feed(&self) -> Result<ReadTx, Error> {
        let tx = self
            .on_open_connection(|| self.dialect.begin_read(&self.feed))
            .await;
        self.transaction(tx, true).await
    }

    /// Starts the read of a ListGroups call. A filter must fit the filter
    /// budget, checked before anything runs (INVALID_ARGUMENT on `filter`
    /// otherwise). A filtered listing then takes one of the listing slots,
    /// which it holds with its connection until the transaction ends:
    /// there are fewer slots than pooled connections, so filtered
    /// listings, however many callers send them, leave connections for
    /// every other call. A listing that finds no free slot within the
    /// acquire timeout is answered RESOURCE_EXHAUSTED (DEADLINE_EXCEEDED
    /// when its deadline comes first). Listings without a filter are not
    /// limited.
    pub async fn read_listing(&self, filter: Option<&Filter>) -> Result<ReadTx, Error> {
        let Some(filter) = filter else {
            return self.read().await;
        };
        self.filter_budget
            .check(filter)
            .map_err(|violation| Error::InvalidArgument {
                violations: vec![violation],
            })?;
        let slot = self.listings.take().await?;
        let mut tx = self.read().await?;
        tx.slot = Some(slot);
        Ok(tx)
    }

    /// Starts the read of a walk up the `member_of` hierarchy
    /// (CheckMembership, transitive ListMemberGroups), whose cost is the
    /// size of a principal's ancestry: a dense hierarchy makes it large.
    /// Like a filtered listing, it first takes one of the walk slots, so
    /// walks leave pooled connections for every other call; a walk that
    /// finds none within the acquire timeout is answered
    /// RESOURCE_EXHAUSTED (reason `TOO_MANY_MEMBERSHIP_WALKS`).
    pub async fn read_walk(&self) -> Result<ReadTx, Error> {
        let slot = self.walks.take().await?;
        let mut tx = self.read().await?;
        tx.slot = Some(slot);
        Ok(tx)
    }

    /// Runs `first`, a call's first statement (a BEGIN, or a read outside
    /// any transaction), again while it fails on a pooled connection the
    /// server had closed, at most once per pooled connection. Pooled
    /// connections are not pinged before each use (a round trip on every
    /// call), only after a second idle; so after a database restart each
    /// connection that was open meets its closed socket once, and without
    /// this each would fail one call.
    async fn on_open_connection<T, F, Fut>(&self, mut first: F) -> Result<T, DbErr>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        let mut left = self.retries;
        loop {
            match first().await {
                Err(err) if left > 0 && errors::closed_connection(&err) => {
                    tracing::debug!(error = %err, "a pooled connection was closed; trying another");
                    left -= 1;
                }
                done => return done,
            }
        }
    }

    /// The transaction `begun`, bounded by the call's deadline: SQLite
    /// stops its statements itself (see [`calls`]); PostgreSQL gets a
    /// statement timeout no longer than what is left of the call, when
    /// that is shorter than the configured one.
    async fn transaction(
        &self,
        begun: Result<DatabaseTransaction, DbErr>,
        read: bool,
    ) -> Result<ReadTx, Error> {
        let tx = begun.classify(self.dialect)?;
        statements::sent(self.dialect.transaction_statements(read));
        if let Some(left) =
            crate::deadline::remaining().filter(|left| *left < self.statement_timeout)
        {
            self.dialect
                .bound_statements(&tx, left)
                .await
                .classify(self.dialect)?;
        }
        Ok(ReadTx {
            tx: Tx::Own(tx),
            dialect: self.dialect,
            slot: None,
        })
    }
}

/// The connection options of a pool of `max_connections` on `url`.
fn connect_options(url: &str, options: &StoreOptions, max_connections: u32) -> ConnectOptions {
    sqlite_connection(url, options, max_connections, |opts| opts)
}

/// The options of SQLite's group commit connection ([`connect_options`]
/// of one connection): its sub-journal is kept in memory. Every write of
/// a group runs in a savepoint, and SQLite saves the first change of
/// each page within a savepoint in the sub-journal, to roll back to it;
/// past 64 KiB it spills that journal to a temporary file, one `pwrite`
/// per page (a tenth of the connection's thread under a write load).
/// `temp_store=MEMORY` keeps it in memory: at most the pages one group's
/// transaction changes (64 writes), given back at its end.
fn writer_options(url: &str, options: &StoreOptions) -> ConnectOptions {
    sqlite_connection(url, options, 1, |opts| {
        opts.pragma("temp_store", "MEMORY")
            .row_buffer_size(WRITER_RESULTS)
    })
}

/// How many results of one statement SQLite's thread may send ahead of
/// the task reading them, on the group commit's connection (sqlx's
/// default is 50). Guarded writes run up to 64 to a statement, each of
/// four to six statements and a `SELECT`, and each sends a result: with
/// room for all of them, the thread runs the statement to its end
/// without stopping to wait for the task to read.
const WRITER_RESULTS: usize = 1024;

/// [`connect_options`], with `more` applied to SQLite's options.
fn sqlite_connection(
    url: &str,
    options: &StoreOptions,
    max_connections: u32,
    more: impl Fn(SqliteConnectOptions) -> SqliteConnectOptions + Send + Sync + 'static,
) -> ConnectOptions {
    let busy_timeout = options.statement_timeout;
    let mut connect = ConnectOptions::new(url.to_owned());
    connect
        .max_connections(max_connections)
        .connect_timeout(options.connect_timeout)
        .acquire_timeout(options.acquire_timeout)
        .statement_timeout(options.statement_timeout)
        // No ping on every checkout, which would be a round trip more on
        // every call: a connection is pinged only once it has been idle
        // long enough for a proxy or the server to have dropped it (a
        // SQLite connection, a file, cannot be dropped; the ping is cheap).
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        // Names groupd's sessions in pg_stat_activity.
        .set_application_name("groupd")
        .sqlx_logging_level(tracing::log::LevelFilter::Debug)
        .map_sqlx_sqlite_opts(move |opts| {
            more(
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL in WAL mode keeps every committed write across
                    // a process crash; only a power loss may lose the last
                    // commits.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true),
            )
        })
        .map_sqlx_sqlite_pool_opts(|pool| pool.after_connect(calls::watch_new))
        .map_sqlx_sqlite_before_acquire(calls::watch_pooled);
    connect
}

/// A transaction that reads. Dropping it ends it.
#[derive(Debug)]
pub struct ReadTx {
    tx: Tx,
    dialect: Dialect,
    /// The slot an expensive read holds (see [`Store::read_listing`] and
    /// [`Store::read_walk`]), given back when the transaction ends.
    slot: Option<OwnedSemaphorePermit>,
}

/// Where a transaction's statements run.
#[derive(Debug)]
enum Tx {
    /// A database transaction of its own.
    Own(DatabaseTransaction),
    /// On SQLite, a write's savepoint in the transaction its group shares
    /// (see [`group_commit`]); dropping it rolls back to the savepoint.
    Grouped(group_commit::Turn),
}

impl ReadTx {
    /// The transaction the statements run in.
    fn conn(&self) -> Result<&DatabaseTransaction, Error> {
        match &self.tx {
            Tx::Own(tx) => Ok(tx),
            Tx::Grouped(turn) => turn.tx(),
        }
    }

    /// Runs a raw statement (the recursive queries sea-orm's builder does
    /// not express), written with this dialect's placeholders, and returns
    /// its rows.
    async fn query_raw(
        &self,
        sql: String,
        values: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<QueryResult>, Error> {
        let statement = Statement::from_sql_and_values(self.dialect.backend(), sql, values);
        self.conn()?
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
    /// Woken once this transaction has committed.
    commits: Arc<Commits>,
}

impl Deref for WriteTx {
    type Target = ReadTx;

    fn deref(&self) -> &ReadTx {
        &self.read
    }
}

impl WriteTx {
    /// [`Self::append_change`] and then [`Self::commit`]. On SQLite, in a
    /// group of writes, the change's statement also releases the write's
    /// savepoint ([`group_commit::Turn::commit_after`]): one round trip
    /// fewer. The call's deadline is then checked before that statement,
    /// not after it: past the deadline nothing is written; once the
    /// statement is sent, the deadline no longer stops the write.
    pub async fn append_change_and_commit(
        self,
        change: &GroupChange,
        row: GroupRow,
        delta: &MembershipDelta,
    ) -> Result<(), Error> {
        if !matches!(self.read.tx, Tx::Grouped(_)) {
            self.append_change(change, row, delta).await?;
            return self.commit().await;
        }
        let last = self.change_statement(change, row, delta).await?;
        crate::deadline::begin_commit()?;
        match self.read.tx {
            Tx::Grouped(turn) => turn.commit_after(last).await,
            Tx::Own(_) => Err(Error::internal("a grouped write lost its turn")),
        }
    }

    /// Commits, unless the call's deadline has passed (then the transaction
    /// is dropped, which rolls it back); see [`crate::deadline`]. On
    /// SQLite, returns once the group's transaction holding the write has
    /// committed, with an error when that failed.
    pub async fn commit(self) -> Result<(), Error> {
        crate::deadline::begin_commit()?;
        let Self { read, commits } = self;
        let tx = match read.tx {
            Tx::Own(tx) => tx,
            Tx::Grouped(turn) => return turn.commit().await,
        };
        tx.commit().await.classify(read.dialect)?;
        // The change feed's reader in this process looks for the write now
        // rather than at its next poll.
        commits.record();
        Ok(())
    }
}

/// A migrated SQLite store in a fresh file named after `name`, for unit
/// tests, with its path: 4 pooled connections, calls waiting `acquire` for
/// one, writers waiting `statement` for each other.
#[cfg(test)]
pub(crate) async fn scratch_sqlite(
    name: &str,
    acquire: Duration,
    statement: Duration,
) -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "groupd_{name}_{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let options = StoreOptions {
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: acquire,
        statement_timeout: statement,
        filter_budget: crate::domain::filter::FilterBudget::DEFAULT,
        filtered_listings: 1,
        membership_walks: 1,
    };
    let store = Store::connect(&format!("sqlite://{}", path.display()), &options)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    (store, path)
}

/// Closes a store of [`scratch_sqlite`] and removes its files.
#[cfg(test)]
pub(crate) async fn scratch_remove(store: Store, path: &std::path::Path) {
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// How many rows the unit tests' stopped writes left (they name their
/// `server_secrets` rows `stopped-…`): none, when stopping a write rolled
/// it back.
#[cfg(test)]
pub(crate) async fn scratch_stopped_writes(store: &Store) -> i64 {
    let rows = store
        .read()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .query_raw(
            "SELECT COUNT(*) AS n FROM server_secrets WHERE name LIKE 'stopped-%'".to_owned(),
            [],
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    rows.first()
        .and_then(|row| row.try_get("", "n").ok())
        .unwrap_or_else(|| panic!("no count"))
}

/// A new group named and identified `id`, for unit tests.
#[cfg(test)]
pub(crate) fn scratch_group(id: &str) -> crate::domain::Group {
    use crate::domain::{GroupFields, GroupId, Membership, Principal, Timestamp, create};
    let fields = GroupFields {
        name: id.into(),
        ..GroupFields::default()
    };
    create::new_group(
        GroupId::parse(id).unwrap_or_else(|error| panic!("{error:?}")),
        fields,
        &Membership::default(),
        &Principal::anonymous(),
        Timestamp::from_micros(1),
    )
    .0
}

#[cfg(test)]
mod tests {
    use crate::{domain::filter, error::Error};
    use std::time::Duration;

    /// `.cargo/config.toml` builds SQLite with the query planner stability
    /// guarantee and without memory statistics (why is said there); a
    /// build without them would go on working, only slower, so this says
    /// when they are missing.
    #[tokio::test]
    async fn sqlite_is_built_with_the_options_of_the_cargo_config() {
        use sea_orm::sqlx::{Connection as _, SqliteConnection};
        let mut connection = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let options: Vec<String> = sea_orm::sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        for wanted in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"] {
            assert!(
                options.iter().any(|option| option == wanted),
                "{wanted} not in {options:?}"
            );
        }
    }

    #[tokio::test]
    async fn each_kind_of_expensive_read_waits_for_a_slot_of_its_own_and_other_reads_do_not() {
        let (store, path) =
            super::scratch_sqlite("slots", Duration::from_millis(200), Duration::from_secs(5))
                .await;
        let filter = filter::parse("name = \"a\"").unwrap().unwrap();

        let walk = store.read_walk().await.unwrap();
        let refused = store.read_walk().await.map(|_| ());
        assert!(
            matches!(
                refused,
                Err(Error::ResourceExhausted {
                    reason: "TOO_MANY_MEMBERSHIP_WALKS",
                    ..
                })
            ),
            "{refused:?}"
        );
        // A walk's slot is not a listing's, and plain reads take none.
        let listing = store.read_listing(Some(&filter)).await.unwrap();
        let refused = store.read_listing(Some(&filter)).await.map(|_| ());
        assert!(
            matches!(
                refused,
                Err(Error::ResourceExhausted {
                    reason: "TOO_MANY_FILTERED_LISTINGS",
                    ..
                })
            ),
            "{refused:?}"
        );
        let plain = store.read().await.unwrap();
        let unfiltered = store.read_listing(None).await.unwrap();
        drop((plain, unfiltered, listing));

        // Ending the walk's transaction gives its slot back.
        drop(walk);
        let next = store.read_walk().await.unwrap();
        drop(next);
        super::scratch_remove(store, &path).await;
    }
}
