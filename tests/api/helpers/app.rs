//! Starting the real server on a fresh database per test, and cleaning up
//! afterwards even when the scenario panics: [`spawn_app`], [`run_scenario`]
//! and the `both_backends!` and `postgres_only!` macros that instantiate a
//! scenario per backend.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

use groupd::{
    config::Settings, pb::group_service_client::GroupServiceClient, startup::Application,
};
use sea_orm::ConnectionTrait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::scratch_db::{ScratchDb, connect_admin};

/// How long cleanup waits for the server to stop after cancellation. This is
/// a bound against hangs, not a timing assertion: a healthy server with the
/// default zero shutdown delay stops at once.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// The database a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

type ServerTask = JoinHandle<anyhow::Result<()>>;

/// One running `Application::run` and the token that stops it.
struct Server {
    shutdown: CancellationToken,
    task: Option<ServerTask>,
}

/// Every server started on a test's database: the first one, and replicas.
#[derive(Clone, Default)]
struct Servers(Arc<Mutex<Vec<Server>>>);

/// A running groupd with a fresh database, and a client connected to it.
pub struct TestApp {
    /// A client of the GroupService, connected to the server.
    pub client: GroupServiceClient<Channel>,
    /// The channel the client uses, to build other clients (health,
    /// reflection) on the same connection.
    pub channel: Channel,
    /// The address the server bound.
    pub addr: SocketAddr,
    /// The address the server's HTTP/JSON gateway bound.
    pub http_addr: SocketAddr,
    /// An HTTP client for the gateway (see [`TestApp::url`]).
    pub http: reqwest::Client,
    /// Cancelling it starts the server's graceful shutdown.
    pub shutdown: CancellationToken,
    database_url: String,
    /// The admin URL and database name, on PostgreSQL.
    postgres: Option<(String, String)>,
    extra_args: Vec<String>,
    servers: Servers,
}

/// Another groupd on the same database as a [`TestApp`], as a second
/// Kubernetes replica would be.
pub struct Replica {
    /// A client connected to the replica.
    pub client: GroupServiceClient<Channel>,
    /// Its HTTP address (the gateway and `/metrics`).
    pub http_addr: SocketAddr,
}

impl TestApp {
    /// Takes the handle of the first server's task, to await `run`'s result
    /// directly. Cleanup then only cancels the token.
    pub fn take_server(&self) -> Option<ServerTask> {
        self.servers.0.lock().unwrap()[0].task.take()
    }

    /// The gateway URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// The URL of the test's database, to start other processes on it.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Another client on the same channel, for concurrent tasks.
    pub fn client(&self) -> GroupServiceClient<Channel> {
        self.client.clone()
    }

    /// Makes the test's PostgreSQL database refuse connections (and closes
    /// the open ones), or accept them again: a database outage that leaves
    /// the other tests' databases alone.
    pub async fn set_postgres_reachable(&self, reachable: bool) {
        self.as_postgres_admin(|name| {
            format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {reachable}")
        })
        .await;
        if !reachable {
            self.end_postgres_sessions().await;
        }
    }

    /// Ends every session on the test's PostgreSQL database, as a restart
    /// of the server or a failover would: every pooled connection is
    /// closed under the server's feet.
    pub async fn end_postgres_sessions(&self) {
        self.as_postgres_admin(|name| {
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        })
        .await;
    }

    /// Runs the statement `sql` makes of the test database's name, as the
    /// PostgreSQL server's admin.
    async fn as_postgres_admin(&self, sql: impl FnOnce(&str) -> String) {
        let (admin_url, name) = self
            .postgres
            .as_ref()
            .expect("only a PostgreSQL test has a PostgreSQL server to act on");
        let admin = connect_admin(admin_url).await.unwrap();
        admin.execute_unprepared(&sql(name)).await.unwrap();
        admin.close().await.unwrap();
    }

    /// Starts another server on the same database (with the same flags and
    /// `--skip-migrations`); cleanup stops it with the first.
    pub async fn spawn_replica(&self) -> Replica {
        let mut args = self.extra_args.clone();
        args.push("--skip-migrations".to_owned());
        let (channel, _, http_addr, _) = start_server(&self.database_url, &args, &self.servers)
            .await
            .unwrap_or_else(|problem| panic!("cannot start a replica: {problem}"));
        Replica {
            client: GroupServiceClient::new(channel),
            http_addr,
        }
    }
}

