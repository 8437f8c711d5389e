//! Bearer tokens: JWTs signed by the issuer, verified against its JWKS.
//!
//! A token is accepted when its `alg` is one of
//! [`ACCEPTED_ALGORITHMS`](super::jwks::ACCEPTED_ALGORITHMS) (never `none`,
//! never HMAC), its key is found in the set (`auth::jwks` says how), its
//! signature verifies, its `iss` is `--jwt-issuer`, its `aud` (a string or
//! an array) includes `--jwt-audience`, it has an `exp` that has not passed
//! and an `nbf`, if any, that has come (both within `--jwt-leeway`), and
//! its principal claim is a valid principal id. Its roles claim, an array
//! of strings or a space-separated string, gives its roles; names groupd
//! does not know are dropped.
//!
//! Verified tokens are cached by the SHA-256 of the token until their `exp`
//! (plus the leeway) or until the key set changes, whichever comes first.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::{
    cache::{BoundedCache, DEFAULT_CAPACITY},
    jwks::{ACCEPTED_ALGORITHMS, KeySet, NoKey},
    refusal,
    remote::{GatedFetch, RemoteJwks},
    watched::WatchedFile,
};
use crate::{
    domain::{Principal, Role},
    error::Error,
};

/// The longest bearer token read; a longer one is refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must say to be accepted.
#[derive(Debug, Clone)]
pub struct JwtRules {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The audience `aud` must include.
    pub audience: String,
    /// How far `exp` and `nbf` may be off.
    pub leeway: Duration,
    /// The claim naming the caller.
    pub principal_claim: String,
    /// The claim holding the caller's roles.
    pub roles_claim: String,
}

/// Where the keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// A local JWKS file, read again when it changes.
    File(Mutex<WatchedFile>),
    /// A remote JWKS.
    Remote(Box<RemoteJwks>),
}

/// What a verified token established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The caller.
    pub principal: Principal,
    /// The roles the token grants.
    pub roles: BTreeSet<Role>,
}

/// The keys in use and their generation, which changes with them.
#[derive(Debug, Default)]
struct Keys {
    set: Arc<KeySet>,
    generation: u64,
    /// Whether a key set was ever installed (an empty file counts).
    loaded: bool,
}

/// Bearer-token authentication.
#[derive(Debug)]
pub struct JwtAuth {
    rules: JwtRules,
    source: KeySource,
    keys: RwLock<Keys>,
    cache: Mutex<BoundedCache<Verified>>,
}

impl JwtAuth {
    /// Token authentication by `rules`, with keys from `source` (none yet:
    /// see [`Self::load_file`] and [`Self::refresh`]).
    pub fn new(rules: JwtRules, source: KeySource) -> Self {
        Self {
            rules,
            source,
            keys: RwLock::new(Keys::default()),
            cache: Mutex::new(BoundedCache::new(DEFAULT_CAPACITY)),
        }
    }

    /// The rules tokens must follow.
    pub fn rules(&self) -> &JwtRules {
        &self.rules
    }

    /// The key source.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The keys in use.
    pub fn key_set(&self) -> Arc<KeySet> {
        self.read_keys().set.clone()
    }

    /// Whether a key set was ever installed (from the file, or a fetch
    /// that succeeded).
    pub fn key_set_loaded(&self) -> bool {
        self.read_keys().loaded
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.lock_cache().len()
    }

