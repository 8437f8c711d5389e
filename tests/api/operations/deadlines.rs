//! Deadlines: a call past the client's `grpc-timeout`, past the server's
//! --request-timeout or past the database's statement timeout ends with
//! DEADLINE_EXCEEDED (UNAVAILABLE when SQLite gives up waiting for the
//! other writer) and writes nothing; a call whose COMMIT began before its
//! deadline is not cut, answers OK and is stored.

use std::time::Duration;

use groupd::pb;
use prost::Message as _;
use sea_orm::ConnectionTrait;
use tonic::Code;

use super::{HANG_GUARD, assert_nothing_written, hold_write_lock, set_label};
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

// COMMIT is made slow by a deferred constraint trigger, which SQLite lacks.
// The statement timeout, which PostgreSQL applies to COMMIT too, is set far
// beyond the slow COMMIT.
postgres_only!(
    args ["--db-statement-timeout", "120s"];
    a_commit_begun_before_the_deadline_is_not_cut_answers_ok_and_is_stored,
);

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

/// Sends, through `client`, an UpdateGroup that waits behind a
/// [`WriteLock`](super::WriteLock) on the group, and returns the error it
/// ends with (bounded against hangs).
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
