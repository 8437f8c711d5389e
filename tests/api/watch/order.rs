//! The stream's guarantees: every committed change once, in commit order,
//! resumable from any cursor; list-then-watch loses nothing; a write held
//! open is streamed once it commits and never skipped.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use groupd::{
    domain::{
        GroupChange, GroupId, Principal, Timestamp, filter::FilterBudget,
        membership::MembershipDelta,
    },
    store::{GroupRow, Store, StoreOptions},
};
use pb::ChangeKind::{AddMembers, Create, Delete, RemoveMembers, Undelete, Update};

use super::*;

both_backends!(
    every_kind_of_write_is_streamed_once_in_commit_order_as_its_history_records_it,
    a_stream_from_any_cursor_continues_exactly_after_it,
    start_from_oldest_replays_every_change_retained,
    resumed_at_random_points_under_concurrent_writers_the_stream_is_the_history,
    concurrent_writers_of_one_group_are_streamed_in_version_order,
    list_then_watch_from_the_listing_cursor_loses_nothing,
    a_write_held_open_is_streamed_once_it_commits_and_never_skipped,
);

async fn every_kind_of_write_is_streamed_once_in_commit_order_as_its_history_records_it(
    app: TestApp,
) {
    let mut stream = open(&app, from_now()).await;
    let a = create_named(&app, "a").await;
    set_description(&app, &a.id, "changed").await;
    add(&app, &a.id, &["alice"], &["alice"]).await;
    remove(&app, &a.id, &["alice"], &[]).await;
    delete(&app, &a.id).await;
    try_undelete(&app, &a.id, "").await.unwrap();
    let b = create_named(&app, "b").await;

    let found = changes_of(&mut stream, 7).await;
    assert_eq!(
        plain(&found),
        [
            change(&a.id, 1, Create),
            change(&a.id, 2, Update),
            change(&a.id, 3, AddMembers),
            change(&a.id, 4, RemoveMembers),
            change(&a.id, 5, Delete),
            change(&a.id, 6, Undelete),
            change(&b.id, 1, Create),
        ]
    );
    let cursors: HashSet<&String> = found.iter().map(|(_, cursor)| cursor).collect();
    assert_eq!(cursors.len(), 7, "every change has a cursor of its own");
    // Nothing more: no repeat.
    assert!(
        drain_for(&mut stream, Duration::from_millis(500))
            .await
            .is_empty()
    );

    // The changes are the history's entries, field for field.
    let mut streamed = open(&app, from_oldest()).await;
    let mut messages = Vec::new();
    while messages.len() < 7 {
        let message = next_message(&mut streamed).await.unwrap();
        if let Some(Event::Change(change)) = message.event {
            messages.push(change);
        }
    }
    let mut history = changes(&app, &a.id).await;
    history.extend(changes(&app, &b.id).await);
    assert_eq!(messages, history);
}

async fn a_stream_from_any_cursor_continues_exactly_after_it(app: TestApp) {
    let start = listing_cursor(&app).await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three", "four"] {
        ids.push(create_named(&app, name).await.id);
    }
    let mut stream = open(&app, after(&start)).await;
    let all = changes_of(&mut stream, 4).await;
    assert_eq!(
        plain(&all),
        ids.iter()
            .map(|id| change(id, 1, Create))
            .collect::<Vec<_>>()
    );
    for (k, (_, cursor)) in all.iter().enumerate() {
        let mut resumed = open(&app, after(cursor)).await;
        let rest = changes_of(&mut resumed, 3 - k).await;
        assert_eq!(
            plain(&rest),
            plain(&all[k + 1..]),
            "resumed after change {k}"
        );
        assert!(
            drain_for(&mut resumed, Duration::from_millis(300))
                .await
                .is_empty()
        );
    }
}

async fn start_from_oldest_replays_every_change_retained(app: TestApp) {
    let first = create_named(&app, "first").await;
    set_description(&app, &first.id, "second").await;
    let mut stream = open(&app, from_oldest()).await;
    assert_eq!(
        plain(&changes_of(&mut stream, 2).await),
        [change(&first.id, 1, Create), change(&first.id, 2, Update)]
    );
    // Now, unlike the oldest, starts after what exists.
    let mut now = open(&app, from_now()).await;
    let later = create_named(&app, "later").await;
    assert_eq!(
        plain(&changes_of(&mut now, 1).await),
        [change(&later.id, 1, Create)]
    );
    assert_eq!(
        plain(&changes_of(&mut stream, 1).await),
        [change(&later.id, 1, Create)]
    );
}

