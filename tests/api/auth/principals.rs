//! Principal ids with `:` and `/`, as real identity systems name callers: a
//! Kubernetes service account (`system:serviceaccount:<ns>:<name>`) from a
//! token's `sub`, and a SPIFFE id. They administer groups like any other
//! principal, are recorded as they are, and travel in HTTP paths
//! percent-encoded.

use groupd::pb;
use serde_json::json;
use tonic::Code;

use super::{
    Auth, Who,
    files::{authorized, bearer},
};
use crate::helpers::*;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:ns:api";
const SPIFFE: &str = "spiffe://example.org/ns/a";
/// [`SPIFFE`] as one path segment.
const SPIFFE_SEGMENT: &str = "spiffe:%2F%2Fexample.org%2Fns%2Fa";

/// The ids of the groups `GET path` lists for `credential`, or the status
/// it answered.
async fn member_groups(app: &TestApp, credential: &str, path: &str) -> Result<Vec<String>, u16> {
    let reply = send(
        app.request(reqwest::Method::GET, path)
            .header("authorization", credential),
    )
    .await;
    if reply.status != 200 {
        return Err(reply.status);
    }
    Ok(reply.body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {reply:#?}"))
        .iter()
        .map(id_of)
        .collect())
}

pub async fn principals_with_colons_and_slashes_administer_and_are_listed(
    app: TestApp,
    auth: Auth,
) {
    let mut group = named("mesh");
    group.admins = members(&[SERVICE_ACCOUNT]);
    group.members = members(&[SERVICE_ACCOUNT, SPIFFE]);
    let group = auth.create(&app, Who::Root, group).await.unwrap();
    let mut other = named("elsewhere");
    other.members = members(&["someone"]);
    auth.create(&app, Who::Root, other).await.unwrap();

    // The service account, with no role, administers the group it was
    // made an admin of: over gRPC...
    let account = bearer(&auth.idp.token(SERVICE_ACCOUNT, &[]));
    let mut update = patch(&group.id);
    update.description = "by the service account".to_owned();
    let updated = app
        .client()
        .update_group(authorized(
            &account,
            pb::UpdateGroupRequest {
                group: Some(update),
                update_mask: Some(mask(&["description"])),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.updated_by, SERVICE_ACCOUNT);
    assert!(
        updated.permissions.iter().any(|p| p == "groups.update"),
        "{:?}",
        updated.permissions
    );
    // ... and over HTTP.
    let reply = send(
        app.request(reqwest::Method::PATCH, &group_path(&group.id))
            .header("authorization", &account)
            .json(&json!({"labels": {"team": "mesh"}})),
    )
    .await;
    let body = http_ok(reply);
    assert_eq!(body["updatedBy"], SERVICE_ACCOUNT);
    assert_eq!(body["description"], "by the service account");
    // Its rights end at its group.
    let status = app
        .client()
        .create_group(authorized(
            &account,
            pb::CreateGroupRequest {
                group: Some(named("not-allowed")),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

    // The history records it as it is.
    let history = app
        .client()
        .list_group_changes(auth.request(
            Who::Root,
            pb::ListGroupChangesRequest {
                id: group.id.clone(),
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actors: Vec<&str> = history.iter().map(|c| c.actor.as_str()).collect();
    assert_eq!(actors, ["root", SERVICE_ACCOUNT, SERVICE_ACCOUNT]);

    // ListMemberGroups of the SPIFFE id over HTTP, its `/`s
    // percent-encoded in the one path segment: for groups.admin, and for
    // the SPIFFE principal itself (anyone may ask about their own
    // memberships); not for a stranger.
    let spiffe_path = format!("/v1/members/{SPIFFE_SEGMENT}/groups");
    let root = auth.header(Who::Root).unwrap();
    let own = bearer(&auth.idp.token(SPIFFE, &[]));
    let stranger = auth.header(Who::Stranger).unwrap();
    assert_eq!(
        member_groups(&app, &root, &spiffe_path).await,
        Ok(vec![group.id.clone()])
    );
    assert_eq!(
        member_groups(&app, &own, &spiffe_path).await,
        Ok(vec![group.id.clone()])
    );
    assert_eq!(member_groups(&app, &stranger, &spiffe_path).await, Err(403));
    // Not split at its `/`s when they are sent as they are.
    let unencoded = format!("/v1/members/{SPIFFE}/groups");
    assert!(
        member_groups(&app, &root, &unencoded).await.is_err(),
        "{unencoded} was routed"
    );

    // The service account's colons, as they are and percent-encoded.
    for segment in [SERVICE_ACCOUNT, "system%3Aserviceaccount%3Ans%3Aapi"] {
        let path = format!("/v1/members/{segment}/groups");
        assert_eq!(
            member_groups(&app, &account, &path).await,
            Ok(vec![group.id.clone()]),
            "{path}"
        );
    }

    // The same over gRPC, by the SPIFFE principal.
    let listed = app
        .client()
        .list_member_groups(authorized(
            &own,
            pb::ListMemberGroupsRequest {
                member_id: SPIFFE.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(id_list(&listed.groups), [group.id.as_str()]);
}
