//! The gRPC transport: the tonic `GroupService` implementation, which turns
//! requests into domain requests, calls the [`GroupService`] operations,
//! and turns their results into responses or a `Status`.

pub mod convert;

use std::{
    collections::HashMap,
    future::Future,
    time::{Duration, Instant},
};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{Instrument as _, field::Empty};

use crate::{
    deadline,
    domain::{Principal, View},
    error::{ERROR_DOMAIN, Error},
    metrics::{self, Metrics, Transport},
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
}

/// The principal making a request. Authentication is a later addition;
/// until then every caller is anonymous.
fn principal<T>(_request: &Request<T>) -> Principal {
    Principal::anonymous()
}

/// What a call is run with, read from its request before the message is
/// taken out of it.
#[derive(Debug)]
struct CallContext {
    /// The face of the service the request came through: the HTTP gateway
    /// marks its requests; anything else came over gRPC.
    transport: Transport,
    /// The request id, for logs.
    request_id: String,
    /// When the call must be over: the client's `grpc-timeout`, bounded by
    /// `--request-timeout`.
    deadline: tokio::time::Instant,
}

impl CallContext {
    /// The context of `request`, whose calls may run no longer than
    /// `request_timeout`.
    fn of<T>(request: &Request<T>, request_timeout: Duration) -> Self {
        let metadata = request.metadata();
        let text = |key| metadata.get(key).and_then(|value| value.to_str().ok());
        let timeout = text("grpc-timeout")
            .and_then(deadline::parse_grpc_timeout)
            .map_or(request_timeout, |asked| asked.min(request_timeout));
        CallContext {
            transport: request
                .extensions()
                .get::<Transport>()
                .copied()
                .unwrap_or(Transport::Grpc),
            // The serving layers set it on every request; a request that did
            // not pass them (none does in the server) is logged without one.
            request_id: text(REQUEST_ID).unwrap_or_default().to_owned(),
            deadline: tokio::time::Instant::now() + timeout,
        }
    }
}

impl GrpcService {
    fn context<T>(&self, request: &Request<T>) -> CallContext {
        CallContext::of(request, self.request_timeout)
    }

    /// Runs one call inside its own span (method, transport, request id;
    /// then code and latency), under its deadline; records it in the
    /// metrics, logs its outcome, and converts its error into a `Status`.
    /// Every RPC, over gRPC or through the HTTP gateway, passes here exactly
    /// once, so this is where calls are counted.
    async fn call<T>(
        &self,
        method: &'static str,
        context: CallContext,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<Response<T>, Status> {
        let span = tracing::info_span!(
            "call",
            method,
            transport = context.transport.as_str(),
            request_id = %context.request_id,
            code = Empty,
            elapsed_ms = Empty,
        );
        let mut outcome = Outcome {
            metrics: &self.metrics,
            method,
            transport: context.transport,
            started: Instant::now(),
            span: span.clone(),
            finished: false,
        };
        span.in_scope(|| tracing::debug!("call started"));
        let result = deadline::run(context.deadline, work.instrument(span.clone()))
            .await
            .map_err(|error| {
                let status = status(&error);
                (error, status)
            });
        let code = result
            .as_ref()
            .map_or_else(|(_, status)| status.code(), |_| Code::Ok);
        let (code, elapsed_ms) = outcome.finish(code);
        let _entered = span.enter();
        match result {
            Ok(response) => {
                tracing::info!(code, elapsed_ms, "call finished");
                Ok(Response::new(response))
            }
            Err((error, status)) => {
                if matches!(error, Error::Internal(_) | Error::Unavailable(_)) {
                    tracing::error!(
                        code,
                        elapsed_ms,
                        error = %error,
                        cause = ?std::error::Error::source(&error),
                        "call failed"
                    );
                } else {
                    tracing::info!(code, elapsed_ms, error = %error, "call finished");
                }
                Err(status)
            }
        }
    }
}

/// Records a call's outcome once: when it finishes, or, if the call is
/// dropped first (the client cancelled it, or its connection was cut at
/// the end of a drain), when it is dropped, as CANCELLED.
struct Outcome<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    transport: Transport,
    started: Instant,
    span: tracing::Span,
    finished: bool,
}

impl Outcome<'_> {
    /// Counts the call under `code` and records code and latency on its
    /// span; returns both as they are logged.
    fn finish(&mut self, code: Code) -> (&'static str, f64) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        self.metrics
            .record(self.transport, self.method, code, elapsed);
        let label = metrics::code_label(code);
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        self.span.record("code", label);
        self.span.record("elapsed_ms", elapsed_ms);
        (label, elapsed_ms)
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let (code, elapsed_ms) = self.finish(Code::Cancelled);
            let _entered = self.span.enter();
            tracing::info!(code, elapsed_ms, "call cancelled before it finished");
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
        Error::DeadlineExceeded => Code::DeadlineExceeded,
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
        self.call("CreateGroup", self.context(&request), async {
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
        self.call("GetGroup", self.context(&request), async {
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
        self.call("ListGroups", self.context(&request), async {
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
        self.call("UpdateGroup", self.context(&request), async {
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
        self.call("DeleteGroup", self.context(&request), async {
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
        self.call("UndeleteGroup", self.context(&request), async {
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
        self.call("AddGroupMembers", self.context(&request), async {
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
        self.call("RemoveGroupMembers", self.context(&request), async {
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
        self.call("ListGroupMembers", self.context(&request), async {
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
        self.call("ListGroupChanges", self.context(&request), async {
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
        self.call("CheckMembership", self.context(&request), async {
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
        self.call("ListMemberGroups", self.context(&request), async {
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

    const BOUND: Duration = Duration::from_secs(30);

    #[test]
    fn a_request_without_a_mark_came_over_grpc() {
        assert_eq!(
            CallContext::of(&Request::new(()), BOUND).transport,
            Transport::Grpc
        );
    }

    #[test]
    fn the_gateways_mark_on_the_http_request_reaches_the_grpc_request() {
        let mut http_request = http::Request::new(());
        http_request.extensions_mut().insert(Transport::Http);
        assert_eq!(
            CallContext::of(&Request::from_http(http_request), BOUND).transport,
            Transport::Http
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_the_clients_timeout_bounded_by_the_servers() {
        let deadline_in = |header: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = header {
                request.metadata_mut().insert(
                    "grpc-timeout",
                    value.parse().unwrap_or_else(|e| panic!("{e}")),
                );
            }
            CallContext::of(&request, BOUND).deadline - tokio::time::Instant::now()
        };
        assert_eq!(deadline_in(None), BOUND);
        assert_eq!(deadline_in(Some("250m")), Duration::from_millis(250));
        assert_eq!(deadline_in(Some("1H")), BOUND);
        assert_eq!(deadline_in(Some("garbage")), BOUND);
    }

    #[test]
    fn the_request_id_comes_from_the_metadata() {
        let mut request = Request::new(());
        request.metadata_mut().insert(
            REQUEST_ID,
            "req-42".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(CallContext::of(&request, BOUND).request_id, "req-42");
    }
}
