//! Facts about groupd's OpenAPI document, written out by hand: what the
//! contract promises HTTP clients, checked against the document the code
//! generates. The expectations are literal on purpose (no value here is
//! computed by the code under test), so that a change to the contract or
//! to the generator that moves any of them fails here, and is made on
//! purpose.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::contract_document;

/// Every operation of the document, as `METHOD path operationId`: the
/// HTTP bindings of `GroupService` and the two serving endpoints.
const OPERATIONS: &str = "
    GET     /metrics                            Metrics
    GET     /openapi.json                       OpenApi
    GET     /v1/groups                          ListGroups
    POST    /v1/groups                          CreateGroup
    GET     /v1/groups/{id}                     GetGroup
    PATCH   /v1/groups/{id}                     UpdateGroup
    PUT     /v1/groups/{id}                     UpdateGroup_put
    DELETE  /v1/groups/{id}                     DeleteGroup
    POST    /v1/groups/{id}:undelete            UndeleteGroup
    GET     /v1/groups/{id}/changes             ListGroupChanges
    GET     /v1/groups/{id}/members             ListGroupMembers
    POST    /v1/groups/{id}:addMembers          AddGroupMembers
    POST    /v1/groups/{id}:removeMembers       RemoveGroupMembers
    GET     /v1/groups/{id}:checkMembership     CheckMembership
    GET     /v1/members/{member_id}/groups      ListMemberGroups
    GET     /v1/groups:watch                    WatchGroupChanges
";

pub(super) fn contract() -> Value {
    contract_document().unwrap()
}

/// The rows of [`OPERATIONS`]: lowercase method (an OpenAPI path item
/// key), path, operation id.
fn expected_operations() -> Vec<(String, &'static str, &'static str)> {
    OPERATIONS
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((
                words.next()?.to_ascii_lowercase(),
                words.next()?,
                words.next()?,
            ))
        })
        .collect()
}

pub(super) fn operation<'a>(document: &'a Value, id: &str) -> &'a Value {
    document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .find(|operation| operation["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

/// The parameters of an operation, `$ref`s resolved.
pub(super) fn parameters<'a>(document: &'a Value, operation: &'a Value) -> Vec<&'a Value> {
    operation["parameters"]
        .as_array()
        .map(|list| list.iter().map(|p| resolve_ref(document, p)).collect())
        .unwrap_or_default()
}

/// The parameter of an operation called `name`, `$ref` resolved.
pub(super) fn parameter<'a>(document: &'a Value, operation: &'a Value, name: &str) -> &'a Value {
    parameters(document, operation)
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// The sorted names of an operation's parameters in `location` (`path`,
/// `query` or `header`).
pub(super) fn parameter_names(document: &Value, operation: &Value, location: &str) -> Vec<String> {
    let mut names: Vec<String> = parameters(document, operation)
        .into_iter()
        .filter(|p| p["in"] == location)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

pub(super) fn resolve_ref<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap();
            document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling {reference}"))
        }
        None => value,
    }
}

pub(super) fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    &document["components"]["schemas"][name]
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|value| collect_refs(value, out)),
        _ => {}
    }
}

