//! The test harness: starts the real server on a fresh database per test,
//! hands the scenario a connected client, and cleans up afterwards even when
//! the scenario panics. Plus builders and assertions shared by every module.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, Once, OnceLock},
    time::Duration,
};

use groupd::{
    config::Settings,
    pb::{self, group_service_client::GroupServiceClient},
    startup::Application,
};
use prost_types::FieldMask;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// The ErrorInfo domain every groupd error carries.
pub const DOMAIN: &str = "groups.v1";

/// The principal recorded as creator and updater until authentication lands.
pub const ANONYMOUS: &str = "anonymous";

/// The admin URL used to create and drop one PostgreSQL database per test.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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
        let (admin_url, name) = self
            .postgres
            .as_ref()
            .expect("only a PostgreSQL database can be made unreachable");
        let admin = connect_admin(admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {reachable}"
            ))
            .await
            .unwrap();
        if !reachable {
            admin
                .execute_unprepared(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .await
                .unwrap();
        }
        admin.close().await.unwrap();
    }

    /// Starts another server on the same database (with the same flags and
    /// `--skip-migrations`); cleanup stops it with the first.
    pub async fn spawn_replica(&self) -> Replica {
        let mut args = self.extra_args.clone();
        args.push("--skip-migrations".to_owned());
        let (channel, _, _, _) = start_server(&self.database_url, &args, &self.servers)
            .await
            .unwrap_or_else(|problem| panic!("cannot start a replica: {problem}"));
        Replica {
            client: GroupServiceClient::new(channel),
        }
    }
}

/// Builds and runs a server on `url`, registers it in `servers`, and
/// connects a channel to it.
async fn start_server(
    url: &str,
    extra_args: &[String],
    servers: &Servers,
) -> Result<(Channel, SocketAddr, SocketAddr, CancellationToken), String> {
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
    let addr = application.grpc_addr();
    let http_addr = application.http_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(application.run(shutdown.clone()));
    servers.0.lock().unwrap().push(Server {
        shutdown: shutdown.clone(),
        task: Some(task),
    });

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
    database: TestDatabase,
}

