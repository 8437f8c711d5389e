//! What ends a stream, and that its client resumes losing nothing: the
//! server shutting down, a database outage, a reader too slow, retention,
//! the limit on open streams, a client's deadline or cancel.

use std::time::Duration;

use tonic::transport::Endpoint;

use super::*;

both_backends!(shutdown_ends_streams_with_unavailable_and_they_resume_on_another_replica);

both_backends!(
    args ["--max-watch-streams", "5"];
    streams_are_bounded_in_number_and_an_ended_one_frees_its_place,
);

both_backends!(
    args ["--watch-buffer", "8"];
    a_reader_too_slow_is_ended_with_resource_exhausted_and_resumes_from_its_cursor,
);

both_backends!(
    args ["--change-retention", "1s"];
    retention_prunes_the_feed_and_an_older_cursor_is_out_of_range,
);

postgres_only!(a_database_outage_ends_streams_with_unavailable_and_they_resume_losing_nothing);

async fn shutdown_ends_streams_with_unavailable_and_they_resume_on_another_replica(app: TestApp) {
    let replica = app.spawn_replica().await;
    let mut stream = open(&app, from_now()).await;
    let first = create_named(&app, "before-shutdown").await;
    let (seen_first, cursor) = changes_of(&mut stream, 1).await.remove(0);
    assert_eq!(seen_first, change(&first.id, 1, pb::ChangeKind::Create));

    app.shutdown.cancel();
    let ended = next_message(&mut stream).await.unwrap_err();
    assert_status(&ended, Code::Unavailable, "SERVER_SHUTTING_DOWN");

    // The client resumes on the other replica from its last cursor.
    let mut client = replica.client.clone();
    let later = client
        .create_group(pb::CreateGroupRequest {
            group: Some(named("after-shutdown")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut resumed = open_with(&mut client, after(&cursor)).await;
    assert_eq!(
        plain(&changes_of(&mut resumed, 1).await),
        [change(&later.id, 1, pb::ChangeKind::Create)]
    );
}

/// Waits until the metrics count `expected` open streams.
async fn until_open_streams(app: &TestApp, expected: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = open_streams(app).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} streams open, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn streams_are_bounded_in_number_and_an_ended_one_frees_its_place(app: TestApp) {
    let limit = 5;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open(&app, from_now()).await);
    }
    until_open_streams(&app, 3).await;

    // A cancelled stream (dropped by its client) frees its place.
    streams.pop();
    until_open_streams(&app, 2).await;

    // A client's deadline ends its stream with DEADLINE_EXCEEDED.
    let mut request = tonic::Request::new(from_now());
    request.set_timeout(Duration::from_millis(700));
    let mut timed = app
        .client()
        .watch_group_changes(request)
        .await
        .unwrap()
        .into_inner();
    let ended = next_message(&mut timed).await.unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    until_open_streams(&app, 2).await;

    // Up to the limit, and no more.
    for _ in 2..limit {
        streams.push(open(&app, from_now()).await);
    }
    until_open_streams(&app, limit).await;
    let refused = refused(&app, from_now()).await;
    assert_status(&refused, Code::ResourceExhausted, "TOO_MANY_WATCHES");
    streams.clear();
    until_open_streams(&app, 0).await;
    let mut again = open(&app, from_now()).await;
    let group = create_named(&app, "after-the-limit").await;
    assert_eq!(
        plain(&changes_of(&mut again, 1).await),
        [change(&group.id, 1, pb::ChangeKind::Create)]
    );
}

async fn a_reader_too_slow_is_ended_with_resource_exhausted_and_resumes_from_its_cursor(
    app: TestApp,
) {
    // A client whose HTTP/2 windows are tiny: once it stops reading, the
    // server cannot send, and its stream stops where it is.
    let channel = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut slow_client = pb::group_service_client::GroupServiceClient::new(channel);
    let start = listing_cursor(&app).await;
    let mut slow = open_with(&mut slow_client, after(&start)).await;
    let first = create_named(&app, "first").await;
    let (_, mut cursor) = changes_of(&mut slow, 1).await.remove(0);

    // Many more changes than the server keeps in memory (8), unread.
    let mut expected = Vec::new();
    for n in 0..60 {
        let mut group = patch(&first.id);
        group.description = format!("write {n} {}", "x".repeat(200));
        update(&app, group, Some(&["description"])).await;
        expected.push(change(&first.id, n + 2, pb::ChangeKind::Update));
    }

    // Reading again: what was in flight, then the end of the stream.
    let mut processed = Vec::new();
    let ended = loop {
        match next_message(&mut slow).await {
            Ok(message) => {
                if let Some((change, at)) = seen(&message) {
                    processed.push(change);
                    cursor = at;
                }
            }
            Err(status) => break status,
        }
    };
    assert_status(&ended, Code::ResourceExhausted, "WATCH_TOO_SLOW");
    assert!(processed.len() < expected.len(), "the stream was not cut");

    // Resuming from the last cursor gives the rest, exactly.
    let mut resumed = open(&app, after(&cursor)).await;
    processed.extend(plain(
        &changes_of(&mut resumed, expected.len() - processed.len()).await,
    ));
    assert_eq!(processed, expected);
    assert!(
        drain_for(&mut resumed, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // The buffer's gauges: the 8 newest changes, the most it keeps, and
    // the memory they hold, each with its description of over 200 bytes
    // both decoded and as its encoded reply.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let page = loop {
        let page = metrics_page(&app).await;
        if sample(&page, "groupd_watch_buffer_changes") == Some(8.0) {
            break page;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bytes = sample(&page, "groupd_watch_buffer_bytes").unwrap_or(0.0);
    assert!(
        (8.0 * 2.0 * 200.0..64.0 * 1024.0).contains(&bytes),
        "{bytes} bytes held by 8 changes"
    );
}

async fn retention_prunes_the_feed_and_an_older_cursor_is_out_of_range(app: TestApp) {
    let start = listing_cursor(&app).await;
    let old = create_named(&app, "old").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let newest = create_named(&app, "newest").await;

    // The prune runs every tenth of the retention: the old change goes,
    // the newest stays.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let refusal = loop {
        if let Some(status) = app.client().watch_group_changes(after(&start)).await.err() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old change was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_status(&refusal, Code::OutOfRange, "CURSOR_EXPIRED");

    let mut oldest = open(&app, from_oldest()).await;
    let (first, _) = changes_of(&mut oldest, 1).await.remove(0);
    assert_eq!(first, change(&newest.id, 1, pb::ChangeKind::Create));
    // The group's own history keeps everything.
    assert_eq!(changes(&app, &old.id).await.len(), 1);
}

async fn a_database_outage_ends_streams_with_unavailable_and_they_resume_losing_nothing(
    app: TestApp,
) {
    let mut stream = open(&app, from_now()).await;
    let group = create_named(&app, "outage").await;
    let (_, cursor) = changes_of(&mut stream, 1).await.remove(0);

    app.set_postgres_reachable(false).await;
    let ended = next_message(&mut stream).await.unwrap_err();
    assert_status(&ended, Code::Unavailable, "CHANGE_FEED_UNAVAILABLE");
    app.set_postgres_reachable(true).await;

    // Once the database is back, writes go on and the client resumes.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let updated = loop {
        let mut patch = patch(&group.id);
        patch.description = "after the outage".to_owned();
        match try_update(&app, patch, Some(&["description"])).await {
            Ok(updated) => break updated,
            Err(status) => assert!(
                tokio::time::Instant::now() < deadline,
                "writes did not come back: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(updated.description, "after the outage");
    let mut resumed = open(&app, after(&cursor)).await;
    assert_eq!(
        plain(&changes_of(&mut resumed, 1).await),
        [change(&group.id, 2, pb::ChangeKind::Update)]
    );
}
