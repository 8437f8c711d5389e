//! The gRPC transport: the tonic `GroupService` implementation. Each RPC
//! turns its request into a domain request (`convert`), calls one
//! [`GroupService`] operation inside the call's span and deadline (`call`),
//! and turns the result into a response, or the error into a `Status`
//! (`status`).

mod call;
pub mod convert;
mod status;

use std::{future::Future, time::Duration};

use tonic::{Request, Response, Status};

use self::call::CallContext;
pub use self::status::status;
use crate::{
    domain::Principal,
    error::Error,
    metrics::Metrics,
    pb::{self, group_service_server},
    service::GroupService,
};

/// The metadata key of the request id: the caller's, or one the server
/// generated (see `startup.rs`); echoed in the response.
pub const REQUEST_ID: &str = "x-request-id";

/// The tonic service over [`GroupService`].
#[derive(Debug, Clone)]
pub struct GrpcService {
    service: GroupService,
    metrics: Metrics,
    request_timeout: Duration,
}

impl GrpcService {
    /// The gRPC face of `service`, recording every call in `metrics`; no
    /// call runs longer than `request_timeout`.
    pub fn new(service: GroupService, metrics: Metrics, request_timeout: Duration) -> Self {
        Self {
            service,
            metrics,
            request_timeout,
        }
    }

    /// The server to register with a tonic router.
    pub fn into_server(
        self,
        max_message_bytes: usize,
    ) -> group_service_server::GroupServiceServer<Self> {
        group_service_server::GroupServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    /// Serves one unary RPC named `method`: parses the request into its
    /// domain form `D`, runs `operation` on it for the calling principal,
    /// and answers with the result as `R`; all of it inside the call's span
    /// and deadline (see [`Self::call`]).
    async fn unary<'a, P, D, O, R, Fut>(
        &'a self,
        method: &'static str,
        request: Request<P>,
        operation: impl FnOnce(&'a GroupService, Principal, D) -> Fut,
    ) -> Result<Response<R>, Status>
    where
        D: TryFrom<P, Error = Error>,
        Fut: Future<Output = Result<O, Error>>,
        R: From<O>,
    {
        let actor = principal(&request);
        let context = CallContext::of(&request, self.request_timeout);
        self.call(method, context, async move {
            let request = D::try_from(request.into_inner())?;
            operation(&self.service, actor, request).await.map(R::from)
        })
        .await
    }
}

/// The principal making a request. Authentication is not wired in yet, so
/// every caller is anonymous.
fn principal<T>(_request: &Request<T>) -> Principal {
    Principal::anonymous()
}

#[tonic::async_trait]
impl group_service_server::GroupService for GrpcService {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "CreateGroup",
            request,
            |service, actor, request| async move { service.create_group(&actor, request).await },
        )
        .await
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary("GetGroup", request, |service, _, request| {
            service.get_group(request)
        })
        .await
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        self.unary("ListGroups", request, |service, _, request| {
            service.list_groups(request)
        })
        .await
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "UpdateGroup",
            request,
            |service, actor, request| async move { service.update_group(&actor, request).await },
        )
        .await
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "DeleteGroup",
            request,
            |service, actor, request| async move { service.delete_group(&actor, request).await },
        )
        .await
    }

    async fn undelete_group(
        &self,
        request: Request<pb::UndeleteGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "UndeleteGroup",
            request,
            |service, actor, request| async move { service.undelete_group(&actor, request).await },
        )
        .await
    }

    async fn add_group_members(
        &self,
        request: Request<pb::AddGroupMembersRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "AddGroupMembers",
            request,
            |service, actor, request| async move { service.add_members(&actor, request).await },
        )
        .await
    }

    async fn remove_group_members(
        &self,
        request: Request<pb::RemoveGroupMembersRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.unary(
            "RemoveGroupMembers",
            request,
            |service, actor, request| async move { service.remove_members(&actor, request).await },
        )
        .await
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        self.unary("ListGroupMembers", request, |service, _, request| {
            service.list_members(request)
        })
        .await
    }

    async fn list_group_changes(
        &self,
        request: Request<pb::ListGroupChangesRequest>,
    ) -> Result<Response<pb::ListGroupChangesResponse>, Status> {
        self.unary("ListGroupChanges", request, |service, _, request| {
            service.list_changes(request)
        })
        .await
    }

    async fn check_membership(
        &self,
        request: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        self.unary("CheckMembership", request, |service, _, request| {
            service.check_membership(request)
        })
        .await
    }

    async fn list_member_groups(
        &self,
        request: Request<pb::ListMemberGroupsRequest>,
    ) -> Result<Response<pb::ListMemberGroupsResponse>, Status> {
        self.unary("ListMemberGroups", request, |service, _, request| {
            service.list_member_groups(request)
        })
        .await
    }
}
