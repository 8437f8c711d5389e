//! The update-group operations of five real group APIs (Diffa, Itential
//! IAP, VinylDNS, Crafter Studio and Oracle Eloqua), each performed over
//! groupd's HTTP/JSON gateway with its documented example body adapted to
//! groupd's field names, checking the documented outcome and the documented
//! error statuses that apply: groupd must be able to stand in for each.
//!
//! Ids and values are taken from those examples wherever groupd's patterns
//! allow them, so a reader can hold each test next to the public
//! documentation of the API it imitates.

use groupd::pb;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

both_backends!(
    diffa_put_config_group_is_an_idempotent_upsert_keyed_by_the_path,
    itential_patch_updates_exactly_the_fields_it_sends,
    vinyldns_put_replaces_the_group_and_answers_it,
    vinyldns_put_with_an_admin_who_is_not_a_member_is_400,
    vinyldns_put_on_an_unknown_group_is_404,
    vinyldns_put_with_a_name_taken_by_another_group_is_409,
    crafter_update_finds_the_group_by_site_and_name_and_updates_its_description,
    crafter_update_cannot_move_a_group_to_another_site,
    eloqua_put_blanks_every_property_not_included,
    eloqua_put_on_an_unknown_id_is_404_and_a_bad_property_is_400,
);

/// The `updateTime` of a JSON group, which must be set.
#[track_caller]
fn update_time(group: &Value) -> (i64, i32) {
    instant(timestamp(group, "updateTime").as_ref())
}

// ---------------------------------------------------------------------------
// Diffa: PUT config/groups/:id, body {"key": "important-group"}.
// ---------------------------------------------------------------------------

/// Diffa's PairGroup has one attribute, its `key`, which is also the `:id`
/// of the URL; the documented example PUTs `{"key":"important-group"}`.
/// In groupd the key is the group id, and since a group also needs a name,
/// the key doubles as the name. Diffa's PUT names the group by its key
/// and needs no prior create, so it maps to
/// `PUT /v1/groups/important-group?allowMissing=true` with
/// `{"id": "important-group", "name": "important-group"}`: the first call
/// creates the group (AIP-134 upsert), a repeat replaces it with the same
/// values, and a body key that contradicts the path is refused.
async fn diffa_put_config_group_is_an_idempotent_upsert_keyed_by_the_path(app: TestApp) {
    let path = group_path("important-group");

    // groupd has no `key` field: Diffa's literal body is refused.
    let reply = http_call(
        &app,
        Method::PUT,
        &format!("{path}?allowMissing=true"),
        Some(&json!({"key": "important-group"})),
    )
    .await;
    assert_http_invalid(&reply, "group");
    // Without allowMissing a PUT on an absent group is 404.
    let body = json!({"id": "important-group", "name": "important-group"});
    let reply = http_call(&app, Method::PUT, &path, Some(&body)).await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    assert_eq!(group_count(&app).await, 0, "nothing was created");

    let created = http_ok(
        http_call(
            &app,
            Method::PUT,
            &format!("{path}?allowMissing=true"),
            Some(&body),
        )
        .await,
    );
    assert_eq!(created["id"], "important-group");
    assert_eq!(created["name"], "important-group");
    assert_eq!(created["state"], "STATE_ACTIVE");

    let again = http_ok(
        http_call(
            &app,
            Method::PUT,
            &format!("{path}?allowMissing=true"),
            Some(&body),
        )
        .await,
    );
    assert_eq!(again["id"], "important-group");
    assert_eq!(again["name"], "important-group");
    assert_eq!(again["createTime"], created["createTime"], "the same group");
    assert_eq!(group_count(&app).await, 1, "the repeat created nothing");
    assert_eq!(
        kinds(&changes(&app, "important-group").await),
        [pb::ChangeKind::Create, pb::ChangeKind::Update]
    );

    // A key in the body that is not the key in the URL.
    let before = snapshot(&app, "important-group").await;
    let reply = http_call(
        &app,
        Method::PUT,
        &format!("{path}?allowMissing=true"),
        Some(&json!({"id": "other-group", "name": "important-group"})),
    )
    .await;
    assert_http_invalid(&reply, "group.id");
    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, 1);
}

