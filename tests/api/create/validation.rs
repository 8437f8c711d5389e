//! Validation: each field of a new group against its rules and limits
//! (name, scope, group id, description, email, provenance, NUL characters
//! in text, members, admins, `member_of`, roles, labels and the number of
//! members), a request without a group, and every violation of a request
//! reported at once. A refused create stores nothing.

use groupd::pb;
use tonic::Code;

use super::assert_no_groups;
use crate::helpers::*;

both_backends!(
    create_reports_every_violation_of_the_request_at_once,
    create_rejects_invalid_names_and_stores_nothing,
    create_accepts_a_name_of_128_characters,
    create_rejects_an_invalid_scope,
    create_rejects_an_invalid_group_id,
    create_rejects_a_description_longer_than_1024_characters,
    create_rejects_an_invalid_email_and_accepts_a_valid_one,
    create_rejects_a_provenance_longer_than_256_characters,
    nul_characters_are_invalid_text_and_never_reach_the_database,
    create_rejects_an_invalid_member_id,
    create_rejects_a_duplicate_member_on_the_duplicate,
    create_rejects_an_invalid_admin_id,
    create_rejects_an_admin_who_is_not_a_member,
    create_rejects_a_member_of_reference_to_a_missing_group,
    create_rejects_a_member_of_reference_to_a_deleted_group,
    create_rejects_duplicate_member_of_references,
    create_rejects_invalid_and_duplicate_role_ids,
    create_rejects_invalid_label_keys_values_and_counts,
    create_accepts_64_labels_with_256_character_values,
    create_without_a_group_is_invalid,
);

both_backends!(
    args ["--max-members-per-group", "3"];
    create_rejects_more_members_than_a_group_may_have,
);

async fn create_rejects_invalid_names_and_stores_nothing(app: TestApp) {
    let too_long = "a".repeat(129);
    for name in [
        "",
        "-leading-dash",
        ".leading-dot",
        "two words",
        "slash/name",
        "émile",
        too_long.as_str(),
    ] {
        let status = try_create(&app, named(name)).await.unwrap_err();
        assert_invalid_argument(&status, "group.name");
    }
    assert_no_groups(&app).await;
}

async fn create_accepts_a_name_of_128_characters(app: TestApp) {
    let name = format!("A{}", "b".repeat(127));
    let created = create_named(&app, &name).await;
    assert_eq!(created.name, name);
}

