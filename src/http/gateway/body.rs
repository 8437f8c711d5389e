//! The request body: read within the size limit, checked to be JSON, and
//! parsed into the JSON object the request message is assembled on.

use std::cell::RefCell;

use axum::body::{Body as AxumBody, Bytes};
use http::{HeaderMap, StatusCode, header};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};
use tonic::Code;
use tonic_types::FieldViolation;

use crate::{
    domain::quote,
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
/// replica), 408 when it did not arrive in time, 504 when it did not arrive
/// before the call's own deadline.
fn refused(refusal: &Refusal) -> HttpError {
    let kind = refusal.kind();
    let error = HttpError::gateway(kind.code(), kind.reason(), refusal.message(), Vec::new());
    match kind {
        RefusalKind::Budget => error
            .with_http(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(header::RETRY_AFTER, http::HeaderValue::from_static("1")),
        RefusalKind::Timeout => error.with_http(StatusCode::REQUEST_TIMEOUT),
        RefusalKind::Deadline => error.with_http(StatusCode::GATEWAY_TIMEOUT),
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

/// The body as a JSON object, or `None` when it is empty. An object that
/// names a key twice, at any depth, is refused on that key's path (under
/// the body field, when the binding has one).
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
    match parse_json(bytes) {
        Ok(Json::Object(object)) => Ok(Some(object)),
        Ok(Json::Null) => Ok(None),
        Ok(_) => Err(HttpError::invalid(
            field,
            "the request body must be a JSON object",
        )),
        Err(JsonError::Duplicate(path)) => {
            let key = match path.last() {
                Some(Segment::Key(key)) => key.as_str(),
                _ => "",
            };
            let at = match rule {
                BodyRule::Field(field) => Segment::path(field, &path),
                _ => Segment::path("", &path),
            };
            Err(HttpError::invalid(
                &at,
                format!(
                    "the key {} is given more than once in one object",
                    quote(key)
                ),
            ))
        }
        Err(JsonError::Malformed(error)) => Err(HttpError::gateway(
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

/// Why a body is not the JSON a request may be.
#[derive(Debug)]
enum JsonError {
    /// Not JSON at all.
    Malformed(serde_json::Error),
    /// An object names a key twice; the path of the second one, from the
    /// top of the document.
    Duplicate(Vec<Segment>),
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    /// `path` below `prefix` as a request field path: keys dotted, indexes
    /// in brackets (`group.members[2].id`).
    fn path(prefix: &str, path: &[Segment]) -> String {
        let mut text = prefix.to_owned();
        for segment in path {
            let segment = segment.to_string();
            text.push_str(if text.is_empty() {
                segment.trim_start_matches('.')
            } else {
                &segment
            });
        }
        text
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(key) => write!(f, ".{key}"),
            Self::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// Parses `bytes` as one JSON document, refusing objects that repeat a
/// key. serde_json's own `Value` keeps the last of repeated keys, and no
/// well-kept crate offers a `Value` that refuses them (serde_with's
/// `MapPreventDuplicates` checks typed map fields, not a document of any
/// shape), so this is the `Value` visitor with that one check added; the
/// parsing itself, and its nesting limit, stay serde_json's.
fn parse_json(bytes: &[u8]) -> Result<Json, JsonError> {
    let duplicate = RefCell::new(None);
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue(&duplicate)
        .deserialize(&mut parser)
        .and_then(|value| parser.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (Err(_), Some(path)) => Err(JsonError::Duplicate(path)),
        (Err(error), None) => Err(JsonError::Malformed(error)),
        (Ok(value), _) => Ok(value),
    }
}

/// The `Value` visitor that refuses repeated keys. On the first one it
/// records its path in the cell and fails; each enclosing object and array
/// adds its own step to the path on the way out, so that the paths of the
/// keys and indexes are only built for the one error, not for every value.
#[derive(Clone, Copy)]
struct StrictValue<'a>(&'a RefCell<Option<Vec<Segment>>>);

impl StrictValue<'_> {
    /// Adds `segment` in front of a recorded path, when there is one.
    fn within(self, segment: impl FnOnce() -> Segment) {
        if let Some(path) = self.0.borrow_mut().as_mut() {
            path.insert(0, segment());
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(Json::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Json::Array(items)),
                Err(error) => {
                    self.within(|| Segment::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                *self.0.borrow_mut() = Some(vec![Segment::Key(key)]);
                return Err(de::Error::custom("a key is given more than once"));
            }
            match map.next_value_seed(self) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(error) => {
                    self.within(|| Segment::Key(key));
                    return Err(error);
                }
            }
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use tonic_types::StatusExt as _;

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

    fn duplicate_at(text: &str) -> Option<String> {
        match parse_json(text.as_bytes()) {
            Err(JsonError::Duplicate(path)) => Some(Segment::path("", &path)),
            _ => None,
        }
    }

    #[test]
    fn documents_parse_as_serde_json_parses_them() {
        for text in [
            r#"{"a": 1, "b": [true, null, -2, 3.5, "x"], "c": {"d": {}}}"#,
            r#"[{"a": 1}, {"a": 1}]"#,
            r#""text""#,
            "18446744073709551615",
            "null",
        ] {
            let expected: Json = serde_json::from_str(text).unwrap();
            assert_eq!(parse_json(text.as_bytes()).unwrap(), expected, "{text}");
        }
        for bad in ["", "{", r#"{"a": 1} x"#, "[1,]", &"[".repeat(1000)] {
            assert!(
                matches!(parse_json(bad.as_bytes()), Err(JsonError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_with_its_path() {
        assert_eq!(duplicate_at(r#"{"a": 1, "a": 2}"#), Some("a".into()));
        assert_eq!(
            duplicate_at(r#"{"labels": {"k": "1", "k": "2"}}"#),
            Some("labels.k".into())
        );
        assert_eq!(
            duplicate_at(r#"{"members": [{"id": "a"}, {"id": "b", "id": "c"}]}"#),
            Some("members[1].id".into())
        );
        assert_eq!(
            duplicate_at(r#"[[{"x": [], "x": []}]]"#),
            Some("[0][0].x".into())
        );
        // Equal values repeated are refused too: the caller meant something
        // else, or its encoder is broken.
        assert_eq!(duplicate_at(r#"{"a": 1, "a": 1}"#), Some("a".into()));
        assert_eq!(duplicate_at(r#"{"a": {"b": 1}, "b": 1}"#), None);
    }

    #[test]
    fn a_repeated_key_names_the_key_under_the_body_field() {
        let error = parse_body(
            br#"{"labels": {"team": "a", "team": "b"}}"#,
            &BodyRule::Field("group".into()),
        )
        .unwrap_err();
        let violations = error
            .status
            .get_details_bad_request()
            .unwrap()
            .field_violations;
        assert_eq!(violations[0].field, "group.labels.team");
        assert!(violations[0].description.contains("\"team\""));
        let error = parse_body(br#"{"members": [], "members": []}"#, &BodyRule::Whole).unwrap_err();
        let violations = error
            .status
            .get_details_bad_request()
            .unwrap()
            .field_violations;
        assert_eq!(violations[0].field, "members");
    }
}
