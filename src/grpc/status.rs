//! The one conversion from the service's [`Error`] to a gRPC `Status`, and
//! the bounds every error groupd sends stays within.
//!
//! A gRPC error travels in trailers, and gRPC clients refuse trailers over
//! 8 KiB by default (grpcio reports such an answer as RESOURCE_EXHAUSTED,
//! not as the error it was). So an error is bounded here, whatever the
//! request was: at most [`MAX_LISTED_VIOLATIONS`] violations taking at most
//! [`MAX_BAD_REQUEST_BYTES`] encoded (the rest counted in one last
//! violation), and a message of at most [`MAX_MESSAGE_BYTES`]. Even if every
//! byte of the message needed percent-encoding, `grpc-message` and
//! `grpc-status-details-bin` (base64) together stay under 8 KiB with room
//! for the other trailers.

use std::collections::HashMap;

use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt, pb};

use crate::{
    domain::clip,
    error::{ERROR_DOMAIN, Error, more},
};

/// Most field violations one `BadRequest` lists; the others are counted in
/// one last violation, `and N more violations`.
pub const MAX_LISTED_VIOLATIONS: usize = 100;

/// Most bytes the violations of one `BadRequest` take, encoded; base64
/// makes them at most 4 KiB of `grpc-status-details-bin`, which also
/// carries the message and the `ErrorInfo`.
pub const MAX_BAD_REQUEST_BYTES: usize = 3072;

/// Longest `grpc-message`, in bytes before percent-encoding (at most three
/// times as many after).
pub const MAX_MESSAGE_BYTES: usize = 600;

/// Longest field path and description of one violation, in bytes. The
/// service's own violations are far shorter (values in them are quoted);
/// these bound the ones that repeat what a library said about the input.
const MAX_FIELD_BYTES: usize = 256;
const MAX_DESCRIPTION_BYTES: usize = 512;

/// Longest group id `ErrorInfo.metadata` repeats: the longest id a group
/// can have. A longer one names no group and would only make the error
/// larger; the message quotes its beginning.
const MAX_METADATA_ID_BYTES: usize = 128;

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
        Error::Unauthenticated { .. } => Code::Unauthenticated,
        Error::PermissionDenied { .. } => Code::PermissionDenied,
        Error::Unimplemented { .. } => Code::Unimplemented,
        Error::DeadlineExceeded => Code::DeadlineExceeded,
        Error::ResourceExhausted { .. } => Code::ResourceExhausted,
        Error::OutOfRange { .. } => Code::OutOfRange,
        Error::Unavailable(_) | Error::NotServing { .. } => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    let mut metadata = HashMap::new();
    if let Some(id) = error
        .group_id()
        .filter(|id| !id.is_empty() && id.len() <= MAX_METADATA_ID_BYTES)
    {
        metadata.insert("id".to_owned(), id.to_owned());
    }
    if let Error::PermissionDenied { permission, .. } = error {
        metadata.insert("permission".to_owned(), (*permission).to_owned());
    }
    let mut details = ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, metadata);
    if let Error::InvalidArgument { violations } = error {
        details.set_bad_request(bad_request(
            violations
                .iter()
                .map(|v| (v.field.as_str(), v.description.as_str())),
        ));
    }
    Status::with_error_details(code, message(&error.to_string()), details)
}

/// A status message within [`MAX_MESSAGE_BYTES`].
pub fn message(text: &str) -> String {
    clip(text, MAX_MESSAGE_BYTES).into_owned()
}

