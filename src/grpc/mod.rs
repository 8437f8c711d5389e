//! The gRPC transport: the tonic `GroupService` implementation. Each RPC
//! turns its request into a domain request (`convert`), calls one
//! [`GroupService`] operation inside the call's span and deadline (`call`),
//! and turns the result into a response, or the error into a `Status`
//! (`status`).

mod call;
pub mod convert;
mod status;
mod watch;

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use self::call::CallContext;
pub use self::{
    status::{bad_request, message, status},
    watch::{EncodedReply, GroupServiceRoutes},
};
use crate::{
    auth::{Authenticator, PeerIdentity},
    domain::Caller,
    error::Error,
    metrics::Metrics,
    pb::{self, group_service_server},
    service::GroupService,
};

/// The metadata key of the request id: the caller's, or one the server
/// generated (see `startup.rs`); echoed in the response.
pub const REQUEST_ID: &str = "x-request-id";

/// Most bytes of a request id a log line shows. The caller's id is echoed
/// and forwarded as sent; only logs cut it, so that a header of kilobytes
/// cannot make every line of its call as long.
pub const MAX_LOGGED_REQUEST_ID_BYTES: usize = 128;

/// The request paths of the streaming exchanges, whose replies stay open
/// for as long as the client watches: `WatchGroupChanges` on the gRPC port
/// and its gateway binding on the HTTP port. The serve layer neither cuts
/// them at `--request-timeout` nor holds their replies' bytes to the end
/// (`serve::exchange`).
pub const STREAMING_PATHS: [&str; 2] = [
    "/groups.v1.GroupService/WatchGroupChanges",
    "/v1/groups:watch",
];

/// The tonic service over [`GroupService`].
#[derive(Debug, Clone)]
pub struct GrpcService {
    service: GroupService,
    auth: Arc<Authenticator>,
    metrics: Metrics,
    request_timeout: Duration,
    max_message_bytes: usize,
}

impl GrpcService {
    /// The gRPC face of `service`, authenticating every call with `auth`
    /// and recording it in `metrics`; no call runs longer than
    /// `request_timeout`, and no message, request or reply, takes more than
    /// `max_message_bytes`.
    pub fn new(
        service: GroupService,
        auth: Arc<Authenticator>,
        metrics: Metrics,
        request_timeout: Duration,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            service,
            auth,
            metrics,
            request_timeout,
            max_message_bytes,
        }
    }

    /// The server to register with a tonic router (and to hand the
    /// gateway).
    pub fn into_server(self) -> GroupServiceRoutes {
        GroupServiceRoutes::new(self)
    }
}

/// The credentials of a request: its `authorization` values (every one,
/// so that a request with two can be refused), and the client
/// certificate's identity the TLS layer verified, if any. Nothing is
/// copied when authentication is off.
struct Credentials {
    headers: http::HeaderMap,
    peer: Option<PeerIdentity>,
}

impl Credentials {
    fn of<T>(request: &Request<T>, auth: &Authenticator) -> Self {
        let mut headers = http::HeaderMap::new();
        if !auth.is_enabled() {
            return Self {
                headers,
                peer: None,
            };
        }
        for value in request.metadata().get_all("authorization").iter() {
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_encoded_bytes()) {
                headers.append(http::header::AUTHORIZATION, value);
            }
        }
        Self {
            headers,
            peer: request.extensions().get::<PeerIdentity>().cloned(),
        }
    }
}

impl GrpcService {
    /// The caller `credentials` identify, recorded in the call's span (its
    /// log line names the principal, never a credential).
    async fn authenticate(&self, credentials: &Credentials) -> Result<Caller, Error> {
        let caller = self
            .auth
            .authenticate(&credentials.headers, credentials.peer.as_ref())
            .await?;
        tracing::Span::current().record("principal", caller.principal().as_str());
        Ok(caller)
    }
}

/// Implements the generated `GroupService` trait, one line an RPC: its
/// request and response messages, and the [`GroupService`] operation that
/// serves it. Every RPC then runs the same way, inside
/// [`GrpcService::call`] under the RPC's name: the caller is authenticated,
/// the request parsed into its domain form by `TryFrom`, the operation
/// called with both, and its result converted with `From`. A macro,
/// because the trait's methods are rewritten by `async_trait` and differ
/// only in these names.
macro_rules! serve_rpcs {
    ($($rpc:ident($request:ident) -> $response:ident: $operation:ident;)+) => {
        #[tonic::async_trait]
        impl group_service_server::GroupService for GrpcService {
            type WatchGroupChangesStream = watch::ChangeStream;

            async fn watch_group_changes(
                &self,
                request: Request<pb::WatchGroupChangesRequest>,
            ) -> Result<Response<watch::ChangeStream>, Status> {
                self.watch(request).await
            }

            $(
                async fn $rpc(
                    &self,
                    request: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    let method = stringify!($request).trim_end_matches("Request");
                    let context = CallContext::of(&request, self.request_timeout);
                    let credentials = Credentials::of(&request, &self.auth);
                    self.call(method, context, Box::pin(async {
                        let caller = self.authenticate(&credentials).await?;
                        let parsed = TryFrom::try_from(request.into_inner())?;
                        self.service
                            .$operation(&caller, parsed)
                            .await
                            .map(pb::$response::from)
                    }))
                    .await
                }
            )+
        }
    };
}

serve_rpcs! {
    create_group(CreateGroupRequest) -> Group: create_group;
    get_group(GetGroupRequest) -> Group: get_group;
    list_groups(ListGroupsRequest) -> ListGroupsResponse: list_groups;
    update_group(UpdateGroupRequest) -> Group: update_group;
    delete_group(DeleteGroupRequest) -> Group: delete_group;
    undelete_group(UndeleteGroupRequest) -> Group: undelete_group;
    add_group_members(AddGroupMembersRequest) -> Group: change_members;
    remove_group_members(RemoveGroupMembersRequest) -> Group: change_members;
    list_group_members(ListGroupMembersRequest) -> ListGroupMembersResponse: list_members;
    list_group_changes(ListGroupChangesRequest) -> ListGroupChangesResponse: list_changes;
    check_membership(CheckMembershipRequest) -> CheckMembershipResponse: check_membership;
    list_member_groups(ListMemberGroupsRequest) -> ListMemberGroupsResponse: list_member_groups;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streaming_grpc_path_is_under_the_services_name() {
        let prefix = format!("/{}/", group_service_server::SERVICE_NAME);
        assert_eq!(
            STREAMING_PATHS[0].strip_prefix(prefix.as_str()),
            Some("WatchGroupChanges")
        );
        assert!(STREAMING_PATHS[1].starts_with("/v1/"));
    }
}
