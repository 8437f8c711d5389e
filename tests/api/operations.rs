//! What operators rely on: request ids, deadlines, draining on
//! SIGTERM, health through a database network cut, configuration that is
//! checked and logged without secrets.
//!
//! Slow calls are made slow for real: the test holds a write lock on the
//! database from its own connection (`SELECT … FOR UPDATE` on PostgreSQL,
//! `BEGIN IMMEDIATE` on SQLite), so groupd's write waits for it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use groupd::pb;
use prost::Message as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

// The statement timeout is set far beyond the test's hang guard, so that
// only the call's deadline can end these calls. Short bounds are never
// server-wide here: a short deadline is set on the call under test only,
// and a short --request-timeout or --db-statement-timeout is given to a
// second groupd (a child process on the same database) that serves only the
// calls under test, so that no setup call or check can meet it on a loaded
// machine.
both_backends!(
    args ["--db-statement-timeout", "120s"];
    a_client_grpc_timeout_shorter_than_the_call_answers_deadline_exceeded_and_writes_nothing,
    a_call_past_the_servers_request_timeout_answers_deadline_exceeded_and_writes_nothing,
);

both_backends!(a_statement_past_the_statement_timeout_is_cancelled_and_writes_nothing);

both_backends!(
    args ["--http-header-timeout", "300ms"];
    an_http_client_that_never_finishes_its_headers_is_disconnected,
);

both_backends!(
    request_ids_are_taken_or_generated_and_echoed_over_grpc_and_http,
    a_call_still_running_at_the_end_of_the_drain_is_cut_and_writes_nothing,
    sigterm_during_a_burst_of_slow_calls_lets_them_finish_and_exits_0,
    the_start_log_shows_the_effective_configuration_and_calls_log_their_request_id,
);

// A network cut can only be staged on PostgreSQL: SQLite is a local file.
postgres_only!(health_follows_the_database_through_a_network_cut);

// COMMIT is made slow by a deferred constraint trigger, which SQLite lacks.
// The statement timeout, which PostgreSQL applies to COMMIT too, is set far
// beyond the slow COMMIT.
postgres_only!(
    args ["--db-statement-timeout", "120s"];
    a_commit_begun_before_the_deadline_is_not_cut_answers_ok_and_is_stored,
);

/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// A write lock the test holds.
// ---------------------------------------------------------------------------

/// A write lock on a group, held by the test's own database connection:
/// groupd's writes to that group wait until [`WriteLock::release`].
struct WriteLock {
    db: DatabaseConnection,
    tx: DatabaseTransaction,
}

async fn hold_write_lock(app: &TestApp, group_id: &str) -> WriteLock {
    let db = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    let tx = match db.get_database_backend() {
        // SQLite has one writer: holding it stops every groupd write.
        DbBackend::Sqlite => db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .expect("BEGIN IMMEDIATE"),
        _ => {
            let tx = db.begin().await.expect("BEGIN");
            let locked = tx
                .execute_unprepared(&format!(
                    "SELECT id FROM groups WHERE id = '{group_id}' FOR UPDATE"
                ))
                .await
                .expect("SELECT … FOR UPDATE");
            assert_eq!(locked.rows_affected(), 1, "the group's row is locked");
            tx
        }
    };
    WriteLock { db, tx }
}

impl WriteLock {
    async fn release(self) {
        self.tx.rollback().await.expect("ROLLBACK");
        self.db.close().await.expect("the test's connection closes");
    }
}

/// An UpdateGroup request setting `labels.<key>` to `value`.
fn set_label(id: &str, key: &str, value: &str) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(pb::Group {
            labels: [(key.to_owned(), value.to_owned())].into(),
            ..patch(id)
        }),
        update_mask: Some(mask(&[&format!("labels.{key}")])),
        ..Default::default()
    }
}

/// Releases `lock`, then checks that the group is as `before`, and that
/// the next write (which would queue behind any write still on its way) is
/// the only change recorded since.
async fn assert_nothing_written(app: &TestApp, lock: WriteLock, before: &pb::Group) {
    let history = changes(app, &before.id).await;
    lock.release().await;
    assert_eq!(
        &get(app, &before.id).await,
        before,
        "the group is unchanged"
    );
    let next = update_request(app, set_label(&before.id, "after", "1"))
        .await
        .expect("a write after the lock is released");
    assert_ne!(next.etag, before.etag);
    assert!(!next.labels.contains_key("late"), "{next:?}");
    let after = changes(app, &before.id).await;
    assert_eq!(
        after.len(),
        history.len() + 1,
        "one change since: {after:?}"
    );
}

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

