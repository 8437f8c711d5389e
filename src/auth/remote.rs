//! Fetching the issuer's JWKS over HTTP: from `--jwt-jwks-url`, or from the
//! `jwks_uri` of the issuer's OpenID discovery document.
//!
//! Every fetch is bounded: connect and whole-request timeouts, at most three
//! redirects, and a response of at most [`MAX_RESPONSE_BYTES`]. TLS is
//! rustls with the ring provider and the system's trust store (the platform
//! verifier); plain http is accepted only for loopback addresses.
//!
//! Fetches other than the scheduled refresh (a token naming a `kid` the set
//! does not hold) pass a gate: at most one per [`RemoteJwks::min_interval`],
//! so tokens with made-up `kid`s cannot make groupd hammer the issuer.
//! Callers that meet the gate closed wait for a fetch under way and then use
//! what it brought.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use url::Url;

use crate::config::{is_loopback, parse_http_url, redact_database_url};

/// The largest discovery document or JWKS read.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Where a remote JWKS is.
#[derive(Debug, Clone)]
pub enum RemoteLocation {
    /// The JWKS itself.
    Jwks(Url),
    /// The issuer whose discovery document names the JWKS.
    Discovery {
        /// The issuer, as tokens name it (`iss`); the discovery document
        /// must name the same.
        issuer: String,
    },
}

/// The bounds of the HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct HttpBounds {
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// The longest one request may take, body included.
    pub timeout: Duration,
}

impl Default for HttpBounds {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A remote JWKS and what bounds its fetches.
#[derive(Debug)]
pub struct RemoteJwks {
    location: RemoteLocation,
    client: reqwest::Client,
    /// The `jwks_uri` discovery gave last.
    discovered: Mutex<Option<Url>>,
    /// When the last gated fetch began; held while it runs.
    gate: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
}

/// What a gated fetch did.
#[derive(Debug)]
pub enum GatedFetch {
    /// It fetched: the JWKS document, or why it could not.
    Fetched(anyhow::Result<Vec<u8>>),
    /// A fetch ran less than the minimum interval ago; nothing was asked.
    TooSoon,
}

impl RemoteJwks {
    /// A remote JWKS at `location`; gated fetches at most once per
    /// `min_interval`.
    pub fn new(
        location: RemoteLocation,
        bounds: HttpBounds,
        min_interval: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            location,
            client: client(bounds)?,
            discovered: Mutex::new(None),
            gate: tokio::sync::Mutex::new(None),
            min_interval,
        })
    }

    /// The least time between two gated fetches.
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// Where the keys come from, for logs (credentials in the URL
    /// redacted).
    pub fn describe(&self) -> String {
        match &self.location {
            RemoteLocation::Jwks(url) => redact_database_url(url.as_str()),
            RemoteLocation::Discovery { issuer } => {
                format!("discovery of {}", redact_database_url(issuer))
            }
        }
    }

    /// Fetches the JWKS now (the scheduled refresh, and the first fetch);
    /// with discovery, reads the discovery document again first. It waits
    /// for a gated fetch under way but does not close the gate: a key
    /// rotated in just after a scheduled fetch is still fetched for the
    /// first token that names it.
    pub async fn fetch(&self) -> anyhow::Result<Vec<u8>> {
        let _gate = self.gate.lock().await;
        self.fetch_jwks(true).await
    }

    /// Fetches the JWKS unless a fetch ran less than the minimum interval
    /// ago; waits for a fetch under way.
    pub async fn fetch_gated(&self) -> GatedFetch {
        let mut gate = self.gate.lock().await;
        if gate.is_some_and(|last| last.elapsed() < self.min_interval) {
            return GatedFetch::TooSoon;
        }
        *gate = Some(Instant::now());
        GatedFetch::Fetched(self.fetch_jwks(false).await)
    }

    /// The JWKS document; `rediscover` reads the discovery document even
    /// when a `jwks_uri` is known.
    async fn fetch_jwks(&self, rediscover: bool) -> anyhow::Result<Vec<u8>> {
        let url = match &self.location {
            RemoteLocation::Jwks(url) => url.clone(),
            RemoteLocation::Discovery { issuer } => {
                let known = self
                    .discovered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match known {
                    Some(url) if !rediscover => url,
                    _ => {
                        let url = self.discover(issuer).await?;
                        *self
                            .discovered
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(url.clone());
                        url
                    }
                }
            }
        };
        get_bounded(&self.client, &url).await
    }

    /// The `jwks_uri` of `issuer`'s discovery document.
    async fn discover(&self, issuer: &str) -> anyhow::Result<Url> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let document = discovery_url(issuer)?;
        let body = get_bounded(&self.client, &document).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .with_context(|| format!("the discovery document at {document} is not JSON"))?;
        if discovery.issuer.as_deref() != Some(issuer) {
            bail!(
                "the discovery document at {document} names another issuer than \
                 --jwt-issuer"
            );
        }
        let Some(jwks_uri) = discovery.jwks_uri else {
            bail!("the discovery document at {document} has no jwks_uri");
        };
        parse_http_url(&jwks_uri).map_err(|problem| {
            anyhow::anyhow!("the jwks_uri of the discovery document at {document}: {problem}")
        })
    }
}

/// `<issuer>/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> anyhow::Result<Url> {
    let text = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    parse_http_url(&text).map_err(|problem| anyhow::anyhow!("--jwt-issuer: {problem}"))
}

/// The HTTP client of JWKS fetches.
fn client(bounds: HttpBounds) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_platform_verifier()
            .context("the system's trust store")?
            .with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(bounds.connect_timeout)
        .timeout(bounds.timeout)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // Redirects keep to the rule of the configured URLs: https, or
            // http on a loopback address.
            if attempt.previous().len() >= 3 {
                attempt.error("more than 3 redirects")
            } else if attempt.url().scheme() == "https" || is_loopback(attempt.url()) {
                attempt.follow()
            } else {
                attempt.error("a redirect to plain http")
            }
        }))
        .user_agent(concat!("groupd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client of JWKS fetches")
}

/// The body of a GET of `url`, refused past [`MAX_RESPONSE_BYTES`] or on a
/// status other than 2xx.
async fn get_bounded(client: &reqwest::Client, url: &Url) -> anyhow::Result<Vec<u8>> {
    let shown = redact_database_url(url.as_str());
    let mut response = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("GET {shown}: {}", error.without_url()))?;
    if !response.status().is_success() {
        bail!("GET {shown}: HTTP {}", response.status());
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        bail!("GET {shown}: the response is larger than {MAX_RESPONSE_BYTES} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| anyhow::anyhow!("GET {shown}: {}", error.without_url()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            bail!("GET {shown}: the response is larger than {MAX_RESPONSE_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
