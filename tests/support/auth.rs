//! Real credentials for tests: signing keys generated on the spot
//! (`groupd::auth::dev`, the code of `groupd dev-keys`), tokens signed with
//! them, forged and damaged tokens, bcrypt users files, and an issuer: a
//! local HTTP server serving an OpenID discovery document and a JWKS that a
//! test can rotate, take down, and count the fetches of.
//!
//! Shared by test binaries with `#[path = "../support/auth.rs"] mod auth;`.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use groupd::auth::dev::{KeyAlgorithm, SigningKey, jwks};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A fresh key of `algorithm`.
pub fn key(algorithm: KeyAlgorithm) -> SigningKey {
    SigningKey::generate(algorithm).unwrap_or_else(|error| panic!("{error:#}"))
}

/// Valid claims for `subject`: `iss`, `aud`, `exp` in ten minutes, `iat`,
/// roles, and a unique `jti` so that no two tokens are the same.
pub fn claims(issuer: &str, audience: &str, subject: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": roles,
        "iat": now,
        "exp": now + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// `token` signed by `key` with its default algorithm and its `kid`.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    key.sign(claims).unwrap_or_else(|error| panic!("{error:#}"))
}

/// `claims` signed by `key` with `header`.
pub fn sign_with(key: &SigningKey, header: &jsonwebtoken::Header, claims: &Value) -> String {
    key.sign_with(header, claims)
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// An unsigned token (`alg: none`) of `claims`, naming `kid`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A token of `claims` signed with HS256 under `secret` (the classic forgery
/// uses the public key's bytes as the secret), naming `kid`.
pub fn hmac_signed(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let key =
        jsonwebtoken::EncodingKey::from_secret(secret).unwrap_or_else(|error| panic!("{error}"));
    jsonwebtoken::encode(&header, claims, &key).unwrap_or_else(|error| panic!("{error}"))
}

/// `token` with its payload replaced by `claims`, its signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT");
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

/// `token` with its signature cut to about half (still valid base64url:
/// a whole number of 4-character groups).
pub fn truncated(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    format!("{message}.{}", &signature[..signature.len() / 8 * 4])
}

/// The payload of `token`, decoded.
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap_or_default()).unwrap_or(Value::Null)
}

/// An htpasswd line for `user` with a bcrypt hash (cost 4: fast, and still
/// real bcrypt) of `password`, in the `$2y$` form htpasswd writes.
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 4).unwrap_or_else(|error| panic!("{error}"));
    format!("{user}:{}", hash.replacen("$2b$", "$2y$", 1))
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("groupd-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap_or_else(|error| panic!("{error}"));
        Self(path)
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` atomically (a rename), as deployment
    /// tools replace files; returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.join(name);
        let staging = self.join(&format!(".{name}.{}", uuid::Uuid::new_v4()));
        std::fs::write(&staging, contents).unwrap_or_else(|error| panic!("{error}"));
        std::fs::rename(&staging, &path).unwrap_or_else(|error| panic!("{error}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the issuer serves and what it has been asked.
#[derive(Default)]
struct IssuerState {
    base: String,
    jwks: Mutex<Value>,
    down: AtomicBool,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
}

/// A local OpenID issuer: `/.well-known/openid-configuration` naming
/// `/jwks`, and the JWKS, on 127.0.0.1; `/moved` redirects to the JWKS,
/// `/loop` to itself, `/elsewhere` to plain http on another host. Stops
/// when dropped.
pub struct Issuer {
    state: Arc<IssuerState>,
    address: SocketAddr,
    stop: CancellationToken,
}

impl Issuer {
    /// An issuer serving `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("{error}"));
        let state = Arc::new(IssuerState {
            base: format!("http://{address}"),
            jwks: Mutex::new(jwks(keys)),
            ..IssuerState::default()
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(key_set))
            .route("/moved", get(moved))
            .route("/loop", get(redirect_loop))
            .route("/elsewhere", get(elsewhere))
            .with_state(state.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        Self {
            state,
            address,
            stop,
        }
    }

    /// The issuer's URL, as tokens name it (`iss`).
    pub fn url(&self) -> String {
        self.state.base.clone()
    }

    /// The URL of its JWKS.
    pub fn jwks_url(&self) -> url::Url {
        self.url_of("/jwks")
    }

    /// The URL of `path` on it.
    pub fn url_of(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{path}", self.address))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Serves `keys` from now on.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set_jwks(jwks(keys));
    }

    /// Serves `document` as the JWKS from now on.
    pub fn set_jwks(&self, document: Value) {
        *self
            .state
            .jwks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = document;
    }

    /// Answers 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// How many times the JWKS was asked for.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was asked for.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> axum::response::Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    json_response(&json!({
        "issuer": state.base,
        "jwks_uri": format!("{}/jwks", state.base),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
}

async fn key_set(State(state): State<Arc<IssuerState>>) -> axum::response::Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let document = state
        .jwks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    json_response(&document)
}

/// `/moved`: a redirect to the JWKS.
async fn moved() -> axum::response::Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(axum::http::header::LOCATION, "/jwks")],
    )
        .into_response()
}

/// `/loop`: a redirect to itself.
async fn redirect_loop() -> axum::response::Response {
    (StatusCode::FOUND, [(axum::http::header::LOCATION, "/loop")]).into_response()
}

/// `/elsewhere`: a redirect to plain http on a host that is not this one.
async fn elsewhere() -> axum::response::Response {
    let location = "http://keys.example/jwks";
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}

fn json_response(document: &Value) -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}
