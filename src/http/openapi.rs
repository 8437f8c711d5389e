//! The OpenAPI 3.0.3 document of the HTTP/JSON gateway, generated from the
//! descriptors the gateway itself routes by: the paths are the
//! `google.api.http` bindings, the schemas are the canonical proto3 JSON
//! forms of the messages, and the descriptions are the proto comments.
//! Meant for the gateway's `/openapi.json`; `groupd openapi` prints it.
//!
//! Conventions of the document:
//!
//! - **Operation ids.** The first binding of an RPC is named after the RPC
//!   (`UpdateGroup`); each additional binding appends its lowercase HTTP
//!   method (`UpdateGroup_put`), and a number when that is still taken.
//! - **Component names.** A message or enum is named by its name within its
//!   package (`Group`, nested types joined: `OuterInner`) when no other type
//!   of the pool shares that name, otherwise by its full name with `_` for
//!   `.` (`groups_v1_Group`). The body of a `body: "*"` binding whose path
//!   binds some fields is the component `<Request>Body`.
//! - **Field behaviour** (`google.api.field_behavior`): `OUTPUT_ONLY` is
//!   `readOnly`, `INPUT_ONLY` is `writeOnly`; the others are told in the
//!   description. Body schemas never list `required` properties, because a
//!   PATCH body is partial; a query parameter is required when its field
//!   (and every field above it) is `REQUIRED`.
//! - **Properties that reference a component** are `allOf: [{$ref}]` when
//!   they carry a description or `readOnly`: OpenAPI 3.0 ignores the
//!   siblings of a bare `$ref`.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use http::Method;
use prost_reflect::{
    DescriptorPool, EnumDescriptor, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, MethodDescriptor, ServiceDescriptor,
};
use serde_json::{Map, Value, json};

use super::{
    bindings::{self, Binding, BodyRule},
    descriptors,
};
use crate::{domain::validate, error::ERROR_DOMAIN};

/// The OpenAPI version the document follows.
const OPENAPI_VERSION: &str = "3.0.3";
/// The full name of the field behaviour annotation.
const FIELD_BEHAVIOR_EXTENSION: &str = "google.api.field_behavior";
/// The tag of the endpoints that are not RPCs.
const OPERATIONS_TAG: &str = "Operations";
/// The media type of every RPC request and response.
const JSON: &str = "application/json";
/// The media type `/metrics` answers with (prometheus-client renders the
/// OpenMetrics text format, which Prometheus scrapes natively).
const METRICS_MEDIA_TYPE: &str = "application/openmetrics-text";
/// The component holding `google.rpc.Status` as JSON, the body of every
/// error. Reserved, so that no proto type takes the name.
const STATUS_SCHEMA: &str = "Status";

/// The OpenAPI 3.0.3 document of the HTTP bindings of `service`, plus the
/// gateway's own `/metrics` and `/openapi.json`.
///
/// `pool` is the pool `service` and `bindings` come from. Descriptions come
/// from its source info and `readOnly` from `google.api.field_behavior`;
/// a pool without them gives a terser document, not an error.
pub fn document(
    pool: &DescriptorPool,
    service: &ServiceDescriptor,
    bindings: &[Binding],
    constraints: &Constraints,
) -> Value {
    let mut generator = Generator::new(pool, constraints.clone());
    let mut taken = HashSet::new();
    let ids = operation_ids(bindings, &mut taken);
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut served = Vec::new();
    for (binding, id) in bindings.iter().zip(ids) {
        // OpenAPI has no place for custom HTTP methods.
        let Some(method) = path_item_key(&binding.http_method) else {
            continue;
        };
        let path = binding.template.openapi_path();
        let item = paths.entry(path.clone()).or_default();
        if item.contains_key(method) {
            continue;
        }
        let operation = generator.operation(binding, &id, service.name());
        item.insert(method.to_owned(), operation);
        served.push((path, method, id, binding));
    }
    add_links(&generator, &mut paths, &served);
    for (path, operation) in serving_endpoints(&mut taken) {
        paths
            .entry(path.to_owned())
            .or_default()
            .entry("get")
            .or_insert(operation);
    }
    generator.drain();

    let service_description = generator.doc(&service.parent_file(), service.path());
    let mut info = json!({"title": "groupd", "version": env!("CARGO_PKG_VERSION")});
    let mut service_tag = json!({"name": service.name()});
    if let Some(description) = service_description {
        info["description"] = json!(description);
        service_tag["description"] = json!(description);
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info,
        "servers": [{"url": "/"}],
        "tags": [
            service_tag,
            {
                "name": OPERATIONS_TAG,
                "description": "Serving endpoints outside the API: metrics and this document.",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": generator.schemas,
            "responses": error_responses(),
            "parameters": {
                "IfMatch": {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The resource's etag, as last read (`etag` field or `ETag` \
                        header). When it differs from the current one, the call fails with \
                        409 (ABORTED) and changes nothing. Same as sending it as `etag`.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "ETag": {
                    "description": "The etag of the returned resource, in RFC 7232 quoted \
                        form: the same as its `etag` field.",
                    "schema": {"type": "string"},
                },
            },
        },
    })
}

