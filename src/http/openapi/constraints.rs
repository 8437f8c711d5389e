//! The validation rules of groupd's domain that a proto cannot carry
//! (patterns, lengths, limits), written into the document as JSON Schema
//! keywords so that clients and fuzzers know them before the server
//! answers 400.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::domain::validate;

/// Schema keywords to add to fields, by full field name: the validation
/// rules a proto cannot carry (patterns, lengths, limits), so that clients
/// and fuzzers know them before the server says 400.
pub type Constraints = HashMap<String, Value>;

/// groupd's validation rules, as `domain::validate` enforces them on every
/// write, expressed as schema keywords. Label keys follow [`validate::LABEL_KEY_PATTERN`] too, but
/// OpenAPI 3.0 cannot constrain property names. The 1000-entry limits of
/// `member_of` and `assigned_roles` are left out: schemathesis 4.32 fails
/// inside Hypothesis (a `FlakyFailure`) generating arrays that long.
pub fn contract_constraints() -> Constraints {
    let name = json!({"pattern": validate::NAME_PATTERN});
    let page_size = json!({"minimum": 0});
    [
        ("groups.v1.Group.name", name.clone()),
        (
            "groups.v1.Group.scope",
            json!({"pattern": format!("^$|{}", validate::NAME_PATTERN)}),
        ),
        (
            "groups.v1.Group.description",
            json!({"maxLength": validate::MAX_DESCRIPTION_CHARS}),
        ),
        ("groups.v1.Group.email", json!({"format": "email"})),
        (
            "groups.v1.Group.provenance",
            json!({"maxLength": validate::MAX_PROVENANCE_CHARS}),
        ),
        (
            "groups.v1.Group.labels",
            json!({
                "maxProperties": validate::MAX_LABELS,
                "additionalProperties": {
                    "type": "string",
                    "maxLength": validate::MAX_LABEL_VALUE_CHARS,
                },
            }),
        ),
        (
            "groups.v1.Member.id",
            json!({"pattern": validate::PRINCIPAL_ID_PATTERN}),
        ),
        ("groups.v1.GroupRef.group_id", name.clone()),
        (
            "groups.v1.RoleRef.role_id",
            json!({"pattern": validate::ROLE_ID_PATTERN}),
        ),
        ("groups.v1.CreateGroupRequest.group_id", name),
        (
            "groups.v1.CreateGroupRequest.request_id",
            json!({"format": "uuid"}),
        ),
        ("groups.v1.ListGroupsRequest.page_size", page_size.clone()),
        (
            "groups.v1.ListGroupMembersRequest.page_size",
            page_size.clone(),
        ),
        (
            "groups.v1.ListGroupChangesRequest.page_size",
            page_size.clone(),
        ),
        ("groups.v1.ListMemberGroupsRequest.page_size", page_size),
    ]
    .into_iter()
    .map(|(field, keywords)| (field.to_owned(), keywords))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::tests::{contract, operation, parameter, schema};

    /// The pattern of group names (and of the group ids clients may choose).
    const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    /// `schema` without its description, which comes from the proto
    /// comments and is checked apart.
    fn keywords(schema: &Value) -> Value {
        let mut schema = schema.clone();
        if let Some(object) = schema.as_object_mut() {
            object.remove("description");
        }
        schema
    }

    #[test]
    fn validation_rules_the_proto_cannot_carry_are_documented() {
        let document = contract();
        let group = &schema(&document, "Group")["properties"];
        let expected = json!({
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
            "scope": {"type": "string", "pattern": "^$|^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
            "description": {"type": "string", "maxLength": 1024},
            "email": {"type": "string", "format": "email"},
            "provenance": {"type": "string", "maxLength": 256},
            "labels": {
                "type": "object",
                "maxProperties": 64,
                "additionalProperties": {"type": "string", "maxLength": 256},
            },
        });
        for (name, expected) in expected.as_object().unwrap() {
            assert_eq!(keywords(&group[name]), *expected, "Group.{name}");
        }
        assert_eq!(
            schema(&document, "Member")["properties"]["id"]["pattern"],
            "^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,255}$"
        );
        assert_eq!(
            schema(&document, "RoleRef")["properties"]["roleId"]["pattern"],
            "^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,255}$"
        );
        assert_eq!(
            schema(&document, "GroupRef")["properties"]["groupId"]["pattern"],
            NAME_PATTERN
        );
        let create = operation(&document, "CreateGroup");
        assert_eq!(
            parameter(&document, create, "groupId")["schema"]["pattern"],
            NAME_PATTERN
        );
        assert_eq!(
            parameter(&document, create, "requestId")["schema"]["format"],
            "uuid"
        );
        for id in [
            "ListGroups",
            "ListGroupMembers",
            "ListGroupChanges",
            "ListMemberGroups",
        ] {
            let page_size = parameter(&document, operation(&document, id), "pageSize");
            assert_eq!(page_size["schema"]["minimum"], 0, "{id}");
        }
    }
}
