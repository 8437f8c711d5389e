//! Errors over HTTP: a gRPC `Status` as the HTTP status grpc-gateway would
//! answer, with a JSON `google.rpc.Status` body whose `details` carry their
//! `@type`.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::{error::ERROR_DOMAIN, grpc};

/// The full name of the message error bodies are.
const STATUS_MESSAGE: &str = "google.rpc.Status";

/// The HTTP status for a gRPC code: the mapping grpc-gateway and the
/// Google API design guide use.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failure answered over HTTP: a gRPC status, and the HTTP status to
/// send it with when that is not the standard one (415, 413, 405).
#[derive(Debug)]
pub struct HttpError {
    /// What went wrong, as the gRPC call would have said it.
    pub status: Status,
    /// Replaces the standard [`http_status`] of the code, for the HTTP
    /// failures gRPC has no code for (413, 415, 405).
    pub http: Option<StatusCode>,
    /// Extra response headers (`Allow` on a 405).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl HttpError {
    /// An error carrying `status` and the standard HTTP status.
    pub fn new(status: Status) -> Self {
        Self {
            status,
            http: None,
            headers: Vec::new(),
        }
    }

    /// A gateway-side error (the request never reached the RPC): `code`,
    /// a message, `ErrorInfo` with `reason`, and the violations, if any.
    pub fn gateway(
        code: Code,
        reason: &str,
        message: impl Into<String>,
        violations: Vec<FieldViolation>,
    ) -> Self {
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
        if !violations.is_empty() {
            // Bounded as the service's errors are: a refusal may repeat a
            // query parameter, a path or what the JSON decoder said about a
            // value, and both the answer and its log line must stay short.
            details.set_bad_request(grpc::bad_request(
                violations
                    .iter()
                    .map(|v| (v.field.as_str(), v.description.as_str())),
            ));
        }
        Self::new(Status::with_error_details(
            code,
            grpc::message(&message.into()),
            details,
        ))
    }

    /// A malformed request: INVALID_ARGUMENT naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::gateway(
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            format!("invalid argument: {message}"),
            vec![FieldViolation::new(field, message)],
        )
    }

    /// Sends the error with `status` instead of the code's own.
    pub fn with_http(mut self, status: StatusCode) -> Self {
        self.http = Some(status);
        self
    }

    /// Adds a header to the response, such as `Allow` on a 405.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status the error is sent with: the override when there is
    /// one, else the standard status of its code.
    pub fn http_status(&self) -> StatusCode {
        self.http.unwrap_or_else(|| http_status(self.status.code()))
    }

    /// The response: the status and a JSON `google.rpc.Status` body.
    pub fn into_response(self, pool: &DescriptorPool) -> Response {
        let http = self.http_status();
        let body = status_json(pool, &self.status);
        let mut response = (http, json_body(&body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The JSON `google.rpc.Status` for `status`: `code`, `message` and
/// `details` (always present, possibly empty), each detail in its JSON
/// form with `@type`, as grpc-gateway writes errors.
pub fn status_json(pool: &DescriptorPool, status: &Status) -> Value {
    let details = pool
        .get_message_by_name(STATUS_MESSAGE)
        .and_then(|descriptor| DynamicMessage::decode(descriptor, status.details()).ok())
        .map(|decoded| detail_list(&decoded))
        .unwrap_or_default();
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    })
}

fn detail_list(status: &DynamicMessage) -> Vec<Value> {
    let Some(details) = status.get_field_by_name("details") else {
        return Vec::new();
    };
    let Some(list) = details.as_list() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|value| value.as_message())
        .map(any_json)
        .collect()
}

/// One `Any` in JSON: through the pool when its type is known, otherwise
/// as `@type` plus the base64 bytes, so nothing is dropped.
fn any_json(any: &DynamicMessage) -> Value {
    match any.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new()) {
        Ok(value) => value,
        Err(_) => {
            let type_url = any
                .get_field_by_name("type_url")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let bytes = any
                .get_field_by_name("value")
                .and_then(|v| v.as_bytes().cloned())
                .unwrap_or_default();
            json!({
                "@type": type_url,
                "value": base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        }
    }
}

/// A JSON response body with its content type.
pub fn json_body(value: &Value) -> ([(header::HeaderName, HeaderValue); 1], Vec<u8>) {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn pool() -> DescriptorPool {
        let mut pool = DescriptorPool::new();
        pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .unwrap();
        pool
    }

    #[test]
    fn codes_map_to_the_standard_http_statuses() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn error_bodies_carry_typed_details() {
        let error = HttpError::invalid("group.name", "name is required");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
        let body = status_json(&pool(), &error.status);
        assert_eq!(body["code"], 3);
        assert_eq!(body["message"], "invalid argument: name is required");
        let details = body["details"].as_array().unwrap();
        assert_eq!(
            details[0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
        assert_eq!(details[0]["reason"], "INVALID_ARGUMENT");
        assert_eq!(details[0]["domain"], ERROR_DOMAIN);
        assert_eq!(
            details[1]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(details[1]["fieldViolations"][0]["field"], "group.name");
    }

    #[test]
    fn a_status_without_details_has_an_empty_list() {
        let body = status_json(&pool(), &Status::unavailable("down"));
        assert_eq!(body, json!({"code": 14, "message": "down", "details": []}));
    }

    #[test]
    fn unknown_detail_types_keep_their_bytes() {
        let any = prost_types::Any {
            type_url: "type.googleapis.com/example.Unknown".into(),
            value: vec![1, 2, 3],
        };
        let status = tonic_types::pb::Status {
            code: 2,
            message: "m".into(),
            details: vec![any],
        };
        let status = Status::with_details(Code::Unknown, "m", status.encode_to_vec().into());
        let body = status_json(&pool(), &status);
        assert_eq!(
            body["details"][0],
            json!({"@type": "type.googleapis.com/example.Unknown", "value": "AQID"})
        );
    }
}