/// Sends, through `client`, an UpdateGroup that waits behind a
/// [`WriteLock`] on the group, and returns the error it ends with (bounded
/// against hangs).
async fn blocked_update(client: &mut Client, id: &str) -> tonic::Status {
    tokio::time::timeout(HANG_GUARD, client.update_group(set_label(id, "late", "1")))
        .await
        .expect("the call ended")
        .expect_err("the call cannot succeed while the lock is held")
}

/// Sends `method path` with a JSON body to a child groupd's gateway
/// (bounded against hangs).
async fn child_http(
    child: &Child,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> HttpReply {
    let request =
        reqwest::Client::new().request(method, format!("http://{}{path}", child.http_addr));
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    tokio::time::timeout(HANG_GUARD, send(request))
        .await
        .expect("the child answered")
}

// ---------------------------------------------------------------------------
// Request ids.
// ---------------------------------------------------------------------------

async fn request_ids_are_taken_or_generated_and_echoed_over_grpc_and_http(app: TestApp) {
    let group = create_named(&app, "traced").await;
    let mut client = app.client();

    // gRPC: the caller's id comes back in the response metadata, on
    // success and on error.
    let mut request = tonic::Request::new(pb::GetGroupRequest {
        id: group.id.clone(),
        view: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-1".parse().unwrap());
    let answer = client.get_group(request).await.expect("GetGroup");
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "caller-chosen-1"
    );
    let mut request = tonic::Request::new(pb::GetGroupRequest {
        id: "no-such-group".to_owned(),
        view: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-2".parse().unwrap());
    let status = client.get_group(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "caller-chosen-2"
    );

    // Without one, the server generates a UUID, a new one per call.
    let mut generated = Vec::new();
    for _ in 0..2 {
        let answer = client
            .get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view: 0,
            })
            .await
            .expect("GetGroup");
        let id = answer.metadata().get("x-request-id").unwrap();
        let id = uuid::Uuid::parse_str(id.to_str().unwrap()).expect("a UUID");
        generated.push(id);
    }
    assert_ne!(generated[0], generated[1]);

    // HTTP: the same, in headers; the gateway's own refusals too.
    let reply = send(
        app.request(reqwest::Method::GET, &format!("/v1/groups/{}", group.id))
            .header("x-request-id", "http-caller-1"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some("http-caller-1"));
    let reply = send(
        app.request(reqwest::Method::GET, "/v1/no/such/route")
            .header("x-request-id", "http-caller-2"),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("http-caller-2"));
    let reply = http_get(&app, &format!("/v1/groups/{}", group.id)).await;
    let generated = reply.header("x-request-id").expect("a generated id");
    uuid::Uuid::parse_str(generated).expect("a UUID");
}

// ---------------------------------------------------------------------------
// Deadlines.
// ---------------------------------------------------------------------------

async fn a_call_past_the_servers_request_timeout_answers_deadline_exceeded_and_writes_nothing(
    app: TestApp,
) {
    let group = create_named(&app, "slow").await;
    // The groupd under test: only the calls under test go to it, so only
    // they can meet its short --request-timeout; setup and checks go to the
    // test's own server (default bound) on the same database.
    let mut child = Child::serve(
        app.database_url(),
        &[
            "--request-timeout",
            "300ms",
            "--db-statement-timeout",
            "120s",
        ],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;

    // The client sets no deadline; the server's --request-timeout ends the
    // call (the lock is held until after it answered, and the statement
    // timeout is far away: nothing else can end it).
    let status = blocked_update(&mut client, &group.id).await;
    assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");

    // The same through the gateway: 504 with the gRPC status as JSON.
    let reply = child_http(
        &child,
        reqwest::Method::PATCH,
        &format!("/v1/groups/{}?updateMask=labels.late", group.id),
        Some(&serde_json::json!({"labels": {"late": "1"}})),
    )
    .await;
    assert_http_error(&reply, 504, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");

    // Reads do not wait for the writer's lock and are served meanwhile.
    assert_eq!(get(&app, &group.id).await, group);
    assert_nothing_written(&app, lock, &group).await;

    // The child served the two calls under test and nothing else: each is
    // counted once, as DEADLINE_EXCEEDED.
    let metrics = child_http(&child, reqwest::Method::GET, "/metrics", None).await;
    let text = metrics.body.as_str().expect("metrics text");
    for transport in ["grpc", "http"] {
        let counted = format!(
            "groupd_requests_total{{transport=\"{transport}\",method=\"UpdateGroup\",code=\"DEADLINE_EXCEEDED\"}} 1"
        );
        assert!(text.contains(&counted), "{counted} missing from {text}");
    }
    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
}

async fn a_statement_past_the_statement_timeout_is_cancelled_and_writes_nothing(app: TestApp) {
    let group = create_named(&app, "slow").await;
    // As above: only the call under test meets the short statement timeout
    // (started before the lock is taken, so that its own start-up writes do
    // not wait for it).
    let mut child = Child::serve(
        app.database_url(),
        &["--db-statement-timeout", "300ms"],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;
    let status = blocked_update(&mut client, &group.id).await;
    // PostgreSQL cancels the statement (statement_timeout): the call took
    // too long. SQLite gives up waiting for the other writer (busy
    // timeout): the database is busy, and a retry may succeed.
    if app.database_url().starts_with("sqlite:") {
        assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    } else {
        assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    }
    assert_nothing_written(&app, lock, &group).await;
    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
}

/// A raw gRPC call over HTTP/2 with a `grpc-timeout` header. Real clients
/// also enforce their deadline themselves (and tonic's client then reports
/// CANCELLED on its own), so a raw call is what shows the server's answer.
async fn raw_grpc_call(
    app: &TestApp,
    method: &str,
    message: &impl prost::Message,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let encoded = message.encode_to_vec();
    let mut body = vec![0_u8];
    body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&encoded);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut request = client
        .post(format!(
            "http://{}/groups.v1.GroupService/{method}",
            app.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    tokio::time::timeout(HANG_GUARD, request.send())
        .await
        .expect("the server answered")
        .expect("a gRPC response")
}

async fn a_client_grpc_timeout_shorter_than_the_call_answers_deadline_exceeded_and_writes_nothing(
    app: TestApp,
) {
    let group = create_named(&app, "slow").await;
    let lock = hold_write_lock(&app, &group.id).await;

    let reply = raw_grpc_call(
        &app,
        "UpdateGroup",
        &set_label(&group.id, "late", "1"),
        &[("grpc-timeout", "300m"), ("x-request-id", "deadline-1")],
    )
    .await;
    // An error is answered trailers-only: the status is in the headers.
    let header = |name| reply.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("grpc-status"), Some("4"), "{reply:?}");
    assert!(
        header("grpc-message").is_some_and(|m| m.contains("deadline")),
        "{reply:?}"
    );
    assert_eq!(header("x-request-id"), Some("deadline-1"));

    // Through the gateway, the forwarded `grpc-timeout` does the same.
    let reply = send(
        app.request(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{}?updateMask=labels.late", group.id),
        )
        .header("grpc-timeout", "300m")
        .json(&serde_json::json!({"labels": {"late": "1"}})),
    )
    .await;
    assert_http_error(&reply, 504, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");

    // tonic's own client gives up at its deadline too (reporting it as
    // CANCELLED, tonic's choice); whatever the client says, nothing lands.
    let mut request = tonic::Request::new(set_label(&group.id, "late", "2"));
    request.set_timeout(Duration::from_millis(300));
    let outcome = tokio::time::timeout(HANG_GUARD, app.client().update_group(request))
        .await
        .expect("the call ended");
    assert!(outcome.is_err(), "{outcome:?}");

    assert_nothing_written(&app, lock, &group).await;

    // A deadline long enough is no obstacle (a minute: even a loaded machine
    // answers a read within it).
    let reply = raw_grpc_call(
        &app,
        "GetGroup",
        &pb::GetGroupRequest {
            id: group.id.clone(),
            view: 0,
        },
        &[("grpc-timeout", "1M")],
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/grpc")
    );
}

/// How long the test's trigger makes a COMMIT take.
const SLOW_COMMIT_SECS: u64 = 6;

/// The deadline of the calls whose COMMIT is slow: far longer than the
/// statements before COMMIT take, even on a loaded machine, and shorter
/// than the COMMIT.
const DEADLINE_BEFORE_THE_SLOW_COMMIT: &str = "3S";

/// Makes every COMMIT of a write that sets label `slow-commit` on a group
/// take [`SLOW_COMMIT_SECS`]: a deferred constraint trigger runs at COMMIT.
async fn slow_down_commits(app: &TestApp) {
    let db = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    db.execute_unprepared(&format!(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep({SLOW_COMMIT_SECS}); RETURN NULL; END $$"
    ))
    .await
    .expect("CREATE FUNCTION");
    db.execute_unprepared(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON groups \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
         WHEN (NEW.labels LIKE '%slow-commit%') EXECUTE FUNCTION slow_commit()",
    )
    .await
    .expect("CREATE CONSTRAINT TRIGGER");
    db.close().await.expect("the test's connection closes");
}

async fn a_commit_begun_before_the_deadline_is_not_cut_answers_ok_and_is_stored(app: TestApp) {
    let over_grpc = create_named(&app, "commit-grpc").await;
    let over_http = create_named(&app, "commit-http").await;
    slow_down_commits(&app).await;

    // One call over gRPC (raw, so that the client does not enforce the
    // deadline itself) and one through the gateway, on two groups so that
    // neither waits for the other's lock; both reach COMMIT well before
    // their deadline, and their COMMIT ends well after it.
    let request = set_label(&over_grpc.id, "slow-commit", "grpc");
    let started = std::time::Instant::now();
    let (grpc, http) = tokio::join!(
        raw_grpc_call(
            &app,
            "UpdateGroup",
            &request,
            &[("grpc-timeout", DEADLINE_BEFORE_THE_SLOW_COMMIT)],
        ),
        tokio::time::timeout(
            HANG_GUARD,
            send(
                app.request(
                    reqwest::Method::PATCH,
                    &format!("/v1/groups/{}?updateMask=labels.slow-commit", over_http.id),
                )
                .header("grpc-timeout", DEADLINE_BEFORE_THE_SLOW_COMMIT)
                .json(&serde_json::json!({"labels": {"slow-commit": "http"}})),
            ),
        ),
    );
    let elapsed = started.elapsed();
    let http = http.expect("the gateway answered");

    // The commit had begun: the deadline did not cut it, and the caller is
    // told what happened, OK with the updated group.
    let header = |name| grpc.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(grpc.status(), 200, "{grpc:?}");
    assert_eq!(
        header("grpc-status"),
        None,
        "an error answered trailers-only: {:?} {:?}",
        header("grpc-status"),
        header("grpc-message")
    );
    let body = grpc.bytes().await.expect("the gRPC body");
    assert!(body.len() >= 5 && body[0] == 0, "{body:?}");
    let answered = pb::Group::decode(&body[5..]).expect("an UpdateGroup answer");
    assert_eq!(
        answered.labels.get("slow-commit").map(String::as_str),
        Some("grpc")
    );
    let http = http_ok(http);
    assert_eq!(http["labels"]["slow-commit"], "http", "{http}");
    // A lower bound, which load cannot break: the answers came after the
    // slow COMMIT, so after the deadline (else the test proved nothing).
    assert!(
        elapsed >= Duration::from_secs(SLOW_COMMIT_SECS),
        "answered after {elapsed:?}: the COMMIT was not slowed down"
    );

    // And the writes are stored, once each.
    for (group, value) in [(&over_grpc, "grpc"), (&over_http, "http")] {
        let stored = get(&app, &group.id).await;
        assert_eq!(
            stored.labels.get("slow-commit").map(String::as_str),
            Some(value)
        );
        assert_ne!(stored.etag, group.etag);
        assert_eq!(
            kinds(&changes(&app, &group.id).await),
            [pb::ChangeKind::Create, pb::ChangeKind::Update]
        );
    }
    assert_eq!(get(&app, &over_grpc.id).await, answered);
}

// ---------------------------------------------------------------------------
// Shutdown.
// ---------------------------------------------------------------------------

async fn sigterm_during_a_burst_of_slow_calls_lets_them_finish_and_exits_0(app: TestApp) {
    const CALLS: usize = 8;
    let group = create_named(&app, "busy").await;
    let mut child = Child::serve(
        app.database_url(),
        &[
            "--log-filter",
            "info,groupd::grpc=debug",
            "--drain-timeout",
            "60s",
        ],
        ChildLog::Keep,
    )
    .await;
    let client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;

    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut client = client.clone();
            let request = set_label(&group.id, &format!("k{i}"), &format!("v{i}"));
            tokio::spawn(async move { client.update_group(request).await })
        })
        .collect();
    // Every call has reached groupd and waits for the lock.
    child
        .wait_for_log(CALLS, |event| {
            event["message"] == "call started" && event["span"]["method"] == "UpdateGroup"
        })
        .await;

    child.terminate().await;
    // Both ports stop accepting once draining starts (no shutdown delay)...
    child
        .wait_for_log(2, |event| event["message"] == "draining")
        .await;
    for addr in [&child.grpc_addr, &child.http_addr] {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts connections while draining"
        );
    }
    // ...but the calls in flight are not cut.
    assert!(
        child.process.try_wait().unwrap().is_none(),
        "groupd exited with calls in flight"
    );

    lock.release().await;
    for call in calls {
        let answer = tokio::time::timeout(HANG_GUARD, call)
            .await
            .expect("the call finished")
            .unwrap();
        answer.unwrap_or_else(|status| panic!("an in-flight call failed: {status:?}"));
    }
    let status = child.wait().await;
    assert_eq!(status.code(), Some(0), "groupd exited with {status:?}");

    let labels = get(&app, &group.id).await.labels;
    let expected: BTreeMap<String, String> = (0..CALLS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    assert_eq!(labels.into_iter().collect::<BTreeMap<_, _>>(), expected);
    let log = child.log();
    assert!(
        log.iter().any(|event| event["message"] == "stopped"),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|event| event["message"].as_str().is_some_and(|m| m.contains("cut"))),
        "no call was cut: {log:?}"
    );
}

async fn a_call_still_running_at_the_end_of_the_drain_is_cut_and_writes_nothing(app: TestApp) {
    let group = create_named(&app, "stuck").await;
    let mut child = Child::serve(
        app.database_url(),
        &[
            "--log-filter",
            "info,groupd::grpc=debug",
            "--drain-timeout",
            "300ms",
            "--db-statement-timeout",
            "120s",
        ],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let lock = hold_write_lock(&app, &group.id).await;
    let request = set_label(&group.id, "late", "1");
    let call = tokio::spawn(async move { client.update_group(request).await });
    child
        .wait_for_log(1, |event| {
            event["message"] == "call started" && event["span"]["method"] == "UpdateGroup"
        })
        .await;

    child.terminate().await;
    // The lock is still held: the call cannot finish, and the drain timeout
    // ends the wait.
    let status = child.wait().await;
    assert_eq!(status.code(), Some(0), "groupd exited with {status:?}");
    let outcome = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ended")
        .unwrap();
    assert!(outcome.is_err(), "the cut call succeeded: {outcome:?}");
    let log = child.log();
    for message in [
        "calls still running after the drain timeout are cut",
        "call cancelled before it finished",
    ] {
        assert!(
            log.iter().any(|event| event["message"] == message),
            "{message:?} not logged: {log:?}"
        );
    }
    assert_nothing_written(&app, lock, &group).await;
}

async fn an_http_client_that_never_finishes_its_headers_is_disconnected(app: TestApp) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut slow = TcpStream::connect(app.http_addr).await.unwrap();
    slow.write_all(b"GET /v1/groups HTTP/1.1\r\nHost: groupd\r\n")
        .await
        .unwrap();
    // The server gives up on the headers (after --http-header-timeout) and
    // closes the connection: the read ends, at the end of the stream or
    // with a reset, rather than wait for headers that never come. The
    // bound is against a hang only.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, slow.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection was still open after {HANG_GUARD:?}: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
    if let Err(error) = read {
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the connection ended with {error}"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The request never reached a handler: nothing answered 200.
    assert!(!answer.contains(" 200 "), "{answer}");
    // Others are served meanwhile and after.
    let reply = http_get(&app, "/v1/groups").await;
    assert_eq!(reply.status, 200);
}

// ---------------------------------------------------------------------------
// Logs.
// ---------------------------------------------------------------------------

/// A password the test's PostgreSQL (trust authentication) ignores, so it
/// can be put in a URL that still connects.
const SECRET: &str = "pw-s3cr3t-do-not-log";

async fn the_start_log_shows_the_effective_configuration_and_calls_log_their_request_id(
    app: TestApp,
) {
    let (url, shown) = match app.database_url().strip_prefix("postgres://postgres@") {
        Some(rest) => (
            format!("postgres://postgres:{SECRET}@{rest}"),
            format!("postgres://postgres:REDACTED@{rest}"),
        ),
        None => (app.database_url().to_owned(), app.database_url().to_owned()),
    };
    let mut child = Child::serve(
        &url,
        &["--request-timeout", "97s", "--db-max-connections", "3"],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let mut request = tonic::Request::new(pb::CreateGroupRequest {
        group: Some(named("logged")),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    client.create_group(request).await.expect("CreateGroup");

    let config = child
        .wait_for_log(1, |event| event["message"] == "effective configuration")
        .await
        .remove(0);
    assert_eq!(config["database_url"], shown.as_str(), "{config}");
    assert_eq!(config["request_timeout"], "97s", "{config}");
    assert_eq!(config["db_max_connections"], 3, "{config}");
    assert_eq!(config["grpc_addr"], "127.0.0.1:0", "{config}");
    assert_eq!(config["skip_migrations"], true, "{config}");

    let call = child
        .wait_for_log(1, |event| {
            event["message"] == "call finished" && event["span"]["request_id"] == "trace-me-42"
        })
        .await
        .remove(0);
    let span = &call["span"];
    assert_eq!(span["name"], "call", "{call}");
    assert_eq!(span["method"], "CreateGroup", "{call}");
    assert_eq!(span["transport"], "grpc", "{call}");
    assert_eq!(span["code"], "OK", "{call}");
    assert!(
        span["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{call}"
    );

    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
    let whole = serde_json::to_string(&child.log()).unwrap();
    assert!(!whole.contains(SECRET), "the password was logged: {whole}");
}

#[tokio::test]
async fn a_database_password_is_never_logged_even_when_the_database_cannot_be_reached() {
    // Nothing listens on port 1.
    let url = format!("postgres://groupd:{SECRET}@127.0.0.1:1/groupd");
    let (status, log) = Child::run(
        &[
            "serve",
            "--database-url",
            &url,
            "--db-connect-timeout",
            "1s",
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("postgres://groupd:REDACTED@127.0.0.1:1/groupd"),
        "{log}"
    );
    assert!(log.contains("groupd failed"), "{log}");
    assert!(!log.contains(SECRET), "the password was logged: {log}");
}

#[tokio::test]
async fn invalid_settings_are_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("groupd_cfg_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("never.db");
    let url = format!("sqlite://{}", db.display());
    let mysql = format!("mysql://groupd:{SECRET}@db/groupd");
    for (args, env, names) in [
        (
            vec!["serve", "--database-url", &url, "--db-max-connections", "0"],
            vec![],
            "--db-max-connections",
        ),
        (
            vec!["serve", "--database-url", &url],
            vec![("GROUPD_REQUEST_TIMEOUT", "0s")],
            "--request-timeout",
        ),
        (
            vec!["serve", "--database-url", &url],
            vec![("GROUPD_DRAIN_TIMEOUT", "soon")],
            "--drain-timeout",
        ),
        (
            vec![
                "serve",
                "--database-url",
                &url,
                "--grpc-addr",
                "127.0.0.1:7",
            ],
            vec![("GROUPD_HTTP_ADDR", "127.0.0.1:7")],
            "--http-addr",
        ),
        (
            vec!["serve", "--database-url", &mysql],
            vec![],
            "--database-url",
        ),
        (
            vec!["migrate"],
            vec![("GROUPD_DATABASE_URL", mysql.as_str())],
            "--database-url",
        ),
    ] {
        let (status, log) = Child::run(&args, &env).await;
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {log}");
        assert!(
            log.contains(names),
            "{args:?} {env:?} should name {names}: {log}"
        );
        assert!(!log.contains(SECRET), "a password was echoed: {log}");
    }
    assert!(!db.exists(), "a refused start created the database");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn skip_migrations_refuses_a_stale_schema_until_migrate_has_run() {
    let path = std::env::temp_dir().join(format!(
        "groupd_migrate_{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = format!("sqlite://{}", path.display());
    let serve = [
        "serve",
        "--database-url",
        &url,
        "--skip-migrations",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let (status, log) = Child::run(&serve, &[]).await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("run `groupd migrate` first"), "{log}");

    let (status, log) = Child::run(&["migrate", "--database-url", &url], &[]).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("migrations applied"), "{log}");

    let mut child = Child::serve(&url, &[], ChildLog::Keep).await;
    let created = child
        .client()
        .await
        .create_group(pb::CreateGroupRequest {
            group: Some(named("after-migrate")),
            ..Default::default()
        })
        .await
        .expect("serving on the migrated schema");
    assert_eq!(created.get_ref().name, "after-migrate");
    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

// ---------------------------------------------------------------------------
// Health through a network cut.
// ---------------------------------------------------------------------------

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwards both ways.
    Up,
    /// Closes every connection, and each new one at once (a refused or
    /// reset path).
    Refused,
    /// Keeps connections open but forwards nothing (a black hole, as a
    /// network partition looks); they are closed when the link changes.
    Silent,
}

/// A TCP proxy in front of PostgreSQL that the test can cut.
struct Proxy {
    addr: std::net::SocketAddr,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watching) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, upstream.clone(), watching.clone()));
            }
        });
        Self { addr, link, task }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one proxied connection while the link stays as it was when the
/// connection came in.
async fn pipe(mut client: TcpStream, upstream: String, mut link: watch::Receiver<Link>) {
    let at_accept = *link.borrow_and_update();
    match at_accept {
        Link::Refused => {}
        Link::Silent => {
            let _ = link.changed().await;
        }
        Link::Up => {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                _ = link.changed() => {}
            }
            // Gone silent: both sockets stay open, and nothing passes, until
            // the link changes again.
            if *link.borrow_and_update() == Link::Silent {
                let _ = link.changed().await;
            }
        }
    }
}

/// Waits until the health Watch of `service` reports `wanted`.
async fn wait_for(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
) {
    let mut watch = health
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health Watch")
        .into_inner();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let waited = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match watch.message().await {
                Ok(Some(update)) if update.status() == wanted => return,
                Ok(Some(update)) => seen.lock().unwrap().push(update.status()),
                other => panic!("the health Watch ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{service:?} never reported {wanted:?}; saw {:?}",
        seen.lock().unwrap()
    );
}

async fn status_of(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health Check")
        .into_inner()
        .status()
}

async fn health_follows_the_database_through_a_network_cut(app: TestApp) {
    let group = create_named(&app, "behind-a-proxy").await;
    let rest = app
        .database_url()
        .strip_prefix("postgres://")
        .expect("a PostgreSQL URL");
    let (user, rest) = rest.split_once('@').expect("user@host");
    let (upstream, database) = rest.split_once('/').expect("host/database");
    let proxy = Proxy::start(upstream.to_owned()).await;
    let child = Child::serve(
        &format!("postgres://{user}@{}/{database}", proxy.addr),
        &[
            "--db-health-interval",
            "200ms",
            "--db-connect-timeout",
            "1s",
            "--db-acquire-timeout",
            "1s",
            "--request-timeout",
            "2s",
        ],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", child.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    for service in ["", "groups.v1.GroupService", "liveness"] {
        assert_eq!(
            status_of(&mut health, service).await,
            ServingStatus::Serving
        );
    }

    for cut in [Link::Refused, Link::Silent] {
        proxy.set(cut);
        // The server's status and the GroupService's are set one after the
        // other: wait for each rather than check the second at once.
        wait_for(&mut health, "", ServingStatus::NotServing).await;
        wait_for(
            &mut health,
            "groups.v1.GroupService",
            ServingStatus::NotServing,
        )
        .await;
        // Liveness does not follow the database: no restarts in an outage.
        assert_eq!(
            status_of(&mut health, "liveness").await,
            ServingStatus::Serving,
            "{cut:?}"
        );
        // Calls fail fast with a retryable code rather than hang.
        let status = tokio::time::timeout(
            HANG_GUARD,
            client.get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view: 0,
            }),
        )
        .await
        .expect("the call ended")
        .unwrap_err();
        assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{cut:?}: {status:?}"
        );

        proxy.set(Link::Up);
        wait_for(&mut health, "", ServingStatus::Serving).await;
        let answer = tokio::time::timeout(HANG_GUARD, async {
            // The first call may meet a pooled connection the cut closed,
            // and on a loaded machine a new connection may take longer than
            // the short bounds this server runs with: those are retried (the
            // guard ends a server that never recovers).
            loop {
                match client
                    .get_group(pb::GetGroupRequest {
                        id: group.id.clone(),
                        view: 0,
                    })
                    .await
                {
                    Ok(answer) => return answer.into_inner(),
                    Err(status)
                        if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {}
                    Err(status) => panic!("{cut:?}: after the cut: {status:?}"),
                }
            }
        })
        .await
        .expect("served again after the cut");
        assert_eq!(answer, group);
    }
}