// ---------------------------------------------------------------------------
// Itential IAP: PATCH /authorization/groups/:groupId.
// ---------------------------------------------------------------------------

/// Itential's example group, with its 24-hex ids: PATCH sends provenance,
/// name, description, memberOf, assignedRoles and inactive. Itential's
/// `aaaManaged` flag on a memberOf entry is its own bookkeeping, not a
/// field of groupd's `GroupRef`, so it is left out (and refused if sent).
async fn itential_patch_updates_exactly_the_fields_it_sends(app: TestApp) {
    let parent = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?groupId=5cb7b531d06cceb89fd21b1c",
            Some(&json!({"name": "admins"})),
        )
        .await,
    );
    let group = http_ok(
        http_call(
            &app,
            Method::POST,
            "/v1/groups?groupId=5cb7b531d06cceb89fd21b1d",
            Some(&json!({
                "name": "group_0",
                "email": "group@example.com",
                "members": [{"id": "alice"}],
                "labels": {"origin": "import"},
            })),
        )
        .await,
    );
    let id = id_of(&group);
    let path = group_path(&id);

    let updated = http_ok(
        http_call(
            &app,
            Method::PATCH,
            &path,
            Some(&json!({
                "provenance": "Local AAA",
                "name": "group_1",
                "description": "description of group_1",
                "memberOf": [{"groupId": id_of(&parent)}],
                "assignedRoles": [{"roleId": "5cb7b531d06cceb89fd21b1c"}],
                "inactive": true,
            })),
        )
        .await,
    );

    // Itential answers the updated group: the fields sent are echoed...
    assert_eq!(updated["provenance"], "Local AAA");
    assert_eq!(updated["name"], "group_1");
    assert_eq!(updated["description"], "description of group_1");
    assert_eq!(
        updated["memberOf"],
        json!([{"groupId": "5cb7b531d06cceb89fd21b1c"}])
    );
    assert_eq!(
        updated["assignedRoles"],
        json!([{"roleId": "5cb7b531d06cceb89fd21b1c"}])
    );
    assert_eq!(updated["inactive"], true);
    // ...the fields not sent are kept...
    assert_eq!(updated["email"], "group@example.com");
    assert_eq!(updated["members"], json!([{"id": "alice"}]));
    assert_eq!(updated["labels"], json!({"origin": "import"}));
    // ...and `_meta.updated` (updateTime) moved while `_meta.created` did not.
    assert!(
        update_time(&updated) > update_time(&group),
        "updateTime moved: {} -> {}",
        group["updateTime"],
        updated["updateTime"]
    );
    assert_eq!(updated["createTime"], group["createTime"]);
    assert_eq!(
        http_group(&app, &id).await,
        updated,
        "the update was stored"
    );
    let history = changes(&app, &id).await;
    assert_eq!(
        mask_paths(history.last().unwrap()),
        path_set(&[
            "assigned_roles",
            "description",
            "inactive",
            "member_of",
            "name",
            "provenance"
        ]),
        "exactly the fields sent were updated"
    );

    // Itential's memberOf entry as it reads it back, aaaManaged included,
    // is not groupd's: refused, changing nothing.
    let before = snapshot(&app, &id).await;
    let reply = http_call(
        &app,
        Method::PATCH,
        &path,
        Some(&json!({
            "memberOf": [{"aaaManaged": true, "groupId": "5cb7b531d06cceb89fd21b1c"}],
        })),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_unchanged(&app, &before).await;

    // memberOf must name an existing group.
    let reply = http_call(
        &app,
        Method::PATCH,
        &path,
        Some(&json!({"memberOf": [{"groupId": "5cb7b531d06cceb89fd21b1f"}]})),
    )
    .await;
    assert_http_invalid(&reply, "group.member_of");
    assert_unchanged(&app, &before).await;

    let reply = http_call(
        &app,
        Method::PATCH,
        &group_path("5cb7b531d06cceb89fd21b1e"),
        Some(&json!({"description": "nobody"})),
    )
    .await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
}

