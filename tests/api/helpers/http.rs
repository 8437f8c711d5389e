//! The HTTP/JSON gateway: sending a request and reading the whole answer,
//! and assertions on JSON answers.

use tonic::Code;

use super::{DOMAIN, TestApp};

/// One answer of the HTTP/JSON gateway, read whole.
#[derive(Debug)]
pub struct HttpReply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON; `Null` when empty, and a JSON string holding the
    /// text when it is not JSON.
    pub body: serde_json::Value,
}

impl HttpReply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

impl TestApp {
    /// A request to the gateway, to add headers or a raw body before
    /// [`send`].
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }
}

/// Sends a gateway request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> HttpReply {
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("HTTP request failed: {error}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .unwrap_or_else(|error| panic!("cannot read the HTTP body: {error}"));
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    HttpReply {
        status,
        headers,
        body,
    }
}

/// Sends `method path` with an optional JSON body.
pub async fn http_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> HttpReply {
    let request = app.request(method, path);
    send(match body {
        Some(body) => request.json(body),
        None => request,
    })
    .await
}

/// `GET path`.
pub async fn http_get(app: &TestApp, path: &str) -> HttpReply {
    http_call(app, reqwest::Method::GET, path, None).await
}

/// Asserts a 200 with a JSON body, and returns the body.
#[track_caller]
pub fn http_ok(reply: HttpReply) -> serde_json::Value {
    assert_eq!(reply.status, 200, "expected 200, got {reply:#?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "content type of {reply:#?}"
    );
    reply.body
}

/// Percent-encodes a query parameter value.
pub fn query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts an error answer: the HTTP status, a JSON `google.rpc.Status`
/// body with the gRPC `code`, a message, and an ErrorInfo with `reason` in
/// domain `groups.v1`.
#[track_caller]
pub fn assert_http_error(reply: &HttpReply, http_status: u16, code: Code, reason: &str) {
    assert_eq!(
        reply.status, http_status,
        "expected HTTP {http_status} {code:?}/{reason}, got {reply:#?}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "content type of {reply:#?}"
    );
    assert_eq!(
        reply.body["code"],
        serde_json::json!(code as i32),
        "gRPC code in {reply:#?}"
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message in {reply:#?}"
    );
    let details = reply.body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details list in {reply:#?}"));
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .unwrap_or_else(|| panic!("no ErrorInfo in {reply:#?}"));
    assert_eq!(info["reason"], reason, "ErrorInfo reason of {reply:#?}");
    assert_eq!(info["domain"], DOMAIN, "ErrorInfo domain of {reply:#?}");
}

/// The `(field, description)` pairs of an error answer's BadRequest.
#[track_caller]
pub fn http_violations(reply: &HttpReply) -> Vec<(String, String)> {
    let details = reply.body["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("no BadRequest in {reply:#?}"));
    bad_request["fieldViolations"]
        .as_array()
        .unwrap_or_else(|| panic!("no fieldViolations in {reply:#?}"))
        .iter()
        .map(|v| {
            (
                v["field"].as_str().unwrap_or_default().to_owned(),
                v["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts 400 INVALID_ARGUMENT with a BadRequest violation on a field
/// starting with `prefix`.
#[track_caller]
pub fn assert_http_invalid(reply: &HttpReply, prefix: &str) {
    assert_http_error(reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = http_violations(reply);
    assert!(
        violations
            .iter()
            .any(|(field, _)| field.starts_with(prefix)),
        "expected a field violation under {prefix:?}, got {violations:?}"
    );
}

/// The gateway path of a group.
pub fn group_path(id: &str) -> String {
    format!("/v1/groups/{id}")
}

/// Creates a group over HTTP from a JSON `Group`, asserting 200.
pub async fn http_create(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    http_ok(http_call(app, reqwest::Method::POST, "/v1/groups", Some(&body)).await)
}

/// Reads a group over HTTP, asserting 200.
pub async fn http_group(app: &TestApp, id: &str) -> serde_json::Value {
    http_ok(http_get(app, &group_path(id)).await)
}

/// The `id` of a JSON group.
#[track_caller]
pub fn id_of(group: &serde_json::Value) -> String {
    group["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {group}"))
        .to_owned()
}

/// A Timestamp field of a JSON message, parsed as RFC 3339 (UTC, `Z`).
#[track_caller]
pub fn timestamp(json: &serde_json::Value, key: &str) -> Option<prost_types::Timestamp> {
    let value = json.get(key)?;
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{key} is {value}, not an RFC 3339 string"));
    assert!(
        text.contains('T') && text.ends_with('Z'),
        "{key} {text:?} is not an RFC 3339 UTC timestamp"
    );
    Some(
        text.parse()
            .unwrap_or_else(|error| panic!("{key} {text:?} is not RFC 3339: {error}")),
    )
}

/// The value of the sample line that starts with `series` (labels
/// included), if the page has one.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The `/metrics` page, checked to be served as OpenMetrics text.
pub async fn metrics_page(app: &TestApp) -> String {
    metrics_page_at(&app.http, app.http_addr).await
}

/// The `/metrics` page of the server (a replica, say) whose HTTP port is
/// `http_addr`, checked to be served as OpenMetrics text.
pub async fn metrics_page_at(http: &reqwest::Client, http_addr: std::net::SocketAddr) -> String {
    let response = http
        .get(format!("http://{http_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}
