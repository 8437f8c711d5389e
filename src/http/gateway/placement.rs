//! Field placement: the request message is assembled as one JSON object
//! (body, path variables, query parameters, `If-Match`), each value placed
//! at its field path and checked against what is already there, then
//! decoded once.

use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json};

use crate::{
    domain::{clip, quote, text::MAX_QUOTED_CHARS},
    http::{bindings::BodyRule, path_template::Captures, status::HttpError},
};

/// Decodes the assembled JSON into the request message, refusing unknown
/// fields, values of the wrong type, and fields given twice.
pub(super) fn decode_request(
    input: &MessageDescriptor,
    root: Map<String, Json>,
    rule: &BodyRule,
) -> Result<DynamicMessage, HttpError> {
    spelled_once(&root, input, "")?;
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

/// Refuses an object that gives a field twice, by its proto name and by
/// its JSON name (`member_of` and `memberOf`): prost-reflect would keep
/// one of the two without a word, as a JSON object repeating a key would
/// (see `body`). `path` is where `object` sits in the request.
fn spelled_once(
    object: &Map<String, Json>,
    message: &MessageDescriptor,
    path: &str,
) -> Result<(), HttpError> {
    for field in message.fields() {
        let (name, json_name) = (field.name(), field.json_name());
        let at = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        if name != json_name && object.contains_key(name) && object.contains_key(json_name) {
            return Err(HttpError::invalid(
                &at,
                format!("{at} is given twice, as {name:?} and as {json_name:?}"),
            ));
        }
        let Kind::Message(inner) = field.kind() else {
            continue;
        };
        if field.is_map() || is_well_known(&inner) {
            continue;
        }
        match object.get(name).or_else(|| object.get(json_name)) {
            Some(Json::Object(value)) if !field.is_list() => spelled_once(value, &inner, &at)?,
            Some(Json::Array(items)) if field.is_list() => {
                for (index, item) in items.iter().enumerate() {
                    if let Json::Object(value) = item {
                        spelled_once(value, &inner, &format!("{at}[{index}]"))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Places the path variables, each converted to the JSON its field takes
/// (see [`scalar_json`]); an error names the variable's field.
pub(super) fn place_path_variables(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    captures: &Captures,
) -> Result<(), HttpError> {
    for (path, value) in captures {
        let (field, _) = leaf_field(input, path)
            .map_err(|message| HttpError::invalid(&path.join("."), message))?;
        let value = scalar_json(&field, value)
            .map_err(|message| HttpError::invalid(&path.join("."), message))?;
        set_json(root, input, path, value, Placement::Url)?;
    }
    Ok(())
}

/// Where a value placed on top of the body came from. It decides what
/// [`set_json`] does when the field already holds a value, and how the
/// error says so.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// A path variable: may repeat the body's value, not contradict it.
    Url,
    /// A query parameter: may not be given twice, except to add elements
    /// to a repeated field.
    Query,
    /// The `If-Match` header: may repeat the body's etag, not contradict
    /// it.
    IfMatch,
}

/// Sets `value` at the field path in the request JSON, creating objects
/// on the way. A value already there (sent in the body too) must be
/// equal; query parameters of repeated fields accumulate.
pub(super) fn set_json(
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
                            "the If-Match header ({}) and {dotted} in the body ({}) differ",
                            shown(&value),
                            shown(existing)
                        ),
                    ));
                }
                (Some(existing), _) => {
                    return Err(HttpError::invalid(
                        &dotted,
                        format!(
                            "{dotted} is {} in the URL but {} in the body",
                            shown(&value),
                            shown(existing)
                        ),
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

/// A JSON value as an error message shows it: at most its first
/// [`MAX_QUOTED_CHARS`] bytes.
fn shown(value: &Json) -> String {
    clip(&value.to_string(), MAX_QUOTED_CHARS).into_owned()
}

/// A field by its proto name or its JSON name.
pub(super) fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// The key a JSON object already uses for `field` (either name), or its
/// proto name.
pub(super) fn existing_key(object: &Map<String, Json>, field: &FieldDescriptor) -> String {
    if object.contains_key(field.json_name()) && !object.contains_key(field.name()) {
        field.json_name().to_owned()
    } else {
        field.name().to_owned()
    }
}

/// The field at the end of a path of field names (proto or JSON), and the
/// path with every segment as its proto name.
pub(super) fn leaf_field(
    input: &MessageDescriptor,
    path: &[String],
) -> Result<(FieldDescriptor, Vec<String>), String> {
    let mut message = input.clone();
    let mut canonical = Vec::with_capacity(path.len());
    let mut found = None;
    for (index, name) in path.iter().enumerate() {
        let field =
            find_field(&message, name).ok_or_else(|| format!("unknown field {}", quote(name)))?;
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

pub(super) fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

/// A text value (path variable or query parameter) as the JSON the field
/// takes: proto3 JSON accepts numbers, enums, masks and timestamps as
/// strings, so only booleans need converting.
pub(super) fn scalar_json(field: &FieldDescriptor, text: &str) -> Result<Json, String> {
    let name = field.json_name();
    if field.is_map() {
        return Err(format!("{name} is a map and cannot be set from the URL"));
    }
    // The spellings grpc-gateway accepts (Go's strconv.ParseBool).
    let boolean = || match text {
        "true" | "True" | "TRUE" | "t" | "T" | "1" => Ok(Json::Bool(true)),
        "false" | "False" | "FALSE" | "f" | "F" | "0" => Ok(Json::Bool(false)),
        _ => Err(format!("{name} must be true or false, not {}", quote(text))),
    };
    // Numbers are checked here, so that a bad one is reported against the
    // parameter that carried it.
    let number = |fits: bool, what: &str| {
        if fits {
            Ok(Json::String(text.to_owned()))
        } else {
            Err(format!("{name} must be {what}, not {}", quote(text)))
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
                    "{name} must be one of {}, not {}",
                    names.join(", "),
                    quote(text)
                ))
            }
        }
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.BoolValue" => boolean(),
            full if full.starts_with("google.protobuf.") && !full.ends_with("Struct") => {
                // The well-known types whose JSON is a string (a Duration's
                // `1.5s`, a Timestamp's RFC 3339, the wrappers' values) are
                // decoded here once, so that a bad one is reported against
                // its parameter rather than as an unreadable request.
                let json = Json::String(text.to_owned());
                match DynamicMessage::deserialize(message.clone(), json.clone()) {
                    Ok(_) => Ok(json),
                    Err(_) => Err(match full {
                        "google.protobuf.Duration" => format!(
                            "{name} must be a duration in seconds with an `s` suffix, \
                             such as `10s` or `1.5s`, not {}",
                            quote(text)
                        ),
                        "google.protobuf.Timestamp" => format!(
                            "{name} must be an RFC 3339 timestamp, such as \
                             `2024-05-01T12:00:00Z`, not {}",
                            quote(text)
                        ),
                        _ => format!("{name} cannot be {}", quote(text)),
                    }),
                }
            }
            _ => Err(format!(
                "{name} is a message and cannot be set from the URL"
            )),
        },
        Kind::String | Kind::Bytes => Ok(Json::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;

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
    fn durations_from_the_url_are_checked_against_their_parameter() {
        let heartbeat = field("groups.v1.WatchGroupChangesRequest", "heartbeat_interval");
        for good in ["10s", "1.5s", "0.000000001s", "-5s", "300s"] {
            assert_eq!(
                scalar_json(&heartbeat, good),
                Ok(Json::from(good)),
                "{good}"
            );
        }
        for bad in ["10", "1.5", "s", "10m", "1h", "ten seconds", ""] {
            let refused = scalar_json(&heartbeat, bad).unwrap_err();
            assert!(
                refused.starts_with("heartbeatInterval must be a duration"),
                "{bad}: {refused}"
            );
        }
        // What is accepted is what the message decodes to.
        let input = heartbeat.parent_message().clone();
        let mut root = Map::new();
        root.insert(
            "heartbeatInterval".to_owned(),
            scalar_json(&heartbeat, "1.5s").unwrap(),
        );
        let message = decode_request(&input, root, &BodyRule::None).unwrap();
        let duration: prost_types::Duration = message
            .get_field_by_name("heartbeat_interval")
            .unwrap()
            .as_message()
            .unwrap()
            .transcode_to()
            .unwrap();
        assert_eq!((duration.seconds, duration.nanos), (1, 500_000_000));
    }

    #[test]
    fn a_field_given_by_both_its_names_is_refused_at_any_depth() {
        let input = pool()
            .get_message_by_name("groups.v1.UpdateGroupRequest")
            .unwrap();
        let refused = |json: Json| {
            let Json::Object(root) = json else {
                panic!("not an object")
            };
            decode_request(&input, root, &BodyRule::Field("group".into()))
                .err()
                .map(|error| error.status.message().to_owned())
        };
        let message = refused(serde_json::json!({
            "group": {"id": "g", "member_of": [], "memberOf": [{"groupId": "p"}]}
        }));
        assert!(
            message.is_some_and(|m| m.contains("group.member_of is given twice")),
            "member_of and memberOf were both accepted"
        );
        let message = refused(serde_json::json!({
            "updateMask": "labels", "update_mask": "name", "group": {"id": "g"}
        }));
        assert!(message.is_some_and(|m| m.contains("update_mask")));
        assert_eq!(
            refused(serde_json::json!({"group": {"id": "g", "memberOf": [{"group_id": "p"}]}})),
            None
        );
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
