//! The transcoder: an HTTP/JSON request becomes the RPC's request message
//! (path variables, query parameters and body placed as the
//! `google.api.http` binding says), that message is sent to the same
//! in-process tonic service gRPC clients reach, and the reply comes back
//! as canonical proto3 JSON.
//!
//! Why our own code: the crates that transcode for tonic (`rest_over_grpc`,
//! `tonneau`, `tonic-rest`) generate a second service surface at build time
//! and none implements grpc-gateway's PATCH semantics (the implied mask from
//! the body's keys) or `If-Match`; see ARCHITECTURE.md. The JSON mapping
//! itself is not ours: prost-reflect implements canonical proto3 JSON for
//! any message of a descriptor pool. This module only places fields and
//! routes.

use std::{convert::Infallible, sync::Arc, time::Instant};

use axum::{
    body::{Body as AxumBody, Bytes},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage as _, SerializeOptions, ServiceDescriptor,
};
use serde_json::{Map, Value as Json};
use tonic::{Code, Status};
use tower::{ServiceExt as _, util::BoxCloneSyncService};

use super::{
    bindings::{self, Binding, BodyRule},
    path_template::Captures,
    status::{HttpError, json_body},
};

/// The in-process gRPC service the gateway calls.
pub type GrpcHandler = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// Request headers passed on to the RPC as metadata.
const FORWARDED_HEADERS: [&str; 3] = ["authorization", "x-request-id", "grpc-timeout"];

/// The HTTP/JSON transcoder of one gRPC service.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DescriptorPool,
    routes: Vec<Binding>,
    grpc: GrpcHandler,
    max_body_bytes: usize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.inner.routes.len())
            .finish_non_exhaustive()
    }
}

/// Why a request got no RPC response: the gateway refused it, or the RPC
/// failed (and has logged and counted itself).
enum Failure {
    Gateway(HttpError),
    Rpc(Status),
}

impl From<HttpError> for Failure {
    fn from(error: HttpError) -> Self {
        Self::Gateway(error)
    }
}

