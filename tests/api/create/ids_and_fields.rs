//! Ids and fields: a new group gets a server-assigned UUID or the id the
//! client chose; every writable field is returned as sent (members and
//! admins sorted by id) and GetGroup returns the same group; output-only
//! fields and an id in the body are ignored.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    creates_a_group_with_a_server_assigned_uuid,
    creates_a_group_with_the_client_chosen_group_id,
    create_returns_every_writable_field_and_get_returns_the_same_group,
    create_returns_members_and_admins_sorted_by_id,
    create_ignores_output_only_fields_and_the_body_id,
);

async fn creates_a_group_with_a_server_assigned_uuid(app: TestApp) {
    let group = create_named(&app, "engineering").await;

    let id = uuid::Uuid::parse_str(&group.id).expect("the id is a UUID");
    assert_eq!(id.get_version_num(), 4, "the id is a UUID v4");
    assert_eq!(
        group.id,
        id.hyphenated().to_string(),
        "the id is lowercase and hyphenated"
    );
    assert_eq!(group.name, "engineering");
    assert_eq!(group.state(), pb::State::Active);
    assert!(group.create_time.is_some());
    assert!(group.update_time.is_some());
    assert!(group.delete_time.is_none());
    assert_eq!(group.created_by, ANONYMOUS);
    assert_eq!(group.updated_by, ANONYMOUS);
    assert_eq!(group.member_count, 0);
    assert_quoted_etag(&group.etag);

    let other = create_named(&app, "marketing").await;
    assert_ne!(other.id, group.id, "each group gets its own id");
}

async fn creates_a_group_with_the_client_chosen_group_id(app: TestApp) {
    let group = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(named("ops")),
            group_id: "ops-team.v2".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    assert_eq!(group.id, "ops-team.v2");
    assert_eq!(get(&app, "ops-team.v2").await.name, "ops");
}

async fn create_returns_every_writable_field_and_get_returns_the_same_group(app: TestApp) {
    let parent = create_named(&app, "parent").await;
    let sent = with_labels(
        pb::Group {
            name: "Platform_Team.1".to_owned(),
            scope: "site-a".to_owned(),
            description: "Runs the platform.".to_owned(),
            email: "platform@example.com".to_owned(),
            members: members(&["alice", "bob@example.com"]),
            admins: members(&["alice"]),
            member_of: refs(&[&parent.id]),
            assigned_roles: roles(&["roles/editor", "viewer"]),
            inactive: true,
            provenance: "ldap".to_owned(),
            ..Default::default()
        },
        &[("country", "fr"), ("cost-center", "42")],
    );

    let created = create(&app, sent.clone()).await;

    assert_eq!(created.name, sent.name);
    assert_eq!(created.scope, sent.scope);
    assert_eq!(created.description, sent.description);
    assert_eq!(created.email, sent.email);
    assert_eq!(ids(&created.members), ["alice", "bob@example.com"]);
    assert_eq!(ids(&created.admins), ["alice"]);
    assert_eq!(created.member_of, sent.member_of);
    let mut created_roles: Vec<_> = created.assigned_roles.iter().map(|r| &r.role_id).collect();
    created_roles.sort();
    assert_eq!(created_roles, ["roles/editor", "viewer"]);
    assert!(created.inactive);
    assert_eq!(created.provenance, "ldap");
    assert_eq!(labels_of(&created), labels_of(&sent));
    assert_eq!(created.member_count, 2);

    let read = get(&app, &created.id).await;
    assert_eq!(read, created, "GetGroup returns what CreateGroup returned");
}

async fn create_returns_members_and_admins_sorted_by_id(app: TestApp) {
    let created = create(
        &app,
        pb::Group {
            name: "sorted".to_owned(),
            members: members(&["zoe", "alice", "mallory", "bob"]),
            admins: members(&["zoe", "bob"]),
            ..Default::default()
        },
    )
    .await;

    assert_eq!(ids(&created.members), ["alice", "bob", "mallory", "zoe"]);
    assert_eq!(ids(&created.admins), ["bob", "zoe"]);
    assert_eq!(created.member_count, 4);
    let read = get(&app, &created.id).await;
    assert_eq!(ids(&read.members), ["alice", "bob", "mallory", "zoe"]);
    assert_eq!(ids(&read.admins), ["bob", "zoe"]);
}

async fn create_ignores_output_only_fields_and_the_body_id(app: TestApp) {
    let created = create(
        &app,
        pb::Group {
            id: "chosen-in-body".to_owned(),
            name: "outputs".to_owned(),
            state: pb::State::Deleted as i32,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            update_time: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            delete_time: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            created_by: "mallory".to_owned(),
            updated_by: "mallory".to_owned(),
            member_count: 99,
            etag: "\"forged\"".to_owned(),
            ..Default::default()
        },
    )
    .await;

    assert_ne!(created.id, "chosen-in-body");
    assert!(uuid::Uuid::parse_str(&created.id).is_ok());
    assert_eq!(created.state(), pb::State::Active);
    assert!(instant(created.create_time.as_ref()).0 > 1_000_000_000);
    assert!(instant(created.update_time.as_ref()).0 > 1_000_000_000);
    assert!(created.delete_time.is_none());
    assert_eq!(created.created_by, ANONYMOUS);
    assert_eq!(created.updated_by, ANONYMOUS);
    assert_eq!(created.member_count, 0);
    assert_ne!(created.etag, "\"forged\"");
    let status = try_get(&app, "chosen-in-body").await.unwrap_err();
    assert_not_found(&status, "chosen-in-body");
}