// ---------------------------------------------------------------------------
// VinylDNS: PUT /groups/{groupId}.
// ---------------------------------------------------------------------------

const VINYL_ID: &str = "6f8afcda-7529-4cad-9f2d-76903f4b1aca";

/// The group of VinylDNS's example response, with the description the
/// update will drop.
async fn vinyl_group(app: &TestApp) -> Value {
    http_ok(
        http_call(
            app,
            Method::POST,
            &format!("/v1/groups?groupId={VINYL_ID}"),
            Some(&json!({
                "name": "some-group",
                "email": "test@example.com",
                "description": "before the update",
                "members": [
                    {"id": "2764183c-5e75-4ae6-8833-503cd5f4dcb0"},
                    {"id": "c8630ebc-0af2-4c9a-a0a0-d18c590ed03e"},
                ],
                "admins": [{"id": "2764183c-5e75-4ae6-8833-503cd5f4dcb0"}],
            })),
        )
        .await,
    )
}

/// VinylDNS's example request. Its `created` and `status` become groupd's
/// output-only `createTime` and `state` (its "Thu Mar 02 2017 10:29:21"
/// written in RFC 3339), which an update ignores, as VinylDNS says status
/// "should not be changed in an update".
fn vinyl_request() -> Value {
    json!({
        "id": VINYL_ID,
        "name": "some-group",
        "email": "test@example.com",
        "createTime": "2017-03-02T10:29:21Z",
        "state": "STATE_ACTIVE",
        "members": [
            {"id": "4764183c-5e75-4ae6-8833-503cd5f4dcb0"},
            {"id": "k8630ebc-0af2-4c9a-a0a0-d18c590ed03e"},
        ],
        "admins": [{"id": "4764183c-5e75-4ae6-8833-503cd5f4dcb0"}],
    })
}

async fn vinyldns_put_replaces_the_group_and_answers_it(app: TestApp) {
    let group = vinyl_group(&app).await;

    let reply = http_call(
        &app,
        Method::PUT,
        &group_path(VINYL_ID),
        Some(&vinyl_request()),
    )
    .await;
    let updated = http_ok(reply);

    // "200 OK - The group has been updated and the group info is returned".
    assert_eq!(updated["id"], VINYL_ID);
    assert_eq!(updated["name"], "some-group");
    assert_eq!(updated["email"], "test@example.com");
    assert_eq!(updated["state"], "STATE_ACTIVE");
    assert_eq!(
        updated["members"],
        json!([
            {"id": "4764183c-5e75-4ae6-8833-503cd5f4dcb0"},
            {"id": "k8630ebc-0af2-4c9a-a0a0-d18c590ed03e"},
        ])
    );
    assert_eq!(
        updated["admins"],
        json!([{"id": "4764183c-5e75-4ae6-8833-503cd5f4dcb0"}])
    );
    // "the group will not have this attribute if it was not included in
    // the update request".
    assert!(updated.get("description").is_none(), "{updated}");
    assert_eq!(
        updated["createTime"], group["createTime"],
        "created is not writable"
    );
    assert_eq!(http_group(&app, VINYL_ID).await, updated, "stored");
}

async fn vinyldns_put_with_an_admin_who_is_not_a_member_is_400(app: TestApp) {
    vinyl_group(&app).await;
    let before = snapshot(&app, VINYL_ID).await;

    // "All admin user ids should also be in the members array".
    let mut request = vinyl_request();
    request["admins"] = json!([{"id": "c8630ebc-0af2-4c9a-a0a0-d18c590ed03e"}]);
    let reply = http_call(&app, Method::PUT, &group_path(VINYL_ID), Some(&request)).await;
    assert_http_invalid(&reply, "group.admins");
    assert_unchanged(&app, &before).await;

    // "400 Bad Request - The group was invalid": a bad email is too.
    let mut request = vinyl_request();
    request["email"] = json!("not an email");
    let reply = http_call(&app, Method::PUT, &group_path(VINYL_ID), Some(&request)).await;
    assert_http_invalid(&reply, "group.email");
    assert_unchanged(&app, &before).await;
}