impl Gateway {
    /// The gateway of `service` (whose types must be in `pool`), calling
    /// `grpc`. Request bodies over `max_body_bytes` are refused.
    pub fn new(
        pool: DescriptorPool,
        service: &ServiceDescriptor,
        grpc: GrpcHandler,
        max_body_bytes: usize,
    ) -> Result<Self, String> {
        let mut routes = bindings::bindings(&pool, service)?;
        // A template with a verb first: `/v1/groups/g:undelete` is the
        // verb on group `g`, not a group named `g:undelete`.
        routes.sort_by_key(|binding| !binding.template.has_verb());
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                routes,
                grpc,
                max_body_bytes,
            }),
        })
    }

    /// Answers one HTTP request. Returns the RPC's name (when a route
    /// matched), the gRPC code of the outcome, whether the RPC itself was
    /// called (and so counted), and the response.
    pub async fn handle(&self, request: http::Request<AxumBody>) -> Handled {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let (binding, captures) = match self.route(&parts.method, parts.uri.path()) {
            Ok(found) => found,
            Err(error) => return self.refused(None, error, started),
        };
        let rpc = binding.method.name().to_owned();
        match self.call(binding, captures, &parts, body).await {
            Ok(response) => Handled {
                rpc: Some(rpc),
                code: Code::Ok,
                reached_rpc: true,
                response,
            },
            Err(Failure::Rpc(status)) => Handled {
                rpc: Some(rpc),
                code: status.code(),
                reached_rpc: true,
                response: HttpError::new(status).into_response(&self.inner.pool),
            },
            Err(Failure::Gateway(error)) => self.refused(Some(rpc), error, started),
        }
    }

    fn refused(&self, rpc: Option<String>, error: HttpError, started: Instant) -> Handled {
        tracing::info!(
            rpc = rpc.as_deref().unwrap_or(""),
            code = crate::metrics::code_label(error.status.code()),
            http_status = error.http_status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            error = error.status.message(),
            "HTTP request refused"
        );
        Handled {
            rpc,
            code: error.status.code(),
            reached_rpc: false,
            response: error.into_response(&self.inner.pool),
        }
    }

    /// The binding for a method and path: 404 when no template fits the
    /// path, 405 (with `Allow`) when one does for other methods.
    /// HEAD is answered as GET (the server leaves the body out), so
    /// `curl -I` shows a group's `ETag`.
    fn route(&self, method: &Method, path: &str) -> Result<(&Binding, Captures), HttpError> {
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut allowed: Vec<&str> = Vec::new();
        let mut verb_fits = false;
        for binding in &self.inner.routes {
            // Templates with a verb come first. Once one fits the path (for
            // another method), `g:undelete` is that verb on group `g`, and
            // never a group id for the templates without a verb.
            if verb_fits && !binding.template.has_verb() {
                break;
            }
            if let Some(captures) = binding.template.matches(path) {
                if binding.http_method == *wanted {
                    return Ok((binding, captures));
                }
                verb_fits |= binding.template.has_verb();
                allowed.push(binding.http_method.as_str());
            }
        }
        if allowed.is_empty() {
            return Err(HttpError::gateway(
                Code::NotFound,
                "ROUTE_NOT_FOUND",
                format!("no route for {method} {path}"),
                Vec::new(),
            ));
        }
        allowed.sort_unstable();
        allowed.dedup();
        let allow = HeaderValue::from_str(&allowed.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Err(HttpError::gateway(
            Code::Unimplemented,
            "METHOD_NOT_ALLOWED",
            format!(
                "{path} does not answer {method}; it answers {}",
                allowed.join(", ")
            ),
            Vec::new(),
        )
        .with_http(StatusCode::METHOD_NOT_ALLOWED)
        .with_header(header::ALLOW, allow))
    }

    async fn call(
        &self,
        binding: &Binding,
        captures: Captures,
        parts: &http::request::Parts,
        body: AxumBody,
    ) -> Result<Response, Failure> {
        let bytes = self.read_body(&parts.headers, body, &binding.body).await?;
        let input = binding.method.input();

        // The JSON of the whole request message, assembled from the body,
        // the path and the query, then decoded once.
        let mut root = Map::new();
        let mut body_keys = Vec::new();
        if let Some(body) = parse_body(&bytes, &binding.body)? {
            match &binding.body {
                BodyRule::None => {}
                BodyRule::Whole => root = body,
                BodyRule::Field(field) => {
                    body_keys = body.keys().cloned().collect();
                    root.insert(field.clone(), Json::Object(body));
                }
            }
        }
        for (path, value) in &captures {
            let (field, _) = leaf_field(&input, path)
                .map_err(|message| HttpError::invalid(&path.join("."), message))?;
            let value = scalar_json(&field, value)
                .map_err(|message| HttpError::invalid(&path.join("."), message))?;
            set_json(&mut root, &input, path, value, Placement::Url)?;
        }
        let masks = match parts.uri.query() {
            Some(query) => apply_query(&mut root, &input, binding, &captures, query)?,
            None => Vec::new(),
        };
        apply_if_match(&mut root, &input, binding, &parts.headers)?;

        let mut message = decode_request(&input, root, &binding.body)?;
        for (path, paths) in masks {
            set_mask(&mut message, &path, paths);
        }
        apply_implied_mask(&mut message, binding, &body_keys)?;

        let reply = self.invoke(binding, message, &parts.headers).await?;
        Ok(reply_response(&reply))
    }

    /// The request body, within the size limit, as bytes.
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: AxumBody,
        rule: &BodyRule,
    ) -> Result<Bytes, HttpError> {
        let limit = self.inner.max_body_bytes;
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

    /// Calls the RPC in process, as a gRPC client would over the network.
    async fn invoke(
        &self,
        binding: &Binding,
        message: DynamicMessage,
        headers: &HeaderMap,
    ) -> Result<DynamicMessage, Failure> {
        let path = format!(
            "/{}/{}",
            binding.method.parent_service().full_name(),
            binding.method.name()
        );
        let mut frame = Vec::with_capacity(5 + message.encoded_len());
        let length = u32::try_from(message.encoded_len()).map_err(|_| internal("too large"))?;
        frame.push(0);
        frame.extend_from_slice(&length.to_be_bytes());
        message
            .encode(&mut frame)
            .map_err(|_| internal("cannot encode the request"))?;

        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .version(http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            // Tells the RPC's metrics and log that the call came over HTTP.
            .extension(crate::metrics::Transport::Http);
        for name in FORWARDED_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(tonic::body::Body::new(http_body_util::Full::new(
                Bytes::from(frame),
            )))
            .map_err(|_| internal("cannot build the request"))?;

        let Ok(response) = self.inner.grpc.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return Err(Failure::Rpc(status));
        }
        let collected = body
            .collect()
            .await
            .map_err(|_| internal("the reply could not be read"))?;
        if let Some(status) = collected.trailers().and_then(Status::from_header_map)
            && status.code() != Code::Ok
        {
            return Err(Failure::Rpc(status));
        }
        let data = collected.to_bytes();
        let message = data
            .get(5..)
            .filter(|_| data.first() == Some(&0))
            .ok_or_else(|| internal("the reply is not one uncompressed message"))?;
        DynamicMessage::decode(binding.method.output(), message)
            .map_err(|_| Failure::Gateway(internal_error("the reply could not be decoded")))
    }
}

