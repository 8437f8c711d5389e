//! Replies: the RPC's output message as canonical proto3 JSON, with the
//! `ETag` header HTTP caches and conditional requests expect.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DynamicMessage, ReflectMessage as _, SerializeOptions};
use serde_json::Value as Json;

use super::failure::internal_error;
use crate::http::status::json_body;

/// The 200 response: the reply as canonical proto3 JSON, with an `ETag`
/// header when the reply has an etag.
pub(super) fn reply_response(reply: &DynamicMessage) -> Response {
    let json = match message_json(reply) {
        Ok(json) => json,
        Err(cause) => {
            return internal_error(&cause).into_response(reply.descriptor().parent_pool());
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

/// A reply message as canonical proto3 JSON (default values left out);
/// the error says why it cannot be written.
pub(super) fn message_json(reply: &DynamicMessage) -> Result<Json, String> {
    let options = SerializeOptions::new();
    reply
        .serialize_with_options(serde_json::value::Serializer, &options)
        .or_else(|_| {
            // The one value proto3 JSON cannot write is a field mask path
            // without a camelCase form (a label key such as `x_1`).
            let mut widened = reply.clone();
            widen_masks(&mut widened);
            widened.serialize_with_options(serde_json::value::Serializer, &options)
        })
        .map_err(|error| format!("cannot write the reply as JSON: {error}"))
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

    #[test]
    fn masks_without_a_json_form_are_widened_not_failed() {
        let pool = crate::http::descriptors::descriptor_pool().unwrap();
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
}