/// A server started without a client, for scenarios that connect their own
/// way (over TLS, say).
pub struct Launched {
    /// The address the gRPC port bound.
    pub addr: SocketAddr,
    /// The address the HTTP port bound.
    pub http_addr: SocketAddr,
    /// The address the probe port bound, when `--probe-addr` was given.
    pub probe_addr: Option<SocketAddr>,
    /// Cancelling it starts the server's graceful shutdown.
    pub shutdown: CancellationToken,
}

/// Builds and runs a server on `url` and registers it in `servers`.
async fn launch(url: &str, extra_args: &[String], servers: &Servers) -> Result<Launched, String> {
    let mut args = vec![
        "groupd".to_owned(),
        "--database-url".to_owned(),
        url.to_owned(),
        "--grpc-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--http-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    args.extend(extra_args.iter().cloned());
    let settings = Settings::parse_from_args(args).map_err(|e| format!("bad settings: {e}"))?;

    let application = Application::build(settings)
        .await
        .map_err(|e| format!("Application::build failed: {e:#}"))?;
    let launched = Launched {
        addr: application.grpc_addr(),
        http_addr: application.http_addr(),
        probe_addr: application.probe_addr(),
        shutdown: CancellationToken::new(),
    };
    let task = tokio::spawn(application.run(launched.shutdown.clone()));
    servers.0.lock().unwrap().push(Server {
        shutdown: launched.shutdown.clone(),
        task: Some(task),
    });
    Ok(launched)
}

/// Builds and runs a server on `url`, registers it in `servers`, and
/// connects a channel to it.
async fn start_server(
    url: &str,
    extra_args: &[String],
    servers: &Servers,
) -> Result<(Channel, SocketAddr, SocketAddr, CancellationToken), String> {
    let Launched {
        addr,
        http_addr,
        shutdown,
        ..
    } = launch(url, extra_args, servers).await?;

    // The listener is bound by build(), so connecting cannot race the server.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to groupd at {addr}: {e}"))?;
    Ok((channel, addr, http_addr, shutdown))
}

/// What must be undone after a scenario, kept outside the scenario's task so
/// that a panic cannot lose it.
pub struct Resources {
    servers: Servers,
    database: ScratchDb,
}

impl Resources {
    /// Stops the servers, then deletes their database. Returns an error
    /// message when a server failed to stop cleanly, so the caller reports
    /// it after cleanup is done.
    pub async fn cleanup(self) -> Option<String> {
        let tasks: Vec<ServerTask> = {
            let mut servers = self.servers.0.lock().unwrap();
            for server in servers.iter() {
                server.shutdown.cancel();
            }
            servers.iter_mut().filter_map(|s| s.task.take()).collect()
        };
        let mut problem = None;
        for task in tasks {
            match tokio::time::timeout(SHUTDOWN_BOUND, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => problem = Some(format!("run() returned an error: {error:#}")),
                Ok(Err(join)) => problem = Some(format!("the server task failed: {join}")),
                Err(_) => {
                    problem = Some(format!(
                        "the server did not stop within {SHUTDOWN_BOUND:?} after cancellation"
                    ));
                }
            }
        }
        // A database left behind is litter in the temporary directory or on
        // the test server, not a wrong result: the scenario's outcome stands.
        let _ = self.database.drop_database().await;
        problem
    }
}

/// Initialises logging once per process when `TEST_LOG` is set, so that test
/// output stays quiet by default.
fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// Starts groupd on `backend` with extra command-line flags. Returns `None`
/// when the PostgreSQL half of the suite is skipped and `backend` is
/// PostgreSQL; panics when PostgreSQL is wanted and does not answer (see
/// the `postgres` module).
pub async fn spawn_app(backend: Backend, extra_args: &[&str]) -> Option<(TestApp, Resources)> {
    init_logging();
    let (url, database) = match backend {
        Backend::Sqlite => ScratchDb::sqlite("groupd_test"),
        Backend::Postgres => super::postgres::scratch_database().await?,
    };

    let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
    let postgres = match &database {
        ScratchDb::Postgres { admin_url, name } => Some((admin_url.clone(), name.clone())),
        ScratchDb::Sqlite { .. } => None,
    };
    let servers = Servers::default();
    let resources = Resources {
        servers: servers.clone(),
        database,
    };
    let (channel, addr, http_addr, shutdown) = match start_server(&url, &extra_args, &servers).await
    {
        Ok(started) => started,
        Err(problem) => {
            resources.cleanup().await;
            panic!("{problem}");
        }
    };
    let app = TestApp {
        client: GroupServiceClient::new(channel.clone()),
        channel,
        addr,
        http_addr,
        http: reqwest::Client::new(),
        shutdown,
        database_url: url,
        postgres,
        extra_args,
        servers,
    };
    Some((app, resources))
}

/// Runs one scenario against a fresh server on `backend`, in its own task so
/// that cleanup happens even when it panics; the panic is resumed afterwards.
pub async fn run_scenario<F, Fut>(backend: Backend, extra_args: &[&str], scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((app, resources)) = spawn_app(backend, extra_args).await else {
        // The PostgreSQL half is skipped on request, which has been said
        // where the output shows it (see the `postgres` module).
        return;
    };
    let outcome = tokio::spawn(scenario(app)).await;
    let problem = resources.cleanup().await;
    match outcome {
        Ok(()) => {}
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the scenario task failed: {error}"),
    }
    if let Some(problem) = problem {
        panic!("{problem}");
    }
}

/// Runs one scenario against a fresh server on SQLite that the scenario
/// connects to itself, with cleanup as in [`run_scenario`]. For what does
/// not depend on the database, such as TLS.
pub async fn run_launched_scenario<F, Fut>(extra_args: &[String], scenario: F)
where
    F: FnOnce(Launched) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_launched_scenario_on(Backend::Sqlite, extra_args, scenario).await;
}

