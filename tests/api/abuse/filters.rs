//! Costly ListGroups filters. A security review found that ten callers
//! sending one expensive filter (`-labels.a:b` 170 times) over 50,000
//! groups took the service from everyone: other calls failed UNAVAILABLE,
//! readiness went NOT_SERVING, and on SQLite the queries ran on after their
//! callers had been answered DEADLINE_EXCEEDED. Replayed here on a few
//! thousand groups: the probe is refused by the filter budget before it
//! runs; a costly filter the budget lets through (the budget is raised by
//! flags to stage one) stops in the database at its call's deadline and
//! frees its connection; filtered listings beyond their limit are answered
//! RESOURCE_EXHAUSTED; and readiness stays SERVING while callers hold every
//! pooled connection.
//!
//! The groups a costly filter runs over are a fixture: one group created
//! through the API, copied in the database, with its label rows, by one
//! statement per table. Creating a hundred thousand groups through the API
//! would take minutes per test.

use std::{sync::Arc, time::Duration};

use groupd::pb;
use sea_orm::ConnectionTrait as _;
use tokio::task::JoinSet;
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

both_backends!(the_probe_filter_is_refused_while_well_behaved_calls_keep_succeeding);

// One pooled connection, so that a listing holding it saturates the pool;
// every filter budget raised, so that a costly filter runs; a statement
// timeout far beyond the test, so that on PostgreSQL only the call's
// deadline can stop the statement; frequent health pings.
both_backends!(
    args [
        "--db-max-connections", "1",
        "--max-filter-terms", "1000",
        "--max-filter-substring-matches", "1000",
        "--db-acquire-timeout", "5s",
        "--db-statement-timeout", "300s",
        "--db-health-interval", "100ms",
        "--db-connect-timeout", "1s",
    ];
    a_listing_past_its_deadline_stops_in_the_database_and_readiness_holds_meanwhile,
);

// Three pooled connections and one filtered listing at a time.
both_backends!(
    args [
        "--db-max-connections", "3",
        "--max-filtered-listings", "1",
        "--max-filter-terms", "1000",
        "--max-filter-substring-matches", "1000",
        "--db-acquire-timeout", "500ms",
        "--db-statement-timeout", "300s",
    ];
    filtered_listings_beyond_their_limit_are_refused_while_other_calls_succeed,
);

/// The groups of the fixture a costly filter runs over: enough that one
/// statement of [`costly_filter`] runs several times longer than the
/// deadlines and waits of these tests (on the development machine, in a
/// debug build: about 0.3 ms a group on SQLite and 0.1 ms on PostgreSQL).
/// The tests cannot fail on a faster machine, only tell less.
fn costly_groups(app: &TestApp) -> usize {
    if is_postgres(app) { 150_000 } else { 60_000 }
}

fn is_postgres(app: &TestApp) -> bool {
    app.database_url().starts_with("postgres")
}

/// A bound against hangs, not a timing assertion.
const HANG_BOUND: Duration = Duration::from_secs(120);

/// The probe of the security review: 170 negated substring matches on one
/// label, 2,039 bytes, a valid filter.
fn probe() -> String {
    vec!["-labels.a:b"; 170].join(" ")
}

