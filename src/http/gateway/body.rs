//! The request body: read within the size limit, checked to be JSON, and
//! parsed into the JSON object the request message is assembled on.

use axum::body::{Body as AxumBody, Bytes};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value as Json};
use tonic::Code;
use tonic_types::FieldViolation;

use crate::{
    http::{bindings::BodyRule, status::HttpError},
    serve::exchange::{Refusal, RefusalKind},
};

/// Reads the request body, at most `limit` bytes of it (413 beyond), and
/// checks that the binding takes a body and that it is declared as JSON.
/// The bytes are parsed by [`parse_body`].
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: AxumBody,
    rule: &BodyRule,
    limit: usize,
) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::gateway(
            Code::ResourceExhausted,
            "REQUEST_TOO_LARGE",
            format!("the request body is larger than {limit} bytes"),
            Vec::new(),
        )
        .with_http(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => {
            if let Some(refusal) = crate::serve::exchange::refusal_in(&error) {
                return Err(refused(refusal));
            }
            let over = std::error::Error::source(&error)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            return Err(if over {
                too_large()
            } else {
                HttpError::invalid("body", "the request body could not be read")
            });
        }
    };
    if bytes.is_empty() {
        return Ok(bytes);
    }
    if *rule == BodyRule::None {
        return Err(HttpError::invalid(
            "body",
            "this method takes no request body; send its fields as query parameters",
        ));
    }
    if headers.contains_key(header::CONTENT_TYPE) && !is_json(headers) {
        return Err(HttpError::gateway(
            Code::InvalidArgument,
            "UNSUPPORTED_MEDIA_TYPE",
            "the request body must be JSON: send Content-Type: application/json",
            Vec::new(),
        )
        .with_http(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    Ok(bytes)
}

/// The answer to a body the server refused to read whole: 503 with
/// `Retry-After` when the in-flight budget is spent (the server is busy, not
/// the client wrong, and a load balancer may send the retry to another
/// replica), 408 when it did not arrive in time.
fn refused(refusal: &Refusal) -> HttpError {
    let kind = refusal.kind();
    let error = HttpError::gateway(kind.code(), kind.reason(), refusal.message(), Vec::new());
    match kind {
        RefusalKind::Budget => error
            .with_http(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(header::RETRY_AFTER, http::HeaderValue::from_static("1")),
        RefusalKind::Timeout => error.with_http(StatusCode::REQUEST_TIMEOUT),
    }
}

/// Whether the request declares a JSON body (`application/json`, with or
/// without parameters, or any `+json` type). A body without a
/// `Content-Type` is read as JSON too; one declared as anything else is
/// refused with 415.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as a JSON object, or `None` when it is empty.
pub(super) fn parse_body(
    bytes: &[u8],
    rule: &BodyRule,
) -> Result<Option<Map<String, Json>>, HttpError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let field = match rule {
        BodyRule::Field(field) => field.as_str(),
        _ => "body",
    };
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(object)) => Ok(Some(object)),
        Ok(Json::Null) => Ok(None),
        Ok(_) => Err(HttpError::invalid(
            field,
            "the request body must be a JSON object",
        )),
        Err(error) => Err(HttpError::gateway(
            Code::InvalidArgument,
            "MALFORMED_JSON",
            format!("the request body is not valid JSON: {error}"),
            vec![FieldViolation::new(
                field,
                format!("not valid JSON: {error}"),
            )],
        )),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
