//! The service's one error type. Each variant means something to a caller;
//! `grpc::status` turns it into a `tonic::Status` (the only such
//! conversion), and the store's error rules (`Dialect::classify`) are the
//! only place database errors become one.

use crate::domain::{FieldViolation, clip, quote};

/// `ErrorInfo.domain` of every error groupd returns.
pub const ERROR_DOMAIN: &str = "groups.v1";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `violations` says where and why.
    #[error("invalid argument: {}", summary(.violations))]
    InvalidArgument {
        /// One entry per problem found.
        violations: Vec<FieldViolation>,
    },

    /// No live (or, where deleted ones count, no) group has this id.
    #[error("group {} not found", quote(.id))]
    NotFound {
        /// The id asked for.
        id: String,
    },

    /// The request would create something that already exists.
    #[error("{message}")]
    AlreadyExists {
        /// The `ErrorInfo` reason, e.g. `GROUP_NAME_TAKEN`.
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
        /// The group concerned.
        id: String,
    },

    /// The etag sent does not match the group's (AIP-154).
    #[error("etag mismatch: group {} has changed since it was read", quote(.id))]
    EtagMismatch {
        /// The group concerned.
        id: String,
    },

    /// The transaction lost a race with another one (a deadlock or a
    /// serialization failure); retrying the request may succeed.
    #[error("the request conflicted with a concurrent one; retry it")]
    Conflict,

    /// The system is not in a state in which the request can run.
    #[error("{message}")]
    FailedPrecondition {
        /// The `ErrorInfo` reason.
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// No credentials, or credentials that could not be verified. The
    /// message never holds a credential or any part of one.
    #[error("{message}")]
    Unauthenticated {
        /// The `ErrorInfo` reason: `CREDENTIALS_MISSING`,
        /// `CREDENTIALS_INVALID`, `TOKEN_EXPIRED`, `TOKEN_NOT_YET_VALID`,
        /// or `KEYS_UNAVAILABLE` (see `auth::refusal`).
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// The caller may not do this. Said the same way whether or not the
    /// group exists, so that ids cannot be probed.
    #[error("{message}")]
    PermissionDenied {
        /// The permission the caller lacks, e.g. `groups.update`; in the
        /// `ErrorInfo` metadata.
        permission: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// The RPC exists in the contract but is not served yet.
    #[error("{rpc} is not implemented yet")]
    Unimplemented {
        /// The RPC's name.
        rpc: &'static str,
    },

    /// The call's deadline (the client's `grpc-timeout`, bounded by
    /// `--request-timeout`) or the database's statement timeout passed
    /// before the call finished. Its transaction was rolled back.
    #[error("deadline exceeded: the call did not finish in time and changed nothing")]
    DeadlineExceeded,

    /// The server is at a limit on work of this kind (too many expensive
    /// calls at once); retrying later may succeed.
    #[error("{message}")]
    ResourceExhausted {
        /// The `ErrorInfo` reason.
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// A position asked for is outside what is kept (a change stream's
    /// cursor whose changes were pruned).
    #[error("{message}")]
    OutOfRange {
        /// The `ErrorInfo` reason, e.g. `CURSOR_EXPIRED`.
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// This server cannot go on with the call (it is shutting down, or its
    /// change feed cannot read the database); another replica, or this
    /// one later, can.
    #[error("{message}")]
    NotServing {
        /// The `ErrorInfo` reason, e.g. `SERVER_SHUTTING_DOWN`.
        reason: &'static str,
        /// A sentence for the caller.
        message: String,
    },

    /// The database cannot be reached; retrying later may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A bug or an unexpected failure. Its cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Most bytes of violations the message of an invalid argument spells out.
/// The message is the `grpc-message` trailer, where a space or a non-ASCII
/// byte takes three bytes, and the log line of the call: the `BadRequest`
/// lists the violations (bounded too, see `grpc::status`), and the message
/// only needs to say what the first ones are.
pub const MAX_SUMMARY_BYTES: usize = 512;

/// The violations as one line, `field: description; ...`, as many whole
/// ones as fit in [`MAX_SUMMARY_BYTES`] (the first one cut to fit when even
/// it does not), then `and N more`.
fn summary(violations: &[FieldViolation]) -> String {
    let mut text = String::new();
    for (listed, violation) in violations.iter().enumerate() {
        let part = format!("{}: {}", violation.field, violation.description);
        if listed == 0 {
            text.push_str(&clip(&part, MAX_SUMMARY_BYTES));
        } else if text.len() + "; ".len() + part.len() <= MAX_SUMMARY_BYTES {
            text.push_str("; ");
            text.push_str(&part);
        } else {
            text.push_str(&format!("; {}", more(violations.len() - listed)));
            break;
        }
    }
    text
}

/// What stands for the `unlisted` violations a bounded list leaves out.
pub fn more(unlisted: usize) -> String {
    if unlisted == 1 {
        "and 1 more violation".to_owned()
    } else {
        format!("and {unlisted} more violations")
    }
}

impl Error {
    /// An invalid argument with one violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            violations: vec![FieldViolation::new(field, description)],
        }
    }

    /// `Ok(())` when there are no violations, the error otherwise.
    pub fn check(violations: Vec<FieldViolation>) -> Result<(), Self> {
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Self::InvalidArgument { violations })
        }
    }

    /// A group's name is taken in its scope.
    pub fn name_taken(id: &str, scope: &str, name: &str) -> Self {
        Self::AlreadyExists {
            reason: "GROUP_NAME_TAKEN",
            message: format!(
                "a live group named {} already exists in scope {}",
                quote(name),
                quote(scope)
            ),
            id: id.to_owned(),
        }
    }

    /// A group id is taken (by a live or a deleted group).
    pub fn id_taken(id: &str) -> Self {
        Self::AlreadyExists {
            reason: "GROUP_ID_TAKEN",
            message: format!("a group with id {} already exists", quote(id)),
            id: id.to_owned(),
        }
    }

    /// An internal error from anything that can be boxed.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    /// The `ErrorInfo` reason of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::NotFound { .. } => "GROUP_NOT_FOUND",
            Self::AlreadyExists { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::ResourceExhausted { reason, .. }
            | Self::OutOfRange { reason, .. }
            | Self::NotServing { reason, .. }
            | Self::Unauthenticated { reason, .. } => reason,
            Self::EtagMismatch { .. } => "ETAG_MISMATCH",
            Self::Conflict => "CONCURRENT_MODIFICATION",
            Self::PermissionDenied { .. } => "PERMISSION_DENIED",
            Self::Unimplemented { .. } => "NOT_IMPLEMENTED",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Unavailable(_) => "DATABASE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The group the error is about, if any.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Self::NotFound { id } | Self::AlreadyExists { id, .. } | Self::EtagMismatch { id } => {
                Some(id)
            }
            _ => None,
        }
    }
}