/// A filter that searches every value of label `pad` a hundred times for
/// a substring no value holds: about as costly as 2,048 bytes of filter
/// can be, once the budget lets it through.
fn costly_filter() -> String {
    (0..100)
        .map(|n| format!("labels.pad:ab{n:02}"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Copies group `template` `count` times in the test's database (ids
/// `{prefix}-1`, …), its label rows with it.
async fn copy_group(app: &TestApp, template: &str, prefix: &str, count: usize) {
    let db = connect_admin(app.database_url()).await.unwrap();
    let postgres = is_postgres(app);
    let (with, numbers) = if postgres {
        (
            String::new(),
            format!("generate_series(1, {count}) AS n(i)"),
        )
    } else {
        (
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
            ),
            "n".to_owned(),
        )
    };
    let copied = [
        "scope",
        "description",
        "email",
        "inactive",
        "provenance",
        "labels",
        "assigned_roles",
        "member_count",
        "version",
        "create_time",
        "update_time",
        "delete_time",
        "created_by",
        "updated_by",
    ];
    let columns = copied.join(", ");
    let values = copied.map(|c| format!("t.{c}")).join(", ");
    for statement in [
        format!(
            "{with}INSERT INTO groups (id, name, {columns}) \
             SELECT '{prefix}-' || n.i, t.name || '-' || n.i, {values} \
             FROM {numbers}, groups t WHERE t.id = '{template}'"
        ),
        format!(
            "{with}INSERT INTO group_labels (group_id, key, value) \
             SELECT '{prefix}-' || n.i, l.key, l.value \
             FROM {numbers}, group_labels l WHERE l.group_id = '{template}'"
        ),
    ] {
        db.execute_unprepared(&statement).await.unwrap();
    }
    if postgres {
        // As autovacuum would after such a load.
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    db.close().await.unwrap();
}

/// [`costly_groups`] groups whose label `pad` is 256 characters long;
/// returns their number.
async fn costly_fixture(app: &TestApp) -> usize {
    let template = create(
        app,
        with_labels(named("padded"), &[("pad", &"a".repeat(256))]),
    )
    .await;
    let copies = costly_groups(app);
    copy_group(app, &template.id, "padded", copies).await;
    copies + 1
}

async fn health(app: &TestApp) -> ServingStatus {
    let answer = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_or_else(|status| panic!("health check failed: {status:?}"))
        .into_inner();
    ServingStatus::try_from(answer.status).expect("a known serving status")
}

/// ListGroups with `filter`.
async fn listing(app: &TestApp, filter: &str) -> Result<pb::ListGroupsResponse, Status> {
    tokio::time::timeout(
        HANG_BOUND,
        try_list(
            app,
            pb::ListGroupsRequest {
                filter: filter.to_owned(),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the listing answered")
}

/// ListGroups with `filter` and a `grpc-timeout` of `timeout`, as a raw
/// HTTP/2 call: tonic's client enforces a deadline itself (and reports
/// CANCELLED when it passes first), while this shows the server's answer.
/// Returns the error the server answered, `None` for a success.
async fn listing_with_deadline(app: &TestApp, filter: &str, timeout: Duration) -> Option<Status> {
    use prost::Message as _;
    let encoded = pb::ListGroupsRequest {
        filter: filter.to_owned(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut body = vec![0_u8];
    body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&encoded);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let request = client
        .post(format!(
            "http://{}/groups.v1.GroupService/ListGroups",
            app.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", format!("{}m", timeout.as_millis()))
        .body(body);
    let reply = tokio::time::timeout(HANG_BOUND, request.send())
        .await
        .expect("the server answered")
        .expect("a gRPC response");
    // An error is answered trailers-only: its status is in the headers.
    Status::from_header_map(reply.headers())
}

/// GetGroup, then UpdateGroup of the description to `description`: what a
/// well-behaved client does. Returns the updated group.
async fn well_behaved(app: &TestApp, id: &str, description: &str) -> pb::Group {
    tokio::time::timeout(HANG_BOUND, async {
        get(app, id).await;
        set_description(app, id, description).await
    })
    .await
    .expect("the well-behaved calls answered")
}

/// The group's history has every write: its creation and `updates` more.
async fn assert_history(app: &TestApp, id: &str, updates: usize, description: &str) {
    let group = get(app, id).await;
    assert_eq!(group.description, description, "the last write is kept");
    let history = changes(app, id).await;
    assert_eq!(history.len(), updates + 1, "every write is in the history");
}

async fn the_probe_filter_is_refused_while_well_behaved_calls_keep_succeeding(app: TestApp) {
    const FIXTURE: usize = 3_000;
    const HOSTILE: usize = 10;
    const ROUNDS: usize = 20;
    let app = Arc::new(app);
    let steady = create(&app, named("steady")).await;
    let template = create(
        &app,
        with_labels(named("probed"), &[("a", "xyz"), ("team", "t")]),
    )
    .await;
    copy_group(&app, &template.id, "probed", FIXTURE).await;
    // The probe's shape within the budget: every group lacks a label `a`
    // holding a `b`.
    let within_budget = ["-labels.a:b"; 4].join(" ");
    let everyone = i32::try_from(FIXTURE + 2).unwrap();

    let mut hostile = JoinSet::new();
    for _ in 0..HOSTILE {
        let app = Arc::clone(&app);
        let (probe, within_budget) = (probe(), within_budget.clone());
        hostile.spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..5 {
                let refused = listing(&app, &probe).await.unwrap_err();
                assert_invalid_argument(&refused, "filter");
                let said = &violations(&refused)[0].description;
                assert!(
                    said.contains("170 negations") && said.contains("170 substring matches"),
                    "the violation says which budgets: {said}"
                );
                codes.push(match listing(&app, &within_budget).await {
                    Ok(page) => {
                        assert_eq!(page.total_size, everyone, "every group matches");
                        Code::Ok
                    }
                    Err(status) => {
                        assert_error(
                            &status,
                            Code::ResourceExhausted,
                            "TOO_MANY_FILTERED_LISTINGS",
                        );
                        status.code()
                    }
                });
            }
            codes
        });
    }
    for round in 0..ROUNDS {
        well_behaved(&app, &steady.id, &format!("round {round}")).await;
        assert_eq!(health(&app).await, ServingStatus::Serving, "round {round}");
    }
    let mut answered = 0;
    while let Some(codes) = hostile.join_next().await {
        answered += codes.expect("a hostile caller").len();
    }
    assert_eq!(answered, HOSTILE * 5);

    // The gateway refuses it the same way: 400, naming `filter`.
    let reply = http_get(
        &app,
        &format!("/v1/groups?filter={}", query_value(&probe())),
    )
    .await;
    assert_http_invalid(&reply, "filter");

    assert_history(&app, &steady.id, ROUNDS, &format!("round {}", ROUNDS - 1)).await;
    let all = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(all.total_size, everyone, "no group was lost");
    assert_eq!(health(&app).await, ServingStatus::Serving);
}

async fn a_listing_past_its_deadline_stops_in_the_database_and_readiness_holds_meanwhile(
    app: TestApp,
) {
    let app = Arc::new(app);
    let steady = create(&app, named("steady")).await;
    costly_fixture(&app).await;

    // The costly listing takes the pool's only connection until its
    // deadline.
    let costly = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            listing_with_deadline(&app, &costly_filter(), Duration::from_secs(3)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile no other call gets a connection...
    let starved = listing_with_deadline(&app, "", Duration::from_millis(500))
        .await
        .expect("no connection for another call");
    assert_eq!(starved.code(), Code::DeadlineExceeded, "{starved:?}");
    // ...yet the database is reachable, and readiness says so: the health
    // ping has a connection of its own.
    for check in 0..10 {
        assert_eq!(health(&app).await, ServingStatus::Serving, "check {check}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let answered = costly.await.unwrap().expect("the costly listing failed");
    assert_error(&answered, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    // The database stopped the statement: the connection is free long
    // before the statement could have ended (it runs for far longer than
    // the 5 s this call waits for a connection at most).
    let updated = well_behaved(&app, &steady.id, "after").await;
    assert_eq!(updated.description, "after");
    assert_history(&app, &steady.id, 1, "after").await;
    assert_eq!(health(&app).await, ServingStatus::Serving);
}

async fn filtered_listings_beyond_their_limit_are_refused_while_other_calls_succeed(app: TestApp) {
    const COSTLY_CALLERS: usize = 4;
    let app = Arc::new(app);
    let steady = create(&app, with_labels(named("steady"), &[("team", "t")])).await;
    let fixture = costly_fixture(&app).await;

    let mut costly = JoinSet::new();
    for _ in 0..COSTLY_CALLERS {
        let app = Arc::clone(&app);
        costly.spawn(async move {
            listing_with_deadline(&app, &costly_filter(), Duration::from_secs(3)).await
        });
    }
    // While one costly listing holds the one slot and the others wait for
    // it, every other kind of call has connections to run on.
    for round in 0..5 {
        well_behaved(&app, &steady.id, &format!("round {round}")).await;
        let all = list(&app, pb::ListGroupsRequest::default()).await;
        assert_eq!(all.total_size, i32::try_from(fixture + 1).unwrap());
        assert_eq!(health(&app).await, ServingStatus::Serving);
    }

    let mut codes = Vec::new();
    while let Some(answer) = costly.join_next().await {
        let status = answer.unwrap().expect("a costly listing finished");
        if status.code() == Code::ResourceExhausted {
            assert_error(
                &status,
                Code::ResourceExhausted,
                "TOO_MANY_FILTERED_LISTINGS",
            );
        }
        codes.push(status.code());
    }
    codes.sort_by_key(|code| *code as i32);
    let mut expected = vec![Code::ResourceExhausted; COSTLY_CALLERS - 1];
    expected.push(Code::DeadlineExceeded);
    expected.sort_by_key(|code| *code as i32);
    assert_eq!(
        codes, expected,
        "one listing ran until its deadline, the others found no slot"
    );

    // The slot is free again.
    let page = listing(&app, "labels.team = t").await.unwrap();
    assert_eq!(page.groups.len(), 1);
    assert_history(&app, &steady.id, 5, "round 4").await;
}