/// The violations a `BadRequest` lists for `violations` (field path and
/// description): in order, as many as fit in [`MAX_LISTED_VIOLATIONS`] and
/// [`MAX_BAD_REQUEST_BYTES`], each cut to a bounded length, then one last
/// violation with an empty field (the request as a whole) counting the
/// rest. The one place a violation list is bounded, for the service's
/// errors and the gateway's.
pub fn bad_request<'a>(
    violations: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<tonic_types::FieldViolation> {
    let total = violations.len();
    let entry = |field: &str, description: &str| pb::bad_request::FieldViolation {
        field: field.to_owned(),
        description: description.to_owned(),
        ..Default::default()
    };
    // The size of an entry in the repeated field: its tag, its length and
    // its bytes.
    let size = |violation: &pb::bad_request::FieldViolation| {
        let len = violation.encoded_len();
        1 + prost::length_delimiter_len(len) + len
    };
    // Room kept for the last violation, which says how many are left out.
    let reserve = size(&entry("", &more(total)));
    let mut listed = Vec::new();
    let mut used = 0;
    for (field, description) in violations {
        let violation = entry(
            &clip(field, MAX_FIELD_BYTES),
            &clip(description, MAX_DESCRIPTION_BYTES),
        );
        let room = if listed.len() + 1 == total {
            MAX_BAD_REQUEST_BYTES
        } else {
            MAX_BAD_REQUEST_BYTES - reserve
        };
        if listed.len() == MAX_LISTED_VIOLATIONS || used + size(&violation) > room {
            break;
        }
        used += size(&violation);
        listed.push(tonic_types::FieldViolation::from(violation));
    }
    if listed.len() < total {
        let rest = entry("", &more(total - listed.len()));
        listed.push(rest.into());
    }
    listed
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::domain::{FieldViolation, quote};

    /// The bytes `status` takes as trailers, as HTTP/2 counts a header list
    /// (name, value and 32 for each): what a client's limit compares.
    fn trailer_bytes(status: &Status) -> usize {
        let headers = status.clone().into_http::<()>();
        headers
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    fn duplicates(count: usize, id: &str) -> Error {
        Error::InvalidArgument {
            violations: (0..count)
                .map(|index| {
                    FieldViolation::new(
                        format!("group.members[{index}].id"),
                        format!("{} is listed twice", quote(id)),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_short_list_is_listed_whole() {
        let status = status(&duplicates(3, "alice"));
        let listed = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[2].field, "group.members[2].id");
        assert_eq!(listed[2].description, "\"alice\" is listed twice");
        assert!(status.message().ends_with("\"alice\" is listed twice"));
    }

    #[test]
    fn thousands_of_violations_fit_in_8_kib_of_trailers_and_are_counted() {
        for (count, id) in [
            (5000, "x".repeat(62)),
            (100_000, "é".repeat(300)),
            (101, "a".into()),
        ] {
            let status = status(&duplicates(count, &id));
            assert_eq!(status.code(), Code::InvalidArgument);
            let listed = status.get_details_bad_request().unwrap().field_violations;
            assert!(listed.len() <= MAX_LISTED_VIOLATIONS + 1);
            let last = listed.last().unwrap();
            assert_eq!(last.field, "");
            assert_eq!(
                last.description,
                more(count - (listed.len() - 1)),
                "the last violation counts the unlisted ones"
            );
            assert!(
                trailer_bytes(&status) < 8 * 1024,
                "{count} violations took {} bytes",
                trailer_bytes(&status)
            );
            assert!(status.message().ends_with("more violations"));
        }
    }

    #[test]
    fn the_worst_case_fits_too() {
        // Every byte of the message percent-encoded, and violations as
        // long as a violation can be.
        let field = "é".repeat(1000);
        let description = "\u{1}".repeat(1000);
        let violations = (0..10_000)
            .map(|_| FieldViolation::new(field.as_str(), description.as_str()))
            .collect();
        let status = status(&Error::InvalidArgument { violations });
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let details = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
        let bytes = trailer_bytes(&status);
        assert!(
            bytes < 8 * 1024 - 512,
            "{bytes} bytes of trailers ({} of details), leaving too little room for the others",
            details.len()
        );
    }

    #[test]
    fn exactly_the_limit_is_listed_without_a_count() {
        let listed = bad_request(
            (0..MAX_LISTED_VIOLATIONS)
                .map(|_| ("f", "d"))
                .collect::<Vec<_>>()
                .into_iter(),
        );
        assert_eq!(listed.len(), MAX_LISTED_VIOLATIONS);
        assert!(listed.iter().all(|v| v.field == "f"));
    }

    #[test]
    fn oversized_fields_and_descriptions_are_cut() {
        let field = "f".repeat(100_000);
        let description = "d".repeat(100_000);
        let listed = bad_request([(field.as_str(), description.as_str())].into_iter());
        assert_eq!(listed.len(), 1);
        assert!(listed[0].field.len() <= MAX_FIELD_BYTES);
        assert!(listed[0].description.len() <= MAX_DESCRIPTION_BYTES);
    }

    #[test]
    fn a_long_id_is_quoted_short_and_left_out_of_the_metadata() {
        let id = "g".repeat(1_000_000);
        let status = status(&Error::NotFound { id: id.clone() });
        assert!(status.message().len() < 100, "{}", status.message());
        assert!(status.message().contains(&"g".repeat(64)));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("id"), None);
        let short = status_of_not_found("team-1");
        assert_eq!(
            short.get_details_error_info().unwrap().metadata.get("id"),
            Some(&"team-1".to_owned())
        );
    }

    fn status_of_not_found(id: &str) -> Status {
        status(&Error::NotFound { id: id.to_owned() })
    }
}
