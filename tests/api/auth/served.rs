//! The real binary serving with authentication, for what only its process
//! shows: its log (every line of stderr, to prove no secret is in it) and
//! its `/metrics`. It runs on the scenario's database beside the scenario's
//! in-process server, which keeps authentication off: that one answers as
//! the unrestricted caller, to prove refused calls wrote nothing.

use std::{future::Future, time::Duration};

use groupd::pb::group_service_client::GroupServiceClient;
use serde_json::Value;
use tonic::transport::Channel;

use crate::helpers::*;

/// How long a file rewritten under the server may take to be read again:
/// it polls its files every 2 s. A bound against hangs, not a timing
/// assertion.
pub const RELOAD_BOUND: Duration = Duration::from_secs(15);

/// `groupd serve` as a child process with authentication on.
pub struct Served {
    /// The process and its log.
    pub child: Child,
    http: reqwest::Client,
}

impl Served {
    /// Starts the binary on `app`'s database with `flags`, keeping its log.
    pub async fn start(app: &TestApp, flags: &[String]) -> Self {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Self {
            child: Child::serve(app.database_url(), &flags, ChildLog::Keep).await,
            http: reqwest::Client::new(),
        }
    }

    /// A gRPC client of it.
    pub async fn client(&self) -> GroupServiceClient<Channel> {
        self.child.client().await
    }

    /// A request to its gateway, carrying `credential` as `authorization`
    /// when given.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("http://{}{path}", self.child.http_addr));
        match credential {
            Some(credential) => request.header("authorization", credential),
            None => request,
        }
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        let reply = self.request(reqwest::Method::GET, "/metrics", None);
        let response = reply.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The calls it logged (`call finished`), once there are `count`;
    /// fails if there are more.
    pub async fn finished_calls(&self, count: usize) -> Vec<Value> {
        let calls = self
            .child
            .wait_for_log(count, |event| event["message"] == "call finished")
            .await;
        assert_eq!(calls.len(), count, "calls logged: {calls:#?}");
        calls
    }

    /// Asserts that no line it wrote to stderr so far contains any of
    /// `secrets` (each at least 8 characters, so that a match means
    /// something).
    pub fn assert_log_holds_none_of(&self, secrets: &[&str]) {
        let lines = self.child.raw_log();
        assert!(!lines.is_empty(), "no log read");
        for secret in secrets {
            assert!(secret.len() >= 8, "too short to search for: {secret:?}");
            if let Some(line) = lines.iter().find(|line| line.contains(secret)) {
                panic!("a secret reached the log: {line}");
            }
        }
    }
}

/// The value of the `groupd_requests_total` sample of `transport`,
/// `method` and `code`, if the page has one.
pub fn requests_total(page: &str, transport: &str, method: &str, code: &str) -> Option<f64> {
    let series = format!(
        "groupd_requests_total{{transport=\"{transport}\",method=\"{method}\",code=\"{code}\"}} "
    );
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
}

/// The principal a logged call names, if it names one.
pub fn principal_of(call: &Value) -> Option<&str> {
    call["span"]["principal"].as_str()
}

/// Runs `attempt` until it gives a value, every 100 ms within
/// [`RELOAD_BOUND`]; fails naming `what` when it never does.
pub async fn eventually<T, F>(what: &str, mut attempt: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + RELOAD_BOUND;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {RELOAD_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
