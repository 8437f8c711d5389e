//! Authentication: who a request comes from. [`Authenticator::authenticate`]
//! turns a request's credentials (its `authorization` header, or the
//! client certificate the TLS layer verified) into a [`Caller`], or refuses
//! them with UNAUTHENTICATED. What a caller may then do is the domain's
//! `policy`, not this module's concern.
//!
//! No credential, password, hash or key ever reaches an error message or a
//! log line: errors name what was wrong with a credential, never its text.

use crate::{domain::Caller, error::Error};

/// The identity of a client certificate the TLS layer verified against
/// `--tls-client-ca`: its SPIFFE URI SAN when it has one, else its first DNS
/// SAN, else its subject's CN. The serve layer puts it in each request's
/// extensions; nothing a client sends can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

/// Verifies the credentials of requests, by the modes `--auth` enables.
#[derive(Debug)]
pub struct Authenticator {
    enabled: bool,
}

impl Authenticator {
    /// Authentication off (`--auth none`): every caller is
    /// [`Caller::unrestricted`].
    pub fn none() -> Self {
        Self { enabled: false }
    }

    /// Whether any authentication mode is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The caller `headers` and `peer` identify. The first credential the
    /// request presents decides: a bearer token (JWT), a Basic header, or
    /// the client certificate.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&PeerIdentity>,
    ) -> Result<Caller, Error> {
        let _ = (headers, peer);
        if self.enabled {
            return Err(Error::Unauthenticated {
                reason: "CREDENTIALS_MISSING",
                message: "this request carries no credentials".to_owned(),
            });
        }
        Ok(Caller::unrestricted())
    }

    /// The `WWW-Authenticate` challenge of an HTTP 401, naming the enabled
    /// schemes; `None` when authentication is off.
    pub fn challenge(&self) -> Option<String> {
        None
    }
}
