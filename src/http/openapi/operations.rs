//! Operations: one per HTTP binding, with its path and query parameters,
//! its request body and its responses, as the gateway reads requests and
//! writes replies.

use http::Method;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::{
    comments::{first_sentence, paragraphs},
    names::{EVENT_STREAM, JSON, NDJSON, STATUS_SCHEMA, schema_ref, unique},
    schemas::Generator,
};
use crate::http::bindings::{Binding, BodyRule};

impl Generator {
    /// The OpenAPI operation of one binding, named `id` and tagged `tag`:
    /// summary and description from the RPC's comment and what HTTP adds
    /// to it, the path, query and header parameters, the request body and
    /// the responses.
    pub(super) fn operation(&mut self, binding: &Binding, id: &str, tag: &str) -> Value {
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
            self.query_parameters(&input, &bound, body_field, &mut parameters);
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
        if method.is_server_streaming() && resumes(&input) {
            parameters.push(json!({"$ref": "#/components/parameters/LastEventId"}));
        }

        let mut operation = json!({
            "operationId": id,
            "tags": [tag],
            "x-grpc-method": format!("/{}/{}", method.parent_service().full_name(), method.name()),
        });
        let description = paragraphs(self.comments.method(method), self.http_semantics(binding));
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
    /// absent update mask, and how a stream is written.
    fn http_semantics(&self, binding: &Binding) -> Option<String> {
        if binding.method.is_server_streaming() {
            return Some(stream_semantics(binding));
        }
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

    /// The parameter of one path variable, called `name` (see
    /// `PathTemplate::parameter_name`): always required, and typed and
    /// constrained as the field it sets.
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
        let output_schema = self.value_schema(&Kind::Message(output.clone()));
        let mut success = if binding.method.is_server_streaming() {
            stream_success(&output, output_schema)
        } else {
            json!({
                "description": self.comments.message(&output).unwrap_or_else(|| "Success.".to_owned()),
                "content": {JSON: {"schema": output_schema}},
            })
        };
        if has_etag(&output) {
            success["headers"] = json!({"ETag": {"$ref": "#/components/headers/ETag"}});
        }
        let mut responses = Map::new();
        responses.insert("200".to_owned(), success);
        responses.insert("400".to_owned(), response_ref("BadRequest"));
        responses.insert("401".to_owned(), response_ref("Unauthenticated"));
        responses.insert("403".to_owned(), response_ref("PermissionDenied"));
        // A path that names a resource by its id (or AIP name) answers 404
        // when there is no such resource.
        let names_resource = bound.iter().any(|variable| {
            matches!(variable.last().map(String::as_str), Some("id" | "name"))
                || resolve(input, variable)
                    .is_some_and(|field| self.behaviors.of(&field).identifier)
        });
        if names_resource {
            responses.insert("404".to_owned(), response_ref("NotFound"));
        }
        // Writes can conflict: a name taken, an etag mismatch, a concurrent
        // write.
        if !matches!(binding.http_method, Method::GET | Method::HEAD) {
            responses.insert("409".to_owned(), response_ref("Conflict"));
        }
        // A stream takes one of a bounded number of places.
        if binding.method.is_server_streaming() {
            responses.insert("429".to_owned(), response_ref("TooManyRequests"));
        }
        responses.insert("503".to_owned(), response_ref("Unavailable"));
        responses.insert("504".to_owned(), response_ref("DeadlineExceeded"));
        responses.insert("default".to_owned(), response_ref("Error"));
        Value::Object(responses)
    }
}

/// The 200 of a server-streaming operation: one response whose body is
/// the stream, in either of the gateway's two forms.
fn stream_success(output: &MessageDescriptor, output_schema: Value) -> Value {
    json!({
        "description": format!(
            "The stream: it stays open, and each `{}` is written as soon as it is sent \
             (see the operation's description).",
            output.name()
        ),
        "content": {
            NDJSON: {"schema": {
                "type": "object",
                "description": "One line of the stream: a message (`result`), or the \
                    error that ended the stream (`error`, always the last line).",
                "properties": {
                    "result": output_schema,
                    "error": schema_ref(STATUS_SCHEMA),
                },
                "additionalProperties": false,
                "minProperties": 1,
                "maxProperties": 1,
            }},
            EVENT_STREAM: {"schema": {
                "type": "string",
                "description": "Server-Sent Events: per message, `event:` what it carries, \
                    `id:` its cursor and `data:` its JSON (the value of an NDJSON line's \
                    `result`); an `event: error` whose data is the Status ends a failed \
                    stream.",
            }},
        },
    })
}

/// How a server-streaming binding answers over HTTP, for the operation's
/// description: the two formats, the events, and resuming.
fn stream_semantics(binding: &Binding) -> String {
    let output = binding.method.output();
    let events: Vec<String> = output
        .oneofs()
        .filter(|oneof| !oneof.is_synthetic())
        .flat_map(|oneof| oneof.fields().collect::<Vec<_>>())
        .map(|field| format!("`{}`", field.name()))
        .collect();
    let event_names = if events.is_empty() {
        "`message`".to_owned()
    } else {
        events.join(" or ")
    };
    let mut text = format!(
        "Over HTTP this is a stream: once it opens, the answer is 200 and stays open, \
         and each message is written the moment it is sent. By default the body is \
         newline-delimited JSON (`{NDJSON}`), one JSON object per line: \
         `{{\"result\": <{output}>}}` for each message, and, if the stream fails after \
         it opened, a last line `{{\"error\": <Status>}}`. With `Accept: {EVENT_STREAM}` \
         it is Server-Sent Events: each message is an event named {event_names}, with the \
         message's JSON as its `data`; a failed stream ends with an `error` event whose \
         data is the Status. A failure before the stream opens (a malformed request, \
         missing credentials, no place left for another stream) is an ordinary error \
         answer. A `grpc-timeout` header bounds the stream; nothing else does.",
        output = output.name(),
    );
    if let Some(cursor) = binding
        .method
        .output()
        .get_field_by_name("cursor")
        .filter(|_| resumes(&binding.method.input()))
    {
        text.push_str(&format!(
            "\n\nEvery message carries its `{}`: to resume after a disconnect, open \
             the stream again with `cursor` set to the last one received. An event's \
             `id` is that cursor, so a browser's `EventSource` resumes by itself: the \
             `Last-Event-ID` header it sends when it reconnects replaces any start the \
             URL gives.",
            cursor.json_name()
        ));
    }
    text
}

/// Whether a request can resume a stream: it has a string `cursor`, which
/// the gateway sets from `Last-Event-ID`.
fn resumes(input: &MessageDescriptor) -> bool {
    input
        .get_field_by_name("cursor")
        .is_some_and(|field| field.kind() == Kind::String && !field.is_list())
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

/// A reference to the shared response `name` (one of
/// `components.responses`, written once for every operation).
fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}
