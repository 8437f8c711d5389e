//! Query parameters: the request fields an operation takes from the query,
//! found the way the gateway reads them (grpc-gateway's rules), so that the
//! document lists exactly the parameters the gateway accepts.

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::schemas::{Generator, is_scalar, well_known};

impl Generator {
    /// Adds to `parameters` the query parameters of a binding whose request
    /// is `input`, whose path sets the fields `bound` and whose body (when
    /// it is one field) is `body_field`.
    pub(super) fn query_parameters(
        &mut self,
        input: &MessageDescriptor,
        bound: &[Vec<String>],
        body_field: Option<&str>,
        parameters: &mut Vec<Value>,
    ) {
        let mut walk = QueryWalk {
            bound,
            body_field,
            visiting: Vec::new(),
            parameters,
        };
        self.walk_query(input, &Prefix::default(), &mut walk);
    }

    /// Adds a query parameter for every field of `message` (under
    /// `prefix`) that neither the path nor the body binds, expanding
    /// singular message fields into dotted names, as grpc-gateway does.
    /// Maps and repeated messages have no query form and are left out, as
    /// are output-only fields, which requests ignore.
    fn walk_query(
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
            let behavior = self.behaviors.of(&field);
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
                        self.walk_query(&inner, &nested, walk);
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
    /// Where the parameters found are added, in the order of the fields.
    parameters: &'a mut Vec<Value>,
}

#[cfg(test)]
mod tests {
    use http::Method;
    use prost_reflect::DescriptorPool;
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
        ServiceDescriptorProto,
        field_descriptor_proto::{Label, Type},
    };
    use serde_json::json;

    use crate::http::{
        bindings::{Binding, BodyRule},
        openapi::{
            Constraints, document,
            tests::{parameter, parameter_names},
        },
        path_template::PathTemplate,
    };

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
            template: PathTemplate::parse("/v1/things/{thing.id}").unwrap(),
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
        let by_name = |name: &str| parameter(&document, operation, name).clone();
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