#[test]
fn the_document_has_exactly_these_operations() {
    let document = contract();
    assert_eq!(document["openapi"], "3.0.3");
    assert_eq!(document["servers"], json!([{"url": "/"}]));
    let found: BTreeSet<(String, String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(move |(method, operation)| {
                    let id = operation["operationId"].as_str().unwrap().to_owned();
                    (method.clone(), path.clone(), id)
                })
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = expected_operations()
        .into_iter()
        .map(|(method, path, id)| (method, path.to_owned(), id.to_owned()))
        .collect();
    assert_eq!(found, expected);
    for (method, path, id) in expected_operations() {
        let tag = if path.starts_with("/v1/") {
            "GroupService"
        } else {
            "Operations"
        };
        let operation = &document["paths"][path][method.as_str()];
        assert_eq!(operation["tags"], json!([tag]), "{id}");
    }
}

#[test]
fn path_parameters_are_the_variables_of_the_path() {
    let document = contract();
    for (method, path, id) in expected_operations() {
        let operation = &document["paths"][path][method.as_str()];
        let mut variables: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        variables.sort_unstable();
        assert_eq!(
            parameter_names(&document, operation, "path"),
            variables,
            "{id}"
        );
        for variable in variables {
            let parameter = parameter(&document, operation, variable);
            assert_eq!(parameter["required"], true, "{id} {variable}");
            assert_eq!(parameter["schema"]["type"], "string", "{id} {variable}");
        }
    }
}

#[test]
fn resources_link_to_the_operations_that_take_their_id() {
    let document = contract();
    let links = &operation(&document, "CreateGroup")["responses"]["200"]["links"];
    for target in ["GetGroup", "UpdateGroup", "DeleteGroup", "AddGroupMembers"] {
        assert_eq!(links[target]["operationId"], target);
        assert_eq!(links[target]["parameters"]["id"], "$response.body#/id");
    }
    // ListMemberGroups takes a member id, not a group id.
    assert!(links.get("ListMemberGroups").is_none());
    // A list is not a resource: no links.
    assert!(
        operation(&document, "ListGroups")["responses"]["200"]
            .get("links")
            .is_none()
    );
}

#[test]
fn update_group_takes_a_group_body_and_an_update_mask() {
    let document = contract();
    for id in ["UpdateGroup", "UpdateGroup_put"] {
        let operation = operation(&document, id);
        assert_eq!(
            operation["requestBody"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/Group"})
        );
        assert_eq!(
            parameter_names(&document, operation, "query"),
            ["allowMissing", "updateMask", "validateOnly"]
        );
        assert_eq!(
            parameter_names(&document, operation, "header"),
            ["If-Match"]
        );
        let mask = parameter(&document, operation, "updateMask");
        assert_eq!(mask["schema"]["type"], "string");
    }
    let patch = operation(&document, "UpdateGroup")["description"]
        .as_str()
        .unwrap();
    assert!(patch.contains("every top-level key"), "{patch}");
    let put = operation(&document, "UpdateGroup_put")["description"]
        .as_str()
        .unwrap();
    assert!(put.contains("the mask is `*`"), "{put}");
}

#[test]
fn list_groups_takes_its_fields_from_the_query() {
    let document = contract();
    let operation = operation(&document, "ListGroups");
    assert!(operation.get("requestBody").is_none());
    assert_eq!(
        parameter_names(&document, operation, "query"),
        [
            "filter",
            "orderBy",
            "pageSize",
            "pageToken",
            "showDeleted",
            "view"
        ]
    );
    let view = parameter(&document, operation, "view");
    let view = resolve_ref(&document, &view["schema"]);
    assert_eq!(view["type"], "string");
    assert_eq!(
        view["enum"],
        json!([
            "GROUP_VIEW_UNSPECIFIED",
            "GROUP_VIEW_BASIC",
            "GROUP_VIEW_FULL"
        ])
    );
    let page_size = parameter(&document, operation, "pageSize");
    assert_eq!(
        page_size["schema"],
        json!({"type": "integer", "format": "int32", "minimum": 0})
    );
}

#[test]
fn query_parameters_use_json_names_and_honour_required() {
    let document = contract();
    let create = operation(&document, "CreateGroup");
    assert_eq!(
        parameter_names(&document, create, "query"),
        ["groupId", "requestId", "validateOnly"]
    );
    let check = operation(&document, "CheckMembership");
    let member = parameter(&document, check, "memberId");
    assert_eq!(member["required"], true);
    let delete = operation(&document, "DeleteGroup");
    assert_eq!(
        parameter_names(&document, delete, "query"),
        ["allowMissing", "etag"]
    );
    assert_eq!(parameter_names(&document, delete, "header"), ["If-Match"]);
    let get = operation(&document, "GetGroup");
    assert!(parameter_names(&document, get, "header").is_empty());
    // A group being created has no etag to compare.
    assert!(parameter_names(&document, create, "header").is_empty());
    let undelete = operation(&document, "UndeleteGroup");
    assert_eq!(parameter_names(&document, undelete, "header"), ["If-Match"]);
    // Parameters say `required` themselves, not in their description.
    let id = parameter(&document, get, "id");
    assert_eq!(id["description"], "The group's id.");
}

#[test]
fn whole_bodies_leave_out_the_path_fields() {
    let document = contract();
    let operation = operation(&document, "AddGroupMembers");
    assert_eq!(operation["requestBody"]["required"], false);
    assert_eq!(
        operation["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/AddGroupMembersRequestBody"})
    );
    let body = schema(&document, "AddGroupMembersRequestBody");
    let mut properties: Vec<&String> = body["properties"].as_object().unwrap().keys().collect();
    properties.sort();
    assert_eq!(properties, ["admins", "members"]);
    assert!(parameter_names(&document, operation, "query").is_empty());
    let undelete = operation_body(&document, "UndeleteGroup");
    assert_eq!(
        undelete["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["etag"]
    );
}

fn operation_body<'a>(document: &'a Value, id: &str) -> &'a Value {
    resolve_ref(
        document,
        &operation(document, id)["requestBody"]["content"]["application/json"]["schema"],
    )
}