/// OpenAPI links from each response that is a resource to the operations
/// that take its identifier in their path: a created group's `id` feeds
/// GetGroup, UpdateGroup, DeleteGroup and the rest. Clients and fuzzers
/// (schemathesis' stateful phase) follow them to reach real resources.
/// The identifier is the output's `IDENTIFIER` field; a target is any
/// operation with a path parameter of that name.
fn add_links(
    generator: &Generator,
    paths: &mut BTreeMap<String, Map<String, Value>>,
    served: &[(String, &'static str, String, &Binding)],
) {
    for (path, method, _, binding) in served {
        let Some(identifier) = binding
            .method
            .output()
            .fields()
            .find(|field| generator.behavior(field).identifier)
        else {
            continue;
        };
        let name = identifier.name();
        let mut links = Map::new();
        for (_, _, target_id, target) in served {
            let takes_it = target
                .template
                .variables()
                .any(|variable| target.template.parameter_name(variable) == name);
            if takes_it {
                links.insert(
                    target_id.clone(),
                    json!({
                        "operationId": target_id,
                        "parameters": {name: format!("$response.body#/{}", identifier.json_name())},
                    }),
                );
            }
        }
        if let Some(success) = paths
            .get_mut(path)
            .and_then(|item| item.get_mut(*method))
            .and_then(|operation| operation["responses"].get_mut("200"))
            && !links.is_empty()
        {
            success["links"] = Value::Object(links);
        }
    }
}

/// The document for groupd's own contract: `groups.v1.GroupService` from
/// [`crate::pb::FILE_DESCRIPTOR_SET`], decoded for the occasion (what
/// `groupd openapi` prints).
pub fn contract_document() -> anyhow::Result<Value> {
    let pool =
        descriptors::descriptor_pool().context("cannot decode the contract's descriptor set")?;
    contract_document_in(&pool)
}

/// The document for groupd's own contract in `pool`, a pool made by
/// [`descriptors::descriptor_pool`]: the server passes the gateway's, so
/// that the descriptors are decoded once.
pub fn contract_document_in(pool: &DescriptorPool) -> anyhow::Result<Value> {
    let service = descriptors::contract_service(pool)?;
    let bindings = bindings::bindings(pool, &service).map_err(anyhow::Error::msg)?;
    Ok(document(pool, &service, &bindings, &contract_constraints()))
}

/// Schema keywords to add to fields, by full field name: the validation
/// rules a proto cannot carry (patterns, lengths, limits), so that clients
/// and fuzzers know them before the server says 400.
pub type Constraints = HashMap<String, Value>;

/// groupd's validation rules (SPEC §1 and `domain::validate`) as schema
/// keywords. Label keys follow [`validate::LABEL_KEY_PATTERN`] too, but
/// OpenAPI 3.0 cannot constrain property names. The 1000-entry limits of
/// `member_of` and `assigned_roles` are left out: schemathesis 4.32 fails
/// inside Hypothesis (a `FlakyFailure`) generating arrays that long.
pub fn contract_constraints() -> Constraints {
    let name = json!({"pattern": validate::NAME_PATTERN});
    let page_size = json!({"minimum": 0});
    [
        ("groups.v1.Group.name", name.clone()),
        (
            "groups.v1.Group.scope",
            json!({"pattern": format!("^$|{}", validate::NAME_PATTERN)}),
        ),
        (
            "groups.v1.Group.description",
            json!({"maxLength": validate::MAX_DESCRIPTION_CHARS}),
        ),
        ("groups.v1.Group.email", json!({"format": "email"})),
        (
            "groups.v1.Group.provenance",
            json!({"maxLength": validate::MAX_PROVENANCE_CHARS}),
        ),
        (
            "groups.v1.Group.labels",
            json!({
                "maxProperties": validate::MAX_LABELS,
                "additionalProperties": {
                    "type": "string",
                    "maxLength": validate::MAX_LABEL_VALUE_CHARS,
                },
            }),
        ),
        (
            "groups.v1.Member.id",
            json!({"pattern": validate::PRINCIPAL_ID_PATTERN}),
        ),
        ("groups.v1.GroupRef.group_id", name.clone()),
        (
            "groups.v1.RoleRef.role_id",
            json!({"pattern": validate::ROLE_ID_PATTERN}),
        ),
        ("groups.v1.CreateGroupRequest.group_id", name),
        (
            "groups.v1.CreateGroupRequest.request_id",
            json!({"format": "uuid"}),
        ),
        ("groups.v1.ListGroupsRequest.page_size", page_size.clone()),
        (
            "groups.v1.ListGroupMembersRequest.page_size",
            page_size.clone(),
        ),
        (
            "groups.v1.ListGroupChangesRequest.page_size",
            page_size.clone(),
        ),
        ("groups.v1.ListMemberGroupsRequest.page_size", page_size),
    ]
    .into_iter()
    .map(|(field, keywords)| (field.to_owned(), keywords))
    .collect()
}

/// One operation id per binding (see the module documentation), each added
/// to `taken`.
fn operation_ids(bindings: &[Binding], taken: &mut HashSet<String>) -> Vec<String> {
    let mut named_rpcs = HashSet::new();
    bindings
        .iter()
        .map(|binding| {
            let rpc = binding.method.name();
            let base = if named_rpcs.insert(rpc.to_owned()) {
                rpc.to_owned()
            } else {
                format!(
                    "{rpc}_{}",
                    binding.http_method.as_str().to_ascii_lowercase()
                )
            };
            unique(base, taken)
        })
        .collect()
}

/// `base`, or `base` followed by the first number that makes it new; the
/// result is added to `taken`.
fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let mut name = base.clone();
    let mut number = 2;
    while taken.contains(&name) {
        name = format!("{base}{number}");
        number += 1;
    }
    taken.insert(name.clone());
    name
}

/// The key of a path item for `method`, when OpenAPI has one.
fn path_item_key(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "get",
        Method::PUT => "put",
        Method::POST => "post",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::TRACE => "trace",
        _ => return None,
    })
}

/// `GET /metrics` and `GET /openapi.json`, which the HTTP server answers
/// beside the bindings.
fn serving_endpoints(taken: &mut HashSet<String>) -> [(&'static str, Value); 2] {
    [
        (
            "/metrics",
            json!({
                "operationId": unique("Metrics".to_owned(), taken),
                "tags": [OPERATIONS_TAG],
                "summary": "Prometheus metrics.",
                "description": "Calls, their status codes and their latency, per transport \
                    and method, in the OpenMetrics text format for Prometheus to scrape.",
                "responses": {
                    "200": {
                        "description": "The current metrics.",
                        "content": {METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}},
                    },
                },
            }),
        ),
        (
            "/openapi.json",
            json!({
                "operationId": unique("OpenApi".to_owned(), taken),
                "tags": [OPERATIONS_TAG],
                "summary": "This OpenAPI document.",
                "description": "The OpenAPI 3.0.3 document of the HTTP/JSON API, generated \
                    from the proto contract (`groupd openapi` prints the same).",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                },
            }),
        ),
    ]
}

/// The error responses operations refer to, each a `Status` body.
fn error_responses() -> Value {
    let response = |description: &str| {
        json!({
            "description": description,
            "content": {JSON: {"schema": schema_ref(STATUS_SCHEMA)}},
        })
    };
    json!({
        "BadRequest": response(
            "INVALID_ARGUMENT (with `google.rpc.BadRequest` field violations), \
             FAILED_PRECONDITION or OUT_OF_RANGE: the request is malformed or not \
             allowed in the current state. Nothing changed."
        ),
        "NotFound": response("NOT_FOUND: the resource the path names does not exist."),
        "Conflict": response(
            "ALREADY_EXISTS (for example a name already taken) or ABORTED (an etag \
             mismatch, or a concurrent write). Nothing changed."
        ),
        "Unavailable": response(
            "UNAVAILABLE: the database is unreachable. The call may be retried."
        ),
        "DeadlineExceeded": response(
            "DEADLINE_EXCEEDED: the call did not finish before its deadline (a \
             `grpc-timeout` header, bounded by the server's request timeout) or the \
             database's statement timeout. Nothing changed; the call may be retried."
        ),
        "Error": response("Any other error."),
    })
}

/// The `google.rpc.Status` JSON form every error body has.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": format!(
            "An error, as grpc-gateway writes it: the gRPC status code, a message for \
             developers, and typed details. Every error carries a `google.rpc.ErrorInfo` \
             whose `reason` is UPPER_SNAKE_CASE and whose `domain` is `{ERROR_DOMAIN}`."
        ),
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The gRPC status code (3 is INVALID_ARGUMENT, 5 NOT_FOUND, …).",
            },
            "message": {
                "type": "string",
                "description": "A message for developers, in English.",
            },
            "details": {
                "type": "array",
                "description": "Typed details, such as `google.rpc.ErrorInfo` and \
                    `google.rpc.BadRequest`.",
                "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {
                        "@type": {
                            "type": "string",
                            "description": "The detail's type URL, e.g. \
                                `type.googleapis.com/google.rpc.ErrorInfo`.",
                        },
                    },
                    "additionalProperties": true,
                },
            },
        },
    })
}

