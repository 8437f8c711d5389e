//! `validate_only` and `request_id`: a dry run returns the group it would
//! create, still checks everything and stores (or reserves) nothing; a
//! retry with the same request id returns the group the first call
//! created, as it stands now, while different request ids create different
//! groups; and a request id must be a UUID.

use groupd::pb;

use super::assert_no_groups;
use crate::helpers::*;

both_backends!(
    create_with_validate_only_returns_the_would_be_group_and_stores_nothing,
    create_with_validate_only_still_checks_name_uniqueness,
    create_with_validate_only_still_rejects_invalid_input,
    create_retried_with_the_same_request_id_returns_the_first_group,
    create_with_different_request_ids_creates_different_groups,
    create_rejects_a_request_id_that_is_not_a_uuid,
);

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
    let updated = set_description(&app, &first.id, "changed since").await;
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