#[test]
fn responses_carry_the_output_errors_and_etag() {
    let document = contract();
    let get = &operation(&document, "GetGroup")["responses"];
    assert_eq!(
        get["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Group"})
    );
    assert_eq!(
        get["200"]["headers"]["ETag"],
        json!({"$ref": "#/components/headers/ETag"})
    );
    let codes: Vec<&String> = get.as_object().unwrap().keys().collect();
    assert_eq!(
        codes,
        ["200", "400", "401", "403", "404", "503", "504", "default"]
    );
    // Every operation declares the credentials it accepts, and none.
    assert_eq!(
        document["security"],
        json!([{"bearer": []}, {"basic": []}, {}])
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        document["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    // Every error is a `google.rpc.Status` body.
    assert_eq!(
        resolve_ref(&document, &get["404"])["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Status"})
    );
    let update = &operation(&document, "UpdateGroup")["responses"];
    assert!(update.get("409").is_some());
    let list = &operation(&document, "ListGroups")["responses"];
    assert!(list.get("404").is_none());
    assert!(list["200"].get("headers").is_none());
    let member_groups = &operation(&document, "ListMemberGroups")["responses"];
    assert!(member_groups.get("404").is_none());
    let status = schema(&document, "Status");
    assert_eq!(status["properties"]["code"]["format"], "int32");
    assert_eq!(
        status["properties"]["details"]["items"]["required"],
        json!(["@type"])
    );
}

#[test]
fn every_reference_resolves_and_every_name_is_valid() {
    let document = contract();
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.strip_prefix("#/components/").unwrap();
        assert!(
            document["components"]
                .pointer(&format!("/{pointer}"))
                .is_some(),
            "{reference} does not resolve"
        );
    }
    for name in document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "{name}"
        );
    }
}

#[test]
fn the_change_stream_is_described_as_a_stream_in_both_forms() {
    let document = contract();
    let watch = operation(&document, "WatchGroupChanges");
    assert!(watch.get("requestBody").is_none());
    assert_eq!(
        parameter_names(&document, watch, "query"),
        [
            "cursor",
            "filter",
            "groupIds",
            "heartbeatInterval",
            "startFromNow",
            "startFromOldest"
        ]
    );
    assert_eq!(
        parameter(&document, watch, "heartbeatInterval")["schema"]["type"],
        "string"
    );
    let group_ids = parameter(&document, watch, "groupIds");
    assert_eq!(group_ids["explode"], true);
    assert_eq!(group_ids["schema"]["type"], "array");
    assert_eq!(
        parameter_names(&document, watch, "header"),
        ["Last-Event-ID"]
    );
    // Only a stream resumes from an event id.
    let list = operation(&document, "ListGroups");
    assert!(parameter_names(&document, list, "header").is_empty());

    let responses = &watch["responses"];
    let codes: Vec<&String> = responses.as_object().unwrap().keys().collect();
    assert_eq!(
        codes,
        ["200", "400", "401", "403", "429", "503", "504", "default"]
    );
    assert_eq!(
        resolve_ref(&document, &responses["429"])["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Status"})
    );
    let content = responses["200"]["content"].as_object().unwrap();
    let types: Vec<&String> = content.keys().collect();
    assert_eq!(types, ["application/x-ndjson", "text/event-stream"]);
    let line = &content["application/x-ndjson"]["schema"];
    assert_eq!(line["type"], "object");
    assert_eq!(
        line["properties"],
        json!({
            "result": {"$ref": "#/components/schemas/WatchGroupChangesResponse"},
            "error": {"$ref": "#/components/schemas/Status"},
        })
    );
    assert_eq!(line["additionalProperties"], false);
    assert_eq!(
        (&line["minProperties"], &line["maxProperties"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(content["text/event-stream"]["schema"]["type"], "string");

    let description = watch["description"].as_str().unwrap();
    for promise in [
        "one JSON object per line",
        "`{\"result\": <WatchGroupChangesResponse>}`",
        "`{\"error\": <Status>}`",
        "`Accept: text/event-stream`",
        "`change` or `heartbeat`",
        "`Last-Event-ID`",
        "replaces any start the URL gives",
    ] {
        assert!(description.contains(promise), "{promise} in {description}");
    }
    // A unary operation says nothing of streams.
    let get = operation(&document, "GetGroup");
    assert!(
        !get["description"]
            .as_str()
            .unwrap_or_default()
            .contains("stream"),
    );
    assert_eq!(
        get["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/json"]
    );
}
