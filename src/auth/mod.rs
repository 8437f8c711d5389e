//! Authentication: who a request comes from. [`Authenticator::authenticate`]
//! turns a request's credentials (its `authorization` header, or the
//! client certificate the TLS layer verified) into a [`Caller`], or refuses
//! them with UNAUTHENTICATED. What a caller may then do is the domain's
//! `policy`, not this module's concern.
//!
//! A request is authenticated by the first credential it presents: when it
//! has an `authorization` header, its scheme decides (`Bearer` needs `jwt`
//! on, `Basic` needs `basic` on; any other scheme is refused); without one,
//! the client certificate (with `mtls` on); else it carries no credentials.
//! A caller's roles are those of its token (JWT) plus those the roles file
//! gives its principal; mTLS and Basic callers have only the latter.
//!
//! The modules: `jwt` (bearer tokens) with `jwks` (key sets and the choice
//! of a token's key) and `remote` (fetching a JWKS), `basic` (htpasswd),
//! `roles` (the roles file), `cache` (verified credentials, bounded),
//! `watched` (files read again when they change), `refusal` (the errors),
//! and `dev` (keys and tokens for development and tests).
//!
//! No credential, password, hash or key ever reaches an error message or a
//! log line: errors name what was wrong with a credential, never its text.

pub mod basic;
pub mod cache;
pub mod dev;
pub mod jwks;
pub mod jwt;
pub mod refusal;
pub mod remote;
pub mod roles;
pub mod watched;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use self::{
    basic::BasicAuth,
    jwt::{JwtAuth, JwtRules, KeySource},
    remote::{HttpBounds, RemoteJwks, RemoteLocation},
    roles::RolesFile,
    watched::WatchedFile,
};
use crate::{
    config::{AuthMode, JwksLocation, Settings},
    domain::{Caller, Principal, Role},
    error::Error,
};

/// The identity of a client certificate the TLS layer verified against
/// `--tls-client-ca`: its SPIFFE URI SAN when it has one, else its first DNS
/// SAN, else its subject's CN. The serve layer puts it in each request's
/// extensions; nothing a client sends can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

/// How often watched files (JWKS, roles, users) are checked for changes.
pub const DEFAULT_FILE_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The least time between two fetches of a remote JWKS for unknown `kid`s.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Where the JWT signing keys come from, as [`AuthConfig`] takes it.
#[derive(Debug, Clone)]
pub enum KeysFrom {
    /// A local JWKS file.
    File(PathBuf),
    /// A remote JWKS URL.
    Url(url::Url),
    /// The issuer's OpenID discovery document.
    Discovery,
}

/// The JWT part of [`AuthConfig`].
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// What tokens must say.
    pub rules: JwtRules,
    /// Where the keys come from.
    pub keys: KeysFrom,
    /// How often a remote JWKS is fetched again.
    pub refresh_interval: Duration,
    /// The least time between two fetches for unknown `kid`s.
    pub min_refetch_interval: Duration,
    /// The bounds of the HTTP client.
    pub http: HttpBounds,
}

/// Everything an [`Authenticator`] is built from; [`AuthConfig::from_settings`]
/// makes it from the command line.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Bearer tokens, when on.
    pub jwt: Option<JwtConfig>,
    /// The users file of Basic authentication, when on.
    pub basic_users_file: Option<PathBuf>,
    /// How long a verified Basic header is remembered.
    pub basic_cache_ttl: Duration,
    /// Whether client certificates authenticate.
    pub mtls: bool,
    /// The roles file, if any.
    pub roles_file: Option<PathBuf>,
    /// How often watched files are checked for changes.
    pub file_poll_interval: Duration,
}