async fn create_rejects_an_invalid_scope(app: TestApp) {
    for scope in ["two words", "-dash", "a/b"] {
        let status = try_create(
            &app,
            pb::Group {
                name: "scoped".to_owned(),
                scope: scope.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "group.scope");
    }
    assert_no_groups(&app).await;
}

async fn create_rejects_an_invalid_group_id(app: TestApp) {
    for group_id in ["has space", "-dash", "x/y"] {
        let status = create_request(
            &app,
            pb::CreateGroupRequest {
                group: Some(named("chosen")),
                group_id: group_id.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "group_id");
    }
    assert_no_groups(&app).await;
}

async fn create_rejects_a_description_longer_than_1024_characters(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "described".to_owned(),
            description: "d".repeat(1025),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.description");
    assert_no_groups(&app).await;

    // The limit counts characters, not bytes: 1024 two-byte characters fit.
    let created = create(
        &app,
        pb::Group {
            name: "described".to_owned(),
            description: "é".repeat(1024),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.description.chars().count(), 1024);
}

async fn create_rejects_an_invalid_email_and_accepts_a_valid_one(app: TestApp) {
    for email in ["not-an-email", "two@@example.com", "@example.com"] {
        let status = try_create(
            &app,
            pb::Group {
                name: "mailing".to_owned(),
                email: email.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "group.email");
    }
    assert_no_groups(&app).await;

    let created = create(
        &app,
        pb::Group {
            name: "mailing".to_owned(),
            email: "team+list@example.com".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.email, "team+list@example.com");
}

async fn create_rejects_a_provenance_longer_than_256_characters(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "imported".to_owned(),
            provenance: "p".repeat(257),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.provenance");
    assert_no_groups(&app).await;

    let created = create(
        &app,
        pb::Group {
            name: "imported".to_owned(),
            provenance: "p".repeat(256),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.provenance.len(), 256);
}

/// PostgreSQL text cannot hold NUL: without the checks these were
/// INTERNAL errors there (found by fuzzing the HTTP API).
async fn nul_characters_are_invalid_text_and_never_reach_the_database(app: TestApp) {
    for (group, field) in [
        (
            pb::Group {
                description: "a\0b".to_owned(),
                ..named("nul")
            },
            "group.description",
        ),
        (
            pb::Group {
                provenance: "\0".to_owned(),
                ..named("nul")
            },
            "group.provenance",
        ),
        (with_labels(named("nul"), &[("k", "v\0")]), "group.labels"),
    ] {
        let status = try_create(&app, group).await.unwrap_err();
        assert_invalid_argument(&status, field);
    }
    assert_no_groups(&app).await;

    let status = try_get(&app, "a\0b").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            filter: "name = \"a\0\"".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "filter");
}

async fn create_rejects_an_invalid_member_id(app: TestApp) {
    let too_long = format!("a{}", "b".repeat(256));
    for bad in ["bad id", "-alice", "", too_long.as_str()] {
        let status = try_create(
            &app,
            pb::Group {
                name: "crew".to_owned(),
                members: members(&["alice", "bob", "carol", bad]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "group.members[3].id");
    }
    assert_no_groups(&app).await;
}

async fn create_rejects_a_duplicate_member_on_the_duplicate(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice", "bob", "carol", "alice"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.members[3].id");
    assert_no_groups(&app).await;
}

async fn create_rejects_an_invalid_admin_id(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice"]),
            admins: members(&["alice", "bad admin"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.admins[1].id");

    let status = try_create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice"]),
            admins: members(&["alice", "alice"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.admins[1].id");
    assert_no_groups(&app).await;
}

async fn create_rejects_an_admin_who_is_not_a_member(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice"]),
            admins: members(&["alice", "bob"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.admins[1].id");
    assert_no_groups(&app).await;
}

async fn create_rejects_a_member_of_reference_to_a_missing_group(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "child".to_owned(),
            member_of: refs(&["no-such-group"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.member_of[0].group_id");
    assert_no_groups(&app).await;
}

async fn create_rejects_a_member_of_reference_to_a_deleted_group(app: TestApp) {
    let live = create_named(&app, "live").await;
    let gone = create_named(&app, "gone").await;
    delete(&app, &gone.id).await;

    let status = try_create(
        &app,
        pb::Group {
            name: "child".to_owned(),
            member_of: refs(&[&live.id, &gone.id]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.member_of[1].group_id");
    let all = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(all.total_size, 1, "only the live parent exists");
}

async fn create_rejects_duplicate_member_of_references(app: TestApp) {
    let parent = create_named(&app, "parent").await;
    let status = try_create(
        &app,
        pb::Group {
            name: "child".to_owned(),
            member_of: refs(&[&parent.id, &parent.id]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.member_of[1].group_id");
}

async fn create_rejects_invalid_and_duplicate_role_ids(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "roled".to_owned(),
            assigned_roles: roles(&["roles/admin", "bad role"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.assigned_roles[1].role_id");

    let status = try_create(
        &app,
        pb::Group {
            name: "roled".to_owned(),
            assigned_roles: roles(&["roles/admin", "roles/admin"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.assigned_roles[1].role_id");
    assert_no_groups(&app).await;
}

async fn create_rejects_invalid_label_keys_values_and_counts(app: TestApp) {
    let long_value = "v".repeat(257);
    let long_key = format!("k{}", "e".repeat(63));
    for (key, value) in [
        ("Upper", "x"),
        ("1digit", "x"),
        ("has space", "x"),
        (long_key.as_str(), "x"),
        ("toolong", long_value.as_str()),
    ] {
        let status = try_create(&app, with_labels(named("labelled"), &[(key, value)]))
            .await
            .unwrap_err();
        assert_invalid_label(&status, key);
    }

    let mut group = named("labelled");
    for i in 0..65 {
        group.labels.insert(format!("k{i}"), "v".to_owned());
    }
    let status = try_create(&app, group).await.unwrap_err();
    assert_invalid_argument_on(&status, "group.labels");
    assert_no_groups(&app).await;
}

async fn create_accepts_64_labels_with_256_character_values(app: TestApp) {
    let mut group = named("labelled");
    for i in 0..64 {
        group.labels.insert(format!("k{i}"), "v".repeat(256));
    }
    let long_key = format!("k{}", "e".repeat(62));
    group.labels.remove("k63");
    group.labels.insert(long_key.clone(), "x".to_owned());

    let created = create(&app, group).await;
    assert_eq!(created.labels.len(), 64);
    assert_eq!(created.labels.get(&long_key).map(String::as_str), Some("x"));
}

async fn create_without_a_group_is_invalid(app: TestApp) {
    let status = create_request(&app, pb::CreateGroupRequest::default())
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(!violations(&status).is_empty());
    assert_no_groups(&app).await;
}

async fn create_rejects_more_members_than_a_group_may_have(app: TestApp) {
    let status = try_create(
        &app,
        pb::Group {
            name: "crowded".to_owned(),
            members: members(&["a", "b", "c", "d"]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(!violations(&status).is_empty());
    assert_no_groups(&app).await;

    let created = create(
        &app,
        pb::Group {
            name: "crowded".to_owned(),
            members: members(&["a", "b", "c"]),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.member_count, 3);
}

async fn create_reports_every_violation_of_the_request_at_once(app: TestApp) {
    let status = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "two words".to_owned(),
                email: "not-an-email".to_owned(),
                members: members(&["bad id"]),
                ..Default::default()
            }),
            group_id: "-bad".to_owned(),
            request_id: "not-a-uuid".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    let mut fields: Vec<String> = violations(&status).into_iter().map(|v| v.field).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "group.email",
            "group.members[0].id",
            "group.name",
            "group_id",
            "request_id"
        ]
    );
    let listed = list(&app, pb::ListGroupsRequest::default()).await;
    assert!(listed.groups.is_empty(), "nothing was created");
}
