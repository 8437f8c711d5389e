//! The document as a whole: its paths (one operation per binding, plus the
//! serving endpoints), the links between operations, and the fixed parts
//! every document has (info, tags, error responses, headers).

use std::collections::{BTreeMap, HashSet};

use anyhow::Context as _;
use http::Method;
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use serde_json::{Map, Value, json};

use super::{
    constraints::{Constraints, contract_constraints},
    names::{JSON, STATUS_SCHEMA, schema_ref, unique},
    schemas::Generator,
};
use crate::http::{
    bindings::{self, Binding},
    descriptors,
};

/// The OpenAPI version the document follows.
const OPENAPI_VERSION: &str = "3.0.3";
/// The tag of the endpoints that are not RPCs.
const OPERATIONS_TAG: &str = "Operations";
/// The media type `/metrics` answers with (prometheus-client renders the
/// OpenMetrics text format, which Prometheus scrapes natively).
const METRICS_MEDIA_TYPE: &str = "application/openmetrics-text";

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

    let service_description = generator
        .comments
        .doc(&service.parent_file(), service.path());
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
        // Which schemes a server accepts is its `--auth` setting: a bearer
        // token (JWT), Basic, or none (a server with authentication off,
        // and mTLS, which happens below HTTP).
        "security": [{"bearer": []}, {"basic": []}, {}],
        "components": {
            "schemas": generator.schemas,
            "responses": error_responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT from the issuer the server trusts (for \
                        example a Kubernetes service-account token).",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A user of the server's htpasswd file.",
                },
            },
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
                "LastEventId": {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": false,
                    "description": "The `id` of the last event received, which a browser's \
                        `EventSource` sends when it reconnects: the stream resumes after it, \
                        as if it were the `cursor` parameter, whatever start the query gives.",
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
            .find(|field| generator.behaviors.of(field).identifier)
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
        "Unauthenticated": response(
            "UNAUTHENTICATED: the request carries no credentials, or credentials that \
             could not be verified (`ErrorInfo.reason` says which, e.g. \
             `CREDENTIALS_MISSING`, `CREDENTIALS_INVALID`, `TOKEN_EXPIRED`). The \
             `WWW-Authenticate` header names the schemes the server accepts. Nothing \
             changed."
        ),
        "PermissionDenied": response(
            "PERMISSION_DENIED: the caller may not do this (`ErrorInfo.metadata.permission` \
             names the permission it lacks). Said the same way whether or not the group \
             exists. Nothing changed."
        ),
        "Conflict": response(
            "ALREADY_EXISTS (for example a name already taken) or ABORTED (an etag \
             mismatch, or a concurrent write). Nothing changed."
        ),
        "TooManyRequests": response(
            "RESOURCE_EXHAUSTED: the server holds as many streams as it allows \
             (`ErrorInfo.reason` `TOO_MANY_WATCHES`). Try again later, or on another \
             replica."
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
