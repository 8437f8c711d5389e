//! Scratch databases for the integration tests (`tests/api/helpers`) and the
//! benchmarks (`benches/`): a temporary SQLite file, or a fresh PostgreSQL
//! database created through an admin connection and dropped afterwards.
//!
//! Each target includes this file with `#[path = "…"] mod scratch_db;`
//! rather than depending on a dev-only workspace crate. It is one small
//! file that needs nothing the targets do not already depend on, and a
//! crate would add a manifest, a lockfile entry and another set of lints
//! to keep in step, all for three functions. The price of including a file
//! is that an item one target does not use makes it warn about dead code,
//! which is what keeps this module to what they all share.

use std::{fmt, path::PathBuf, time::Duration};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

/// The admin URL when the environment names none: the server that the
/// README and CI set up.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The variable that names the PostgreSQL admin URL of the tests (and of the
/// benchmark, unless it is given its own).
pub const POSTGRES_URL_VARIABLE: &str = "GROUPD_TEST_POSTGRES_URL";

/// The PostgreSQL admin URL: the first of `variables` that is set, else
/// [`POSTGRES_URL_VARIABLE`], else [`DEFAULT_POSTGRES_URL`].
pub fn postgres_admin_url(variables: &[&str]) -> String {
    variables
        .iter()
        .chain([&POSTGRES_URL_VARIABLE])
        .find_map(|name| std::env::var(name).ok())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// One connection to the server of `url`, with short timeouts, so that a
/// server that does not answer is reported in seconds rather than hung on.
pub async fn connect_admin(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// A database made for one test or one benchmark run.
#[derive(Debug)]
pub enum ScratchDb {
    /// A SQLite file in the temporary directory (created on first connect).
    Sqlite { path: PathBuf },
    /// A database on the PostgreSQL server of `admin_url`.
    Postgres { admin_url: String, name: String },
}

/// Why no PostgreSQL scratch database could be made.
#[derive(Debug)]
pub enum ScratchError {
    /// Nothing answered at the admin URL, or it refused the login.
    Unreachable { admin_url: String, error: DbErr },
    /// The server answered but did not create the database.
    Create { name: String, error: DbErr },
}

impl fmt::Display for ScratchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { admin_url, error } => {
                write!(f, "no PostgreSQL at {admin_url}: {error}")
            }
            Self::Create { name, error } => write!(f, "cannot create database {name}: {error}"),
        }
    }
}

impl ScratchDb {
    /// A fresh SQLite file named `{prefix}_{random}.db`, and its URL.
    pub fn sqlite(prefix: &str) -> (String, Self) {
        let path = std::env::temp_dir().join(format!("{prefix}_{}.db", random_tag()));
        (
            format!("sqlite://{}", path.display()),
            Self::Sqlite { path },
        )
    }

    /// A fresh database named `{prefix}_{random}` on the PostgreSQL server of
    /// `admin_url`, and its URL.
    pub async fn postgres(admin_url: &str, prefix: &str) -> Result<(String, Self), ScratchError> {
        let admin = connect_admin(admin_url)
            .await
            .map_err(|error| ScratchError::Unreachable {
                admin_url: admin_url.to_owned(),
                error,
            })?;
        let name = format!("{prefix}_{}", random_tag());
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await;
        let _ = admin.close().await;
        if let Err(error) = created {
            return Err(ScratchError::Create { name, error });
        }
        let url = database_url(admin_url, &name);
        Ok((
            url,
            Self::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        ))
    }

    /// Deletes the database: the SQLite file and its journals, or the
    /// PostgreSQL database with the sessions still open on it.
    pub async fn drop_database(self) -> Result<(), String> {
        match self {
            Self::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // A journal that was never written is not there to remove.
                    let _ = std::fs::remove_file(file);
                }
                Ok(())
            }
            Self::Postgres { admin_url, name } => {
                let cannot = |error: DbErr| format!("cannot drop database {name}: {error}");
                let admin = connect_admin(&admin_url).await.map_err(cannot)?;
                let dropped = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
                dropped.map(|_| ()).map_err(cannot)
            }
        }
    }
}

/// A name part that no other run picks.
fn random_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The URL of database `name` on the server of `admin_url`: the path after
/// the authority replaced, the query kept.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let after_scheme = base.find("://").map_or(0, |at| at + 3);
    let path_start = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |at| after_scheme + at);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
