//! Uniqueness: a name is unique in its scope whatever its case, and may be
//! used again in another scope or once its group is deleted; a group id is
//! never used twice, not even after its group is deleted.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    create_rejects_a_name_taken_in_the_same_scope_whatever_its_case,
    create_allows_the_same_name_in_another_scope,
    create_allows_reusing_the_name_of_a_deleted_group,
    create_rejects_a_group_id_taken_even_by_a_deleted_group,
);

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