/// `{"$ref": "#/components/schemas/<name>"}`.
fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `{"$ref": "#/components/responses/<name>"}`.
fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// The inline schema of a well-known type whose JSON form is not an object
/// of its fields, or `None` for every other message.
fn well_known(full_name: &str) -> Option<Value> {
    let wrapper = |schema: Value| {
        let mut schema = schema;
        schema["nullable"] = json!(true);
        schema
    };
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => json!({
            "type": "string",
            "description": "A duration: seconds with up to nine fractional digits and an `s` \
                suffix, such as `1.5s`.",
        }),
        "google.protobuf.FieldMask" => json!({
            "type": "string",
            "description": "A field mask: comma-separated field paths, each segment in \
                lowerCamelCase, such as `description,memberOf`.",
        }),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({"description": "Any JSON value.", "nullable": true}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Any" => json!({
            "type": "object",
            "required": ["@type"],
            "properties": {"@type": {"type": "string"}},
            "additionalProperties": true,
        }),
        "google.protobuf.DoubleValue" => wrapper(json!({"type": "number", "format": "double"})),
        "google.protobuf.FloatValue" => wrapper(json!({"type": "number", "format": "float"})),
        "google.protobuf.Int64Value" => wrapper(json!({"type": "string", "format": "int64"})),
        "google.protobuf.UInt64Value" => wrapper(json!({"type": "string", "format": "uint64"})),
        "google.protobuf.Int32Value" => wrapper(json!({"type": "integer", "format": "int32"})),
        "google.protobuf.UInt32Value" => wrapper(uint32_schema()),
        "google.protobuf.BoolValue" => wrapper(json!({"type": "boolean"})),
        "google.protobuf.StringValue" => wrapper(json!({"type": "string"})),
        "google.protobuf.BytesValue" => wrapper(json!({"type": "string", "format": "byte"})),
        _ => return None,
    })
}

/// An unsigned 32-bit integer, which does not fit OpenAPI's `int32`.
fn uint32_schema() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
}

/// Whether a schema is a single JSON scalar, so that it fits in one query
/// parameter.
fn is_scalar(schema: &Value) -> bool {
    matches!(
        schema.get("type").and_then(Value::as_str),
        Some("string" | "integer" | "number" | "boolean")
    )
}

/// Whether `message` has a top-level string field `etag`.
fn has_etag(message: &MessageDescriptor) -> bool {
    message
        .get_field_by_name("etag")
        .is_some_and(|field| field.kind() == Kind::String && !field.is_list())
}

/// The field a path of proto field names leads to from `message`.
fn resolve(message: &MessageDescriptor, path: &[String]) -> Option<FieldDescriptor> {
    let (last, parents) = path.split_last()?;
    let mut message = message.clone();
    for name in parents {
        message = message
            .get_field_by_name(name)?
            .kind()
            .as_message()?
            .clone();
    }
    message.get_field_by_name(last)
}