/// What [`Gateway::handle`] did.
#[derive(Debug)]
pub struct Handled {
    /// The RPC the route named, if any route matched.
    pub rpc: Option<String>,
    /// The gRPC code of the outcome.
    pub code: Code,
    /// Whether the RPC ran (it then logged and counted itself).
    pub reached_rpc: bool,
    /// The HTTP response.
    pub response: Response,
}

fn internal_error(message: &str) -> HttpError {
    tracing::error!(message, "HTTP gateway failure");
    HttpError::gateway(Code::Internal, "INTERNAL", "internal error", Vec::new())
}

fn internal(message: &str) -> Failure {
    Failure::Gateway(internal_error(message))
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
fn parse_body(bytes: &[u8], rule: &BodyRule) -> Result<Option<Map<String, Json>>, HttpError> {
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
            vec![tonic_types::FieldViolation::new(
                field,
                format!("not valid JSON: {error}"),
            )],
        )),
    }
}

/// Decodes the assembled JSON into the request message, refusing unknown
/// fields and values of the wrong type.
fn decode_request(
    input: &MessageDescriptor,
    root: Map<String, Json>,
    rule: &BodyRule,
) -> Result<DynamicMessage, HttpError> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(input.clone(), Json::Object(root), &options).map_err(
        |error| {
            let field = match rule {
                BodyRule::Field(field) => field.as_str(),
                _ => "body",
            };
            HttpError::invalid(field, error.to_string())
        },
    )
}

/// Where a value placed in the request JSON came from, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// A path variable.
    Url,
    /// A query parameter.
    Query,
    /// The `If-Match` header.
    IfMatch,
}