/// Like [`run_launched_scenario`], on `backend`: for scenarios that connect
/// their own way (over TLS, with client certificates) and write groups.
/// Returns without running when the PostgreSQL half is skipped, as
/// [`run_scenario`] does.
pub async fn run_launched_scenario_on<F, Fut>(backend: Backend, extra_args: &[String], scenario: F)
where
    F: FnOnce(Launched) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    init_logging();
    let (url, database) = match backend {
        Backend::Sqlite => ScratchDb::sqlite("groupd_test"),
        Backend::Postgres => match super::postgres::scratch_database().await {
            Some(scratch) => scratch,
            None => return,
        },
    };
    let servers = Servers::default();
    let resources = Resources {
        servers: servers.clone(),
        database,
    };
    let launched = match launch(&url, extra_args, &servers).await {
        Ok(launched) => launched,
        Err(problem) => {
            resources.cleanup().await;
            panic!("{problem}");
        }
    };
    let outcome = tokio::spawn(scenario(launched)).await;
    let problem = resources.cleanup().await;
    match outcome {
        Ok(()) => {}
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the scenario task failed: {error}"),
    }
    if let Some(problem) = problem {
        panic!("{problem}");
    }
}

/// Writes each scenario once, as `async fn name(app: TestApp)`, and
/// instantiates it for both backends as `name::sqlite` and `name::postgres`.
/// An optional `args [..];` prefix passes extra flags to the server.
macro_rules! both_backends {
    (args $args:tt; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                scenario_test!(sqlite, Sqlite, $args, $name);
                scenario_test!(postgres, Postgres, $args, $name);
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        both_backends!(args []; $($name),+);
    };
}

/// Like [`both_backends!`], for scenarios that can only be staged on
/// PostgreSQL (a database outage or a network cut: an open SQLite file
/// cannot be taken away): `name::postgres` only.
macro_rules! postgres_only {
    (args $args:tt; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                scenario_test!(postgres, Postgres, $args, $name);
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        postgres_only!(args []; $($name),+);
    };
}

/// One test function `$test` that runs scenario `super::$name` on
/// `Backend::$backend` with the server flags `$args`: what
/// [`both_backends!`] and [`postgres_only!`] write once per backend.
macro_rules! scenario_test {
    ($test:ident, $backend:ident, $args:tt, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::helpers::run_scenario(
                $crate::helpers::Backend::$backend,
                &$args,
                |app| async move { super::$name(app).await },
            )
            .await;
        }
    };
}
