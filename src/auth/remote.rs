//! Fetching the issuer's JWKS over HTTP: from `--jwt-jwks-url`, or from the
//! `jwks_uri` of the issuer's OpenID discovery document.
//!
//! Every fetch is bounded: connect and whole-request timeouts, at most three
//! redirects, and a response of at most [`MAX_RESPONSE_BYTES`]. TLS is
//! rustls with the ring provider and the system's trust store (the platform
//! verifier); plain http is accepted only for loopback addresses, redirects
//! included. Fetches connect directly: HTTP proxies are not used.
//!
//! Fetches other than the scheduled refresh (a token naming a `kid` the set
//! does not hold) pass a gate: at most one per [`RemoteJwks::min_interval`],
//! so tokens with made-up `kid`s cannot make groupd hammer the issuer.
//! Callers that meet the gate closed wait for a fetch under way and then use
//! what it brought.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use crate::config::{parse_http_url, redact_database_url};

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
pub struct RemoteJwks {
    location: RemoteLocation,
    tls: TlsConnector,
    bounds: HttpBounds,
    /// The `jwks_uri` discovery gave last.
    discovered: Mutex<Option<Url>>,
    /// When the last gated fetch began; held while it runs.
    gate: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("location", &self.describe())
            .field("bounds", &self.bounds)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
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
            tls: tls_connector()?,
            bounds,
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
        get_bounded(&self.tls, self.bounds, &url).await
    }

    /// The `jwks_uri` of `issuer`'s discovery document.
    async fn discover(&self, issuer: &str) -> anyhow::Result<Url> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let document = discovery_url(issuer)?;
        let body = get_bounded(&self.tls, self.bounds, &document).await?;
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

/// The TLS client configuration of JWKS fetches: rustls with the ring
/// provider, the system's trust store.
fn tls_connector() -> anyhow::Result<TlsConnector> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_platform_verifier()
        .context("the system's trust store")?
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The most redirects a fetch follows.
const MAX_REDIRECTS: usize = 3;

/// The body of a GET of `url`, following at most [`MAX_REDIRECTS`]
/// redirects (each to https, or http on a loopback address), refused past
/// [`MAX_RESPONSE_BYTES`] or on a final status other than 2xx, all within
/// the request timeout.
async fn get_bounded(tls: &TlsConnector, bounds: HttpBounds, url: &Url) -> anyhow::Result<Vec<u8>> {
    let shown = redact_database_url(url.as_str());
    tokio::time::timeout(bounds.timeout, async {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = get_once(tls, bounds, &url).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| anyhow::anyhow!("HTTP {status} without a Location"))?;
                let next = url
                    .join(location)
                    .map_err(|error| anyhow::anyhow!("a redirect to a bad URL: {error}"))?;
                url = parse_http_url(next.as_str())
                    .map_err(|problem| anyhow::anyhow!("a redirect refused: {problem}"))?;
                continue;
            }
            if !status.is_success() {
                bail!("HTTP {status}");
            }
            if response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
            {
                bail!("the response is larger than {MAX_RESPONSE_BYTES} bytes");
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|error| anyhow::anyhow!("reading the response: {error}"))?;
            return Ok(body.to_bytes().to_vec());
        }
        bail!("more than {MAX_REDIRECTS} redirects")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {:?}", bounds.timeout))
    .and_then(|result| result)
    .map_err(|error| anyhow::anyhow!("GET {shown}: {error:#}"))
}

/// One GET of `url` on a new connection (these fetches are rare: at start,
/// every few minutes, and for unknown kids at most every few seconds).
async fn get_once(
    tls: &TlsConnector,
    bounds: HttpBounds,
    url: &Url,
) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow::anyhow!("the URL has no port"))?;
    let (host, server_name) = match url.host() {
        Some(url::Host::Domain(name)) => (
            name.to_owned(),
            ServerName::try_from(name.to_owned()).context("the host name")?,
        ),
        Some(url::Host::Ipv4(address)) => {
            (address.to_string(), ServerName::from(IpAddr::V4(address)))
        }
        Some(url::Host::Ipv6(address)) => {
            (address.to_string(), ServerName::from(IpAddr::V6(address)))
        }
        None => bail!("the URL has no host"),
    };
    let tcp = tokio::time::timeout(
        bounds.connect_timeout,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no connection within {:?}", bounds.connect_timeout))?
    .context("connecting")?;
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let request = http::Request::get(target)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("groupd/", env!("CARGO_PKG_VERSION")),
        )
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .context("the request")?;
    if url.scheme() == "https" {
        let stream = tls
            .connect(server_name, tcp)
            .await
            .context("the TLS handshake")?;
        send(stream, request).await
    } else {
        send(tcp, request).await
    }
}

/// Sends `request` over `stream` as HTTP/1.1.
async fn send<S>(
    stream: S,
    request: http::Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("the HTTP handshake")?;
    // The connection runs until the response body is read or dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await.context("the request")
}
