//! Query parameters: every request field the path and the body leave
//! unset may be given in the query, as grpc-gateway allows.

use prost_reflect::MessageDescriptor;
use serde_json::{Map, Value as Json};

use super::{
    field_mask::{is_field_mask, mask_paths},
    placement::{Placement, leaf_field, scalar_json, set_json},
};
use crate::http::{
    bindings::{Binding, BodyRule},
    path_template::Captures,
    status::HttpError,
};

/// Places the query parameters: every request field not bound by the path
/// or the body may be given, by proto or JSON name, dotted for nested
/// fields, repeated for repeated fields. Field masks are returned instead
/// (field path, mask paths), for [`super::field_mask::set_mask`]: see
/// [`mask_paths`].
pub(super) fn apply_query(
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
pub(super) type QueryMask = (Vec<String>, Vec<String>);
