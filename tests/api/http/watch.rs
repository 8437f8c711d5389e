//! `GET /v1/groups:watch`: WatchGroupChanges over HTTP, read as it
//! arrives. Newline-delimited JSON by default (`{"result": …}` per line,
//! `{"error": …}` last when the stream fails), Server-Sent Events with
//! `Accept: text/event-stream` (ids are cursors, `Last-Event-ID` resumes);
//! refusals before the stream opens are ordinary error answers.

use std::time::Duration;

use groupd::{domain::watch::Cursor, pb};
use prost_reflect::DynamicMessage;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::{
    helpers::*,
    watch::{self as grpc_watch, open_streams},
};

/// How long a test waits for what it expects: a bound against hangs, not
/// a timing assertion.
const PATIENCE: Duration = Duration::from_secs(15);

both_backends!(
    ndjson_lines_arrive_live_and_carry_what_grpc_sends,
    heartbeats_come_at_the_interval_the_query_asks,
    a_stream_resumes_over_http_from_a_cursor,
    server_sent_events_are_named_and_identified_by_their_cursor,
    last_event_id_resumes_even_when_the_url_says_start_from_now,
    a_malformed_query_is_400_with_a_violation_and_nothing_streams,
    a_cursor_ahead_of_the_feed_is_400_out_of_range_cursor_expired,
    shutdown_ends_the_stream_with_a_last_unavailable_error_in_either_form,
    a_client_deadline_ends_the_stream_with_a_deadline_exceeded_line,
    a_client_that_goes_away_frees_its_stream,
);

// Streams outlive the server's request timeout: only the client's own
// `grpc-timeout` bounds them.
both_backends!(
    args ["--request-timeout", "1s"];
    the_request_timeout_does_not_cut_a_stream,
);

/// The path of a watch with `query`.
pub(crate) fn watch(query: &str) -> String {
    format!("/v1/groups:watch{query}")
}

/// An open HTTP stream, read as it arrives.
pub(crate) struct Stream {
    response: reqwest::Response,
    /// What arrived and was not read yet.
    pending: Vec<u8>,
}