async fn vinyldns_put_on_an_unknown_group_is_404(app: TestApp) {
    vinyl_group(&app).await;
    let unknown = "0f8afcda-7529-4cad-9f2d-76903f4b1aca";
    let mut request = vinyl_request();
    request["id"] = json!(unknown);

    let reply = http_call(&app, Method::PUT, &group_path(unknown), Some(&request)).await;

    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    assert_eq!(group_count(&app).await, 1, "nothing was created");
}

async fn vinyldns_put_with_a_name_taken_by_another_group_is_409(app: TestApp) {
    vinyl_group(&app).await;
    http_create(
        &app,
        json!({"name": "other-group", "email": "o@example.com"}),
    )
    .await;
    let before = snapshot(&app, VINYL_ID).await;

    // Names are unique case-insensitively.
    for name in ["other-group", "Other-Group"] {
        let mut request = vinyl_request();
        request["name"] = json!(name);
        let reply = http_call(&app, Method::PUT, &group_path(VINYL_ID), Some(&request)).await;
        assert_http_error(&reply, 409, Code::AlreadyExists, "GROUP_NAME_TAKEN");
        assert_unchanged(&app, &before).await;
    }
}

// ---------------------------------------------------------------------------
// Crafter Studio: POST .../group/update.json.
// ---------------------------------------------------------------------------