impl AuthConfig {
    /// The configuration the settings describe (checked by
    /// `Settings::check`).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let auth = &settings.auth;
        let jwt = if auth.has(AuthMode::Jwt) {
            let (Some(issuer), Some(audience)) = (&auth.jwt_issuer, &auth.jwt_audience) else {
                anyhow::bail!("'--auth jwt' needs '--jwt-issuer' and '--jwt-audience'");
            };
            let keys = match auth.jwks_location() {
                Some(JwksLocation::File(path)) => KeysFrom::File(path),
                Some(JwksLocation::Url(url)) => KeysFrom::Url(url),
                Some(JwksLocation::Discovery(_)) => KeysFrom::Discovery,
                None => anyhow::bail!("'--jwt-issuer' is not a URL to discover the keys from"),
            };
            Some(JwtConfig {
                rules: JwtRules {
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    leeway: auth.jwt_leeway,
                    principal_claim: auth.jwt_principal_claim.clone(),
                    roles_claim: auth.jwt_roles_claim.clone(),
                },
                keys,
                refresh_interval: auth.jwt_jwks_refresh,
                min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
                http: HttpBounds::default(),
            })
        } else {
            None
        };
        Ok(Self {
            jwt,
            basic_users_file: auth
                .has(AuthMode::Basic)
                .then(|| auth.basic_users_file.clone())
                .flatten(),
            basic_cache_ttl: basic::DEFAULT_CACHE_TTL,
            mtls: auth.has(AuthMode::Mtls),
            roles_file: auth.roles_file.clone(),
            file_poll_interval: DEFAULT_FILE_POLL_INTERVAL,
        })
    }
}

/// Verifies the credentials of requests, by the modes `--auth` enables.
///
/// Built once at start ([`Authenticator::from_settings`]) and shared
/// (`Arc`); its files and remote keys are kept fresh by the task
/// [`Authenticator::spawn_refresh`] starts.
pub struct Authenticator {
    jwt: Option<JwtAuth>,
    basic: Option<BasicAuth>,
    mtls: bool,
    roles: Option<RolesFile>,
    file_poll_interval: Duration,
    refresh_interval: Duration,
    /// Whether the last fetch of a remote JWKS failed (logged once per
    /// outage).
    remote_failing: Mutex<bool>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("modes", &self.modes())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Authentication off (`--auth none`): every caller is
    /// [`Caller::unrestricted`].
    pub fn none() -> Self {
        Self {
            jwt: None,
            basic: None,
            mtls: false,
            roles: None,
            file_poll_interval: DEFAULT_FILE_POLL_INTERVAL,
            refresh_interval: Duration::from_secs(300),
            remote_failing: Mutex::new(false),
        }
    }