/// Sets `value` at the field path in the request JSON, creating objects
/// on the way. A value already there (sent in the body too) must be
/// equal; query parameters of repeated fields accumulate.
fn set_json(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    path: &[String],
    value: Json,
    placement: Placement,
) -> Result<(), HttpError> {
    let dotted = path.join(".");
    let mut object = root;
    let mut message = input.clone();
    for (index, name) in path.iter().enumerate() {
        let field = find_field(&message, name)
            .ok_or_else(|| HttpError::invalid(&dotted, format!("no such field: {dotted}")))?;
        let key = existing_key(object, &field);
        if index + 1 == path.len() {
            match (object.get_mut(&key), placement) {
                (None, _) => {
                    let value = if field.is_list() {
                        Json::Array(vec![value])
                    } else {
                        value
                    };
                    object.insert(key, value);
                }
                (Some(Json::Array(items)), Placement::Query) if field.is_list() => {
                    items.push(value)
                }
                (Some(_), Placement::Query) => {
                    return Err(HttpError::invalid(
                        &dotted,
                        format!("{dotted} is given more than once"),
                    ));
                }
                (Some(existing), _) if *existing == value || existing.is_null() => {
                    *existing = value;
                }
                (Some(existing), Placement::IfMatch) => {
                    return Err(HttpError::invalid(
                        &dotted,
                        format!(
                            "the If-Match header ({value}) and {dotted} in the body ({existing}) differ"
                        ),
                    ));
                }
                (Some(existing), _) => {
                    return Err(HttpError::invalid(
                        &dotted,
                        format!("{dotted} is {value} in the URL but {existing} in the body"),
                    ));
                }
            }
            return Ok(());
        }
        let Some(inner) = field.kind().as_message().cloned() else {
            return Err(HttpError::invalid(
                &dotted,
                format!("{name} is not a message"),
            ));
        };
        message = inner;
        let slot = object
            .entry(key)
            .or_insert_with(|| Json::Object(Map::new()));
        if slot.is_null() {
            *slot = Json::Object(Map::new());
        }
        object = match slot {
            Json::Object(object) => object,
            _ => {
                return Err(HttpError::invalid(
                    &dotted,
                    format!("{name} must be a JSON object"),
                ));
            }
        };
    }
    Ok(())
}

/// A field by its proto name or its JSON name.
fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// The key a JSON object already uses for `field` (either name), or its
/// proto name.
fn existing_key(object: &Map<String, Json>, field: &FieldDescriptor) -> String {
    if object.contains_key(field.json_name()) && !object.contains_key(field.name()) {
        field.json_name().to_owned()
    } else {
        field.name().to_owned()
    }
}

/// The field at the end of a path of field names (proto or JSON), and the
/// path with every segment as its proto name.
fn leaf_field(
    input: &MessageDescriptor,
    path: &[String],
) -> Result<(FieldDescriptor, Vec<String>), String> {
    let mut message = input.clone();
    let mut canonical = Vec::with_capacity(path.len());
    let mut found = None;
    for (index, name) in path.iter().enumerate() {
        let field = find_field(&message, name).ok_or_else(|| format!("unknown field {name:?}"))?;
        if index + 1 < path.len() {
            match field.kind() {
                Kind::Message(inner)
                    if !field.is_list() && !field.is_map() && !is_well_known(&inner) =>
                {
                    message = inner;
                }
                _ => return Err(format!("{name} has no fields")),
            }
        }
        canonical.push(field.name().to_owned());
        found = Some(field);
    }
    let field = found.ok_or_else(|| "empty field path".to_owned())?;
    Ok((field, canonical))
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

/// A text value (path variable or query parameter) as the JSON the field
/// takes: proto3 JSON accepts numbers, enums, masks and timestamps as
/// strings, so only booleans need converting.
fn scalar_json(field: &FieldDescriptor, text: &str) -> Result<Json, String> {
    let name = field.json_name();
    if field.is_map() {
        return Err(format!("{name} is a map and cannot be set from the URL"));
    }
    // The spellings grpc-gateway accepts (Go's strconv.ParseBool).
    let boolean = || match text {
        "true" | "True" | "TRUE" | "t" | "T" | "1" => Ok(Json::Bool(true)),
        "false" | "False" | "FALSE" | "f" | "F" | "0" => Ok(Json::Bool(false)),
        _ => Err(format!("{name} must be true or false, not {text:?}")),
    };
    // Numbers are checked here, so that a bad one is reported against the
    // parameter that carried it.
    let number = |fits: bool, what: &str| {
        if fits {
            Ok(Json::String(text.to_owned()))
        } else {
            Err(format!("{name} must be {what}, not {text:?}"))
        }
    };
    let float = || text.parse::<f64>().is_ok() || ["NaN", "Infinity", "-Infinity"].contains(&text);
    match field.kind() {
        Kind::Bool => boolean(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            number(text.parse::<i32>().is_ok(), "a 32-bit integer")
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            number(text.parse::<i64>().is_ok(), "a 64-bit integer")
        }
        Kind::Uint32 | Kind::Fixed32 => {
            number(text.parse::<u32>().is_ok(), "an unsigned 32-bit integer")
        }
        Kind::Uint64 | Kind::Fixed64 => {
            number(text.parse::<u64>().is_ok(), "an unsigned 64-bit integer")
        }
        Kind::Float | Kind::Double => number(float(), "a number"),
        Kind::Enum(enumeration) => {
            if let Ok(number) = text.parse::<i32>() {
                Ok(Json::from(number))
            } else if enumeration.get_value_by_name(text).is_some() {
                Ok(Json::String(text.to_owned()))
            } else {
                let names: Vec<String> =
                    enumeration.values().map(|v| v.name().to_owned()).collect();
                Err(format!(
                    "{name} must be one of {}, not {text:?}",
                    names.join(", ")
                ))
            }
        }
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.BoolValue" => boolean(),
            full if full.starts_with("google.protobuf.") && !full.ends_with("Struct") => {
                Ok(Json::String(text.to_owned()))
            }
            _ => Err(format!(
                "{name} is a message and cannot be set from the URL"
            )),
        },
        Kind::String | Kind::Bytes => Ok(Json::String(text.to_owned())),
    }
}