impl Stream {
    /// Sends `request` and asserts a 200 of `content_type`.
    pub(crate) async fn open(request: reqwest::RequestBuilder, content_type: &str) -> Self {
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("the stream's headers came in time")
            .expect("the request was sent");
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        assert_eq!(
            response.headers()["content-type"],
            content_type,
            "{response:?}"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache");
        Self {
            response,
            pending: Vec::new(),
        }
    }

    /// Opens `GET path` as newline-delimited JSON.
    pub(crate) async fn ndjson(app: &TestApp, path: &str) -> Self {
        Self::open(app.request(Method::GET, path), "application/x-ndjson").await
    }

    /// Opens `GET path` as Server-Sent Events, with `Last-Event-ID` when
    /// given, and reads the `retry` that comes first.
    pub(crate) async fn sse(app: &TestApp, path: &str, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .request(Method::GET, path)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let mut stream = Self::open(request, "text/event-stream").await;
        let first = stream.event().await.expect("the stream has a first block");
        assert_eq!(first, [("retry".to_owned(), "2000".to_owned())]);
        stream
    }

    /// The next line (without its `\n`), within [`PATIENCE`]; `None` once
    /// the body has ended.
    pub(crate) async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8(line[..end].to_vec()).expect("UTF-8"));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no line within {PATIENCE:?}"))
                .expect("the body reads");
            match chunk {
                Some(bytes) => self.pending.extend_from_slice(&bytes),
                None => {
                    assert!(self.pending.is_empty(), "the body ended inside a line");
                    return None;
                }
            }
        }
    }

    /// The next NDJSON line as JSON; panics when the body has ended.
    pub(crate) async fn json(&mut self) -> Value {
        let line = self.line().await.expect("the stream is still open");
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("{line:?}: {error}"))
    }

    /// The next message of an NDJSON stream: the value of a `result` line.
    pub(crate) async fn result(&mut self) -> Value {
        let line = self.json().await;
        let object = line.as_object().expect("a line is an object");
        assert_eq!(object.len(), 1, "{line}");
        line.get("result")
            .unwrap_or_else(|| panic!("not a result: {line}"))
            .clone()
    }

    /// The next change of an NDJSON stream, heartbeats skipped, within
    /// [`PATIENCE`].
    pub(crate) async fn change(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only heartbeats for {PATIENCE:?}"
            );
            let result = self.result().await;
            if result.get("change").is_some() {
                return result;
            }
            assert!(result.get("heartbeat").is_some(), "{result}");
        }
    }

    /// The next SSE block: its `name: value` fields in order; `None` once
    /// the body has ended.
    pub(crate) async fn event(&mut self) -> Option<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let Some(line) = self.line().await else {
                assert!(fields.is_empty(), "the body ended inside an event");
                return None;
            };
            if line.is_empty() {
                return Some(fields);
            }
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("not a field: {line:?}"));
            fields.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The next SSE event as `(event, id, data)`: every message event has
    /// the three, once each.
    pub(crate) async fn message_event(&mut self) -> (String, String, Value) {
        let fields = self.event().await.expect("the stream is still open");
        let one = |name: &str| {
            let values: Vec<&String> = fields
                .iter()
                .filter(|(field, _)| field == name)
                .map(|(_, value)| value)
                .collect();
            assert_eq!(values.len(), 1, "{name} in {fields:?}");
            values[0].clone()
        };
        let data = one("data");
        let data = serde_json::from_str(&data).unwrap_or_else(|error| panic!("{data}: {error}"));
        (one("event"), one("id"), data)
    }

    /// The next SSE change event, heartbeats skipped, within [`PATIENCE`].
    pub(crate) async fn change_event(&mut self) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only heartbeats for {PATIENCE:?}"
            );
            let (event, id, data) = self.message_event().await;
            assert_eq!(data["cursor"], id.as_str(), "the id is the cursor");
            match event.as_str() {
                "change" => return (id, data),
                "heartbeat" => assert!(data.get("heartbeat").is_some(), "{data}"),
                other => panic!("an event {other:?}"),
            }
        }
    }
}

/// A `result` as the gRPC message it stands for: the JSON decoded by the
/// contract's own descriptors, unknown fields refused.
fn as_message(result: &Value) -> pb::WatchGroupChangesResponse {
    let pool = groupd::http::descriptor_pool().unwrap();
    let descriptor = pool
        .get_message_by_name("groups.v1.WatchGroupChangesResponse")
        .unwrap();
    let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(descriptor, result, &options)
        .unwrap_or_else(|error| panic!("{result}: {error}"))
        .transcode_to()
        .unwrap()
}