/// A small deterministic generator, so that a failure can be replayed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn resumed_at_random_points_under_concurrent_writers_the_stream_is_the_history(app: TestApp) {
    const WRITERS: usize = 6;
    const WRITES: usize = 20;
    let start = listing_cursor(&app).await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = app.client();
        writers.push(tokio::spawn(async move {
            let mut client = client;
            let created = client
                .create_group(pb::CreateGroupRequest {
                    group: Some(named(&format!("writer-{writer}"))),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for n in 0..WRITES {
                describe_with(&mut client, &created.id, format!("write {n}")).await;
            }
        }));
    }

    // The watcher drops its stream after a random number of changes and
    // starts again from the last cursor it processed.
    let total = WRITERS * (WRITES + 1);
    let mut processed: Vec<Seen> = Vec::new();
    let mut cursor = start.clone();
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    let mut resumes = 0;
    while processed.len() < total {
        let mut stream = open(&app, after(&cursor)).await;
        let take = 1 + (next_random(&mut random) % 17) as usize;
        let batch = changes_of(&mut stream, take.min(total - processed.len())).await;
        for (change, at) in batch {
            processed.push(change);
            cursor = at;
        }
        drop(stream);
        resumes += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(resumes > 10, "the watcher resumed {resumes} times");

    // No repeat, and each group's changes in version order, none missing.
    let unique: HashSet<&Seen> = processed.iter().collect();
    assert_eq!(unique.len(), total, "a change was streamed twice");
    let mut versions: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for change in &processed {
        versions
            .entry(change.group_id.as_str())
            .or_default()
            .push(change.version);
    }
    assert_eq!(versions.len(), WRITERS);
    for (group, versions) in &versions {
        let expected: Vec<i64> = (1..=(WRITES as i64 + 1)).collect();
        assert_eq!(versions, &expected, "versions of {group}");
    }
    // One uninterrupted stream from the same start sees the same order:
    // the order is the feed's, not the watcher's.
    let mut whole = open(&app, after(&start)).await;
    assert_eq!(plain(&changes_of(&mut whole, total).await), processed);
    assert!(
        drain_for(&mut whole, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

async fn concurrent_writers_of_one_group_are_streamed_in_version_order(app: TestApp) {
    const WRITERS: usize = 8;
    const WRITES: usize = 10;
    let contended = create_named(&app, "contended").await;
    let mut stream = open(&app, from_now()).await;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = app.client();
        let id = contended.id.clone();
        writers.push(tokio::spawn(async move {
            let mut client = client;
            for n in 0..WRITES {
                // Each write locks the group and waits for the one before
                // it: on PostgreSQL, the transaction that waits longest may
                // hold the oldest transaction id, yet writes the newest
                // version.
                describe_with(&mut client, &id, format!("writer {writer} write {n}")).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let versions: Vec<i64> = changes_of(&mut stream, WRITERS * WRITES)
        .await
        .iter()
        .map(|(change, _)| change.version)
        .collect();
    assert_eq!(
        versions,
        (2..=(WRITERS * WRITES) as i64 + 1).collect::<Vec<_>>()
    );
}

async fn list_then_watch_from_the_listing_cursor_loses_nothing(app: TestApp) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create_named(&app, &format!("mirrored-{n}")).await.id);
    }
    // A writer keeps writing while the mirror lists and starts watching.
    let writer = {
        let client = app.client();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut client = client;
            for round in 0..8 {
                for id in &ids {
                    describe_with(&mut client, id, format!("round {round}")).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listing = list(&app, pb::ListGroupsRequest::default()).await;
    let mut mirror: BTreeMap<String, (i64, String)> = listing
        .groups
        .iter()
        .map(|g| (g.id.clone(), (version_of(g), g.description.clone())))
        .collect();
    let mut stream = open(&app, after(&listing.cursor)).await;
    writer.await.unwrap();

    // Apply what comes until the mirror holds the last version of each.
    let expected: BTreeMap<String, (i64, String)> = list(&app, pb::ListGroupsRequest::default())
        .await
        .groups
        .iter()
        .map(|g| (g.id.clone(), (version_of(g), g.description.clone())))
        .collect();
    while mirror != expected {
        let message = next_message(&mut stream).await.unwrap();
        let Some(Event::Change(change)) = message.event else {
            continue;
        };
        let group = change.group.unwrap();
        let held = mirror.entry(group.id.clone()).or_default();
        // The stream may begin with changes the listing already showed;
        // it never skips one: each version applied is the next.
        if change.version > held.0 {
            assert_eq!(
                change.version,
                held.0 + 1,
                "a change of {} was skipped",
                group.id
            );
            *held = (change.version, group.description.clone());
        }
    }
}

/// A group's version, found from its etag (which the version and id
/// derive).
fn version_of(group: &pb::Group) -> i64 {
    (1..10_000)
        .find(|version| groupd::domain::etag_for(&group.id, *version) == group.etag)
        .unwrap_or_else(|| panic!("no version of {} has etag {}", group.id, group.etag))
}

async fn a_write_held_open_is_streamed_once_it_commits_and_never_skipped(app: TestApp) {
    let postgres = app.database_url().starts_with("postgres");
    let held_group = create_named(&app, "held").await;
    let mut others = Vec::new();
    for n in 0..3 {
        others.push(create_named(&app, &format!("other-{n}")).await.id);
    }
    let mut watcher = open(&app, from_now()).await;

    // A write of the server's own store, on its own connection, held open
    // after it has done everything but commit: its change is in the feed
    // table, uncommitted.
    let store = Store::connect(
        app.database_url(),
        &StoreOptions {
            max_connections: 2,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            filter_budget: FilterBudget::DEFAULT,
            filtered_listings: 1,
            membership_walks: 1,
        },
    )
    .await
    .unwrap();
    let id = GroupId::parse(&held_group.id).unwrap();
    let tx = store.write().await.unwrap();
    let mut group = tx.lock_group_for(&id, None).await.unwrap().unwrap().0;
    let actor = Principal::parse("holder").unwrap();
    group.fields.description = "held".to_owned();
    group.touch(
        &actor,
        Timestamp::from_micros(group.update_time.as_micros() + 1),
    );
    tx.append_change(
        &GroupChange {
            version: group.version,
            change_time: group.update_time,
            actor: actor.as_str().to_owned(),
            kind: groupd::domain::ChangeKind::Update,
            update_mask: vec!["description".to_owned()],
            group: group.clone(),
            members_added: Vec::new(),
            members_removed: Vec::new(),
            admins_added: Vec::new(),
            admins_removed: Vec::new(),
            delta_truncated: false,
        },
        GroupRow::Update,
        &MembershipDelta::default(),
    )
    .await
    .unwrap();

    // Later writes, through the server.
    let writes = {
        let client = app.client();
        let others = others.clone();
        tokio::spawn(async move {
            let mut client = client;
            for id in &others {
                describe_with(
                    &mut client,
                    id,
                    "after the held one began".to_owned().to_owned(),
                )
                .await;
            }
        })
    };
    let held_change = change(&held_group.id, 2, Update);
    let later: Vec<Seen> = others.iter().map(|id| change(id, 2, Update)).collect();
    if postgres {
        // The later writes commit first, and are streamed first: the
        // watcher does not wait for the held write, and does not skip it.
        writes.await.unwrap();
        let first = changes_of(&mut watcher, 3).await;
        assert_eq!(plain(&first), later);
        // A client that processed them resumes after the last one (the
        // "> 42" question), still before the held write commits.
        let last_cursor = first[2].1.clone();
        let mut resumed = open(&app, after(&last_cursor)).await;
        assert!(
            drain_for(&mut watcher, Duration::from_millis(500))
                .await
                .is_empty(),
            "nothing is streamed for a write not committed"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            plain(&changes_of(&mut watcher, 1).await),
            std::slice::from_ref(&held_change)
        );
        assert_eq!(plain(&changes_of(&mut resumed, 1).await), [held_change]);
    } else {
        // SQLite has one writer: the later writes wait for the held one,
        // and nothing is streamed meanwhile.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !writes.is_finished(),
            "a write went past SQLite's writer lock"
        );
        assert!(
            drain_for(&mut watcher, Duration::from_millis(300))
                .await
                .is_empty()
        );
        tx.commit().await.unwrap();
        writes.await.unwrap();
        let mut expected = vec![held_change];
        expected.extend(later);
        assert_eq!(plain(&changes_of(&mut watcher, 4).await), expected);
    }
    assert!(
        drain_for(&mut watcher, Duration::from_millis(300))
            .await
            .is_empty()
    );
    store.close().await.unwrap();
}
