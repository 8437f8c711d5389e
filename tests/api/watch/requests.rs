//! The request's options (filters, group ids, heartbeats) and its
//! refusals.

use std::time::Duration;

use groupd::domain::watch::Cursor;

use super::*;

both_backends!(
    a_filter_or_a_list_of_ids_keeps_only_the_changes_of_those_groups,
    heartbeats_carry_the_current_cursor_when_nothing_was_sent,
    malformed_requests_are_refused_with_a_violation_per_field,
    a_cursor_ahead_of_the_feed_is_out_of_range,
);

async fn a_filter_or_a_list_of_ids_keeps_only_the_changes_of_those_groups(app: TestApp) {
    let mut by_label = open(
        &app,
        pb::WatchGroupChangesRequest {
            filter: "labels.team = \"sre\"".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let web = create(&app, with_labels(named("web"), &[("team", "web")])).await;
    let sre = create(&app, with_labels(named("sre"), &[("team", "sre")])).await;
    let mut by_id = open(
        &app,
        pb::WatchGroupChangesRequest {
            group_ids: vec![web.id.clone()],
            ..Default::default()
        },
    )
    .await;
    set_description(&app, &sre.id, "on call").await;
    set_description(&app, &web.id, "front end").await;
    assert_eq!(
        plain(&changes_of(&mut by_label, 2).await),
        [
            change(&sre.id, 1, pb::ChangeKind::Create),
            change(&sre.id, 2, pb::ChangeKind::Update)
        ]
    );
    assert_eq!(
        plain(&changes_of(&mut by_id, 1).await),
        [change(&web.id, 2, pb::ChangeKind::Update)]
    );
    assert!(
        drain_for(&mut by_label, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

async fn heartbeats_carry_the_current_cursor_when_nothing_was_sent(app: TestApp) {
    let watched = create_named(&app, "watched").await;
    let ignored = create_named(&app, "ignored").await;
    let mut stream = open(
        &app,
        pb::WatchGroupChangesRequest {
            start_from_now: true,
            group_ids: vec![watched.id.clone()],
            heartbeat_interval: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await;
    // Silence: a heartbeat at the start's cursor.
    let first = next_message(&mut stream).await.unwrap();
    assert!(
        matches!(first.event, Some(Event::Heartbeat(_))),
        "{first:?}"
    );
    let start = first.cursor;
    // A change the stream filters out moves its cursor on.
    set_description(&app, &ignored.id, "not watched").await;
    let beat = loop {
        let message = next_message(&mut stream).await.unwrap();
        assert!(seen(&message).is_none(), "a filtered change was sent");
        if message.cursor != start {
            break message;
        }
    };
    assert!(matches!(beat.event, Some(Event::Heartbeat(_))));
    assert!(beat.group_id.is_empty());
    // The heartbeat's cursor is after the filtered change: a stream from
    // it starts with what comes next.
    let mut resumed = open(&app, after(&beat.cursor)).await;
    set_description(&app, &watched.id, "watched").await;
    assert_eq!(
        plain(&changes_of(&mut resumed, 1).await),
        [change(&watched.id, 2, pb::ChangeKind::Update)]
    );
}

async fn malformed_requests_are_refused_with_a_violation_per_field(app: TestApp) {
    let seconds = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    let cases: Vec<(pb::WatchGroupChangesRequest, &str)> = vec![
        (after("not-a-cursor"), "cursor"),
        (after("AQ"), "cursor"),
        (
            pb::WatchGroupChangesRequest {
                cursor: Cursor::at(0).encode(),
                start_from_now: true,
                ..Default::default()
            },
            "cursor",
        ),
        (
            pb::WatchGroupChangesRequest {
                start_from_now: true,
                start_from_oldest: true,
                ..Default::default()
            },
            "cursor",
        ),
        (
            pb::WatchGroupChangesRequest {
                filter: "labels.team =".to_owned(),
                ..Default::default()
            },
            "filter",
        ),
        (
            pb::WatchGroupChangesRequest {
                group_ids: vec!["ok".to_owned(), "not a group id!".to_owned()],
                ..Default::default()
            },
            "group_ids[1]",
        ),
        (
            pb::WatchGroupChangesRequest {
                group_ids: (0..1001).map(|n| format!("g{n}")).collect(),
                ..Default::default()
            },
            "group_ids",
        ),
        (
            pb::WatchGroupChangesRequest {
                heartbeat_interval: seconds(0, 500_000_000),
                ..Default::default()
            },
            "heartbeat_interval",
        ),
        (
            pb::WatchGroupChangesRequest {
                heartbeat_interval: seconds(301, 0),
                ..Default::default()
            },
            "heartbeat_interval",
        ),
        (
            pb::WatchGroupChangesRequest {
                heartbeat_interval: seconds(-5, 0),
                ..Default::default()
            },
            "heartbeat_interval",
        ),
    ];
    for (request, field) in cases {
        let status = refused(&app, request.clone()).await;
        assert_invalid_argument(&status, field);
    }
}

async fn a_cursor_ahead_of_the_feed_is_out_of_range(app: TestApp) {
    let one = create_named(&app, "one").await;
    let status = refused(&app, after(&Cursor::at(1_000_000).encode())).await;
    assert_status(&status, Code::OutOfRange, "CURSOR_EXPIRED");
    // A cursor the feed gave is fine.
    let mut now = open(&app, from_now()).await;
    set_description(&app, &one.id, "two").await;
    let (_, head) = changes_of(&mut now, 1).await.remove(0);
    let mut stream = open(&app, after(&head)).await;
    let two = create_named(&app, "two").await;
    assert_eq!(
        plain(&changes_of(&mut stream, 1).await),
        [change(&two.id, 1, pb::ChangeKind::Create)]
    );
}