/// Places the query parameters: every request field not bound by the path
/// or the body may be given, by proto or JSON name, dotted for nested
/// fields, repeated for repeated fields. Field masks are returned instead
/// (field path, mask paths), for [`set_mask`]: see [`mask_paths`].
fn apply_query(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    binding: &Binding,
    captures: &Captures,
    query: &str,
) -> Result<Vec<QueryMask>, HttpError> {
    let mut masks: Vec<QueryMask> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        let (field, canonical) = leaf_field(input, &path)
            .map_err(|_| HttpError::invalid(&key, format!("unknown query parameter {key:?}")))?;
        match &binding.body {
            BodyRule::Whole => {
                return Err(HttpError::invalid(
                    &key,
                    format!("query parameter {key:?}: this method takes its fields in the body"),
                ));
            }
            BodyRule::Field(body) if canonical.first() == Some(body) => {
                return Err(HttpError::invalid(
                    &key,
                    format!("query parameter {key:?}: {body} is the request body"),
                ));
            }
            _ => {}
        }
        if captures.iter().any(|(bound, _)| *bound == canonical) {
            return Err(HttpError::invalid(
                &key,
                format!("query parameter {key:?}: the URL path sets it"),
            ));
        }
        if is_field_mask(&field) {
            if masks.iter().any(|(seen, _)| *seen == canonical) {
                return Err(HttpError::invalid(
                    &key,
                    format!("{key} is given more than once"),
                ));
            }
            masks.push((canonical, mask_paths(&value)));
            continue;
        }
        let json =
            scalar_json(&field, &value).map_err(|message| HttpError::invalid(&key, message))?;
        set_json(root, input, &path, json, Placement::Query)?;
    }
    Ok(masks)
}

/// A field mask from the query: the field's path (proto names) and the
/// mask's paths.
type QueryMask = (Vec<String>, Vec<String>);

fn is_field_mask(field: &FieldDescriptor) -> bool {
    !field.is_list()
        && field
            .kind()
            .as_message()
            .is_some_and(|m| m.full_name() == "google.protobuf.FieldMask")
}