/// A proto comment as Markdown: the one space after `//` dropped from each
/// line, surrounding blank lines trimmed.
fn clean_comment(raw: &str) -> String {
    raw.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// The first sentence of `text`, on one line: up to the first `.` that
/// ends the text or is followed by white space, outside backquotes.
fn first_sentence(text: &str) -> String {
    let mut in_code = false;
    let mut end = text.len();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '`' => in_code = !in_code,
            '.' if !in_code && chars.peek().is_none_or(|(_, next)| next.is_whitespace()) => {
                end = at + 1;
                break;
            }
            _ => {}
        }
    }
    text[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `first`, then `second` as a new paragraph, either possibly absent.
fn paragraphs(first: Option<String>, second: Option<String>) -> Option<String> {
    match (first, second) {
        (Some(first), Some(second)) => Some(format!("{first}\n\n{second}")),
        (first, second) => first.or(second),
    }
}

/// What a field's `google.api.field_behavior` says.
#[derive(Debug, Default, Clone, Copy)]
struct Behavior {
    required: bool,
    output_only: bool,
    input_only: bool,
    immutable: bool,
    identifier: bool,
    unordered: bool,
}

impl Behavior {
    /// The behaviours that the schema cannot say itself, as sentences.
    fn note(self) -> Option<String> {
        let notes: Vec<&str> = [
            (self.identifier, "Identifier: names the resource."),
            (
                self.immutable,
                "Immutable: set at creation; changing it later is rejected.",
            ),
            (self.required, "Required."),
            (self.output_only, "Output only: ignored in requests."),
            (self.input_only, "Input only: never returned."),
            (
                self.unordered,
                "The order of the elements is not significant.",
            ),
        ]
        .into_iter()
        .filter_map(|(set, note)| set.then_some(note))
        .collect();
        (!notes.is_empty()).then(|| notes.join(" "))
    }
}

/// A type whose component schema is still to be written.
enum Pending {
    Message(MessageDescriptor),
    Enum(EnumDescriptor),
}

/// The state of one document's generation: the indexes it reads and the
/// component schemas it has written so far.
struct Generator {
    /// `google.api.field_behavior`, when the pool knows it.
    behavior: Option<ExtensionDescriptor>,
    /// Leading comments by file name, then by source path.
    comments: HashMap<String, HashMap<Vec<i32>, String>>,
    /// The component name of every message and enum of the pool.
    names: HashMap<String, String>,
    /// Every component schema name given out.
    taken: HashSet<String>,
    /// The body components written, by request type and excluded fields.
    bodies: HashMap<(String, Vec<String>), String>,
    /// The component schemas written.
    schemas: BTreeMap<String, Value>,
    /// Types referenced but not yet written.
    pending: Vec<Pending>,
    /// Full names of the types referenced so far.
    referenced: HashSet<String>,
    /// Extra schema keywords by field full name.
    constraints: Constraints,
}

impl Generator {
    fn new(pool: &DescriptorPool, constraints: Constraints) -> Self {
        let mut comments: HashMap<String, HashMap<Vec<i32>, String>> = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            let by_path = comments.entry(file.name().to_owned()).or_default();
            for location in &info.location {
                let text = clean_comment(location.leading_comments());
                if !text.is_empty() {
                    by_path.entry(location.path.clone()).or_insert(text);
                }
            }
        }
        let mut taken = HashSet::from([STATUS_SCHEMA.to_owned()]);
        let mut generator = Self {
            behavior: pool.get_extension_by_name(FIELD_BEHAVIOR_EXTENSION),
            comments,
            names: component_names(pool, &mut taken),
            taken,
            bodies: HashMap::new(),
            schemas: BTreeMap::new(),
            pending: Vec::new(),
            referenced: HashSet::new(),
            constraints,
        };
        generator
            .schemas
            .insert(STATUS_SCHEMA.to_owned(), status_schema());
        generator
    }

    /// The leading comment of the element at `path` of `file`.
    fn doc(&self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        self.comments
            .get(file.name())
            .and_then(|by_path| by_path.get(path))
            .cloned()
    }

    fn field_doc(&self, field: &FieldDescriptor) -> Option<String> {
        self.doc(&field.parent_file(), field.path())
    }

    fn message_doc(&self, message: &MessageDescriptor) -> Option<String> {
        self.doc(&message.parent_file(), message.path())
    }

    fn method_doc(&self, method: &MethodDescriptor) -> Option<String> {
        self.doc(&method.parent_file(), method.path())
    }

    /// Reads a field's `google.api.field_behavior`.
    fn behavior(&self, field: &FieldDescriptor) -> Behavior {
        let mut behavior = Behavior::default();
        let Some(extension) = &self.behavior else {
            return behavior;
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return behavior;
        }
        let value = options.get_extension(extension);
        let kind = extension.kind();
        let (Some(values), Some(names)) = (value.as_list(), kind.as_enum()) else {
            return behavior;
        };
        for number in values.iter().filter_map(|value| value.as_enum_number()) {
            match names.get_value(number).as_ref().map(|value| value.name()) {
                Some("REQUIRED") => behavior.required = true,
                Some("OUTPUT_ONLY") => behavior.output_only = true,
                Some("INPUT_ONLY") => behavior.input_only = true,
                Some("IMMUTABLE") => behavior.immutable = true,
                Some("IDENTIFIER") => behavior.identifier = true,
                Some("UNORDERED_LIST") => behavior.unordered = true,
                _ => {}
            }
        }
        behavior
    }

    /// A field's comment followed by its behaviour notes.
    fn field_description(&self, field: &FieldDescriptor, behavior: Behavior) -> Option<String> {
        paragraphs(self.field_doc(field), behavior.note())
    }

    /// The description of a parameter or body bound to a field: as
    /// [`Self::field_description`], without the note that it is required,
    /// which the parameter or body says itself.
    fn binding_description(&self, field: &FieldDescriptor) -> Option<String> {
        let behavior = Behavior {
            required: false,
            ..self.behavior(field)
        };
        self.field_description(field, behavior)
    }

    /// The reference to the component of a message or enum, queued to be
    /// written.
    fn reference(&mut self, full_name: &str, pending: Pending) -> Value {
        let name = self
            .names
            .get(full_name)
            .cloned()
            .unwrap_or_else(|| full_name.replace('.', "_"));
        if self.referenced.insert(full_name.to_owned()) {
            self.pending.push(pending);
        }
        schema_ref(&name)
    }

    /// The schema of one value of `kind`.
    fn value_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => uint32_schema(),
            // Proto3 JSON writes 64-bit integers as strings, because
            // JavaScript numbers lose precision above 2^53.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Message(message) => match well_known(message.full_name()) {
                Some(schema) => schema,
                None => self.reference(message.full_name(), Pending::Message(message.clone())),
            },
            Kind::Enum(enumeration) => {
                self.reference(enumeration.full_name(), Pending::Enum(enumeration.clone()))
            }
        }
    }

    /// The schema of a field's whole value: a list, a map, or one value.
    fn field_type(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => self.value_schema(&entry.map_entry_value_field().kind()),
                _ => json!({}),
            };
            json!({"type": "object", "additionalProperties": value})
        } else if field.is_list() {
            json!({"type": "array", "items": self.value_schema(&field.kind())})
        } else {
            self.value_schema(&field.kind())
        }
    }

    /// The schema of a field as a property of its message's schema.
    /// `schema` with the field's constraints merged in.
    fn constrain(&self, field: &FieldDescriptor, mut schema: Value) -> Value {
        if let (Some(Value::Object(keywords)), Value::Object(map)) =
            (self.constraints.get(field.full_name()), &mut schema)
        {
            map.extend(keywords.clone());
        }
        schema
    }

    fn property(&mut self, field: &FieldDescriptor) -> Value {
        let behavior = self.behavior(field);
        let schema = self.field_type(field);
        let schema = self.constrain(field, schema);
        let mut extra = Map::new();
        let own = schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(description) = paragraphs(self.field_description(field, behavior), own) {
            extra.insert("description".to_owned(), json!(description));
        }
        if behavior.output_only {
            extra.insert("readOnly".to_owned(), json!(true));
        }
        if behavior.input_only {
            extra.insert("writeOnly".to_owned(), json!(true));
        }
        if extra.is_empty() {
            return schema;
        }
        let mut schema = if schema.get("$ref").is_some() {
            json!({"allOf": [schema]})
        } else {
            schema
        };
        if let Value::Object(map) = &mut schema {
            map.extend(extra);
        }
        schema
    }

    /// The object schema of `message`, without the top-level fields named
    /// in `excluded`.
    fn message_schema(&mut self, message: &MessageDescriptor, excluded: &[String]) -> Value {
        let mut properties = Map::new();
        for field in message.fields() {
            if excluded.iter().any(|name| name == field.name()) {
                continue;
            }
            properties.insert(field.json_name().to_owned(), self.property(&field));
        }
        let oneofs: Vec<String> = message
            .oneofs()
            .filter(|oneof| !oneof.is_synthetic())
            .map(|oneof| {
                let names: Vec<String> = oneof
                    .fields()
                    .map(|field| format!("`{}`", field.json_name()))
                    .collect();
                format!("At most one of {} is set.", names.join(", "))
            })
            .collect();
        let oneofs = (!oneofs.is_empty()).then(|| oneofs.join(" "));
        let mut schema = json!({"type": "object", "properties": properties});
        if let Some(description) = paragraphs(self.message_doc(message), oneofs) {
            schema["description"] = json!(description);
        }
        schema
    }

    /// The string schema of an enum: its value names, each explained.
    fn enum_schema(&self, enumeration: &EnumDescriptor) -> Value {
        let file = enumeration.parent_file();
        let names: Vec<String> = enumeration
            .values()
            .map(|value| value.name().to_owned())
            .collect();
        let values: Vec<String> = enumeration
            .values()
            .map(|value| match self.doc(&file, value.path()) {
                Some(doc) => format!("- `{}`: {}", value.name(), doc.replace('\n', " ")),
                None => format!("- `{}`", value.name()),
            })
            .collect();
        let description = paragraphs(self.doc(&file, enumeration.path()), Some(values.join("\n")));
        json!({"type": "string", "enum": names, "description": description})
    }

    /// Writes the component of every type referenced so far, and of every
    /// type those reference.
    fn drain(&mut self) {
        while let Some(pending) = self.pending.pop() {
            let (full_name, schema) = match pending {
                Pending::Message(message) => (
                    message.full_name().to_owned(),
                    self.message_schema(&message, &[]),
                ),
                Pending::Enum(enumeration) => (
                    enumeration.full_name().to_owned(),
                    self.enum_schema(&enumeration),
                ),
            };
            let name = self
                .names
                .get(&full_name)
                .cloned()
                .unwrap_or_else(|| full_name.replace('.', "_"));
            self.schemas.insert(name, schema);
        }
    }

    /// The OpenAPI operation of one binding.
    fn operation(&mut self, binding: &Binding, id: &str, tag: &str) -> Value {
        let method = &binding.method;
        let input = method.input();
        let bound: Vec<Vec<String>> = binding.template.variables().map(<[_]>::to_vec).collect();

        let mut parameters = Vec::new();
        for variable in &bound {
            let name = binding.template.parameter_name(variable);
            parameters.push(self.path_parameter(&input, variable, name));
        }
        let body_field = match &binding.body {
            BodyRule::Field(name) => Some(name.as_str()),
            BodyRule::None | BodyRule::Whole => None,
        };
        if binding.body != BodyRule::Whole {
            let mut walk = QueryWalk {
                bound: &bound,
                body_field,
                visiting: Vec::new(),
                parameters: &mut parameters,
            };
            self.query_parameters(&input, &Prefix::default(), &mut walk);
        }
        // The etag of a body message counts only when the path names that
        // message (an update); a created resource has no etag to compare.
        let body_message = body_field
            .filter(|name| {
                bound
                    .iter()
                    .any(|variable| variable.len() > 1 && variable[0] == *name)
            })
            .and_then(|name| input.get_field_by_name(name))
            .and_then(|field| field.kind().as_message().cloned());
        if has_etag(&input) || body_message.as_ref().is_some_and(has_etag) {
            parameters.push(json!({"$ref": "#/components/parameters/IfMatch"}));
        }

        let mut operation = json!({
            "operationId": id,
            "tags": [tag],
            "x-grpc-method": format!("/{}/{}", method.parent_service().full_name(), method.name()),
        });
        let description = paragraphs(self.method_doc(method), self.http_semantics(binding));
        if let Some(description) = description {
            let summary = first_sentence(&description);
            if summary != description {
                operation["description"] = json!(description);
            }
            operation["summary"] = json!(summary);
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = self.request_body(binding, &input, &bound) {
            operation["requestBody"] = body;
        }
        operation["responses"] = self.responses(binding, &input, &bound);
        operation
    }

    /// What HTTP adds to the RPC's own semantics: how PATCH and PUT fill an
    /// absent update mask.
    fn http_semantics(&self, binding: &Binding) -> Option<String> {
        let has_mask = binding
            .method
            .input()
            .get_field_by_name("update_mask")
            .and_then(|field| field.kind().as_message().cloned())
            .is_some_and(|message| message.full_name() == "google.protobuf.FieldMask");
        if !has_mask || !matches!(binding.body, BodyRule::Field(_)) {
            return None;
        }
        match binding.http_method {
            Method::PATCH => Some(
                "Over HTTP PATCH without `updateMask`, the mask is every top-level key \
                 present in the JSON body, `null` and zero values included, so a key \
                 sent as `\"\"`, `[]` or `null` clears that field."
                    .to_owned(),
            ),
            Method::PUT => Some(
                "Over HTTP PUT without `updateMask`, the mask is `*`: every writable field \
                 is replaced, and fields absent from the body become empty."
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// The parameter of one path variable.
    fn path_parameter(
        &mut self,
        input: &MessageDescriptor,
        variable: &[String],
        name: String,
    ) -> Value {
        let mut parameter = json!({
            "name": name,
            "in": "path",
            "required": true,
        });
        match resolve(input, variable) {
            Some(field) => {
                if let Some(description) = self.binding_description(&field) {
                    parameter["description"] = json!(description);
                }
                let schema = self.value_schema(&field.kind());
                parameter["schema"] = self.constrain(&field, schema);
            }
            None => parameter["schema"] = json!({"type": "string"}),
        }
        parameter
    }

    /// Adds a query parameter for every field of `message` (under
    /// `prefix`) that neither the path nor the body binds, expanding
    /// singular message fields into dotted names, as grpc-gateway does.
    /// Maps and repeated messages have no query form and are left out, as
    /// are output-only fields, which requests ignore.
    fn query_parameters(
        &mut self,
        message: &MessageDescriptor,
        prefix: &Prefix,
        walk: &mut QueryWalk<'_>,
    ) {
        walk.visiting.push(message.full_name().to_owned());
        for field in message.fields() {
            let mut proto = prefix.proto.clone();
            proto.push(field.name().to_owned());
            let top_level_body = prefix.proto.is_empty() && walk.body_field == Some(field.name());
            if top_level_body || walk.bound.contains(&proto) || field.is_map() {
                continue;
            }
            let behavior = self.behavior(&field);
            if behavior.output_only {
                continue;
            }
            let mut json_path = prefix.json.clone();
            json_path.push(field.json_name().to_owned());
            let nested = Prefix {
                proto,
                json: json_path,
                required: prefix.required && behavior.required,
            };
            let schema = match field.kind() {
                Kind::Message(_) if field.is_list() => continue,
                Kind::Message(inner) => match well_known(inner.full_name()) {
                    Some(schema) if is_scalar(&schema) => schema,
                    Some(_) => continue,
                    None if walk.visiting.iter().any(|name| name == inner.full_name()) => {
                        continue;
                    }
                    None => {
                        self.query_parameters(&inner, &nested, walk);
                        continue;
                    }
                },
                kind => {
                    let schema = self.value_schema(&kind);
                    self.constrain(&field, schema)
                }
            };
            let mut parameter = json!({"name": nested.json.join("."), "in": "query"});
            if let Some(description) = self.binding_description(&field) {
                parameter["description"] = json!(description);
            }
            if field.is_list() {
                parameter["style"] = json!("form");
                parameter["explode"] = json!(true);
                parameter["schema"] = json!({"type": "array", "items": schema});
            } else {
                if nested.required {
                    parameter["required"] = json!(true);
                }
                parameter["schema"] = schema;
            }
            walk.parameters.push(parameter);
        }
        walk.visiting.pop();
    }

    /// The request body of a binding, if it has one.
    fn request_body(
        &mut self,
        binding: &Binding,
        input: &MessageDescriptor,
        bound: &[Vec<String>],
    ) -> Option<Value> {
        let (description, schema, required) = match &binding.body {
            BodyRule::None => return None,
            BodyRule::Field(name) => {
                let field = input.get_field_by_name(name)?;
                let description = self.binding_description(&field);
                (description, self.field_type(&field), true)
            }
            BodyRule::Whole => {
                // A variable that names a top-level field takes it out of
                // the body; one that names a nested field only overrides it.
                let excluded: Vec<String> = bound
                    .iter()
                    .filter(|variable| variable.len() == 1)
                    .map(|variable| variable[0].clone())
                    .filter(|name| input.get_field_by_name(name).is_some())
                    .collect();
                let schema = if excluded.is_empty() {
                    self.value_schema(&Kind::Message(input.clone()))
                } else {
                    schema_ref(&self.body_component(input, excluded))
                };
                let description =
                    "The request's fields that the path does not set. An empty body means `{}`.";
                (Some(description.to_owned()), schema, false)
            }
        };
        let mut body = json!({
            "required": required,
            "content": {JSON: {"schema": schema}},
        });
        if let Some(description) = description {
            body["description"] = json!(description);
        }
        Some(body)
    }

    /// The component of the body of `input` without the `excluded` fields,
    /// written once per request type and exclusion.
    fn body_component(&mut self, input: &MessageDescriptor, excluded: Vec<String>) -> String {
        let key = (input.full_name().to_owned(), excluded);
        if let Some(name) = self.bodies.get(&key) {
            return name.clone();
        }
        let base = match self.names.get(input.full_name()) {
            Some(name) => format!("{name}Body"),
            None => format!("{}Body", input.full_name().replace('.', "_")),
        };
        let name = unique(base, &mut self.taken);
        let mut schema = self.message_schema(input, &key.1);
        let fields: Vec<String> = key.1.iter().map(|name| format!("`{name}`")).collect();
        let note = format!(
            "The body of the HTTP request: the request without {}, which the path sets.",
            fields.join(", ")
        );
        let description = paragraphs(
            schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some(note),
        );
        schema["description"] = json!(description);
        self.schemas.insert(name.clone(), schema);
        self.bodies.insert(key, name.clone());
        name
    }

    /// The responses of a binding: the output message, and the errors
    /// the operation can obviously produce.
    fn responses(
        &mut self,
        binding: &Binding,
        input: &MessageDescriptor,
        bound: &[Vec<String>],
    ) -> Value {
        let output = binding.method.output();
        let mut success = json!({
            "description": self.message_doc(&output).unwrap_or_else(|| "Success.".to_owned()),
            "content": {JSON: {"schema": self.value_schema(&Kind::Message(output.clone()))}},
        });
        if has_etag(&output) {
            success["headers"] = json!({"ETag": {"$ref": "#/components/headers/ETag"}});
        }
        let mut responses = Map::new();
        responses.insert("200".to_owned(), success);
        responses.insert("400".to_owned(), response_ref("BadRequest"));
        // A path that names a resource by its id (or AIP name) answers 404
        // when there is no such resource.
        let names_resource = bound.iter().any(|variable| {
            matches!(variable.last().map(String::as_str), Some("id" | "name"))
                || resolve(input, variable).is_some_and(|field| self.behavior(&field).identifier)
        });
        if names_resource {
            responses.insert("404".to_owned(), response_ref("NotFound"));
        }
        // Writes can conflict: a name taken, an etag mismatch, a concurrent
        // write.
        if !matches!(binding.http_method, Method::GET | Method::HEAD) {
            responses.insert("409".to_owned(), response_ref("Conflict"));
        }
        responses.insert("503".to_owned(), response_ref("Unavailable"));
        responses.insert("504".to_owned(), response_ref("DeadlineExceeded"));
        responses.insert("default".to_owned(), response_ref("Error"));
        Value::Object(responses)
    }
}

/// Where a query walk is: the proto and JSON names of the fields above,
/// and whether each of them is required.
struct Prefix {
    proto: Vec<String>,
    json: Vec<String>,
    required: bool,
}

impl Default for Prefix {
    fn default() -> Self {
        Self {
            proto: Vec::new(),
            json: Vec::new(),
            required: true,
        }
    }
}

/// What a query walk carries through its recursion.
struct QueryWalk<'a> {
    /// The path variables, as proto field paths.
    bound: &'a [Vec<String>],
    /// The top-level field the body sets, if any.
    body_field: Option<&'a str>,
    /// The messages being expanded, to stop at recursive types.
    visiting: Vec<String>,
    /// The parameters found.
    parameters: &'a mut Vec<Value>,
}

/// The component name of every message and enum of `pool` (map entries
/// excepted), each added to `taken`. Names already in `taken` are not
/// given out.
fn component_names(pool: &DescriptorPool, taken: &mut HashSet<String>) -> HashMap<String, String> {
    let mut types: Vec<(String, String)> = pool
        .all_messages()
        .filter(|message| !message.is_map_entry())
        .map(|message| {
            (
                message.full_name().to_owned(),
                message.package_name().to_owned(),
            )
        })
        .chain(pool.all_enums().map(|enumeration| {
            (
                enumeration.full_name().to_owned(),
                enumeration.package_name().to_owned(),
            )
        }))
        .collect();
    types.sort();
    let short = |full_name: &str, package: &str| {
        let relative = if package.is_empty() {
            full_name
        } else {
            full_name
                .strip_prefix(package)
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(full_name)
        };
        relative.replace('.', "")
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (full_name, package) in &types {
        *counts.entry(short(full_name, package)).or_default() += 1;
    }
    let mut names = HashMap::new();
    let mut clashing = Vec::new();
    for (full_name, package) in &types {
        let name = short(full_name, package);
        if counts.get(&name) == Some(&1) && !taken.contains(&name) {
            taken.insert(name.clone());
            names.insert(full_name.clone(), name);
        } else {
            clashing.push(full_name.clone());
        }
    }
    for full_name in clashing {
        let name = unique(full_name.replace('.', "_"), taken);
        names.insert(full_name, name);
    }
    names
}

#[cfg(test)]
mod tests {
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
        ServiceDescriptorProto,
        field_descriptor_proto::{Label, Type},
    };

    use super::*;

    fn contract() -> (Vec<Binding>, Value) {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let service = pool.get_service_by_name("groups.v1.GroupService").unwrap();
        let bindings = bindings::bindings(&pool, &service).unwrap();
        let document = document(&pool, &service, &bindings, &contract_constraints());
        (bindings, document)
    }

    fn operation<'a>(document: &'a Value, id: &str) -> &'a Value {
        document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .find(|operation| operation["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
    }

    /// The parameters of an operation, `$ref`s resolved.
    fn parameters<'a>(document: &'a Value, operation: &'a Value) -> Vec<&'a Value> {
        operation["parameters"]
            .as_array()
            .map(|list| list.iter().map(|p| resolve_ref(document, p)).collect())
            .unwrap_or_default()
    }

    fn parameter_names(document: &Value, operation: &Value, location: &str) -> Vec<String> {
        let mut names: Vec<String> = parameters(document, operation)
            .into_iter()
            .filter(|p| p["in"] == location)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    fn resolve_ref<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').unwrap();
                document
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}"))
            }
            None => value,
        }
    }

    fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
        &document["components"]["schemas"][name]
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => out.push(reference),
                        _ => collect_refs(value, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|value| collect_refs(value, out)),
            _ => {}
        }
    }

    #[test]
    fn every_binding_is_an_operation_with_a_unique_id() {
        let (bindings, document) = contract();
        let mut ids = HashSet::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "{id} appears twice");
            }
        }
        for binding in &bindings {
            let path = binding.template.openapi_path();
            let method = binding.http_method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][&path][&method];
            assert!(operation.is_object(), "{method} {path} is missing");
            assert_eq!(operation["tags"], json!(["GroupService"]));
        }
        assert_eq!(ids.len(), bindings.len() + 2);
        assert_eq!(
            document["paths"]["/v1/groups/{id}"]["patch"]["operationId"],
            "UpdateGroup"
        );
        assert_eq!(
            document["paths"]["/v1/groups/{id}"]["put"]["operationId"],
            "UpdateGroup_put"
        );
        assert_eq!(
            document["paths"]["/metrics"]["get"]["operationId"],
            "Metrics"
        );
        assert_eq!(
            document["paths"]["/openapi.json"]["get"]["operationId"],
            "OpenApi"
        );
    }

    #[test]
    fn validation_rules_the_proto_cannot_carry_are_documented() {
        let (_, document) = contract();
        let group = &schema(&document, "Group")["properties"];
        assert_eq!(group["name"]["pattern"], validate::NAME_PATTERN);
        assert_eq!(
            group["description"]["maxLength"],
            validate::MAX_DESCRIPTION_CHARS
        );
        assert_eq!(group["labels"]["maxProperties"], validate::MAX_LABELS);
        let member = &schema(&document, "Member")["properties"];
        assert_eq!(member["id"]["pattern"], validate::PRINCIPAL_ID_PATTERN);
        let list = operation(&document, "ListGroups");
        let page_size = parameters(&document, list)
            .into_iter()
            .find(|p| p["name"] == "pageSize")
            .unwrap();
        assert_eq!(page_size["schema"]["minimum"], 0);
    }

    #[test]
    fn resources_link_to_the_operations_that_take_their_id() {
        let (_, document) = contract();
        let links = &operation(&document, "CreateGroup")["responses"]["200"]["links"];
        for target in ["GetGroup", "UpdateGroup", "DeleteGroup", "AddGroupMembers"] {
            assert_eq!(links[target]["operationId"], target);
            assert_eq!(links[target]["parameters"]["id"], "$response.body#/id");
        }
        // ListMemberGroups takes a member id, not a group id.
        assert!(links.get("ListMemberGroups").is_none());
        // A list is not a resource: no links.
        assert!(
            operation(&document, "ListGroups")["responses"]["200"]
                .get("links")
                .is_none()
        );
    }

    #[test]
    fn path_parameters_are_the_template_variables() {
        let (bindings, document) = contract();
        for binding in &bindings {
            let path = binding.template.openapi_path();
            let method = binding.http_method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][&path][&method];
            let mut expected: Vec<String> = binding
                .template
                .variables()
                .map(|v| binding.template.parameter_name(v))
                .collect();
            expected.sort();
            assert_eq!(
                parameter_names(&document, operation, "path"),
                expected,
                "{path}"
            );
            for parameter in parameters(&document, operation) {
                if parameter["in"] == "path" {
                    assert_eq!(parameter["required"], true);
                    assert_eq!(parameter["schema"]["type"], "string");
                    assert!(path.contains(&format!("{{{}}}", parameter["name"].as_str().unwrap())));
                }
            }
        }
    }

    #[test]
    fn update_group_takes_a_group_body_and_an_update_mask() {
        let (_, document) = contract();
        for id in ["UpdateGroup", "UpdateGroup_put"] {
            let operation = operation(&document, id);
            assert_eq!(
                operation["requestBody"]["content"]["application/json"]["schema"],
                json!({"$ref": "#/components/schemas/Group"})
            );
            assert_eq!(
                parameter_names(&document, operation, "query"),
                ["allowMissing", "updateMask", "validateOnly"]
            );
            assert_eq!(
                parameter_names(&document, operation, "header"),
                ["If-Match"]
            );
            let mask = parameters(&document, operation)
                .into_iter()
                .find(|p| p["name"] == "updateMask")
                .unwrap();
            assert_eq!(mask["schema"]["type"], "string");
        }
        let patch = operation(&document, "UpdateGroup")["description"]
            .as_str()
            .unwrap();
        assert!(patch.contains("every top-level key"), "{patch}");
        let put = operation(&document, "UpdateGroup_put")["description"]
            .as_str()
            .unwrap();
        assert!(put.contains("the mask is `*`"), "{put}");
    }

    #[test]
    fn list_groups_takes_its_fields_from_the_query() {
        let (_, document) = contract();
        let operation = operation(&document, "ListGroups");
        assert!(operation.get("requestBody").is_none());
        assert_eq!(
            parameter_names(&document, operation, "query"),
            [
                "filter",
                "orderBy",
                "pageSize",
                "pageToken",
                "showDeleted",
                "view"
            ]
        );
        let view = parameters(&document, operation)
            .into_iter()
            .find(|p| p["name"] == "view")
            .unwrap();
        let view = resolve_ref(&document, &view["schema"]);
        assert_eq!(view["type"], "string");
        assert_eq!(
            view["enum"],
            json!([
                "GROUP_VIEW_UNSPECIFIED",
                "GROUP_VIEW_BASIC",
                "GROUP_VIEW_FULL"
            ])
        );
        let page_size = parameters(&document, operation)
            .into_iter()
            .find(|p| p["name"] == "pageSize")
            .unwrap();
        assert_eq!(
            page_size["schema"],
            json!({"type": "integer", "format": "int32", "minimum": 0})
        );
    }

    #[test]
    fn query_parameters_use_json_names_and_honour_required() {
        let (_, document) = contract();
        let create = operation(&document, "CreateGroup");
        assert_eq!(
            parameter_names(&document, create, "query"),
            ["groupId", "requestId", "validateOnly"]
        );
        let check = operation(&document, "CheckMembership");
        let member = parameters(&document, check)
            .into_iter()
            .find(|p| p["name"] == "memberId")
            .unwrap();
        assert_eq!(member["required"], true);
        let delete = operation(&document, "DeleteGroup");
        assert_eq!(
            parameter_names(&document, delete, "query"),
            ["allowMissing", "etag"]
        );
        assert_eq!(parameter_names(&document, delete, "header"), ["If-Match"]);
        let get = operation(&document, "GetGroup");
        assert!(parameter_names(&document, get, "header").is_empty());
        // A group being created has no etag to compare.
        assert!(parameter_names(&document, create, "header").is_empty());
        let undelete = operation(&document, "UndeleteGroup");
        assert_eq!(parameter_names(&document, undelete, "header"), ["If-Match"]);
        // Parameters say `required` themselves, not in their description.
        let id = parameters(&document, get)
            .into_iter()
            .find(|p| p["name"] == "id")
            .unwrap();
        assert_eq!(id["description"], "The group's id.");
    }

    #[test]
    fn group_schema_is_canonical_proto3_json() {
        let (_, document) = contract();
        let group = &schema(&document, "Group")["properties"];
        assert_eq!(group["createTime"]["type"], "string");
        assert_eq!(group["createTime"]["format"], "date-time");
        assert_eq!(group["createTime"]["readOnly"], true);
        assert_eq!(group["state"]["readOnly"], true);
        assert_eq!(
            group["state"]["allOf"],
            json!([{"$ref": "#/components/schemas/State"}])
        );
        assert!(group["name"].get("readOnly").is_none());
        assert_eq!(group["memberCount"]["format"], "int32");
        assert_eq!(
            group["memberOf"]["items"],
            json!({"$ref": "#/components/schemas/GroupRef"})
        );
        assert_eq!(
            group["labels"]["additionalProperties"],
            json!({"type": "string", "maxLength": validate::MAX_LABEL_VALUE_CHARS})
        );
        assert!(
            group["scope"]["description"]
                .as_str()
                .unwrap()
                .contains("Immutable")
        );
        assert!(
            group["id"]["description"]
                .as_str()
                .unwrap()
                .contains("Identifier")
        );
        assert!(schema(&document, "Group").get("required").is_none());
        let version = &schema(&document, "GroupChange")["properties"]["version"];
        assert_eq!(version["type"], "string");
        assert_eq!(version["format"], "int64");
        assert_eq!(
            schema(&document, "GroupChange")["properties"]["updateMask"]["type"],
            "string"
        );
    }

    #[test]
    fn whole_bodies_leave_out_the_path_fields() {
        let (_, document) = contract();
        let operation = operation(&document, "AddGroupMembers");
        assert_eq!(operation["requestBody"]["required"], false);
        assert_eq!(
            operation["requestBody"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/AddGroupMembersRequestBody"})
        );
        let body = schema(&document, "AddGroupMembersRequestBody");
        let mut properties: Vec<&String> = body["properties"].as_object().unwrap().keys().collect();
        properties.sort();
        assert_eq!(properties, ["admins", "members"]);
        assert!(parameter_names(&document, operation, "query").is_empty());
        let undelete = operation_body(&document, "UndeleteGroup");
        assert_eq!(
            undelete["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["etag"]
        );
    }

    fn operation_body<'a>(document: &'a Value, id: &str) -> &'a Value {
        resolve_ref(
            document,
            &operation(document, id)["requestBody"]["content"]["application/json"]["schema"],
        )
    }

    #[test]
    fn responses_carry_the_output_errors_and_etag() {
        let (_, document) = contract();
        let get = &operation(&document, "GetGroup")["responses"];
        assert_eq!(
            get["200"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/Group"})
        );
        assert_eq!(
            get["200"]["headers"]["ETag"],
            json!({"$ref": "#/components/headers/ETag"})
        );
        for code in ["400", "404", "503", "504", "default"] {
            assert!(get.get(code).is_some(), "GetGroup lacks {code}");
        }
        assert!(get.get("409").is_none());
        let update = &operation(&document, "UpdateGroup")["responses"];
        assert!(update.get("409").is_some());
        let list = &operation(&document, "ListGroups")["responses"];
        assert!(list.get("404").is_none());
        assert!(list["200"].get("headers").is_none());
        let member_groups = &operation(&document, "ListMemberGroups")["responses"];
        assert!(member_groups.get("404").is_none());
        let status = schema(&document, "Status");
        assert_eq!(status["properties"]["code"]["format"], "int32");
        assert_eq!(
            status["properties"]["details"]["items"]["required"],
            json!(["@type"])
        );
    }

    #[test]
    fn descriptions_come_from_the_proto_comments() {
        let (_, document) = contract();
        assert_eq!(
            document["info"]["description"],
            "Manages groups of principals and answers who is in which group."
        );
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let get = operation(&document, "GetGroup");
        assert_eq!(get["summary"], "Returns a group, live or soft-deleted.");
        assert!(
            get["description"]
                .as_str()
                .unwrap()
                .contains("GROUP_VIEW_FULL")
        );
        assert_eq!(
            schema(&document, "Member")["description"],
            "A principal in a group."
        );
        let state = schema(&document, "State")["description"].as_str().unwrap();
        assert!(
            state.contains("- `STATE_ACTIVE`: The group is live."),
            "{state}"
        );
    }

    #[test]
    fn every_reference_resolves_and_every_name_is_valid() {
        let (_, document) = contract();
        let mut refs = Vec::new();
        collect_refs(&document, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            let pointer = reference.strip_prefix("#/components/").unwrap();
            assert!(
                document["components"]
                    .pointer(&format!("/{pointer}"))
                    .is_some(),
                "{reference} does not resolve"
            );
        }
        for name in document["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "{name}"
            );
        }
    }

    #[test]
    fn the_contract_document_is_the_documented_one() {
        let (_, document) = contract();
        assert_eq!(contract_document().unwrap(), document);
        assert_eq!(document["openapi"], "3.0.3");
    }

    #[test]
    fn first_sentences_stop_at_a_period_outside_code() {
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("Uses `a.b`. Then"), "Uses `a.b`.");
        assert_eq!(first_sentence("Wraps\nlines. x"), "Wraps lines.");
        assert_eq!(first_sentence("No period"), "No period");
        assert_eq!(first_sentence("v1.2 works."), "v1.2 works.");
    }

    fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.to_owned()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            json_name: None,
            ..Default::default()
        }
    }

    fn repeated(mut field: FieldDescriptorProto) -> FieldDescriptorProto {
        field.label = Some(Label::Repeated as i32);
        field
    }

    fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.to_owned()),
            field: fields,
            ..Default::default()
        }
    }

    /// A pool with a service whose request nests messages (one of them
    /// recursive), repeated scalars and a timestamp, and two types that
    /// share a short name.
    fn synthetic_pool() -> DescriptorPool {
        let mut pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let other = FileDescriptorProto {
            name: Some("test/other.proto".to_owned()),
            package: Some("test.other".to_owned()),
            message_type: vec![message("Thing", vec![field("x", 1, Type::Uint64, None)])],
            syntax: Some("proto3".to_owned()),
            ..Default::default()
        };
        let main = FileDescriptorProto {
            name: Some("test/main.proto".to_owned()),
            package: Some("test.main".to_owned()),
            dependency: vec![
                "google/protobuf/timestamp.proto".to_owned(),
                "test/other.proto".to_owned(),
            ],
            message_type: vec![
                message(
                    "Thing",
                    vec![
                        field("id", 1, Type::String, None),
                        field("display_name", 2, Type::String, None),
                        field("parent", 3, Type::Message, Some(".test.main.Thing")),
                        field(
                            "since",
                            4,
                            Type::Message,
                            Some(".google.protobuf.Timestamp"),
                        ),
                        repeated(field(
                            "children",
                            5,
                            Type::Message,
                            Some(".test.main.Thing"),
                        )),
                    ],
                ),
                message(
                    "FindRequest",
                    vec![
                        field("thing", 1, Type::Message, Some(".test.main.Thing")),
                        repeated(field("tags", 2, Type::String, None)),
                        field("big", 3, Type::Sint64, None),
                        field("other", 4, Type::Message, Some(".test.other.Thing")),
                    ],
                ),
            ],
            service: vec![ServiceDescriptorProto {
                name: Some("Finder".to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Find".to_owned()),
                    input_type: Some(".test.main.FindRequest".to_owned()),
                    output_type: Some(".test.main.Thing".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".to_owned()),
            ..Default::default()
        };
        pool.add_file_descriptor_protos([other, main]).unwrap();
        pool
    }

    #[test]
    fn nested_query_fields_expand_into_dotted_json_names() {
        let pool = synthetic_pool();
        let service = pool.get_service_by_name("test.main.Finder").unwrap();
        let method = service.methods().next().unwrap();
        let binding = Binding {
            method,
            http_method: Method::GET,
            template: super::super::path_template::PathTemplate::parse("/v1/things/{thing.id}")
                .unwrap(),
            body: BodyRule::None,
        };
        let document = document(
            &pool,
            &service,
            std::slice::from_ref(&binding),
            &Constraints::new(),
        );
        let operation = &document["paths"]["/v1/things/{id}"]["get"];
        assert_eq!(operation["operationId"], "Find");
        assert_eq!(parameter_names(&document, operation, "path"), ["id"]);
        // `thing.parent` is recursive and `thing.children` repeated: neither
        // has a query form.
        assert_eq!(
            parameter_names(&document, operation, "query"),
            ["big", "other.x", "tags", "thing.displayName", "thing.since"]
        );
        let by_name = |name: &str| {
            parameters(&document, operation)
                .into_iter()
                .find(|p| p["name"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            by_name("tags"),
            json!({
                "name": "tags", "in": "query", "style": "form", "explode": true,
                "schema": {"type": "array", "items": {"type": "string"}},
            })
        );
        assert_eq!(
            by_name("big")["schema"],
            json!({"type": "string", "format": "int64"})
        );
        assert_eq!(by_name("other.x")["schema"]["format"], "uint64");
        assert_eq!(by_name("thing.since")["schema"]["format"], "date-time");
        // The two `Thing`s share a short name, so both go by their full
        // names.
        let schemas = document["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("test_main_Thing"), "{schemas:?}");
        assert!(!schemas.contains_key("Thing"));
        assert_eq!(
            operation["responses"]["200"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/test_main_Thing"})
        );
    }
}
