//! Field masks: the paths of a mask given in the query, and the mask a PATCH
//! or PUT without one implies.

use http::Method;
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage as _};

use super::placement::find_field;
use crate::http::{
    bindings::{Binding, BodyRule},
    status::HttpError,
};

pub(super) fn is_field_mask(field: &FieldDescriptor) -> bool {
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
pub(super) fn mask_paths(text: &str) -> Vec<String> {
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
pub(super) fn set_mask(message: &mut DynamicMessage, path: &[String], paths: Vec<String>) {
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

/// A `google.protobuf.FieldMask` holding `paths`, of the message type of
/// `field` (the pool's own descriptor, so that it can be set on `field`).
pub(super) fn mask_value(
    field: &FieldDescriptor,
    paths: Vec<String>,
) -> Option<prost_reflect::Value> {
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

/// Fills an update mask the client left out, as grpc-gateway does, when the
/// request has exactly one top-level `FieldMask` and the binding's body is
/// one field. A PATCH body is partial: its top-level keys are the fields to
/// change, zero and `null` values included, so that `"description": ""`
/// clears the description instead of being mistaken for "not sent". A PUT
/// body is the whole resource: the mask is `*`, replacing everything.
pub(super) fn apply_implied_mask(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
