//! The one place database errors become service errors. Each database's
//! rules read its own error codes (PostgreSQL's SQLSTATE, SQLite's extended
//! result codes), never message texts, except where SQLite gives nothing
//! else: the constraint a unique violation broke is only in its message.

use sea_orm::{DbErr, RuntimeErr, sqlx, sqlx::error::DatabaseError};

use super::Dialect;
use crate::error::Error;

/// A unique constraint a write can run into, as each database names it,
/// and what the caller is told.
struct UniqueConstraint {
    /// PostgreSQL's constraint (or unique index) name.
    postgres: &'static str,
    /// What follows "UNIQUE constraint failed: " in SQLite's message.
    sqlite: &'static str,
    /// The `ErrorInfo` reason.
    reason: &'static str,
    /// A sentence for the caller.
    message: &'static str,
}

/// Every unique constraint of the schema that a request can break. The
/// service checks first and answers with the group's id; these come into
/// play when a concurrent request wins the race between check and insert.
const UNIQUE_CONSTRAINTS: [UniqueConstraint; 3] = [
    UniqueConstraint {
        postgres: "groups_pkey",
        sqlite: "groups.id",
        reason: "GROUP_ID_TAKEN",
        message: "a group with this id already exists",
    },
    UniqueConstraint {
        postgres: "groups_live_scope_name_key",
        sqlite: "index 'groups_live_scope_name_key'",
        reason: "GROUP_NAME_TAKEN",
        message: "a live group with this name already exists in its scope",
    },
    UniqueConstraint {
        postgres: "groups_request_id",
        sqlite: "groups.request_id",
        reason: "REQUEST_ID_TAKEN",
        message: "this request_id was used by a concurrent request",
    },
];

/// What a database error means to a caller, where it means more than
/// "internal".
enum Meaning {
    /// A unique constraint was broken.
    Taken(&'static UniqueConstraint),
    /// The transaction lost a race (deadlock, serialization failure).
    Conflict,
    /// The statement timeout cancelled the statement (PostgreSQL), or the
    /// call's end stopped it (SQLite).
    DeadlineExceeded,
    /// The database could not serve the request now (a lock held too long,
    /// a connection the server closed).
    Unavailable,
}

/// PostgreSQL's SQLSTATE codes groupd tells apart.
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const QUERY_CANCELED: &str = "57014";
    /// Class 08, connection exceptions.
    pub const CONNECTION_EXCEPTION_CLASS: &str = "08";
    /// The server ended the session: `admin_shutdown`, `crash_shutdown`,
    /// `cannot_connect_now` (a server starting or stopping).
    pub const SESSION_ENDED: [&str; 3] = ["57P01", "57P02", "57P03"];
    /// `too_many_connections`.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
}

/// SQLite's result codes groupd tells apart.
mod sqlite_code {
    /// `SQLITE_BUSY`: another connection held the write lock past the busy
    /// timeout (a primary code; extended codes add detail above 8 bits).
    pub const BUSY: i64 = 5;
    /// `SQLITE_LOCKED`.
    pub const LOCKED: i64 = 6;
    /// `SQLITE_INTERRUPT`: the progress handler stopped the statement
    /// because its call was over (see `calls.rs`).
    pub const INTERRUPT: i64 = 9;
    /// `SQLITE_CONSTRAINT_PRIMARYKEY`.
    pub const CONSTRAINT_PRIMARYKEY: i64 = 1555;
    /// `SQLITE_CONSTRAINT_UNIQUE`.
    pub const CONSTRAINT_UNIQUE: i64 = 2067;
}

impl Dialect {
    /// Turns a database error into the service error a caller should see.
    pub fn classify(self, err: DbErr) -> Error {
        let meaning = database_error(&err).and_then(|db| match self {
            Self::Postgres => postgres_meaning(db),
            Self::Sqlite => sqlite_meaning(db),
        });
        match meaning {
            Some(Meaning::Taken(constraint)) => Error::AlreadyExists {
                reason: constraint.reason,
                message: constraint.message.to_owned(),
                id: String::new(),
            },
            Some(Meaning::Conflict) => Error::Conflict,
            Some(Meaning::DeadlineExceeded) => Error::DeadlineExceeded,
            Some(Meaning::Unavailable) => Error::Unavailable(Box::new(err)),
            None => connect_error(err),
        }
    }
}

/// Classifies an error that no database rule explains: the connection or
/// the pool failed (UNAVAILABLE, worth a retry), or something else did
/// (INTERNAL). Also used while connecting, before the dialect is known.
pub fn connect_error(err: DbErr) -> Error {
    let unreachable = matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        || matches!(
            &err,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if matches!(
                    e.as_ref(),
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Tls(_)
                )
        );
    if unreachable {
        Error::Unavailable(Box::new(err))
    } else {
        Error::internal(err)
    }
}

/// Whether `err` came from a pooled connection the server had closed
/// while it sat idle (a restart, a failover, an operator ending sessions):
/// the statement never ran, and the pool has discarded the connection
/// (it is tested when given back), so the same work can be tried again on
/// another. A database that cannot be reached at all fails to connect
/// instead, which this does not match.
pub fn closed_connection(err: &DbErr) -> bool {
    // A statement's error; a failure to connect is a `DbErr::Conn`.
    let sqlx = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_ref()
        }
        _ => return false,
    };
    match sqlx {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| sqlstate::SESSION_ENDED.contains(&code.as_ref())),
        _ => false,
    }
}

/// The driver's error, when the database itself answered with one.
fn database_error(err: &DbErr) -> Option<&dyn DatabaseError> {
    if let DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e)) = err
    {
        e.as_database_error()
    } else {
        None
    }
}

