//! ListGroups pages: an empty database lists nothing; the basic view is
//! the default and the full view is there on request; deleted groups are
//! hidden unless shown; a page size of 0 means 50, a negative one is
//! refused and a larger one is capped at 1000; and page tokens visit every
//! group exactly once.

use std::collections::BTreeSet;

use groupd::pb;

use super::{create_many, names};
use crate::helpers::*;

both_backends!(
    list_of_an_empty_database_returns_nothing,
    list_defaults_to_the_basic_view_and_can_return_the_full_view,
    list_with_page_size_zero_returns_50_groups,
    list_rejects_a_negative_page_size,
    list_with_a_huge_page_size_returns_every_group_in_one_page,
    list_caps_the_page_size_at_1000,
    list_page_tokens_visit_every_group_exactly_once,
    list_hides_deleted_groups_unless_show_deleted,
);

async fn list_of_an_empty_database_returns_nothing(app: TestApp) {
    let page = list(&app, pb::ListGroupsRequest::default()).await;
    assert!(page.groups.is_empty());
    assert!(page.next_page_token.is_empty());
    assert_eq!(page.total_size, 0);
}

async fn list_defaults_to_the_basic_view_and_can_return_the_full_view(app: TestApp) {
    create(
        &app,
        pb::Group {
            name: "listed".to_owned(),
            members: members(&["bob", "alice"]),
            admins: members(&["bob"]),
            ..Default::default()
        },
    )
    .await;

    let basic = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(basic.groups.len(), 1);
    assert!(basic.groups[0].members.is_empty());
    assert!(basic.groups[0].admins.is_empty());
    assert_eq!(basic.groups[0].member_count, 2);

    let full = list(
        &app,
        pb::ListGroupsRequest {
            view: pb::GroupView::Full as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&full.groups[0].members), ["alice", "bob"]);
    assert_eq!(ids(&full.groups[0].admins), ["bob"]);
}

async fn list_with_page_size_zero_returns_50_groups(app: TestApp) {
    let created = create_many(&app, 51, "g").await;

    let first = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(first.groups.len(), 50);
    assert_eq!(first.total_size, 51);
    assert!(!first.next_page_token.is_empty());

    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&second.groups), [created[50].id.clone()]);
    assert!(second.next_page_token.is_empty());
}

async fn list_rejects_a_negative_page_size(app: TestApp) {
    create_named(&app, "any").await;
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_size: -1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "page_size");
}

async fn list_with_a_huge_page_size_returns_every_group_in_one_page(app: TestApp) {
    // Proving the 1000 cap itself would need 1001 groups; this checks that a
    // size above the cap is clamped rather than rejected.
    let created = create_many(&app, 3, "g").await;
    for page_size in [1000, 1001, i32::MAX] {
        let page = list(
            &app,
            pb::ListGroupsRequest {
                page_size,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(id_list(&page.groups), id_list(&created));
        assert!(page.next_page_token.is_empty());
        assert_eq!(page.total_size, 3);
    }
}

async fn list_caps_the_page_size_at_1000(app: TestApp) {
    const GROUPS: usize = 1001;
    const WRITERS: usize = 4;

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let mut client = app.client();
        tasks.push(tokio::spawn(async move {
            for i in (writer..GROUPS).step_by(WRITERS) {
                client
                    .create_group(pb::CreateGroupRequest {
                        group: Some(named(&format!("g{i:04}"))),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|status| panic!("CreateGroup failed: {status:?}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 5000,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.groups.len(), 1000);
    assert_eq!(first.total_size, 1001);
    assert!(!first.next_page_token.is_empty());

    let last = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 5000,
            order_by: "name".to_owned(),
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&last.groups), ["g1000"]);
    assert!(last.next_page_token.is_empty());
}

async fn list_page_tokens_visit_every_group_exactly_once(app: TestApp) {
    let created = create_many(&app, 7, "paged").await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = list(
            &app,
            pb::ListGroupsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.total_size, 7, "total_size counts every page");
        sizes.push(page.groups.len());
        seen.extend(id_list(&page.groups));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }

    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, id_list(&created), "every group once, in order");
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
}

async fn list_hides_deleted_groups_unless_show_deleted(app: TestApp) {
    let kept = create_named(&app, "kept").await;
    let gone = create_named(&app, "gone").await;
    delete(&app, &gone.id).await;

    let live = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(id_list(&live.groups), [kept.id.as_str()]);
    assert_eq!(live.total_size, 1);

    let all = list(
        &app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&all.groups), [kept.id, gone.id]);
    assert_eq!(all.total_size, 2);
    assert_eq!(all.groups[1].state(), pb::State::Deleted);
    assert!(all.groups[1].delete_time.is_some());
}
