//! The one conversion from the service's [`Error`] to a gRPC `Status`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ERROR_DOMAIN, Error};

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
        Error::ResourceExhausted { .. } => Code::ResourceExhausted,
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
