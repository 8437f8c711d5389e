//! Authentication and authorization end to end: the server runs with
//! `--auth jwt` against an identity provider of the test's own (a key pair
//! generated here, its JWKS in a file), and every call carries a token
//! signed for real. One file per theme: the RPC × caller matrix, the
//! escalations the policy must refuse, refused tokens (`expiry`), principal
//! ids with `:` and `/` (`principals`), the change stream over gRPC and
//! HTTP (`watch`).
//!
//! The other modes, and files rewritten while serving, start servers of
//! their own from files written by the scenario (`files`): client
//! certificates over TLS (`mtls`), Basic (`basic`), several modes at once
//! (`combined`), reloads of the roles file and the JWKS (`reload`), and no
//! secret in any answer or log line (`secrets`); those that read the log
//! run the real binary (`served`).

mod basic;
mod combined;
mod escalation;
mod expiry;
mod files;
mod idp;
mod matrix;
mod mtls;
mod open;
mod principals;
mod reload;
mod secrets;
mod served;
mod watch;

use groupd::pb;
use tonic::{Request, Status};

pub use self::idp::Idp;
use crate::helpers::*;

/// The callers of the scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Holds `groups.admin`.
    Root,
    /// Holds `groups.reader`.
    Reader,
    /// Holds `groups.creator`.
    Creator,
    /// No role; an admin of the scenario's groups.
    GroupAdmin,
    /// No role; a direct member of the scenario's groups.
    Member,
    /// No role, no standing.
    Stranger,
    /// No credentials at all.
    Nobody,
}

impl Who {
    pub const ALL: [Self; 7] = [
        Self::Root,
        Self::Reader,
        Self::Creator,
        Self::GroupAdmin,
        Self::Member,
        Self::Stranger,
        Self::Nobody,
    ];

    /// The principal and the roles its token carries.
    fn identity(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Self::Root => Some(("root", &["groups.admin"])),
            Self::Reader => Some(("reader", &["groups.reader"])),
            Self::Creator => Some(("creator", &["groups.creator"])),
            Self::GroupAdmin => Some(("gadmin", &[])),
            Self::Member => Some(("member", &[])),
            Self::Stranger => Some(("stranger", &["some.other.role"])),
            Self::Nobody => None,
        }
    }
}

/// The scenario's identity provider and one token per caller.
pub struct Auth {
    idp: Idp,
}

impl Auth {
    /// The `authorization` header value of `who`, if it has one.
    pub fn header(&self, who: Who) -> Option<String> {
        who.identity()
            .map(|(sub, roles)| format!("Bearer {}", self.idp.token(sub, roles)))
    }

    /// `message` as a gRPC request carrying `who`'s token.
    pub fn request<T>(&self, who: Who, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(header) = self.header(who) {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        request
    }

    /// An HTTP request to the gateway carrying `who`'s token.
    pub fn http(
        &self,
        app: &TestApp,
        who: Who,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let request = app.http.request(method, app.url(path));
        match self.header(who) {
            Some(header) => request.header("authorization", header),
            None => request,
        }
    }

    pub async fn create(
        &self,
        app: &TestApp,
        who: Who,
        group: pb::Group,
    ) -> Result<pb::Group, Status> {
        app.client()
            .create_group(self.request(
                who,
                pb::CreateGroupRequest {
                    group: Some(group),
                    ..Default::default()
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get(&self, app: &TestApp, who: Who, id: &str) -> Result<pb::Group, Status> {
        app.client()
            .get_group(self.request(
                who,
                pb::GetGroupRequest {
                    id: id.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn delete(&self, app: &TestApp, who: Who, id: &str) -> Result<pb::Group, Status> {
        app.client()
            .delete_group(self.request(
                who,
                pb::DeleteGroupRequest {
                    id: id.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The group (FULL view) and its history length, read by
    /// `groups.admin`, to prove a refused write changed nothing.
    pub async fn snapshot(&self, app: &TestApp, id: &str) -> (pb::Group, usize) {
        let group = self.get(app, Who::Root, id).await.unwrap();
        let history = app
            .client()
            .list_group_changes(self.request(
                Who::Root,
                pb::ListGroupChangesRequest {
                    id: id.to_owned(),
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .changes
            .len();
        (group, history)
    }

    /// Asserts the group is as `before`: same etag, fields and history.
    pub async fn assert_unchanged(&self, app: &TestApp, before: &(pb::Group, usize)) {
        let after = self.snapshot(app, &before.0.id).await;
        assert_eq!(&after, before, "a refused write changed the group");
    }
}

/// Runs `scenario` on `backend` against a server authenticating with a
/// fresh identity provider.
async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestApp, Auth) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let idp = Idp::new();
    let args = idp.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_scenario(backend, &args, move |app| scenario(app, Auth { idp })).await;
}

/// Instantiates each scenario `name` (an `async fn(TestApp, Auth)` of
/// module `module`) on both backends, as `name::sqlite` and
/// `name::postgres`.
macro_rules! auth_scenarios {
    ($($module:ident::$name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::run($crate::helpers::Backend::Sqlite, super::$module::$name).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::run($crate::helpers::Backend::Postgres, super::$module::$name).await;
                }
            }
        )+
    };
}

/// Instantiates each scenario `name` (an `async fn(Backend)` of module
/// `module`, which starts its own server) on both backends, as
/// `name::sqlite` and `name::postgres`.
macro_rules! backend_scenarios {
    ($($module:ident::$name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$module::$name($crate::helpers::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$module::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )+
    };
}

backend_scenarios!(
    mtls::client_certificates_name_their_callers_over_grpc_and_http,
    mtls::with_jwt_and_mtls_a_token_decides_over_the_certificate,
    basic::basic_credentials_work_over_grpc_and_http_and_stay_out_of_answers_and_logs,
    combined::each_request_is_its_own_credential_and_a_401_names_both_schemes,
    combined::two_authorization_headers_are_refused_over_grpc_and_http,
    reload::roles_file_grants_and_revocations_apply_while_serving_and_a_broken_file_is_ignored,
    reload::a_rotated_jwks_accepts_the_new_key_refuses_the_old_and_survives_a_broken_file,
    secrets::refused_credentials_are_counted_and_logged_by_code_and_never_written_down,
);

auth_scenarios!(
    open::health_reflection_metrics_and_the_schema_need_no_credentials,
    expiry::an_expired_token_is_refused_and_changes_nothing,
    expiry::a_token_of_an_unknown_key_is_refused_and_changes_nothing,
    principals::principals_with_colons_and_slashes_administer_and_are_listed,
    matrix::every_rpc_for_every_caller_over_grpc,
    matrix::every_rpc_for_every_caller_over_http,
    escalation::nesting_needs_the_right_to_change_the_parents_members,
    escalation::only_groups_admin_grants_roles,
    escalation::a_group_keeps_an_admin_unless_groups_admin_says_otherwise,
    escalation::a_missing_group_is_refused_exactly_like_a_forbidden_one,
    escalation::callers_see_their_own_permissions_and_are_recorded_as_actors,
    watch::watchers_receive_only_the_changes_of_groups_they_may_read,
    watch::the_change_stream_over_http_needs_credentials_and_shows_what_each_caller_may_read,
);
