//! Authentication end to end through `Authenticator`, the interface the
//! service calls: real keys and tokens, real files rewritten under it, and
//! a real issuer over HTTP (discovery, JWKS rotation, outages).
//!
//! Files are named by behaviour: `jwt` (what tokens are accepted and
//! refused, and why), `issuer` (remote keys: discovery, refetches and their
//! rate limit, outages), `basic`, `precedence` (which credential decides,
//! mTLS, roles, challenges), `commands` (`groupd dev-keys` and `dev-token`
//! as a developer runs them).

#[path = "../support/auth.rs"]
mod support;

mod basic;
mod commands;
mod issuer;
mod jwt;
mod precedence;

use std::time::Duration;

use groupd::{
    auth::{AuthConfig, Authenticator, JwtConfig, KeysFrom, jwt::JwtRules, remote::HttpBounds},
    domain::{Caller, Role},
    error::Error,
};

/// The audience of every test token.
pub const AUDIENCE: &str = "groupd";

/// The rules of the tests: `issuer`, [`AUDIENCE`], 30 s of leeway, `sub`
/// and `roles`.
pub fn rules(issuer: &str) -> JwtRules {
    JwtRules {
        issuer: issuer.to_owned(),
        audience: AUDIENCE.to_owned(),
        leeway: Duration::from_secs(30),
        principal_claim: "sub".to_owned(),
        roles_claim: "roles".to_owned(),
    }
}

/// JWT authentication of `issuer` with keys `from`; refetches for unknown
/// kids at most once a second, no scheduled refresh within a test.
pub fn jwt_config(issuer: &str, from: KeysFrom) -> JwtConfig {
    JwtConfig {
        rules: rules(issuer),
        keys: from,
        refresh_interval: Duration::from_secs(3600),
        min_refetch_interval: Duration::from_secs(1),
        http: HttpBounds {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        },
    }
}

/// A configuration with nothing on, files polled every 50 ms.
pub fn config() -> AuthConfig {
    AuthConfig {
        basic_cache_ttl: Duration::from_secs(60),
        file_poll_interval: Duration::from_millis(50),
        ..AuthConfig::default()
    }
}

/// Builds the authenticator, failing the test on error.
pub async fn build(config: AuthConfig) -> Authenticator {
    Authenticator::new(config)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// Headers with `authorization: value`.
pub fn authorization(value: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(value).unwrap_or_else(|error| panic!("{error}")),
    );
    headers
}

/// Headers carrying `token` as a bearer token.
pub fn bearer(token: &str) -> http::HeaderMap {
    authorization(&format!("Bearer {token}"))
}

/// Headers carrying Basic credentials.
pub fn basic(user: &str, password: &str) -> http::HeaderMap {
    use base64::Engine as _;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    authorization(&format!("Basic {credentials}"))
}

/// The caller `headers` authenticate as, failing the test on refusal.
pub async fn caller(auth: &Authenticator, headers: &http::HeaderMap) -> Caller {
    auth.authenticate(headers, None)
        .await
        .unwrap_or_else(|error| panic!("refused: {error}"))
}

/// The reason and message of a refusal, failing the test on anything else.
pub fn refusal(result: Result<Caller, Error>) -> (&'static str, String) {
    match result {
        Err(Error::Unauthenticated { reason, message }) => (reason, message),
        Err(other) => panic!("not UNAUTHENTICATED: {other:?}"),
        Ok(caller) => panic!("accepted as {}", caller.principal().as_str()),
    }
}

/// Fails when `message` holds any of `secrets`, or any part of a token
/// among them (each of its dot-separated parts).
pub fn assert_no_secret(message: &str, secrets: &[&str]) {
    for secret in secrets {
        for part in secret.split('.').filter(|part| part.len() >= 8) {
            assert!(
                !message.contains(part),
                "the message holds a secret: {message}"
            );
        }
        assert!(
            !message.contains(secret),
            "the message holds a secret: {message}"
        );
    }
}

/// The caller's roles.
pub fn roles(caller: &Caller) -> Vec<Role> {
    caller.roles().collect()
}

/// Waits up to five seconds for `done`, checking every 20 ms.
pub async fn eventually(mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..250 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