    /// Reads the JWKS file if it changed, and installs its keys. Returns
    /// whether new contents were read; fails when they do not parse (the
    /// keys in use are kept). Does nothing for a remote source.
    pub fn load_file(&self) -> anyhow::Result<bool> {
        let KeySource::File(file) = &self.source else {
            return Ok(false);
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        let path = file.path().display().to_string();
        let Some(contents) = file
            .read_if_changed()
            .map_err(|error| anyhow::anyhow!("cannot read the JWKS file {path}: {error}"))?
        else {
            return Ok(false);
        };
        self.install(&contents, &path)?;
        Ok(true)
    }

    /// Fetches a remote JWKS now and installs its keys; on failure the keys
    /// in use are kept. Does nothing for a file source.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let KeySource::Remote(remote) = &self.source else {
            return Ok(());
        };
        let contents = remote.fetch().await?;
        self.install(&contents, &remote.describe())
    }

    /// Parses a JWKS and, when its keys differ from those in use, installs
    /// them (dropping cached tokens) and logs the keys it skipped.
    fn install(&self, contents: &[u8], origin: &str) -> anyhow::Result<()> {
        let parsed =
            KeySet::parse(contents).map_err(|problem| anyhow::anyhow!("{origin}: {problem}"))?;
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.loaded && keys.set.same_keys(&parsed.set) {
            return Ok(());
        }
        // Logged once per change of the set, not at every refresh.
        for skipped in &parsed.skipped {
            tracing::warn!(jwks = %origin, "JWKS key not used: {skipped}");
        }
        if parsed.set.is_empty() {
            tracing::warn!(jwks = %origin, "the JWKS holds no usable key: every token is refused");
        } else {
            tracing::info!(
                jwks = %origin,
                keys = parsed.set.len(),
                kids = %parsed.set.kids().join(","),
                "JWKS keys loaded"
            );
        }
        keys.set = Arc::new(parsed.set);
        keys.generation += 1;
        keys.loaded = true;
        drop(keys);
        self.lock_cache().clear();
        Ok(())
    }

    /// The caller `token` names, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refusal::invalid(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let (set, generation) = {
            let keys = self.read_keys();
            (keys.set.clone(), keys.generation)
        };
        if let Some(verified) = self
            .lock_cache()
            .get(&digest, SystemTime::now(), generation)
        {
            return Ok(verified);
        }
        let algorithm = accepted_algorithm(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        let kid = header.kid.as_deref();
        let (set, generation) = match set.select(kid, algorithm) {
            Err(NoKey::UnknownKid | NoKey::Empty) => {
                self.refetch().await.unwrap_or((set, generation))
            }
            _ => (set, generation),
        };
        let key = set
            .select(kid, algorithm)
            .map_err(|no_key| self.no_key(no_key))?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.rules.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_issuer(&[&self.rules.issuer]);
        validation.set_audience(&[&self.rules.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|error| refused(error.kind()))?
            .claims;
        let principal = claims
            .get(&self.rules.principal_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                refusal::invalid(format!(
                    "the bearer token has no string claim {:?} naming the caller",
                    self.rules.principal_claim
                ))
            })?;
        let principal = Principal::parse(principal).ok_or_else(|| {
            refusal::invalid(format!(
                "the bearer token's claim {:?} is not a valid principal id",
                self.rules.principal_claim
            ))
        })?;
        let roles = roles_of(claims.get(&self.rules.roles_claim));
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or_else(malformed)?;
        let verified = Verified { principal, roles };
        let expires = UNIX_EPOCH + Duration::from_secs(exp) + self.rules.leeway;
        self.lock_cache()
            .insert(digest, verified.clone(), expires, generation);
        Ok(verified)
    }

    /// Fetches a remote JWKS again for a key the set lacks, at most once per
    /// the source's minimum interval; the keys in use after it.
    async fn refetch(&self) -> Option<(Arc<KeySet>, u64)> {
        let KeySource::Remote(remote) = &self.source else {
            return None;
        };
        match remote.fetch_gated().await {
            GatedFetch::Fetched(Ok(contents)) => {
                if let Err(error) = self.install(&contents, &remote.describe()) {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "the refetched JWKS is refused; the keys in use are kept"
                    );
                }
            }
            GatedFetch::Fetched(Err(error)) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot refetch the JWKS; the keys in use are kept"
                );
            }
            GatedFetch::TooSoon => {}
        }
        let keys = self.read_keys();
        Some((keys.set.clone(), keys.generation))
    }

    /// The refusal for a token no key verifies.
    fn no_key(&self, no_key: NoKey) -> Error {
        match no_key {
            NoKey::Empty if !self.read_keys().loaded => refusal::keys_unavailable(),
            NoKey::Empty => refusal::invalid("the issuer's key set holds no usable key"),
            NoKey::UnknownKid => refusal::invalid(
                "the bearer token is signed with a key (kid) the issuer's key set does not hold",
            ),
            NoKey::AlgorithmMismatch => {
                refusal::invalid("the bearer token's algorithm is not the one its key is for")
            }
            NoKey::WrongKeyType => {
                refusal::invalid("the bearer token's algorithm does not fit the type of its key")
            }
            NoKey::NoneFits => refusal::invalid(
                "the bearer token names no key (kid) and no key fits its algorithm",
            ),
            NoKey::Ambiguous => refusal::invalid(
                "the bearer token names no key (kid) and several keys fit its algorithm; \
                 tokens must name their key",
            ),
        }
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, BoundedCache<Verified>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The algorithm of `token`'s header, when groupd accepts it. Read before
/// anything else, so that `none` and HMAC tokens are refused by name.
fn accepted_algorithm(token: &str) -> Result<Algorithm, Error> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let header: Map<String, Value> = serde_json::from_slice(&header).map_err(|_| malformed())?;
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(malformed());
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(refusal::invalid(
            "unsigned bearer tokens (alg none) are not accepted",
        ));
    }
    if alg.starts_with("HS") {
        return Err(refusal::invalid(
            "bearer tokens signed with a shared secret (HMAC) are not accepted",
        ));
    }
    alg.parse::<Algorithm>()
        .ok()
        .filter(|algorithm| ACCEPTED_ALGORITHMS.contains(algorithm))
        .ok_or_else(|| {
            refusal::invalid(format!(
                "the bearer token's algorithm is not accepted; groupd accepts {}",
                ACCEPTED_ALGORITHMS
                    .iter()
                    .map(|algorithm| super::dev::algorithm_name(*algorithm))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// The refusal for a token `jsonwebtoken` did not accept.
fn refused(kind: &ErrorKind) -> Error {
    match kind {
        ErrorKind::ExpiredSignature => refusal::expired(),
        ErrorKind::ImmatureSignature => refusal::not_yet_valid(),
        ErrorKind::InvalidSignature => {
            refusal::invalid("the bearer token's signature does not verify")
        }
        ErrorKind::InvalidIssuer => {
            refusal::invalid("the bearer token's issuer (iss) is not the one groupd trusts")
        }
        ErrorKind::InvalidAudience => {
            refusal::invalid("the bearer token's audience (aud) does not include groupd")
        }
        ErrorKind::MissingRequiredClaim(claim) => refusal::invalid(format!(
            "the bearer token has no {:?} claim",
            clip_claim(claim)
        )),
        ErrorKind::InvalidClaimFormat(claim) => refusal::invalid(format!(
            "the bearer token's {:?} claim has the wrong type",
            clip_claim(claim)
        )),
        ErrorKind::InvalidAlgorithm => {
            refusal::invalid("the bearer token's algorithm does not fit its key")
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => {
            refusal::invalid("the bearer token's key cannot verify it")
        }
        _ => malformed(),
    }
}

/// A claim name from the library's error, at most 32 characters (they are
/// the registered names groupd asks for).
fn clip_claim(claim: &str) -> String {
    claim.chars().take(32).collect()
}

/// A token that is not a well-formed JWT.
fn malformed() -> Error {
    refusal::invalid("the bearer token is not a well-formed JWT")
}

/// The roles a roles claim grants: an array of strings or a space-separated
/// string; names groupd does not know are dropped.
pub fn roles_of(claim: Option<&Value>) -> BTreeSet<Role> {
    match claim {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Role::parse)
            .collect(),
        Some(Value::String(names)) => names.split_whitespace().filter_map(Role::parse).collect(),
        _ => BTreeSet::new(),
    }
}

/// A JWT NumericDate (seconds since the epoch, maybe fractional), whole
/// seconds.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0 && *seconds < 1e15)
            .map(|seconds| seconds as u64)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_come_from_an_array_or_a_space_separated_string() {
        let roles = roles_of(Some(&json!([
            "groups.admin",
            "groups.owner",
            7,
            "groups.reader"
        ])));
        assert_eq!(
            roles.into_iter().collect::<Vec<_>>(),
            vec![Role::Admin, Role::Reader]
        );
        let roles = roles_of(Some(&json!("groups.creator  openid groups.reader")));
        assert_eq!(
            roles.into_iter().collect::<Vec<_>>(),
            vec![Role::Reader, Role::Creator]
        );
        assert!(roles_of(Some(&json!({"groups.admin": true}))).is_empty());
        assert!(roles_of(None).is_empty());
    }

    #[test]
    fn numeric_dates_may_be_fractional() {
        assert_eq!(numeric_date(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!(1_700_000_000.75)), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!(-5)), None);
        assert_eq!(numeric_date(&json!("1700000000")), None);
    }

    #[test]
    fn none_hmac_and_unknown_algorithms_are_refused_by_name() {
        let token = |header: Value| {
            format!(
                "{}.{}.sig",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode("{}")
            )
        };
        let message = |header: Value| match accepted_algorithm(&token(header)) {
            Err(Error::Unauthenticated { reason, message }) => {
                assert_eq!(reason, refusal::CREDENTIALS_INVALID);
                message
            }
            other => panic!("{other:?}"),
        };
        assert!(message(json!({"alg": "none"})).contains("alg none"));
        assert!(message(json!({"alg": "NONE"})).contains("alg none"));
        assert!(message(json!({"alg": "HS256"})).contains("HMAC"));
        assert!(message(json!({"alg": "HS512"})).contains("HMAC"));
        assert!(message(json!({"alg": "PS512"})).contains("not accepted"));
        assert!(message(json!({"alg": "ES512"})).contains("not accepted"));
        assert!(message(json!({"typ": "JWT"})).contains("well-formed"));
        assert_eq!(
            accepted_algorithm(&token(json!({"alg": "EdDSA"}))).ok(),
            Some(Algorithm::EdDSA)
        );
        for malformed in ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.x"] {
            assert!(accepted_algorithm(malformed).is_err(), "{malformed}");
        }
    }
}
