//! The names the parts of the document share: the media type, the
//! reserved error component, references to components, and the rule that
//! keeps every generated name unique.

use std::collections::HashSet;

use serde_json::{Value, json};

/// The media type of every RPC request and unary response.
pub(super) const JSON: &str = "application/json";
/// The media types of a stream: the gateway's own.
pub(super) use crate::http::gateway::{EVENT_STREAM, NDJSON};
/// The component holding `google.rpc.Status` as JSON, the body of every
/// error. Reserved, so that no proto type takes the name.
pub(super) const STATUS_SCHEMA: &str = "Status";

/// A reference to the component schema `name`. Bare: a caller that adds
/// keywords beside it must wrap it in `allOf`, which OpenAPI 3.0 requires.
pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `base`, or `base` followed by the first number that makes it new; the
/// result is added to `taken`.
pub(super) fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let mut name = base.clone();
    let mut number = 2;
    while taken.contains(&name) {
        name = format!("{base}{number}");
        number += 1;
    }
    taken.insert(name.clone());
    name
}
