//! A group's history is always readable: a mask names a bounded number of
//! paths, label paths that change nothing are not recorded, one write
//! changes no more memberships than a request may carry, pages shrink to
//! fit the message limit, and an entry recorded too large before these
//! bounds is returned narrowed rather than failing every page after it.

use groupd::pb;
use prost::Message as _;

use crate::helpers::*;

both_backends!(
    a_mask_naming_too_many_paths_is_refused_and_writes_nothing,
    label_paths_that_change_nothing_are_not_recorded,
);

both_backends!(
    args ["--max-members-per-request", "3"];
    a_write_changing_more_memberships_than_a_request_may_carry_is_refused,
);

both_backends!(
    args ["--max-message-bytes", "800000", "--max-members-per-request", "1000"];
    history_pages_shrink_to_fit_the_message_limit,
    an_entry_recorded_too_large_before_the_bounds_is_returned_narrowed,
);

async fn a_mask_naming_too_many_paths_is_refused_and_writes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let paths: Vec<String> = (0..201).map(|i| format!("labels.k{i:07}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();

    let status = try_update(&app, patch(&group.id), Some(&paths))
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "update_mask");
    assert!(status.message().contains("at most 200 paths"), "{status:?}");
    assert_unchanged(&app, &before).await;

    // 200 paths are accepted.
    update(&app, patch(&group.id), Some(&paths[..200])).await;
}

async fn label_paths_that_change_nothing_are_not_recorded(app: TestApp) {
    let group = rich_group(&app).await;
    let absent: Vec<String> = (0..150).map(|i| format!("labels.gone{i:03}")).collect();
    let mut paths: Vec<&str> = absent.iter().map(String::as_str).collect();
    paths.extend(["labels.a", "labels.b", "labels.new", "description"]);

    // `a` keeps its value, `b` is deleted, `new` is added, and none of the
    // 150 absent labels exists before or after.
    let updated = update(
        &app,
        with_labels(
            pb::Group {
                description: "tidied".to_owned(),
                ..patch(&group.id)
            },
            &[("a", "1"), ("new", "x")],
        ),
        Some(&paths),
    )
    .await;
    assert_eq!(labels_of(&updated), label_map(&[("a", "1"), ("new", "x")]));

    let history = changes(&app, &group.id).await;
    assert_eq!(
        mask_paths(history.last().unwrap()),
        path_set(&["description", "labels.b", "labels.new"])
    );
}

async fn a_write_changing_more_memberships_than_a_request_may_carry_is_refused(app: TestApp) {
    let group = create(
        &app,
        pb::Group {
            members: members(&["a", "b", "c"]),
            ..named("trio")
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    // Three new admins are three new members and three new admin roles.
    let status = try_add(&app, &group.id, &[], &["x", "y", "z"])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "members");
    assert!(status.message().contains("at most 3"), "{status:?}");

    // Replacing three members with three others removes three and adds
    // three.
    let status = try_update(
        &app,
        pb::Group {
            members: members(&["x", "y", "z"]),
            ..patch(&group.id)
        },
        Some(&["members"]),
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.members");
    assert_unchanged(&app, &before).await;

    // Within the bound, both work.
    add(&app, &group.id, &["x"], &[]).await;
    update(
        &app,
        pb::Group {
            members: members(&["a", "b"]),
            ..patch(&group.id)
        },
        Some(&["members"]),
    )
    .await;
    assert_eq!(get(&app, &group.id).await.member_count, 2);
}

/// Member `i` of batch `batch`, with a 256-character id.
fn long_id(batch: usize, i: usize) -> String {
    format!("{batch:02}-{i:04}-{}", "h".repeat(248))
}

async fn history_pages_shrink_to_fit_the_message_limit(app: TestApp) {
    const BATCHES: usize = 6;
    let group = create_named(&app, "busy").await;
    // Each addition records 1,000 ids of 256 characters: about 262 kB an
    // entry, so three fit in the 800 kB limit and a page of 100 cannot.
    for batch in 0..BATCHES {
        let ids: Vec<String> = (0..1000).map(|i| long_id(batch, i)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        add(&app, &group.id, &ids, &[]).await;
    }

    let mut versions = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = try_changes_page(&app, &group.id, 100, &token)
            .await
            .unwrap_or_else(|status| panic!("page {pages} failed: {status:?}"));
        assert!(!page.changes.is_empty(), "every page has an entry");
        assert!(
            page.encoded_len() <= 800_000,
            "{} bytes",
            page.encoded_len()
        );
        versions.extend(page.changes.iter().map(|change| change.version));
        for change in &page.changes {
            assert!(!change.delta_truncated);
        }
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(versions, (1..=1 + BATCHES as i64).collect::<Vec<_>>());
    assert!(
        pages > 1,
        "a page of 100 entries would not fit: {pages} page"
    );
}

async fn an_entry_recorded_too_large_before_the_bounds_is_returned_narrowed(app: TestApp) {
    let group = create_named(&app, "legacy").await;
    set_description(&app, &group.id, "after").await;

    // An entry such as a write made before the bounds existed could record:
    // a mask of 60,000 label paths and 5,000 added members, over a megabyte.
    let mask: Vec<String> = (0..60_000).map(|i| format!("labels.k{i:07}")).collect();
    let added: Vec<String> = (0..5000).map(|i| long_id(0, i)).collect();
    let snapshot = serde_json::json!({
        "id": group.id,
        "fields": {"name": "legacy"},
        "state": "Active",
        "create_time": 1,
        "update_time": 2,
        "delete_time": null,
        "created_by": "anonymous",
        "updated_by": "anonymous",
        "member_count": 5000,
        "version": 50,
    });
    let db = connect_admin(app.database_url()).await.unwrap();
    let sql = format!(
        "INSERT INTO group_changes (group_id, version, change_time, actor, kind, update_mask, \
         snapshot, members_added, members_removed, admins_added, admins_removed) \
         VALUES ('{id}', 50, 3, 'anonymous', 'UPDATE', '{mask},description', '{snapshot}', \
         '{added}', '[]', '[]', '[]')",
        id = group.id,
        mask = mask.join(","),
        added = serde_json::to_string(&added).unwrap(),
    );
    sea_orm::ConnectionTrait::execute_unprepared(&db, &sql)
        .await
        .unwrap();

    let history = changes(&app, &group.id).await;
    assert_eq!(
        history.iter().map(|c| c.version).collect::<Vec<_>>(),
        [1, 2, 50]
    );
    let legacy = &history[2];
    assert_eq!(mask_paths(legacy), path_set(&["description", "labels"]));
    assert!(legacy.delta_truncated);
    assert!(!legacy.members_added.is_empty());
    assert!(legacy.members_added.len() < 5000);
    assert_eq!(
        ids(&legacy.members_added)[0],
        added[0],
        "the first are kept"
    );
    assert!(!history[1].delta_truncated);

    // The error a client would get otherwise is gone for every page size.
    for page_size in [1, 2, 1000] {
        let page = try_changes_page(&app, &group.id, page_size, "").await;
        assert!(page.is_ok(), "page size {page_size}: {page:?}");
    }
}