fn postgres_meaning(db: &dyn DatabaseError) -> Option<Meaning> {
    let code = db.code()?;
    if code == sqlstate::UNIQUE_VIOLATION {
        let name = db.constraint()?;
        return UNIQUE_CONSTRAINTS
            .iter()
            .find(|c| c.postgres == name)
            .map(Meaning::Taken);
    }
    if code == sqlstate::SERIALIZATION_FAILURE || code == sqlstate::DEADLOCK_DETECTED {
        return Some(Meaning::Conflict);
    }
    if code == sqlstate::QUERY_CANCELED {
        return Some(Meaning::DeadlineExceeded);
    }
    // A pooled connection the server has closed (a restart, a failover, an
    // operator ending sessions) fails the one call that meets it: worth a
    // retry, which gets a new connection.
    (code.starts_with(sqlstate::CONNECTION_EXCEPTION_CLASS)
        || sqlstate::SESSION_ENDED.contains(&code.as_ref())
        || code == sqlstate::TOO_MANY_CONNECTIONS)
        .then_some(Meaning::Unavailable)
}

fn sqlite_meaning(db: &dyn DatabaseError) -> Option<Meaning> {
    let code: i64 = db.code()?.parse().ok()?;
    if code == sqlite_code::CONSTRAINT_UNIQUE || code == sqlite_code::CONSTRAINT_PRIMARYKEY {
        let target = db.message().strip_prefix("UNIQUE constraint failed: ")?;
        return UNIQUE_CONSTRAINTS
            .iter()
            .find(|c| c.sqlite == target)
            .map(Meaning::Taken);
    }
    let primary = code & 0xff;
    if primary == sqlite_code::INTERRUPT {
        return Some(Meaning::DeadlineExceeded);
    }
    (primary == sqlite_code::BUSY || primary == sqlite_code::LOCKED).then_some(Meaning::Unavailable)
}

/// Classifies the error of a sea-orm result by a dialect's rules.
pub trait Classify<T> {
    /// The result, its error classified by `dialect`.
    fn classify(self, dialect: Dialect) -> Result<T, Error>;
}

impl<T> Classify<T> for Result<T, DbErr> {
    fn classify(self, dialect: Dialect) -> Result<T, Error> {
        self.map_err(|err| dialect.classify(err))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Store, StoreOptions};
    use crate::domain::{GroupFields, GroupId, Principal, Timestamp, create};
    use crate::error::Error;

    /// A migrated SQLite database in a fresh file, with a busy timeout of
    /// `busy`, and the file's path (to open it a second time).
    async fn sqlite(busy: Duration) -> (Store, String) {
        let path =
            std::env::temp_dir().join(format!("groupd_store_{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        let store = connect(&url, busy).await;
        store.migrate().await.unwrap();
        (store, url)
    }

    /// Deletes the database file of `url` and its WAL companions.
    fn remove(url: &str) {
        let path = url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }

    async fn connect(url: &str, busy: Duration) -> Store {
        let options = StoreOptions {
            max_connections: 2,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: busy,
            filter_budget: crate::domain::filter::FilterBudget::DEFAULT,
            filtered_listings: 1,
            membership_walks: 1,
        };
        Store::connect(url, &options).await.unwrap()
    }

    fn group(id: &str, name: &str) -> crate::domain::Group {
        let fields = GroupFields {
            name: name.into(),
            ..GroupFields::default()
        };
        create::new_group(
            GroupId::parse(id).unwrap(),
            fields,
            &crate::domain::Membership::default(),
            &Principal::anonymous(),
            Timestamp::from_micros(1),
        )
        .0
    }

    fn reason(result: Result<(), Error>) -> &'static str {
        match result {
            Err(Error::AlreadyExists { reason, .. }) => reason,
            other => panic!("expected ALREADY_EXISTS, got {other:?}"),
        }
    }

    /// SQLite names the broken constraint only in its message; each of the
    /// schema's unique constraints must map to its own reason.
    #[tokio::test]
    async fn sqlite_unique_violations_name_the_constraint_they_broke() {
        let (store, url) = sqlite(Duration::from_secs(5)).await;
        let tx = store.write().await.unwrap();
        let request = "6f1c2a4e-0d3b-4c5a-8e7f-9a0b1c2d3e4f";
        tx.insert_group(&group("g1", "ops"), Some(request))
            .await
            .unwrap();
        assert_eq!(
            reason(tx.insert_group(&group("g1", "other"), None).await),
            "GROUP_ID_TAKEN"
        );
        assert_eq!(
            reason(tx.insert_group(&group("g2", "OPS"), None).await),
            "GROUP_NAME_TAKEN"
        );
        assert_eq!(
            reason(tx.insert_group(&group("g3", "dev"), Some(request)).await),
            "REQUEST_ID_TAKEN"
        );
        drop(tx);
        let _ = store.close().await;
        remove(&url);
    }

    /// A writer that waits for another's lock past the busy timeout is told
    /// to retry (UNAVAILABLE), not that something broke.
    #[tokio::test]
    async fn a_sqlite_writer_kept_waiting_past_the_busy_timeout_is_unavailable() {
        let (store, url) = sqlite(Duration::from_millis(50)).await;
        let holder = store.write().await.unwrap();
        let other = connect(&url, Duration::from_millis(50)).await;
        match other.write().await {
            Err(Error::Unavailable(_)) => {}
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        drop(holder);
        assert!(other.write().await.is_ok());
        let _ = other.close().await;
        let _ = store.close().await;
        remove(&url);
    }
}