/// Crafter names a group by `site_id` and `group_name` (groupd's `scope`
/// and `name`); groupd names it by id. So the client first finds the id
/// with ListGroups filtered on scope and name, then PATCHes the example
/// body with groupd's names. The same group name in another site is
/// another group, which the update must leave alone.
async fn crafter_update_finds_the_group_by_site_and_name_and_updates_its_description(app: TestApp) {
    http_create(
        &app,
        json!({"name": "contributors", "scope": "mysite", "description": "old"}),
    )
    .await;
    let elsewhere = http_create(
        &app,
        json!({"name": "contributors", "scope": "othersite", "description": "old"}),
    )
    .await;

    let filter = query_value(r#"scope = "mysite" AND name = "contributors""#);
    let found = http_ok(http_get(&app, &format!("/v1/groups?filter={filter}")).await);
    let groups = found["groups"].as_array().expect("a list of groups");
    assert_eq!(groups.len(), 1, "{found}");
    let id = id_of(&groups[0]);

    let updated = http_ok(
        http_call(
            &app,
            Method::PATCH,
            &group_path(&id),
            Some(&json!({
                "name": "contributors",
                "scope": "mysite",
                "description": "Content Contributors",
            })),
        )
        .await,
    );

    assert_eq!(updated["name"], "contributors");
    assert_eq!(updated["scope"], "mysite", "the same scope is accepted");
    assert_eq!(updated["description"], "Content Contributors");
    assert_eq!(
        http_group(&app, &id_of(&elsewhere)).await,
        elsewhere,
        "the other site's group is untouched"
    );
}

async fn crafter_update_cannot_move_a_group_to_another_site(app: TestApp) {
    let group = http_create(
        &app,
        json!({"name": "contributors", "scope": "mysite", "description": "old"}),
    )
    .await;
    let id = id_of(&group);
    let before = snapshot(&app, &id).await;

    let reply = http_call(
        &app,
        Method::PATCH,
        &group_path(&id),
        Some(&json!({
            "name": "contributors",
            "scope": "othersite",
            "description": "Content Contributors",
        })),
    )
    .await;

    assert_http_invalid(&reply, "group.scope");
    assert_unchanged(&app, &before).await;
}

// ---------------------------------------------------------------------------
// Oracle Eloqua: PUT /api/REST/2.0/assets/account/group/{id}.
// ---------------------------------------------------------------------------

/// Eloqua's account group 1, in folder 233, with more properties than the
/// example PUT sends. `folderId` is groupd's `scope`, `isArchived` its
/// `inactive`, `country` a label, `count` its `memberCount`.
async fn eloqua_group(app: &TestApp) -> Value {
    http_ok(
        http_call(
            app,
            Method::POST,
            "/v1/groups?groupId=1",
            Some(&json!({
                "name": "Old-Account-Group",
                "scope": "233",
                "description": "accounts in Central America",
                "email": "accounts@example.com",
                "provenance": "eloqua",
                "members": [{"id": "9"}, {"id": "10"}],
                "admins": [{"id": "9"}],
                "assignedRoles": [{"roleId": "Retrieve"}],
                "inactive": true,
                "labels": {"country": "France", "region": "emea"},
            })),
        )
        .await,
    )
}

/// "All properties should be included in PUT requests, as some properties
/// will be considered blank if not included." The example body is
/// `{"id":"1","name":"New Account Group Name","country":"Guatemala"}`;
/// groupd names are one word, so the name is hyphenated.
async fn eloqua_put_blanks_every_property_not_included(app: TestApp) {
    let group = eloqua_group(&app).await;

    let updated = http_ok(
        http_call(
            &app,
            Method::PUT,
            &group_path("1"),
            Some(&json!({
                "id": "1",
                "name": "New-Account-Group-Name",
                "labels": {"country": "Guatemala"},
            })),
        )
        .await,
    );

    assert_eq!(updated["id"], "1");
    assert_eq!(updated["name"], "New-Account-Group-Name");
    assert_eq!(updated["labels"], json!({"country": "Guatemala"}));
    assert_eq!(updated["scope"], "233", "folderId is immutable and kept");
    for blank in [
        "description",
        "email",
        "provenance",
        "members",
        "admins",
        "assignedRoles",
        "inactive",
        "memberCount",
    ] {
        assert!(
            updated.get(blank).is_none(),
            "{blank} was not included, so it is blank: {updated}"
        );
    }
    assert_eq!(updated["updatedBy"], ANONYMOUS);
    assert!(update_time(&updated) > update_time(&group));
    assert_eq!(updated["createTime"], group["createTime"]);
    let stored = get(&app, "1").await;
    assert!(stored.members.is_empty() && stored.admins.is_empty());
    assert_eq!(stored.member_count, 0);
    assert_eq!(http_group(&app, "1").await, updated, "stored");

    // isArchived is inactive; country, not included this time, is blank.
    let archived = http_ok(
        http_call(
            &app,
            Method::PUT,
            &group_path("1"),
            Some(&json!({"id": "1", "name": "New-Account-Group-Name", "inactive": true})),
        )
        .await,
    );
    assert_eq!(archived["inactive"], true);
    assert!(archived.get("labels").is_none(), "{archived}");
}

async fn eloqua_put_on_an_unknown_id_is_404_and_a_bad_property_is_400(app: TestApp) {
    eloqua_group(&app).await;
    let before = snapshot(&app, "1").await;

    let reply = http_call(
        &app,
        Method::PUT,
        &group_path("2"),
        Some(&json!({"id": "2", "name": "New-Account-Group-Name"})),
    )
    .await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    assert_eq!(group_count(&app).await, 1, "nothing was created");

    // The example's name, spaces and all, is not one word.
    let reply = http_call(
        &app,
        Method::PUT,
        &group_path("1"),
        Some(&json!({
            "id": "1",
            "name": "New Account Group Name",
            "labels": {"country": "Guatemala"},
        })),
    )
    .await;
    assert_http_invalid(&reply, "group.name");
    assert_unchanged(&app, &before).await;

    // Eloqua's own property names are not groupd's.
    let reply = http_call(
        &app,
        Method::PUT,
        &group_path("1"),
        Some(&json!({"id": "1", "name": "New-Account-Group-Name", "country": "Guatemala"})),
    )
    .await;
    assert_http_invalid(&reply, "group");
    assert_unchanged(&app, &before).await;
}
