//! Component schemas: the canonical proto3 JSON form of every message and
//! enum the operations refer to, written once each, and the state of one
//! document's generation that holds them.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::{
    behavior::{Behavior, FieldBehaviors},
    comments::{Comments, paragraphs},
    constraints::Constraints,
    names::{STATUS_SCHEMA, schema_ref, unique},
};
use crate::error::ERROR_DOMAIN;

/// A type whose component schema is still to be written.
enum Pending {
    Message(MessageDescriptor),
    Enum(EnumDescriptor),
}

/// The state of one document's generation: the indexes it reads and the
/// component schemas it has written so far.
pub(super) struct Generator {
    /// What each field's `google.api.field_behavior` says.
    pub(super) behaviors: FieldBehaviors,
    /// The proto comments descriptions are made of.
    pub(super) comments: Comments,
    /// The component name of every message and enum of the pool.
    pub(super) names: HashMap<String, String>,
    /// Every component schema name given out, so that a body component
    /// never takes the name of a type.
    pub(super) taken: HashSet<String>,
    /// The body components written, by request type and excluded fields,
    /// so that bindings with the same body share one.
    pub(super) bodies: HashMap<(String, Vec<String>), String>,
    /// The component schemas written, by name: the document's
    /// `components.schemas`.
    pub(super) schemas: BTreeMap<String, Value>,
    /// Types referenced but not yet written.
    pending: Vec<Pending>,
    /// Full names of the types referenced so far, so that each is queued
    /// once, recursive types included.
    referenced: HashSet<String>,
    /// Extra schema keywords by field full name.
    constraints: Constraints,
}

impl Generator {
    /// A generator for `pool`, adding `constraints` to the fields they
    /// name. The `Status` schema of error bodies is written from the start.
    pub(super) fn new(pool: &DescriptorPool, constraints: Constraints) -> Self {
        let mut taken = HashSet::from([STATUS_SCHEMA.to_owned()]);
        let mut generator = Self {
            behaviors: FieldBehaviors::new(pool),
            comments: Comments::new(pool),
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

    /// A field's comment followed by its behaviour notes.
    fn field_description(&self, field: &FieldDescriptor, behavior: Behavior) -> Option<String> {
        paragraphs(self.comments.field(field), behavior.note())
    }

    /// The description of a parameter or body bound to a field: as
    /// [`Self::field_description`], without the note that it is required,
    /// which the parameter or body says itself.
    pub(super) fn binding_description(&self, field: &FieldDescriptor) -> Option<String> {
        let behavior = Behavior {
            required: false,
            ..self.behaviors.of(field)
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

    /// The schema of one value of `kind`: inline for scalars and the
    /// well-known types, a reference (the component queued to be written)
    /// for messages and enums.
    pub(super) fn value_schema(&mut self, kind: &Kind) -> Value {
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
    pub(super) fn field_type(&mut self, field: &FieldDescriptor) -> Value {
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

    /// `schema` with the field's constraints (see [`Constraints`]) merged
    /// in, where the field has any.
    pub(super) fn constrain(&self, field: &FieldDescriptor, mut schema: Value) -> Value {
        if let (Some(Value::Object(keywords)), Value::Object(map)) =
            (self.constraints.get(field.full_name()), &mut schema)
        {
            map.extend(keywords.clone());
        }
        schema
    }

    /// The schema of a field as a property of its message's schema: its
    /// type and constraints, its description, and `readOnly`/`writeOnly`
    /// from its behaviour.
    fn property(&mut self, field: &FieldDescriptor) -> Value {
        let behavior = self.behaviors.of(field);
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
    pub(super) fn message_schema(
        &mut self,
        message: &MessageDescriptor,
        excluded: &[String],
    ) -> Value {
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
        if let Some(description) = paragraphs(self.comments.message(message), oneofs) {
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
            .map(|value| match self.comments.doc(&file, value.path()) {
                Some(doc) => format!("- `{}`: {}", value.name(), doc.replace('\n', " ")),
                None => format!("- `{}`", value.name()),
            })
            .collect();
        let description = paragraphs(
            self.comments.doc(&file, enumeration.path()),
            Some(values.join("\n")),
        );
        json!({"type": "string", "enum": names, "description": description})
    }

    /// Writes the component of every type referenced so far, and of every
    /// type those reference.
    pub(super) fn drain(&mut self) {
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
}

/// The inline schema of a well-known type whose JSON form is not an object
/// of its fields, or `None` for every other message.
pub(super) fn well_known(full_name: &str) -> Option<Value> {
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

/// An unsigned 32-bit integer, which does not fit OpenAPI's `int32`.
fn uint32_schema() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
}

/// Whether a schema is a single JSON scalar, so that it fits in one query
/// parameter.
pub(super) fn is_scalar(schema: &Value) -> bool {
    matches!(
        schema.get("type").and_then(Value::as_str),
        Some("string" | "integer" | "number" | "boolean")
    )
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
    use super::*;
    use crate::http::openapi::tests::{contract, schema};

    #[test]
    fn group_schema_is_canonical_proto3_json() {
        let document = contract();
        let group = &schema(&document, "Group")["properties"];
        assert_eq!(group["createTime"]["type"], "string");
        assert_eq!(group["createTime"]["format"], "date-time");
        assert_eq!(
            group["state"]["allOf"],
            json!([{"$ref": "#/components/schemas/State"}])
        );
        assert_eq!(group["memberCount"]["format"], "int32");
        assert_eq!(
            group["memberOf"]["items"],
            json!({"$ref": "#/components/schemas/GroupRef"})
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
}
