//! CreateGroup: ids, echoed fields, validation, name uniqueness,
//! validate_only and request_id retries.

use groupd::pb;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    create_reports_every_violation_of_the_request_at_once,
    creates_a_group_with_a_server_assigned_uuid,
    creates_a_group_with_the_client_chosen_group_id,
    create_returns_every_writable_field_and_get_returns_the_same_group,
    create_returns_members_and_admins_sorted_by_id,
    create_ignores_output_only_fields_and_the_body_id,
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
    create_rejects_a_name_taken_in_the_same_scope_whatever_its_case,
    create_allows_the_same_name_in_another_scope,
    create_allows_reusing_the_name_of_a_deleted_group,
    create_rejects_a_group_id_taken_even_by_a_deleted_group,
    create_with_validate_only_returns_the_would_be_group_and_stores_nothing,
    create_with_validate_only_still_checks_name_uniqueness,
    create_with_validate_only_still_rejects_invalid_input,
    create_retried_with_the_same_request_id_returns_the_first_group,
    create_with_different_request_ids_creates_different_groups,
    create_rejects_a_request_id_that_is_not_a_uuid,
);

both_backends!(
    args ["--max-members-per-group", "3"];
    create_rejects_more_members_than_a_group_may_have,
);

/// Asserts that no group at all is stored, deleted ones included.
async fn assert_no_groups(app: &TestApp) {
    let page = list(
        app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        page.groups.is_empty(),
        "groups were stored: {:?}",
        page.groups
    );
    assert_eq!(page.total_size, 0);
}

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

async fn create_rejects_a_name_taken_in_the_same_scope_whatever_its_case(app: TestApp) {
    create_named(&app, "Platform").await;
    for name in ["Platform", "platform", "PLATFORM"] {
        let status = try_create(&app, named(name)).await.unwrap_err();
        assert_already_exists(&status, "GROUP_NAME_TAKEN");
    }

    let scoped = |name: &str| pb::Group {
        name: name.to_owned(),
        scope: "tenant-1".to_owned(),
        ..Default::default()
    };
    create(&app, scoped("Ops")).await;
    let status = try_create(&app, scoped("oPS")).await.unwrap_err();
    assert_already_exists(&status, "GROUP_NAME_TAKEN");

    let all = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(all.total_size, 2, "no duplicate was stored");
}

async fn create_allows_the_same_name_in_another_scope(app: TestApp) {
    let global = create_named(&app, "admins").await;
    let tenant = create(
        &app,
        pb::Group {
            name: "Admins".to_owned(),
            scope: "tenant-1".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let other = create(
        &app,
        pb::Group {
            name: "admins".to_owned(),
            scope: "tenant-2".to_owned(),
            ..Default::default()
        },
    )
    .await;

    assert_ne!(global.id, tenant.id);
    assert_ne!(tenant.id, other.id);
    assert_eq!(tenant.scope, "tenant-1");
    assert_eq!(other.scope, "tenant-2");
}

async fn create_allows_reusing_the_name_of_a_deleted_group(app: TestApp) {
    let first = create_named(&app, "reused").await;
    delete(&app, &first.id).await;

    let second = create_named(&app, "REUSED").await;
    assert_ne!(second.id, first.id);
    assert_eq!(second.state(), pb::State::Active);
    assert_eq!(get(&app, &first.id).await.state(), pb::State::Deleted);
}

async fn create_rejects_a_group_id_taken_even_by_a_deleted_group(app: TestApp) {
    let with_id = |name: &str| pb::CreateGroupRequest {
        group: Some(named(name)),
        group_id: "fixed-id".to_owned(),
        ..Default::default()
    };
    create_request(&app, with_id("first")).await.unwrap();

    let status = create_request(&app, with_id("second")).await.unwrap_err();
    assert_already_exists(&status, "GROUP_ID_TAKEN");

    delete(&app, "fixed-id").await;
    let status = create_request(&app, with_id("third")).await.unwrap_err();
    assert_already_exists(&status, "GROUP_ID_TAKEN");
    assert_eq!(get(&app, "fixed-id").await.name, "first");
}

async fn create_with_validate_only_returns_the_would_be_group_and_stores_nothing(app: TestApp) {
    let request = pb::CreateGroupRequest {
        group: Some(pb::Group {
            name: "dry-run".to_owned(),
            description: "not stored".to_owned(),
            members: members(&["bob", "alice"]),
            ..Default::default()
        }),
        group_id: "dry-run-id".to_owned(),
        validate_only: true,
        ..Default::default()
    };

    let would_be = create_request(&app, request.clone()).await.unwrap();

    assert_eq!(would_be.id, "dry-run-id");
    assert_eq!(would_be.name, "dry-run");
    assert_eq!(would_be.description, "not stored");
    assert_eq!(would_be.state(), pb::State::Active);
    assert_eq!(ids(&would_be.members), ["alice", "bob"]);
    assert_no_groups(&app).await;
    let status = try_get(&app, "dry-run-id").await.unwrap_err();
    assert_not_found(&status, "dry-run-id");
    let status = try_changes_page(&app, "dry-run-id", 0, "")
        .await
        .unwrap_err();
    assert_not_found(&status, "dry-run-id");

    // Nothing was reserved either: the same id and name can be created.
    let created = create_request(
        &app,
        pb::CreateGroupRequest {
            validate_only: false,
            ..request
        },
    )
    .await
    .unwrap();
    assert_eq!(created.id, "dry-run-id");
    assert_eq!(changes(&app, "dry-run-id").await.len(), 1);
}

async fn create_with_validate_only_still_checks_name_uniqueness(app: TestApp) {
    create_named(&app, "taken").await;
    let status = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(named("TAKEN")),
            validate_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_already_exists(&status, "GROUP_NAME_TAKEN");
}

async fn create_with_validate_only_still_rejects_invalid_input(app: TestApp) {
    let status = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "dry-run".to_owned(),
                email: "nope".to_owned(),
                ..Default::default()
            }),
            validate_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.email");
    assert_no_groups(&app).await;
}

async fn create_retried_with_the_same_request_id_returns_the_first_group(app: TestApp) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let request = pb::CreateGroupRequest {
        group: Some(named("idempotent")),
        request_id: request_id.clone(),
        ..Default::default()
    };

    let first = create_request(&app, request.clone()).await.unwrap();
    let retry = create_request(&app, request.clone()).await.unwrap();
    assert_eq!(retry.id, first.id);
    assert_eq!(retry, first, "a retry returns the first call's group");

    // The retry returns the group as it stands now, not a copy of the first
    // answer.
    let updated = update(
        &app,
        pb::Group {
            description: "changed since".to_owned(),
            ..patch(&first.id)
        },
        Some(&["description"]),
    )
    .await;
    let late_retry = create_request(&app, request).await.unwrap();
    assert_eq!(late_retry.id, first.id);
    assert_eq!(late_retry.description, "changed since");
    assert_eq!(late_retry.etag, updated.etag);

    let all = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(all.total_size, 1, "retries created nothing");
    assert_eq!(
        kinds(&changes(&app, &first.id).await),
        [pb::ChangeKind::Create, pb::ChangeKind::Update]
    );
}

async fn create_with_different_request_ids_creates_different_groups(app: TestApp) {
    let first = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(named("one")),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let second = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(named("two")),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(
        list(&app, pb::ListGroupsRequest::default())
            .await
            .total_size,
        2
    );
}

async fn create_rejects_a_request_id_that_is_not_a_uuid(app: TestApp) {
    let status = create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(named("retry")),
            request_id: "not-a-uuid".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "request_id");
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
