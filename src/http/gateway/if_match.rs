//! `If-Match`: the entity tag a conditional write must still match, placed
//! in the request as the etag field the RPC compares.

use http::{HeaderMap, header};
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{Map, Value as Json};

use super::placement::{Placement, set_json};
use crate::http::{
    bindings::{Binding, BodyRule},
    status::HttpError,
};

/// `If-Match` is the etag: it goes to the request's `etag` field, or to
/// the body message's when the path names that message (`group.etag` for
/// UpdateGroup's `{group.id}`; CreateGroup's new group has no etag to
/// match). `*` asks for no check. Other methods refuse the header (400).
pub(super) fn apply_if_match(
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
