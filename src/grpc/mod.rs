//! The gRPC transport: the tonic `GroupService` implementation, which turns
//! requests into domain requests, calls the [`GroupService`] operations,
//! and turns their results into responses or a `Status`.

pub mod convert;

use std::{collections::HashMap, future::Future, time::Instant};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{Principal, View},
    error::{ERROR_DOMAIN, Error},
    metrics::{self, Metrics, Transport},
    pb::{self, group_service_server},
    service::GroupService,
};

/// The tonic service over [`GroupService`].
#[derive(Debug, Clone)]
pub struct GrpcService {
    service: GroupService,
    metrics: Metrics,
}

impl GrpcService {
    /// The gRPC face of `service`, recording every call in `metrics`.
    pub fn new(service: GroupService, metrics: Metrics) -> Self {
        Self { service, metrics }
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
}

/// The principal making a request. Authentication is a later addition;
/// until then every caller is anonymous.
fn principal<T>(_request: &Request<T>) -> Principal {
    Principal::anonymous()
}

/// The face of the service a request came through: the HTTP gateway marks
/// its requests; anything else came over gRPC.
fn transport<T>(request: &Request<T>) -> Transport {
    request
        .extensions()
        .get::<Transport>()
        .copied()
        .unwrap_or(Transport::Grpc)
}

impl GrpcService {
    /// Runs one call: records it in the metrics, logs its outcome and
    /// latency inside the call's span, and converts its error into a
    /// `Status`. Every RPC, over gRPC or through the HTTP gateway, passes
    /// here exactly once, so this is where calls are counted.
    async fn call<T>(
        &self,
        method: &'static str,
        transport: Transport,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = work.await.map_err(|error| {
            let status = status(&error);
            (error, status)
        });
        let elapsed = started.elapsed();
        let code = result
            .as_ref()
            .map_or_else(|(_, status)| status.code(), |_| Code::Ok);
        self.metrics.record(transport, method, code, elapsed);
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let transport = transport.as_str();
        let code = metrics::code_label(code);
        match result {
            Ok(response) => {
                tracing::info!(method, transport, code, elapsed_ms, "call finished");
                Ok(Response::new(response))
            }
            Err((error, status)) => {
                if matches!(error, Error::Internal(_) | Error::Unavailable(_)) {
                    tracing::error!(
                        method,
                        transport,
                        code,
                        elapsed_ms,
                        error = %error,
                        cause = ?std::error::Error::source(&error),
                        "call failed"
                    );
                } else {
                    tracing::info!(method, transport, code, elapsed_ms, error = %error, "call finished");
                }
                Err(status)
            }
        }
    }
}

/// The `Status` a caller sees for `error`: the code, a message, and
/// `ErrorInfo` (plus `BadRequest` for invalid arguments). The only
/// conversion from [`Error`] to `Status`.
pub fn status(error: &Error) -> Status {
    let code = match error {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound { .. } => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::EtagMismatch { .. } | Error::Conflict => Code::Aborted,
        Error::FailedPrecondition { .. } => Code::FailedPrecondition,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::Unimplemented { .. } => Code::Unimplemented,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    let mut metadata = HashMap::new();
    if let Some(id) = error.group_id().filter(|id| !id.is_empty()) {
        metadata.insert("id".to_owned(), id.to_owned());
    }
    let mut details = ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, metadata);
    if let Error::InvalidArgument { violations } = error {
        details.set_bad_request(
            violations
                .iter()
                .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                .collect::<Vec<_>>(),
        );
    }
    Status::with_error_details(code, error.to_string(), details)
}

#[tonic::async_trait]
impl group_service_server::GroupService for GrpcService {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("CreateGroup", transport(&request), async {
            let request = request.into_inner();
            if request.group.is_none() {
                return Err(Error::invalid("group", "group is required"));
            }
            self.service
                .create_group(&actor, request.into())
                .await
                .map(Into::into)
        })
        .await
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        self.call("GetGroup", transport(&request), async {
            let request = request.into_inner();
            let view = convert::view(request.view).unwrap_or(View::Full);
            self.service
                .get_group(&request.id, view)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        self.call("ListGroups", transport(&request), async {
            let page = self
                .service
                .list_groups(request.into_inner().into())
                .await?;
            Ok(pb::ListGroupsResponse {
                groups: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
                total_size: page
                    .total_size
                    .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            })
        })
        .await
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("UpdateGroup", transport(&request), async {
            let request = request.into_inner();
            if request.group.is_none() {
                return Err(Error::invalid("group", "group is required"));
            }
            self.service
                .update_group(&actor, request.into())
                .await
                .map(Into::into)
        })
        .await
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("DeleteGroup", transport(&request), async {
            let request = request.into_inner();
            self.service
                .delete_group(&actor, &request.id, &request.etag, request.allow_missing)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn undelete_group(
        &self,
        request: Request<pb::UndeleteGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("UndeleteGroup", transport(&request), async {
            let request = request.into_inner();
            self.service
                .undelete_group(&actor, &request.id, &request.etag)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn add_group_members(
        &self,
        request: Request<pb::AddGroupMembersRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("AddGroupMembers", transport(&request), async {
            let request = request.into_inner();
            let membership = convert::membership(request.members, request.admins);
            self.service
                .add_members(&actor, &request.id, membership)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn remove_group_members(
        &self,
        request: Request<pb::RemoveGroupMembersRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let actor = principal(&request);
        self.call("RemoveGroupMembers", transport(&request), async {
            let request = request.into_inner();
            let membership = convert::membership(request.members, request.admins);
            self.service
                .remove_members(&actor, &request.id, membership)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        self.call("ListGroupMembers", transport(&request), async {
            let request = request.into_inner();
            let page = self
                .service
                .list_members(&request.id, request.page_size, &request.page_token)
                .await?;
            Ok(pb::ListGroupMembersResponse {
                members: page.items.into_iter().map(|id| pb::Member { id }).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn list_group_changes(
        &self,
        request: Request<pb::ListGroupChangesRequest>,
    ) -> Result<Response<pb::ListGroupChangesResponse>, Status> {
        self.call("ListGroupChanges", transport(&request), async {
            let request = request.into_inner();
            let page = self
                .service
                .list_changes(&request.id, request.page_size, &request.page_token)
                .await?;
            Ok(pb::ListGroupChangesResponse {
                changes: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn check_membership(
        &self,
        request: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        self.call("CheckMembership", transport(&request), async {
            let request = request.into_inner();
            let check = self
                .service
                .check_membership(&request.id, &request.member_id)
                .await?;
            Ok(pb::CheckMembershipResponse {
                is_member: check.is_member,
                direct: check.direct,
                path: check.path,
            })
        })
        .await
    }

    async fn list_member_groups(
        &self,
        request: Request<pb::ListMemberGroupsRequest>,
    ) -> Result<Response<pb::ListMemberGroupsResponse>, Status> {
        self.call("ListMemberGroups", transport(&request), async {
            let request = request.into_inner();
            let page = self
                .service
                .list_member_groups(
                    &request.member_id,
                    request.transitive,
                    request.page_size,
                    &request.page_token,
                )
                .await?;
            Ok(pb::ListMemberGroupsResponse {
                groups: page.items.into_iter().map(Into::into).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_mark_came_over_grpc() {
        assert_eq!(transport(&Request::new(())), Transport::Grpc);
    }

    #[test]
    fn the_gateways_mark_on_the_http_request_reaches_the_grpc_request() {
        let mut http_request = http::Request::new(());
        http_request.extensions_mut().insert(Transport::Http);
        assert_eq!(
            transport(&Request::from_http(http_request)),
            Transport::Http
        );
    }
}