/// Asserts `status` is the JSON `google.rpc.Status` of `code` with
/// ErrorInfo `reason`.
#[track_caller]
fn assert_status_json(status: &Value, code: Code, reason: &str) {
    assert_eq!(status["code"], json!(code as i32), "{status}");
    assert!(
        status["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{status}"
    );
    let info = status["details"]
        .as_array()
        .and_then(|details| {
            details
                .iter()
                .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        })
        .unwrap_or_else(|| panic!("no ErrorInfo in {status}"));
    assert_eq!(info["reason"], reason, "{status}");
    assert_eq!(info["domain"], DOMAIN, "{status}");
}

async fn ndjson_lines_arrive_live_and_carry_what_grpc_sends(app: TestApp) {
    let mut http = Stream::ndjson(&app, &watch("?startFromNow=true")).await;
    let mut grpc = grpc_watch::open(&app, grpc_watch::from_now()).await;

    let created = create(&app, with_labels(named("live"), &[("team", "sre")])).await;
    let first = http.change().await;
    // Read while the stream is open: a change made now comes next.
    let updated = set_description(&app, &created.id, "read live").await;
    let second = http.change().await;

    for (json, version, kind) in [
        (&first, 1, "CHANGE_KIND_CREATE"),
        (&second, 2, "CHANGE_KIND_UPDATE"),
    ] {
        assert_eq!(json["groupId"], created.id.as_str(), "{json}");
        assert_eq!(json["change"]["version"], version.to_string(), "{json}");
        assert_eq!(json["change"]["kind"], kind, "{json}");
        assert_eq!(json["change"]["group"]["id"], created.id.as_str(), "{json}");
        assert!(json["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    }
    assert_eq!(
        second["change"]["group"]["description"], "read live",
        "{second}"
    );
    assert_eq!(
        second["change"]["group"]["etag"],
        updated.etag.as_str(),
        "{second}"
    );

    // Field by field, what gRPC sends for the same changes.
    let mut from_grpc = Vec::new();
    while from_grpc.len() < 2 {
        let message = grpc_watch::next_message(&mut grpc).await.unwrap();
        if grpc_watch::seen(&message).is_some() {
            from_grpc.push(message);
        }
    }
    assert_eq!(vec![as_message(&first), as_message(&second)], from_grpc);
}

async fn heartbeats_come_at_the_interval_the_query_asks(app: TestApp) {
    // The default interval is 10 s: heartbeats within a few seconds were
    // asked for. The proto name of the parameter works too.
    for query in [
        "?startFromNow=true&heartbeatInterval=1s",
        "?start_from_now=true&heartbeat_interval=1.5s",
    ] {
        let opened = tokio::time::Instant::now();
        let mut stream = Stream::ndjson(&app, &watch(query)).await;
        let first = stream.result().await;
        let second = stream.result().await;
        let waited = opened.elapsed();
        assert!(waited < Duration::from_secs(8), "{query}: {waited:?}");
        for beat in [&first, &second] {
            assert_eq!(beat["heartbeat"], json!({}), "{query}: {beat}");
            assert!(beat.get("groupId").is_none(), "{beat}");
        }
        // Nothing happened between them: the cursor did not move.
        assert_eq!(first["cursor"], second["cursor"], "{query}");
        assert!(first["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    }
}

async fn a_stream_resumes_over_http_from_a_cursor(app: TestApp) {
    let listed = grpc_watch::listing_cursor(&app).await;
    let seen_first = create_named(&app, "seen-first").await;
    let mut stream = Stream::ndjson(&app, &watch(&format!("?cursor={listed}"))).await;
    let first = stream.change().await;
    assert_eq!(first["groupId"], seen_first.id.as_str());
    let resume_at = first["cursor"].as_str().unwrap().to_owned();
    drop(stream);

    let missed = create_named(&app, "made-while-away").await;
    let mut resumed = Stream::ndjson(&app, &watch(&format!("?cursor={resume_at}"))).await;
    let next = resumed.change().await;
    assert_eq!(next["groupId"], missed.id.as_str(), "{next}");
    assert_eq!(next["change"]["kind"], "CHANGE_KIND_CREATE");

    // The listing's cursor read over HTTP resumes the same way.
    let listing = http_ok(http_get(&app, "/v1/groups").await);
    let cursor = listing["cursor"].as_str().unwrap().to_owned();
    let after_listing = create_named(&app, "after-the-listing").await;
    let mut from_listing = Stream::ndjson(&app, &watch(&format!("?cursor={cursor}"))).await;
    assert_eq!(
        from_listing.change().await["groupId"],
        after_listing.id.as_str()
    );
}

async fn server_sent_events_are_named_and_identified_by_their_cursor(app: TestApp) {
    let mut stream = Stream::sse(
        &app,
        &watch("?startFromNow=true&heartbeatInterval=1s"),
        None,
    )
    .await;
    let (event, id, data) = stream.message_event().await;
    assert_eq!(event, "heartbeat");
    assert_eq!(data["cursor"], id.as_str());
    assert_eq!(data["heartbeat"], json!({}));
    let start = id;

    let group = create_named(&app, "announced").await;
    let (id, data) = stream.change_event().await;
    assert_ne!(id, start, "a change moves the cursor");
    assert_eq!(data["groupId"], group.id.as_str());
    assert_eq!(data["change"]["kind"], "CHANGE_KIND_CREATE");
    // The data is the message itself, as a `result` line carries it.
    let message = as_message(&data);
    assert_eq!(message.cursor, id);
    assert_eq!(message.group_id, group.id);

    // The next heartbeat carries the cursor of that change.
    let (event, beat_id, _) = stream.message_event().await;
    assert_eq!(event, "heartbeat");
    assert_eq!(beat_id, id);
}

async fn last_event_id_resumes_even_when_the_url_says_start_from_now(app: TestApp) {
    let url = watch("?startFromNow=true&heartbeatInterval=1s");
    let mut stream = Stream::sse(&app, &url, None).await;
    let seen = create_named(&app, "seen").await;
    let (last_id, data) = stream.change_event().await;
    assert_eq!(data["groupId"], seen.id.as_str());
    drop(stream);

    // What an EventSource does after a disconnect: the same URL, plus the
    // id of the last event it received.
    let missed = create_named(&app, "missed").await;
    let mut resumed = Stream::sse(&app, &url, Some(&last_id)).await;
    let (_, data) = resumed.change_event().await;
    assert_eq!(data["groupId"], missed.id.as_str(), "{data}");

    // It wins over a cursor in the URL too, and works for NDJSON readers.
    let listed = grpc_watch::listing_cursor(&app).await;
    let latest = create_named(&app, "latest").await;
    let (latest_id, _) = resumed.change_event().await;
    let after = create_named(&app, "after-latest").await;
    let mut stream = Stream::open(
        app.request(Method::GET, &watch(&format!("?cursor={listed}")))
            .header("last-event-id", &latest_id),
        "application/x-ndjson",
    )
    .await;
    let next = stream.change().await;
    assert_eq!(next["groupId"], after.id.as_str(), "not {}", latest.id);

    // Without the header, the URL decides: from now, the missed group is
    // not sent again.
    let mut fresh = Stream::sse(&app, &url, None).await;
    let (event, _, _) = fresh.message_event().await;
    assert_eq!(event, "heartbeat");
}

async fn a_malformed_query_is_400_with_a_violation_and_nothing_streams(app: TestApp) {
    let group = create_named(&app, "exists").await;
    let cases = [
        // Refused by the gateway, naming the parameter as sent.
        ("?heartbeatInterval=10m", "heartbeatInterval"),
        ("?heartbeat_interval=ten", "heartbeat_interval"),
        ("?startFromNow=maybe", "startFromNow"),
        ("?noSuchThing=1", "noSuchThing"),
        // Refused by the RPC.
        ("?heartbeatInterval=0.5s", "heartbeat_interval"),
        ("?heartbeatInterval=301s", "heartbeat_interval"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?startFromNow=true&startFromOldest=true", "cursor"),
        ("?groupIds=ok&groupIds=not%20an%20id", "group_ids[1]"),
        ("?filter=labels.team%20%3D", "filter"),
    ];
    for (query, field) in cases {
        for accept in ["application/x-ndjson", "text/event-stream"] {
            let reply = send(
                app.request(Method::GET, &watch(query))
                    .header("accept", accept),
            )
            .await;
            // A whole JSON Status was read: the answer ended, nothing streamed.
            assert_http_invalid(&reply, field);
        }
    }
    // Two Last-Event-ID headers cannot both be where to resume.
    let reply = send(
        app.request(Method::GET, &watch(""))
            .header("last-event-id", "a")
            .header("last-event-id", "b"),
    )
    .await;
    assert_http_invalid(&reply, "Last-Event-ID");
    // A malformed Last-Event-ID is a malformed cursor.
    let reply = send(
        app.request(Method::GET, &watch("?startFromNow=true"))
            .header("accept", "text/event-stream")
            .header("last-event-id", "not-a-cursor"),
    )
    .await;
    assert_http_invalid(&reply, "cursor");
    // The stream's method answers GET alone.
    let reply = http_call(&app, Method::POST, &watch(""), Some(&json!({}))).await;
    assert_eq!(reply.status, 405, "{reply:?}");
    // Refusals changed nothing.
    assert_eq!(get(&app, &group.id).await.etag, group.etag);
}

async fn a_cursor_ahead_of_the_feed_is_400_out_of_range_cursor_expired(app: TestApp) {
    create_named(&app, "one").await;
    let ahead = Cursor::at(1_000_000).encode();
    for accept in ["application/x-ndjson", "text/event-stream"] {
        let reply = send(
            app.request(Method::GET, &watch(&format!("?cursor={ahead}")))
                .header("accept", accept),
        )
        .await;
        assert_http_error(&reply, 400, Code::OutOfRange, "CURSOR_EXPIRED");
        // The same through Last-Event-ID, which an EventSource would send.
        let reply = send(
            app.request(Method::GET, &watch("?startFromNow=true"))
                .header("accept", accept)
                .header("last-event-id", &ahead),
        )
        .await;
        assert_http_error(&reply, 400, Code::OutOfRange, "CURSOR_EXPIRED");
    }
}

async fn shutdown_ends_the_stream_with_a_last_unavailable_error_in_either_form(app: TestApp) {
    let mut ndjson = Stream::ndjson(&app, &watch("?startFromNow=true")).await;
    let mut sse = Stream::sse(&app, &watch("?startFromNow=true"), None).await;
    let group = create_named(&app, "before-shutdown").await;
    assert_eq!(ndjson.change().await["groupId"], group.id.as_str());
    assert_eq!(sse.change_event().await.1["groupId"], group.id.as_str());

    app.shutdown.cancel();

    let last = ndjson.json().await;
    let object = last.as_object().unwrap();
    assert_eq!(object.len(), 1, "{last}");
    assert_status_json(&last["error"], Code::Unavailable, "SERVER_SHUTTING_DOWN");
    assert_eq!(ndjson.line().await, None, "the error is the last line");

    let fields = sse.event().await.expect("an error event");
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert_eq!(fields[0], ("event".to_owned(), "error".to_owned()));
    assert_eq!(fields[1].0, "data");
    let status: Value = serde_json::from_str(&fields[1].1).unwrap();
    assert_status_json(&status, Code::Unavailable, "SERVER_SHUTTING_DOWN");
    assert_eq!(sse.event().await, None, "the error is the last event");
}

async fn a_client_deadline_ends_the_stream_with_a_deadline_exceeded_line(app: TestApp) {
    let mut stream = Stream::open(
        app.request(
            Method::GET,
            &watch("?startFromNow=true&heartbeatInterval=1s"),
        )
        .header("grpc-timeout", "2500m"),
        "application/x-ndjson",
    )
    .await;
    let mut heartbeats = 0;
    let error = loop {
        let line = stream.json().await;
        match (line.get("result"), line.get("error")) {
            (Some(result), None) => {
                assert!(result.get("heartbeat").is_some(), "{line}");
                heartbeats += 1;
            }
            (None, Some(error)) => break error.clone(),
            _ => panic!("neither a result nor an error: {line}"),
        }
    };
    assert!(heartbeats >= 1, "the stream ran until its deadline");
    assert_eq!(
        error["code"],
        json!(Code::DeadlineExceeded as i32),
        "{error}"
    );
    assert_eq!(stream.line().await, None);
}

async fn a_client_that_goes_away_frees_its_stream(app: TestApp) {
    let before = open_streams(&app).await;
    let mut stream = Stream::ndjson(&app, &watch("?startFromNow=true&heartbeatInterval=1s")).await;
    stream.result().await;
    assert_eq!(open_streams(&app).await, before + 1);
    drop(stream);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while open_streams(&app).await != before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream of a client that went away is still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_request_timeout_does_not_cut_a_stream(app: TestApp) {
    let opened = tokio::time::Instant::now();
    let mut stream = Stream::ndjson(&app, &watch("?startFromNow=true&heartbeatInterval=1s")).await;
    for _ in 0..3 {
        let beat = stream.result().await;
        assert!(beat.get("heartbeat").is_some(), "{beat}");
    }
    assert!(opened.elapsed() > Duration::from_secs(2));
    // Still open, well past the request timeout: a change comes through.
    let group = create_named(&app, "late").await;
    assert_eq!(stream.change().await["groupId"], group.id.as_str());
}