/// The paths of a field mask given as a query parameter: comma-separated,
/// each segment in its JSON form (`memberOf`, as proto3 JSON writes masks)
/// or its proto form (`member_of`, as grpc-gateway takes query masks
/// verbatim). A segment with a capital is converted to its proto form;
/// others are kept, so label keys such as `cost_center` pass unchanged.
fn mask_paths(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| {
            path.split('.')
                .map(|segment| {
                    if segment.bytes().any(|b| b.is_ascii_uppercase()) {
                        let mut snake = String::with_capacity(segment.len() + 4);
                        for c in segment.chars() {
                            if c.is_ascii_uppercase() {
                                snake.push('_');
                                snake.push(c.to_ascii_lowercase());
                            } else {
                                snake.push(c);
                            }
                        }
                        snake
                    } else {
                        segment.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

/// Sets the field mask at `path` (proto names, through singular messages)
/// of `message` to `paths`.
fn set_mask(message: &mut DynamicMessage, path: &[String], paths: Vec<String>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = message;
    for name in parents {
        let Some(field) = target.descriptor().get_field_by_name(name) else {
            return;
        };
        match target.get_field_mut(&field) {
            prost_reflect::Value::Message(inner) => target = inner,
            _ => return,
        }
    }
    let Some(field) = target.descriptor().get_field_by_name(last) else {
        return;
    };
    if let Some(mask) = mask_value(&field, paths) {
        target.set_field(&field, mask);
    }
}

/// A value for the `FieldMask` field `field` holding `paths`.
fn mask_value(field: &FieldDescriptor, paths: Vec<String>) -> Option<prost_reflect::Value> {
    let mut mask = DynamicMessage::new(field.kind().as_message()?.clone());
    mask.set_field_by_name(
        "paths",
        prost_reflect::Value::List(
            paths
                .into_iter()
                .map(prost_reflect::Value::String)
                .collect(),
        ),
    );
    Some(prost_reflect::Value::Message(mask))
}

/// `If-Match` is the etag: it goes to the request's `etag` field, or to
/// the body message's when the path names that message (`group.etag` for
/// UpdateGroup's `{group.id}`; CreateGroup's new group has no etag to
/// match). `*` asks for no check. Other methods refuse the header (400).
fn apply_if_match(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    binding: &Binding,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let etag = value
        .to_str()
        .map_err(|_| HttpError::invalid("If-Match", "If-Match is not valid text"))?
        .trim();
    if etag == "*" {
        return Ok(());
    }
    if etag.is_empty() || etag.contains(',') {
        return Err(HttpError::invalid(
            "If-Match",
            "If-Match must hold exactly one entity tag",
        ));
    }
    let path = if is_string_field(input, "etag") {
        vec!["etag".to_owned()]
    } else if let BodyRule::Field(body) = &binding.body
        && binding
            .template
            .variables()
            .any(|variable| variable.first() == Some(body))
        && input
            .get_field_by_name(body)
            .and_then(|f| f.kind().as_message().cloned())
            .is_some_and(|m| is_string_field(&m, "etag"))
    {
        // The body is the resource the path names (`{group.id}`): its etag.
        vec![body.clone(), "etag".to_owned()]
    } else {
        // Ignoring the condition would let the write through unchecked.
        return Err(HttpError::invalid(
            "If-Match",
            format!(
                "{} takes no etag, so it cannot honour If-Match",
                binding.method.name()
            ),
        ));
    };
    set_json(
        root,
        input,
        &path,
        Json::String(etag.to_owned()),
        Placement::IfMatch,
    )
}

fn is_string_field(message: &MessageDescriptor, name: &str) -> bool {
    message
        .get_field_by_name(name)
        .is_some_and(|f| f.kind() == Kind::String && !f.is_list())
}

/// grpc-gateway's PATCH semantics (SPEC §2 rule 3): when the request has a
/// `FieldMask` and none was given, PATCH masks the top-level keys of the
/// body, zero and `null` values included; PUT replaces everything (`*`).
fn apply_implied_mask(
    message: &mut DynamicMessage,
    binding: &Binding,
    body_keys: &[String],
) -> Result<(), HttpError> {
    let BodyRule::Field(body) = &binding.body else {
        return Ok(());
    };
    let input = message.descriptor();
    let masks: Vec<FieldDescriptor> = input.fields().filter(is_field_mask).collect();
    let [mask_field] = masks.as_slice() else {
        return Ok(());
    };
    if message.has_field(mask_field) {
        return Ok(());
    }
    let paths: Vec<String> = if binding.http_method == Method::PATCH {
        let Some(body_message) = input
            .get_field_by_name(body)
            .and_then(|f| f.kind().as_message().cloned())
        else {
            return Ok(());
        };
        body_keys
            .iter()
            .map(|key| {
                find_field(&body_message, key).map_or_else(|| key.clone(), |f| f.name().to_owned())
            })
            .collect()
    } else if binding.http_method == Method::PUT {
        vec!["*".to_owned()]
    } else {
        return Ok(());
    };
    if let Some(mask) = mask_value(mask_field, paths) {
        message.set_field(mask_field, mask);
    }
    Ok(())
}

/// The 200 response: the reply as canonical proto3 JSON, with an `ETag`
/// header when the reply has an etag.
fn reply_response(reply: &DynamicMessage) -> Response {
    let options = SerializeOptions::new();
    let written = reply
        .serialize_with_options(serde_json::value::Serializer, &options)
        .or_else(|_| {
            // The one value proto3 JSON cannot write is a field mask path
            // without a camelCase form (a label key such as `x_1`).
            let mut widened = reply.clone();
            widen_masks(&mut widened);
            widened.serialize_with_options(serde_json::value::Serializer, &options)
        });
    let json = match written {
        Ok(json) => json,
        Err(error) => {
            tracing::error!(%error, "cannot write a reply as JSON");
            return internal_error("cannot write the reply as JSON")
                .into_response(reply.descriptor().parent_pool());
        }
    };
    let mut response = (StatusCode::OK, json_body(&json)).into_response();
    if let Some(etag) = reply
        .get_field_by_name("etag")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|etag| !etag.is_empty())
        && let Ok(value) = HeaderValue::from_str(&etag)
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Widens every field mask path of `message` (at any depth) that has no
/// proto3 JSON form to its longest prefix that has one: `labels.x_1`
/// becomes `labels`. The JSON then says less (the labels changed) but
/// nothing false, where it could otherwise not be written at all.
fn widen_masks(message: &mut DynamicMessage) {
    if message.descriptor().full_name() == "google.protobuf.FieldMask" {
        if let Some(prost_reflect::Value::List(paths)) = message.get_field_by_name_mut("paths") {
            for path in paths.iter_mut() {
                if let prost_reflect::Value::String(path) = path {
                    let keep = path
                        .split('.')
                        .take_while(|segment| has_json_form(segment))
                        .count();
                    *path = path
                        .split('.')
                        .take(keep.max(1))
                        .collect::<Vec<_>>()
                        .join(".");
                }
            }
        }
        return;
    }
    for (_, value) in message.fields_mut() {
        match value {
            prost_reflect::Value::Message(inner) => widen_masks(inner),
            prost_reflect::Value::List(items) => {
                for item in items {
                    if let prost_reflect::Value::Message(inner) = item {
                        widen_masks(inner);
                    }
                }
            }
            prost_reflect::Value::Map(entries) => {
                for item in entries.values_mut() {
                    if let prost_reflect::Value::Message(inner) = item {
                        widen_masks(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a field mask path segment survives the proto3 JSON camelCase
/// round trip: no capitals, and every `_` followed by a lowercase letter.
fn has_json_form(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes.iter().enumerate().all(|(at, byte)| match byte {
        b'A'..=b'Z' => false,
        b'_' => bytes.get(at + 1).is_some_and(u8::is_ascii_lowercase),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        crate::http::descriptors::descriptor_pool().unwrap()
    }

    fn field(message: &str, name: &str) -> FieldDescriptor {
        pool()
            .get_message_by_name(message)
            .unwrap()
            .get_field_by_name(name)
            .unwrap()
    }

    #[test]
    fn masks_without_a_json_form_are_widened_not_failed() {
        let pool = pool();
        let change = pool.get_message_by_name("groups.v1.GroupChange").unwrap();
        let mut message = DynamicMessage::new(change);
        let mask = prost_types::FieldMask {
            paths: vec![
                "labels.x_1".into(),
                "labels.cost_center".into(),
                "description".into(),
            ],
        };
        let mask_field = message
            .descriptor()
            .get_field_by_name("update_mask")
            .unwrap();
        let mut mask_message = DynamicMessage::new(mask_field.kind().as_message().unwrap().clone());
        mask_message.transcode_from(&mask).unwrap();
        message.set_field(&mask_field, prost_reflect::Value::Message(mask_message));
        assert!(
            message
                .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
                .is_err()
        );
        let response = reply_response(&message);
        assert_eq!(response.status(), StatusCode::OK);
        widen_masks(&mut message);
        let json = message
            .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
            .unwrap();
        assert_eq!(json["updateMask"], "labels,labels.costCenter,description");
        assert!(has_json_form("cost_center"));
        assert!(!has_json_form("x_1"));
        assert!(!has_json_form("trailing_"));
        assert!(!has_json_form("Upper"));
    }

    #[test]
    fn query_masks_take_json_and_proto_names() {
        assert_eq!(
            mask_paths("memberOf, assigned_roles,labels.cost_center,,labels.costCenter"),
            vec![
                "member_of",
                "assigned_roles",
                "labels.cost_center",
                "labels.cost_center"
            ]
        );
        assert!(mask_paths("").is_empty());
    }

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

    #[test]
    fn url_text_becomes_the_json_its_field_takes() {
        let show_deleted = field("groups.v1.ListGroupsRequest", "show_deleted");
        assert_eq!(scalar_json(&show_deleted, "true"), Ok(Json::Bool(true)));
        assert!(scalar_json(&show_deleted, "yes").is_err());
        let page_size = field("groups.v1.ListGroupsRequest", "page_size");
        assert_eq!(scalar_json(&page_size, "7"), Ok(Json::from("7")));
        let view = field("groups.v1.ListGroupsRequest", "view");
        assert_eq!(
            scalar_json(&view, "GROUP_VIEW_FULL"),
            Ok(Json::from("GROUP_VIEW_FULL"))
        );
        assert_eq!(scalar_json(&view, "2"), Ok(Json::from(2)));
        let mask = field("groups.v1.UpdateGroupRequest", "update_mask");
        assert_eq!(
            scalar_json(&mask, "description,memberOf"),
            Ok(Json::from("description,memberOf"))
        );
        let group = field("groups.v1.UpdateGroupRequest", "group");
        assert!(scalar_json(&group, "x").is_err());
    }

    #[test]
    fn url_values_must_agree_with_the_body() {
        let input = pool()
            .get_message_by_name("groups.v1.UpdateGroupRequest")
            .unwrap();
        let path = ["group".to_owned(), "id".to_owned()];
        let mut root = Map::new();
        set_json(&mut root, &input, &path, Json::from("g"), Placement::Url).unwrap();
        assert_eq!(
            Json::Object(root.clone()),
            serde_json::json!({"group": {"id": "g"}})
        );
        set_json(&mut root, &input, &path, Json::from("g"), Placement::Url).unwrap();
        assert!(set_json(&mut root, &input, &path, Json::from("h"), Placement::Url).is_err());
        let query = ["updateMask".to_owned()];
        set_json(
            &mut root,
            &input,
            &query,
            Json::from("name"),
            Placement::Query,
        )
        .unwrap();
        assert!(
            set_json(
                &mut root,
                &input,
                &query,
                Json::from("name"),
                Placement::Query
            )
            .is_err()
        );
    }
}
