//! The gRPC transport: the tonic `GroupService` implementation. Each RPC
//! turns its request into a domain request (`convert`), calls one
//! [`GroupService`] operation inside the call's span and deadline (`call`),
//! and turns the result into a response, or the error into a `Status`
//! (`status`).

mod call;
pub mod convert;
mod status;

use std::time::Duration;

use tonic::{Request, Response, Status};

use self::call::CallContext;
pub use self::status::{bad_request, message, status};
use crate::{
    domain::Principal,
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

/// The tonic service over [`GroupService`].
#[derive(Debug, Clone)]
pub struct GrpcService {
    service: GroupService,
    metrics: Metrics,
    request_timeout: Duration,
    max_message_bytes: usize,
}

impl GrpcService {
    /// The gRPC face of `service`, recording every call in `metrics`; no
    /// call runs longer than `request_timeout`, and no message, request or
    /// reply, takes more than `max_message_bytes`.
    pub fn new(
        service: GroupService,
        metrics: Metrics,
        request_timeout: Duration,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            service,
            metrics,
            request_timeout,
            max_message_bytes,
        }
    }

    /// The server to register with a tonic router.
    pub fn into_server(self) -> group_service_server::GroupServiceServer<Self> {
        let max_message_bytes = self.max_message_bytes;
        group_service_server::GroupServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }
}

/// The principal making a request. Authentication is not wired in yet, so
/// every caller is anonymous.
fn principal<T>(_request: &Request<T>) -> Principal {
    Principal::anonymous()
}

/// Implements the generated `GroupService` trait, one line an RPC: its
/// request and response messages, and the [`GroupService`] operation that
/// serves it, which either reads (called with the request) or writes
/// (called with the caller and the request). Every RPC then runs the same
/// way: the request is parsed into its domain form by `TryFrom`, the
/// operation called, and its result converted with `From`, all inside
/// [`GrpcService::call`] under the RPC's name. A macro, because the trait's
/// methods are rewritten by `async_trait` and differ only in these names.
macro_rules! serve_rpcs {
    (@call read $service:ident, $actor:ident, $operation:ident, $request:ident) => {{
        // A read records nothing, so it does not need its caller.
        let _ = $actor;
        $service.$operation($request)
    }};
    (@call write $service:ident, $actor:ident, $operation:ident, $request:ident) => {
        $service.$operation(&$actor, $request)
    };
    ($($rpc:ident($request:ident) -> $response:ident: $kind:ident $operation:ident;)+) => {
        #[tonic::async_trait]
        impl group_service_server::GroupService for GrpcService {
            $(
                async fn $rpc(
                    &self,
                    request: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    let method = stringify!($request).trim_end_matches("Request");
                    let actor = principal(&request);
                    let context = CallContext::of(&request, self.request_timeout);
                    self.call(method, context, async {
                        let parsed = TryFrom::try_from(request.into_inner())?;
                        let service = &self.service;
                        serve_rpcs!(@call $kind service, actor, $operation, parsed)
                            .await
                            .map(pb::$response::from)
                    })
                    .await
                }
            )+
        }
    };
}

serve_rpcs! {
    create_group(CreateGroupRequest) -> Group: write create_group;
    get_group(GetGroupRequest) -> Group: read get_group;
    list_groups(ListGroupsRequest) -> ListGroupsResponse: read list_groups;
    update_group(UpdateGroupRequest) -> Group: write update_group;
    delete_group(DeleteGroupRequest) -> Group: write delete_group;
    undelete_group(UndeleteGroupRequest) -> Group: write undelete_group;
    add_group_members(AddGroupMembersRequest) -> Group: write change_members;
    remove_group_members(RemoveGroupMembersRequest) -> Group: write change_members;
    list_group_members(ListGroupMembersRequest) -> ListGroupMembersResponse: read list_members;
    list_group_changes(ListGroupChangesRequest) -> ListGroupChangesResponse: read list_changes;
    check_membership(CheckMembershipRequest) -> CheckMembershipResponse: read check_membership;
    list_member_groups(ListMemberGroupsRequest) -> ListMemberGroupsResponse: read list_member_groups;
}