    /// The authenticator the settings describe, its files read and a
    /// remote JWKS fetched once. Fails when a file is missing or does not
    /// parse; a JWKS that cannot be fetched does not fail the start (tokens
    /// are refused with `KEYS_UNAVAILABLE` until it arrives, retried every
    /// few seconds by [`Self::spawn_refresh`]).
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Self::new(AuthConfig::from_settings(settings)?).await
    }

    /// The authenticator `config` describes; see [`Self::from_settings`].
    pub async fn new(config: AuthConfig) -> anyhow::Result<Self> {
        let (roles, basic) = tokio::task::spawn_blocking({
            let config = config.clone();
            move || -> anyhow::Result<_> {
                let roles = config
                    .roles_file
                    .as_deref()
                    .map(RolesFile::load)
                    .transpose()?;
                let basic = config
                    .basic_users_file
                    .as_deref()
                    .map(|path| BasicAuth::load(path, config.basic_cache_ttl))
                    .transpose()?;
                Ok((roles, basic))
            }
        })
        .await??;
        let mut refresh_interval = Duration::from_secs(300);
        let mut remote_failing = false;
        let jwt = match config.jwt {
            None => None,
            Some(jwt) => {
                refresh_interval = jwt.refresh_interval;
                let source = match jwt.keys {
                    KeysFrom::File(path) => KeySource::File(Mutex::new(WatchedFile::new(path))),
                    KeysFrom::Url(url) => KeySource::Remote(Box::new(RemoteJwks::new(
                        RemoteLocation::Jwks(url),
                        jwt.http,
                        jwt.min_refetch_interval,
                    )?)),
                    KeysFrom::Discovery => KeySource::Remote(Box::new(RemoteJwks::new(
                        RemoteLocation::Discovery {
                            issuer: jwt.rules.issuer.clone(),
                        },
                        jwt.http,
                        jwt.min_refetch_interval,
                    )?)),
                };
                let auth = JwtAuth::new(jwt.rules, source);
                match auth.source() {
                    KeySource::File(_) => {
                        auth.load_file()?;
                        if auth.key_set().is_empty() {
                            anyhow::bail!("the JWKS file holds no usable key");
                        }
                    }
                    KeySource::Remote(remote) => {
                        if let Err(error) = auth.refresh().await {
                            remote_failing = true;
                            tracing::error!(
                                error = format!("{error:#}"),
                                jwks = %remote.describe(),
                                "cannot fetch the issuer's keys at start; bearer tokens are \
                                 refused (KEYS_UNAVAILABLE) until a fetch succeeds"
                            );
                        }
                    }
                }
                Some(auth)
            }
        };
        let authenticator = Self {
            jwt,
            basic,
            mtls: config.mtls,
            roles,
            file_poll_interval: config.file_poll_interval,
            refresh_interval,
            remote_failing: Mutex::new(remote_failing),
        };
        Ok(authenticator)
    }

    /// Whether any authentication mode is on.
    pub fn is_enabled(&self) -> bool {
        self.jwt.is_some() || self.basic.is_some() || self.mtls
    }

    /// The enabled modes (`[None]` when off).
    pub fn modes(&self) -> Vec<AuthMode> {
        let modes: Vec<AuthMode> = [
            (self.jwt.is_some(), AuthMode::Jwt),
            (self.mtls, AuthMode::Mtls),
            (self.basic.is_some(), AuthMode::Basic),
        ]
        .into_iter()
        .filter_map(|(on, mode)| on.then_some(mode))
        .collect();
        if modes.is_empty() {
            vec![AuthMode::None]
        } else {
            modes
        }
    }

    /// Bearer-token authentication, when on.
    pub fn jwt(&self) -> Option<&JwtAuth> {
        self.jwt.as_ref()
    }

    /// Basic authentication, when on.
    pub fn basic(&self) -> Option<&BasicAuth> {
        self.basic.as_ref()
    }

    /// The roles file, if any.
    pub fn roles_file(&self) -> Option<&RolesFile> {
        self.roles.as_ref()
    }

    /// The caller `headers` and `peer` identify. The first credential the
    /// request presents decides: the `authorization` header (a bearer token
    /// or Basic credentials), else the client certificate.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&PeerIdentity>,
    ) -> Result<Caller, Error> {
        if !self.is_enabled() {
            return Ok(Caller::unrestricted());
        }
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let (principal, token_roles) = match (values.next(), values.next()) {
            (Some(_), Some(_)) => {
                return Err(refusal::invalid(
                    "the request has more than one authorization header",
                ));
            }
            (Some(value), None) => self.by_header(value).await?,
            (None, _) => match peer {
                Some(peer) if self.mtls => {
                    let principal = Principal::parse(&peer.0).ok_or_else(|| {
                        refusal::invalid(
                            "the client certificate's identity is not a valid principal id",
                        )
                    })?;
                    (principal, Vec::new())
                }
                _ => return Err(refusal::missing(&self.accepted())),
            },
        };
        let mut roles = token_roles;
        if let Some(file) = &self.roles {
            roles.extend(file.map().roles_of(&principal));
        }
        Ok(Caller::new(principal, roles))
    }

    /// The caller an `authorization` header names, with the roles its
    /// credential grants.
    async fn by_header(&self, value: &http::HeaderValue) -> Result<(Principal, Vec<Role>), Error> {
        let malformed =
            || refusal::invalid("the authorization header is not `<scheme> <credentials>`");
        let text = value.to_str().map_err(|_| malformed())?;
        let (scheme, credentials) = text.trim().split_once(' ').ok_or_else(malformed)?;
        let credentials = credentials.trim();
        if credentials.is_empty() {
            return Err(malformed());
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let Some(jwt) = &self.jwt else {
                return Err(self.scheme_refused("Bearer"));
            };
            let verified = jwt.verify(credentials).await?;
            return Ok((verified.principal, verified.roles.into_iter().collect()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(basic) = &self.basic else {
                return Err(self.scheme_refused("Basic"));
            };
            return Ok((basic.verify(credentials).await?, Vec::new()));
        }
        // The scheme is not echoed: a client that forgot it sent its
        // credential in its place.
        Err(refusal::invalid(format!(
            "the authorization header's scheme is not one groupd accepts; it accepts {}",
            self.accepted()
        )))
    }

    /// The refusal of a header scheme whose mode is off.
    fn scheme_refused(&self, scheme: &str) -> Error {
        refusal::invalid(format!(
            "the {scheme} scheme is not accepted here; groupd accepts {}",
            self.accepted()
        ))
    }

    /// The credentials groupd accepts, for messages.
    fn accepted(&self) -> String {
        let mut accepted = Vec::new();
        if self.jwt.is_some() {
            accepted.push("a Bearer token");
        }
        if self.basic.is_some() {
            accepted.push("Basic credentials");
        }
        if self.mtls {
            accepted.push("a client certificate");
        }
        accepted.join(" or ")
    }

    /// The `WWW-Authenticate` challenge of an HTTP 401, naming the enabled
    /// header schemes; `None` when authentication is off or only client
    /// certificates are accepted.
    pub fn challenge(&self) -> Option<String> {
        let mut schemes = Vec::new();
        if self.jwt.is_some() {
            schemes.push(r#"Bearer realm="groupd""#);
        }
        if self.basic.is_some() {
            schemes.push(r#"Basic realm="groupd""#);
        }
        (!schemes.is_empty()).then(|| schemes.join(", "))
    }

    /// Reads the watched files again where they changed (roles, users,
    /// JWKS file). A file that cannot be read or parsed keeps its last good
    /// contents; the problem is logged once per version. Runs bcrypt when
    /// the users file changed: call it off the async workers.
    pub fn reload_files(&self) {
        if let Some(roles) = &self.roles
            && let Err(error) = roles.reload()
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "the roles file is refused; the last good roles are kept"
            );
        }
        if let Some(basic) = &self.basic
            && let Err(error) = basic.reload()
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "the users file is refused; the last good users are kept"
            );
        }
        if let Some(jwt) = &self.jwt
            && let Err(error) = jwt.load_file()
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "the JWKS file is refused; the last good keys are kept"
            );
        }
    }

    /// Fetches a remote JWKS again; on failure keeps the keys in use and
    /// logs (once until a fetch succeeds again). Returns whether the fetch
    /// succeeded (true too when the keys are not remote).
    pub async fn refresh_remote_keys(&self) -> bool {
        let Some(jwt) = &self.jwt else {
            return true;
        };
        let KeySource::Remote(remote) = jwt.source() else {
            return true;
        };
        let result = jwt.refresh().await;
        let mut failing = self
            .remote_failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(()) => {
                if *failing {
                    tracing::info!(jwks = %remote.describe(), "the issuer's keys are reachable again");
                }
                *failing = false;
                true
            }
            Err(error) => {
                if !*failing {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        jwks = %remote.describe(),
                        "cannot fetch the issuer's keys; the last good keys are kept"
                    );
                }
                *failing = true;
                false
            }
        }
    }

    /// Starts the task that keeps credentials fresh: it checks the watched
    /// files every few seconds and fetches a remote JWKS every
    /// `--jwt-jwks-refresh` (every few seconds while no key was ever
    /// fetched or the last fetch failed). It ends when `shutdown` fires or
    /// the authenticator is dropped. Start it once, after building; without
    /// it files are never read again and remote keys never refreshed
    /// (except for unknown `kid`s).
    pub fn spawn_refresh(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let poll = self.file_poll_interval;
        let refresh = self.refresh_interval;
        let retry = self
            .jwt
            .as_ref()
            .and_then(|jwt| match jwt.source() {
                KeySource::Remote(remote) => Some(remote.min_interval()),
                KeySource::File(_) => None,
            })
            .unwrap_or(DEFAULT_MIN_REFETCH_INTERVAL)
            .min(refresh);
        tokio::spawn(async move {
            let mut next_fetch = tokio::time::Instant::now() + refresh;
            if let Some(this) = weak.upgrade()
                && this.jwt.as_ref().is_some_and(|jwt| !jwt.key_set_loaded())
            {
                next_fetch = tokio::time::Instant::now() + retry;
            }
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(poll) => {}
                }
                let Some(this) = weak.upgrade() else { return };
                let files = this.clone();
                if let Err(error) = tokio::task::spawn_blocking(move || files.reload_files()).await
                {
                    tracing::error!(%error, "reading the authentication files failed");
                }
                if tokio::time::Instant::now() >= next_fetch {
                    let ok = tokio::select! {
                        () = shutdown.cancelled() => return,
                        ok = this.refresh_remote_keys() => ok,
                    };
                    next_fetch = tokio::time::Instant::now() + if ok { refresh } else { retry };
                }
            }
        })
    }
}
