//! The UNAUTHENTICATED errors authentication answers, one constructor per
//! reason. Messages say what was wrong with a credential and never hold any
//! part of it.

use crate::error::Error;

/// The request carries no credential.
pub const CREDENTIALS_MISSING: &str = "CREDENTIALS_MISSING";
/// The credential is malformed, of a scheme not accepted, or does not
/// verify.
pub const CREDENTIALS_INVALID: &str = "CREDENTIALS_INVALID";
/// The token's `exp` has passed (beyond the leeway).
pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
/// The token's `nbf` has not come yet (beyond the leeway).
pub const TOKEN_NOT_YET_VALID: &str = "TOKEN_NOT_YET_VALID";
/// groupd holds no signing key of the issuer yet (its JWKS could not be
/// fetched); retrying later may succeed.
pub const KEYS_UNAVAILABLE: &str = "KEYS_UNAVAILABLE";

/// No credential at all.
pub(crate) fn missing(accepted: &str) -> Error {
    Error::Unauthenticated {
        reason: CREDENTIALS_MISSING,
        message: format!("this request carries no credentials; groupd accepts {accepted}"),
    }
}

/// A credential refused for `why`, which names the problem, never the
/// credential.
pub(crate) fn invalid(why: impl Into<String>) -> Error {
    Error::Unauthenticated {
        reason: CREDENTIALS_INVALID,
        message: why.into(),
    }
}

/// An expired token.
pub(crate) fn expired() -> Error {
    Error::Unauthenticated {
        reason: TOKEN_EXPIRED,
        message: "the bearer token has expired".to_owned(),
    }
}

/// A token whose `nbf` is still ahead.
pub(crate) fn not_yet_valid() -> Error {
    Error::Unauthenticated {
        reason: TOKEN_NOT_YET_VALID,
        message: "the bearer token is not valid yet (its nbf is in the future)".to_owned(),
    }
}

/// No key of the issuer is known yet.
pub(crate) fn keys_unavailable() -> Error {
    Error::Unauthenticated {
        reason: KEYS_UNAVAILABLE,
        message: "groupd has not obtained the issuer's signing keys yet; retry later".to_owned(),
    }
}