enum TestDatabase {
    Sqlite { path: PathBuf },
    Postgres { admin_url: String, name: String },
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
        match self.database {
            TestDatabase::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            TestDatabase::Postgres { admin_url, name } => {
                if let Ok(admin) = connect_admin(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            }
        }
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

pub async fn connect_admin(url: &str) -> Result<sea_orm::DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Starts groupd on `backend` with extra command-line flags. Returns `None`
/// when PostgreSQL is wanted but absent outside CI (the test is skipped);
/// panics when it is absent in CI.
pub async fn spawn_app(backend: Backend, extra_args: &[&str]) -> Option<(TestApp, Resources)> {
    init_logging();
    let (url, database) = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir()
                .join(format!("groupd_test_{}.db", uuid::Uuid::new_v4().simple()));
            (
                format!("sqlite://{}", path.display()),
                TestDatabase::Sqlite { path },
            )
        }
        Backend::Postgres => {
            let admin_url = std::env::var("GROUPD_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
            // A failed probe is remembered, so that a machine without
            // PostgreSQL skips every PostgreSQL test at once instead of
            // waiting for a connect timeout in each.
            static UNREACHABLE: OnceLock<String> = OnceLock::new();
            let unreachable = |error: &str| -> Option<(TestApp, Resources)> {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("no PostgreSQL at {admin_url} in CI: {error}");
                }
                eprintln!("skipped: no PostgreSQL at {admin_url} ({error})");
                None
            };
            if let Some(error) = UNREACHABLE.get() {
                return unreachable(error);
            }
            let admin = match connect_admin(&admin_url).await {
                Ok(admin) => admin,
                Err(error) => {
                    let error = UNREACHABLE.get_or_init(|| error.to_string());
                    return unreachable(error);
                }
            };
            let name = format!("groupd_test_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            let _ = admin.close().await;
            let url = database_url(&admin_url, &name);
            (url, TestDatabase::Postgres { admin_url, name })
        }
    };

    let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
    let postgres = match &database {
        TestDatabase::Postgres { admin_url, name } => Some((admin_url.clone(), name.clone())),
        TestDatabase::Sqlite { .. } => None,
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

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    // Replace the path after the authority (`scheme://authority/path`).
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

/// Runs one scenario against a fresh server on `backend`, in its own task so
/// that cleanup happens even when it panics; the panic is resumed afterwards.
pub async fn run_scenario<F, Fut>(backend: Backend, extra_args: &[&str], scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((app, resources)) = spawn_app(backend, extra_args).await else {
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

/// Writes each scenario once, as `async fn name(app: TestApp)`, and
/// instantiates it for both backends as `name::sqlite` and `name::postgres`.
/// An optional `args [..];` prefix passes extra flags to the server.
macro_rules! both_backends {
    (args $args:tt; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::helpers::run_scenario(
                        $crate::helpers::Backend::Sqlite,
                        &$args,
                        |app| async move { super::$name(app).await },
                    )
                    .await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::helpers::run_scenario(
                        $crate::helpers::Backend::Postgres,
                        &$args,
                        |app| async move { super::$name(app).await },
                    )
                    .await;
                }
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
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::helpers::run_scenario(
                        $crate::helpers::Backend::Postgres,
                        &$args,
                        |app| async move { super::$name(app).await },
                    )
                    .await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        postgres_only!(args []; $($name),+);
    };
}

// ---------------------------------------------------------------------------
// Builders.
// ---------------------------------------------------------------------------

/// The ids of `groups`, in order.
pub fn id_list(groups: &[pb::Group]) -> Vec<String> {
    groups.iter().map(|group| group.id.clone()).collect()
}

/// A group with just a name.
pub fn named(name: &str) -> pb::Group {
    pb::Group {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// Member messages for the given principal ids.
pub fn members(ids: &[&str]) -> Vec<pb::Member> {
    ids.iter()
        .map(|id| pb::Member {
            id: (*id).to_owned(),
        })
        .collect()
}

/// The principal ids of member messages, in their order.
pub fn ids(members: &[pb::Member]) -> Vec<String> {
    members.iter().map(|member| member.id.clone()).collect()
}

/// Group references for the given ids.
pub fn refs(ids: &[&str]) -> Vec<pb::GroupRef> {
    ids.iter()
        .map(|id| pb::GroupRef {
            group_id: (*id).to_owned(),
        })
        .collect()
}

/// Role references for the given ids.
pub fn roles(ids: &[&str]) -> Vec<pb::RoleRef> {
    ids.iter()
        .map(|id| pb::RoleRef {
            role_id: (*id).to_owned(),
        })
        .collect()
}

/// A field mask of the given paths.
pub fn mask(paths: &[&str]) -> FieldMask {
    FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    }
}

/// A group's labels as a sorted map, whatever map type prost generated.
pub fn labels_of(group: &pb::Group) -> BTreeMap<String, String> {
    group
        .labels
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A sorted map of the given label pairs.
pub fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Sets the labels of a group from pairs.
pub fn with_labels(mut group: pb::Group, pairs: &[(&str, &str)]) -> pb::Group {
    group.labels.clear();
    for (key, value) in pairs {
        group.labels.insert((*key).to_owned(), (*value).to_owned());
    }
    group
}

/// Seconds and nanos of a timestamp, for ordering comparisons.
pub fn instant(timestamp: Option<&prost_types::Timestamp>) -> (i64, i32) {
    let timestamp = timestamp.expect("timestamp is set");
    (timestamp.seconds, timestamp.nanos)
}

// ---------------------------------------------------------------------------
// Calls.
// ---------------------------------------------------------------------------

/// Creates a group, panicking on error.
pub async fn create(app: &TestApp, group: pb::Group) -> pb::Group {
    try_create(app, group)
        .await
        .unwrap_or_else(|status| panic!("CreateGroup failed: {status:?}"))
}

/// Creates a group with just a name, panicking on error.
pub async fn create_named(app: &TestApp, name: &str) -> pb::Group {
    create(app, named(name)).await
}

/// Creates a group, returning the status on error.
pub async fn try_create(app: &TestApp, group: pb::Group) -> Result<pb::Group, Status> {
    create_request(
        app,
        pb::CreateGroupRequest {
            group: Some(group),
            ..Default::default()
        },
    )
    .await
}

/// Sends a full CreateGroupRequest.
pub async fn create_request(
    app: &TestApp,
    request: pb::CreateGroupRequest,
) -> Result<pb::Group, Status> {
    app.client()
        .create_group(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Gets a group in the given view.
pub async fn try_get_view(
    app: &TestApp,
    id: &str,
    view: pb::GroupView,
) -> Result<pb::Group, Status> {
    app.client()
        .get_group(pb::GetGroupRequest {
            id: id.to_owned(),
            view: view as i32,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Gets a group in the default view, panicking on error.
pub async fn get(app: &TestApp, id: &str) -> pb::Group {
    try_get(app, id)
        .await
        .unwrap_or_else(|status| panic!("GetGroup {id} failed: {status:?}"))
}

/// Gets a group in the default view.
pub async fn try_get(app: &TestApp, id: &str) -> Result<pb::Group, Status> {
    try_get_view(app, id, pb::GroupView::Unspecified).await
}

/// Sends an UpdateGroup with the given group and mask (`None`: no mask).
pub async fn try_update(
    app: &TestApp,
    group: pb::Group,
    paths: Option<&[&str]>,
) -> Result<pb::Group, Status> {
    update_request(
        app,
        pb::UpdateGroupRequest {
            group: Some(group),
            update_mask: paths.map(mask),
            ..Default::default()
        },
    )
    .await
}

/// Updates a group, panicking on error.
pub async fn update(app: &TestApp, group: pb::Group, paths: Option<&[&str]>) -> pb::Group {
    try_update(app, group, paths)
        .await
        .unwrap_or_else(|status| panic!("UpdateGroup failed: {status:?}"))
}

/// Sends a full UpdateGroupRequest.
pub async fn update_request(
    app: &TestApp,
    request: pb::UpdateGroupRequest,
) -> Result<pb::Group, Status> {
    app.client()
        .update_group(request)
        .await
        .map(tonic::Response::into_inner)
}

/// A group carrying only an id, to build update requests on.
pub fn patch(id: &str) -> pb::Group {
    pb::Group {
        id: id.to_owned(),
        ..Default::default()
    }
}

/// Deletes a group.
pub async fn try_delete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Group, Status> {
    app.client()
        .delete_group(pb::DeleteGroupRequest {
            id: id.to_owned(),
            etag: etag.to_owned(),
            allow_missing: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Deletes a group, panicking on error.
pub async fn delete(app: &TestApp, id: &str) -> pb::Group {
    try_delete(app, id, "")
        .await
        .unwrap_or_else(|status| panic!("DeleteGroup {id} failed: {status:?}"))
}

/// Undeletes a group.
pub async fn try_undelete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Group, Status> {
    app.client()
        .undelete_group(pb::UndeleteGroupRequest {
            id: id.to_owned(),
            etag: etag.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Adds members and admins.
pub async fn try_add(
    app: &TestApp,
    id: &str,
    member_ids: &[&str],
    admin_ids: &[&str],
) -> Result<pb::Group, Status> {
    app.client()
        .add_group_members(pb::AddGroupMembersRequest {
            id: id.to_owned(),
            members: members(member_ids),
            admins: members(admin_ids),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Adds members and admins, panicking on error.
pub async fn add(app: &TestApp, id: &str, member_ids: &[&str], admin_ids: &[&str]) -> pb::Group {
    try_add(app, id, member_ids, admin_ids)
        .await
        .unwrap_or_else(|status| panic!("AddGroupMembers failed: {status:?}"))
}

/// Removes members and demotes admins.
pub async fn try_remove(
    app: &TestApp,
    id: &str,
    member_ids: &[&str],
    admin_ids: &[&str],
) -> Result<pb::Group, Status> {
    app.client()
        .remove_group_members(pb::RemoveGroupMembersRequest {
            id: id.to_owned(),
            members: members(member_ids),
            admins: members(admin_ids),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Removes members and demotes admins, panicking on error.
pub async fn remove(app: &TestApp, id: &str, member_ids: &[&str], admin_ids: &[&str]) -> pb::Group {
    try_remove(app, id, member_ids, admin_ids)
        .await
        .unwrap_or_else(|status| panic!("RemoveGroupMembers failed: {status:?}"))
}

/// One page of ListGroups.
pub async fn try_list(
    app: &TestApp,
    request: pb::ListGroupsRequest,
) -> Result<pb::ListGroupsResponse, Status> {
    app.client()
        .list_groups(request)
        .await
        .map(tonic::Response::into_inner)
}

/// One page of ListGroups, panicking on error.
pub async fn list(app: &TestApp, request: pb::ListGroupsRequest) -> pb::ListGroupsResponse {
    try_list(app, request)
        .await
        .unwrap_or_else(|status| panic!("ListGroups failed: {status:?}"))
}

/// Every group ListGroups returns for `request`, following page tokens
/// (bounded so that a token loop cannot hang the test).
pub async fn list_all(app: &TestApp, mut request: pb::ListGroupsRequest) -> Vec<pb::Group> {
    let mut groups = Vec::new();
    for _ in 0..1000 {
        let page = list(app, request.clone()).await;
        groups.extend(page.groups);
        if page.next_page_token.is_empty() {
            return groups;
        }
        request.page_token = page.next_page_token;
    }
    panic!("ListGroups did not reach its last page after 1000 pages");
}

/// One page of ListGroupChanges.
pub async fn try_changes_page(
    app: &TestApp,
    id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListGroupChangesResponse, Status> {
    app.client()
        .list_group_changes(pb::ListGroupChangesRequest {
            id: id.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The whole history of a group, following page tokens.
pub async fn changes(app: &TestApp, id: &str) -> Vec<pb::GroupChange> {
    let mut changes = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = try_changes_page(app, id, 1000, &token)
            .await
            .unwrap_or_else(|status| panic!("ListGroupChanges {id} failed: {status:?}"));
        changes.extend(page.changes);
        if page.next_page_token.is_empty() {
            return changes;
        }
        token = page.next_page_token;
    }
    panic!("ListGroupChanges did not reach its last page after 1000 pages");
}

/// The kinds of a history, in order.
pub fn kinds(changes: &[pb::GroupChange]) -> Vec<pb::ChangeKind> {
    changes.iter().map(pb::GroupChange::kind).collect()
}

/// The paths of a change's update mask, sorted.
pub fn mask_paths(change: &pb::GroupChange) -> BTreeSet<String> {
    change
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.iter().cloned().collect())
        .unwrap_or_default()
}

/// A sorted set of mask paths.
pub fn path_set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|path| (*path).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Assertions.
// ---------------------------------------------------------------------------

/// A group and the length of its history, to prove that a rejected write
/// changed nothing.
#[derive(Debug)]
pub struct Snapshot {
    pub group: pb::Group,
    pub history: usize,
}

/// Records the stored state of a group.
pub async fn snapshot(app: &TestApp, id: &str) -> Snapshot {
    Snapshot {
        group: try_get_view(app, id, pb::GroupView::Full)
            .await
            .unwrap_or_else(|status| panic!("GetGroup {id} failed: {status:?}")),
        history: changes(app, id).await.len(),
    }
}

/// Asserts that the group is exactly as snapshotted: same etag, same fields,
/// no new history entry.
pub async fn assert_unchanged(app: &TestApp, before: &Snapshot) {
    let after = snapshot(app, &before.group.id).await;
    assert_eq!(
        after.group.etag, before.group.etag,
        "a rejected or no-op write changed the etag"
    );
    assert_eq!(
        after.group, before.group,
        "a rejected or no-op write changed the group"
    );
    assert_eq!(
        after.history, before.history,
        "a rejected or no-op write appended a history entry"
    );
}

/// Asserts the code, and an ErrorInfo with `reason` in domain `groups.v1`.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(
        status.code(),
        code,
        "expected {code:?}/{reason}, got {status:?}"
    );
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "ErrorInfo reason of {status:?}");
    assert_eq!(info.domain, DOMAIN, "ErrorInfo domain of {status:?}");
}

/// The field violations of a status's BadRequest.
pub fn violations(status: &Status) -> Vec<tonic_types::FieldViolation> {
    status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
        .field_violations
}

/// Asserts INVALID_ARGUMENT with reason INVALID_ARGUMENT and a BadRequest
/// field violation on exactly `field`.
#[track_caller]
pub fn assert_invalid_argument(status: &Status, field: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = violations(status);
    assert!(
        violations.iter().any(|violation| violation.field == field),
        "expected a field violation on {field:?}, got {violations:?}"
    );
}

/// Asserts INVALID_ARGUMENT with a field violation on a field starting with
/// `prefix` (for fields whose index or key the behaviour doc leaves open).
#[track_caller]
pub fn assert_invalid_argument_on(status: &Status, prefix: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = violations(status);
    assert!(
        violations
            .iter()
            .any(|violation| violation.field.starts_with(prefix)),
        "expected a field violation under {prefix:?}, got {violations:?}"
    );
}

/// Asserts INVALID_ARGUMENT with a violation on `group.labels` (or
/// `group.labels[...]`) that names `key` in its field or description.
#[track_caller]
pub fn assert_invalid_label(status: &Status, key: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = violations(status);
    assert!(
        violations.iter().any(|violation| {
            violation.field.starts_with("group.labels")
                && (violation.field.contains(key) || violation.description.contains(key))
        }),
        "expected a violation on group.labels naming {key:?}, got {violations:?}"
    );
}

/// Asserts INVALID_ARGUMENT with a violation on `update_mask` whose
/// description quotes `path`.
#[track_caller]
pub fn assert_bad_mask_path(status: &Status, path: &str) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = violations(status);
    assert!(
        violations.iter().any(|violation| {
            violation.field == "update_mask" && violation.description.contains(path)
        }),
        "expected an update_mask violation quoting {path:?}, got {violations:?}"
    );
}

/// Asserts NOT_FOUND / GROUP_NOT_FOUND with the group id in the metadata.
#[track_caller]
pub fn assert_not_found(status: &Status, id: &str) {
    assert_error(status, Code::NotFound, "GROUP_NOT_FOUND");
    assert_metadata_id(status, id);
}

/// Asserts that the ErrorInfo metadata names the group `id`.
#[track_caller]
pub fn assert_metadata_id(status: &Status, id: &str) {
    let metadata = status
        .get_details_error_info()
        .map(|info| info.metadata)
        .unwrap_or_default();
    assert_eq!(
        metadata.get("id").map(String::as_str),
        Some(id),
        "ErrorInfo metadata id of {status:?}"
    );
}

/// Asserts ALREADY_EXISTS with the given reason.
#[track_caller]
pub fn assert_already_exists(status: &Status, reason: &str) {
    assert_error(status, Code::AlreadyExists, reason);
}

/// Asserts ABORTED / ETAG_MISMATCH.
#[track_caller]
pub fn assert_etag_mismatch(status: &Status) {
    assert_error(status, Code::Aborted, "ETAG_MISMATCH");
}

/// Asserts that an etag is in RFC 7232 quoted form.
#[track_caller]
pub fn assert_quoted_etag(etag: &str) {
    assert!(
        etag.len() >= 3 && etag.starts_with('"') && etag.ends_with('"'),
        "etag {etag:?} is not in quoted form"
    );
}

// ---------------------------------------------------------------------------
// HTTP/JSON gateway.
// ---------------------------------------------------------------------------

/// One answer of the HTTP/JSON gateway, read whole.
#[derive(Debug)]
pub struct HttpReply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON; `Null` when empty, and a JSON string holding the
    /// text when it is not JSON.
    pub body: serde_json::Value,
}

impl HttpReply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

impl TestApp {
    /// A request to the gateway, to add headers or a raw body before
    /// [`send`].
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }
}

/// Sends a gateway request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> HttpReply {
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("HTTP request failed: {error}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .unwrap_or_else(|error| panic!("cannot read the HTTP body: {error}"));
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    HttpReply {
        status,
        headers,
        body,
    }
}

/// Sends `method path` with an optional JSON body.
pub async fn http_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> HttpReply {
    let request = app.request(method, path);
    send(match body {
        Some(body) => request.json(body),
        None => request,
    })
    .await
}

/// `GET path`.
pub async fn http_get(app: &TestApp, path: &str) -> HttpReply {
    http_call(app, reqwest::Method::GET, path, None).await
}

/// Asserts a 200 with a JSON body, and returns the body.
#[track_caller]
pub fn http_ok(reply: HttpReply) -> serde_json::Value {
    assert_eq!(reply.status, 200, "expected 200, got {reply:#?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "content type of {reply:#?}"
    );
    reply.body
}

/// Percent-encodes a query parameter value.
pub fn query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts an error answer: the HTTP status, a JSON `google.rpc.Status`
/// body with the gRPC `code`, a message, and an ErrorInfo with `reason` in
/// domain `groups.v1`.
#[track_caller]
pub fn assert_http_error(reply: &HttpReply, http_status: u16, code: Code, reason: &str) {
    assert_eq!(
        reply.status, http_status,
        "expected HTTP {http_status} {code:?}/{reason}, got {reply:#?}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "content type of {reply:#?}"
    );
    assert_eq!(
        reply.body["code"],
        serde_json::json!(code as i32),
        "gRPC code in {reply:#?}"
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message in {reply:#?}"
    );
    let details = reply.body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details list in {reply:#?}"));
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .unwrap_or_else(|| panic!("no ErrorInfo in {reply:#?}"));
    assert_eq!(info["reason"], reason, "ErrorInfo reason of {reply:#?}");
    assert_eq!(info["domain"], DOMAIN, "ErrorInfo domain of {reply:#?}");
}

/// The `(field, description)` pairs of an error answer's BadRequest.
#[track_caller]
pub fn http_violations(reply: &HttpReply) -> Vec<(String, String)> {
    let details = reply.body["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("no BadRequest in {reply:#?}"));
    bad_request["fieldViolations"]
        .as_array()
        .unwrap_or_else(|| panic!("no fieldViolations in {reply:#?}"))
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap_or_default().to_owned(),
                v["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts 400 INVALID_ARGUMENT with a BadRequest violation on a field
/// starting with `prefix`.
#[track_caller]
pub fn assert_http_invalid(reply: &HttpReply, prefix: &str) {
    assert_http_error(reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = http_violations(reply);
    assert!(
        violations
            .iter()
            .any(|(field, _)| field.starts_with(prefix)),
        "expected a field violation under {prefix:?}, got {violations:?}"
    );
}

/// The gateway path of a group.
pub fn group_path(id: &str) -> String {
    format!("/v1/groups/{id}")
}

/// Creates a group over HTTP from a JSON `Group`, asserting 200.
pub async fn http_create(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    http_ok(http_call(app, reqwest::Method::POST, "/v1/groups", Some(&body)).await)
}

/// Reads a group over HTTP, asserting 200.
pub async fn http_group(app: &TestApp, id: &str) -> serde_json::Value {
    http_ok(http_get(app, &group_path(id)).await)
}

/// The `id` of a JSON group.
#[track_caller]
pub fn id_of(group: &serde_json::Value) -> String {
    group["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {group}"))
        .to_owned()
}

/// A Timestamp field of a JSON message, parsed as RFC 3339 (UTC, `Z`).
#[track_caller]
pub fn timestamp(json: &serde_json::Value, key: &str) -> Option<prost_types::Timestamp> {
    let value = json.get(key)?;
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{key} is {value}, not an RFC 3339 string"));
    assert!(
        text.contains('T') && text.ends_with('Z'),
        "{key} {text:?} is not an RFC 3339 UTC timestamp"
    );
    Some(
        text.parse()
            .unwrap_or_else(|error| panic!("{key} {text:?} is not RFC 3339: {error}")),
    )
}

/// Creates a group with every writable field populated (over gRPC), so
/// that an update can show what it keeps.
pub async fn rich_group(app: &TestApp) -> pb::Group {
    let parent = create_named(app, "parent").await;
    create(
        app,
        with_labels(
            pb::Group {
                name: "rich".to_owned(),
                scope: "tenant-a".to_owned(),
                description: "before".to_owned(),
                email: "before@example.com".to_owned(),
                members: members(&["alice", "bob"]),
                admins: members(&["alice"]),
                member_of: refs(&[&parent.id]),
                assigned_roles: roles(&["roles/viewer"]),
                inactive: true,
                provenance: "ldap".to_owned(),
                ..Default::default()
            },
            &[("a", "1"), ("b", "2")],
        ),
    )
    .await
}

/// Asserts that every writable field but those in `changed` (proto names)
/// is as in `before`, and that the output-only creation fields stayed.
#[track_caller]
pub fn assert_only_changed(before: &pb::Group, after: &pb::Group, changed: &[&str]) {
    let same = |field: &str| !changed.contains(&field);
    if same("name") {
        assert_eq!(after.name, before.name, "name changed");
    }
    assert_eq!(after.scope, before.scope, "scope changed");
    if same("description") {
        assert_eq!(after.description, before.description, "description changed");
    }
    if same("email") {
        assert_eq!(after.email, before.email, "email changed");
    }
    if same("members") {
        assert_eq!(after.members, before.members, "members changed");
    }
    if same("admins") {
        assert_eq!(after.admins, before.admins, "admins changed");
    }
    if same("member_of") {
        assert_eq!(after.member_of, before.member_of, "member_of changed");
    }
    if same("assigned_roles") {
        assert_eq!(
            after.assigned_roles, before.assigned_roles,
            "assigned_roles changed"
        );
    }
    if same("inactive") {
        assert_eq!(after.inactive, before.inactive, "inactive changed");
    }
    if same("provenance") {
        assert_eq!(after.provenance, before.provenance, "provenance changed");
    }
    if same("labels") {
        assert_eq!(labels_of(after), labels_of(before), "labels changed");
    }
    assert_eq!(after.state(), pb::State::Active, "state changed");
    assert_eq!(after.create_time, before.create_time, "create_time changed");
    assert_eq!(after.created_by, before.created_by, "created_by changed");
}

// ---------------------------------------------------------------------------
// The real binary as a child process.
// ---------------------------------------------------------------------------

/// A bound against a binary that never starts or never logs what a test
/// waits for; not a timing assertion.
pub const CHILD_BOUND: Duration = Duration::from_secs(60);

/// What a [`Child`] does with its JSON log once it is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildLog {
    /// Keep reading it, so that the test can look at it.
    Keep,
    /// Close the pipe: the server then writes to a reader that went away.
    Close,
}

/// The real `groupd` binary, started by [`Child::serve`].
pub struct Child {
    /// The process.
    pub process: tokio::process::Child,
    /// The gRPC address it reported.
    pub grpc_addr: String,
    /// The HTTP address it reported.
    pub http_addr: String,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Child {
    /// Runs the binary with `args` (plus JSON logs, and `GROUPD_LOG` from the
    /// environment removed) and returns its exit status and whole log (stderr).
    pub async fn run(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let output = tokio::time::timeout(
            CHILD_BOUND,
            Self::command(args, env)
                .stderr(std::process::Stdio::piped())
                .output(),
        )
        .await
        .expect("groupd ended in time")
        .expect("groupd runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_groupd"));
        command
            .args(args)
            .args(["--log-format", "json"])
            .env_remove("GROUPD_LOG")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts `groupd serve` on `database_url` and free ports, with
    /// `--skip-migrations` (the test's database is migrated) and `args`, and
    /// returns once it has logged both addresses.
    pub async fn serve(database_url: &str, args: &[&str], log: ChildLog) -> Self {
        let mut all = vec![
            "serve",
            "--database-url",
            database_url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--skip-migrations",
        ];
        all.extend_from_slice(args);
        let mut process = Self::command(&all, &[])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groupd starts");
        let stderr = process.stderr.take().expect("piped stderr");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (grpc_addr, http_addr) = tokio::time::timeout(CHILD_BOUND, async {
            let (mut grpc, mut http) = (None, None);
            while let Some(line) = lines.next_line().await.expect("readable log") {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let addr = event["addr"].as_str().map(str::to_owned);
                match event["message"].as_str() {
                    Some("serving gRPC") => grpc = addr,
                    Some("serving HTTP") => http = addr,
                    _ => {}
                }
                kept.lock().unwrap().push(event);
                if let (Some(grpc), Some(http)) = (&grpc, &http) {
                    return (grpc.clone(), http.clone());
                }
            }
            panic!("groupd exited before serving: {:?}", kept.lock().unwrap());
        })
        .await
        .expect("groupd reported its addresses in time");
        if log == ChildLog::Keep {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(event) = serde_json::from_str(&line) {
                        kept.lock().unwrap().push(event);
                    }
                }
            });
        }
        Self {
            process,
            grpc_addr,
            http_addr,
            log: kept,
        }
    }

    /// A client connected to the child's gRPC port.
    pub async fn client(&self) -> GroupServiceClient<Channel> {
        GroupServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("connects to the child groupd")
    }

    /// The log events read so far.
    pub fn log(&self) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `count` log events match `wanted`, and returns them.
    pub async fn wait_for_log(
        &self,
        count: usize,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let found = tokio::time::timeout(CHILD_BOUND, async {
            loop {
                let matching: Vec<_> = self.log().into_iter().filter(|e| wanted(e)).collect();
                if matching.len() >= count {
                    return matching;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("the log never had {count} such events: {:?}", self.log()))
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub async fn terminate(&self) {
        let pid = self.process.id().expect("the process is running");
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit and returns its status.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(CHILD_BOUND, self.process.wait())
            .await
            .expect("groupd exited in time")
            .expect("the exit status")
    }
}
