//! How a request can fail on its way through the gateway: refused by the
//! gateway itself, or failed by the RPC; and the gateway's own internal
//! errors.

use tonic::{Code, Status};

use crate::http::status::HttpError;

/// Why a request got no RPC response: the gateway refused it, or the RPC
/// failed (and has logged and counted itself).
pub(super) enum Failure {
    /// The gateway's own error, answered as it is; the caller of
    /// `Gateway::handle` logs and counts it.
    Gateway(HttpError),
    /// The status the RPC failed with, answered as grpc-gateway would.
    Rpc(Status),
}

impl From<HttpError> for Failure {
    fn from(error: HttpError) -> Self {
        Self::Gateway(error)
    }
}

/// A failure of the gateway itself (a reply it cannot read or write): the
/// cause is logged here, and the client gets a bare INTERNAL, as the
/// service answers its own internal errors.
pub(super) fn internal_error(message: &str) -> HttpError {
    tracing::error!(message, "HTTP gateway failure");
    HttpError::gateway(Code::Internal, "INTERNAL", "internal error", Vec::new())
}

/// [`internal_error`] as the [`Failure`] the call steps return.
pub(super) fn internal(message: &str) -> Failure {
    Failure::Gateway(internal_error(message))
}
