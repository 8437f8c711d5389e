//! A JWKS read into the keys groupd verifies tokens with, and the choice of
//! a token's key.
//!
//! A key is kept only when it can sign one of the accepted algorithms: RSA
//! of 2048 to 8192 bits, EC on P-256 or P-384, OKP on Ed25519, each checked
//! to be a valid public key, not marked for another use than signatures.
//! Symmetric (`oct`) keys are never kept: a token signed with a shared
//! secret is refused whatever the JWKS holds. Other keys are skipped, each
//! with the reason logged; the rest of the set is used.
//!
//! A token names its key by `kid`. A token without `kid` is verified only
//! when exactly one key of the set fits its algorithm: with two or more,
//! trying each would let the token pick, so it is refused.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse},
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The algorithms groupd accepts, in the order it names them.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (the verifier's own bound).
pub const MAX_RSA_BITS: usize = 8192;

/// The type of a key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA: RS256, RS384, RS512, PS256.
    Rsa,
    /// EC on P-256: ES256.
    P256,
    /// EC on P-384: ES384.
    P384,
    /// OKP on Ed25519: EdDSA.
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this type verifies `algorithm`.
    pub fn fits(self, algorithm: Algorithm) -> bool {
        matches!(
            (self, algorithm),
            (
                Self::Rsa,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256
            ) | (Self::P256, Algorithm::ES256)
                | (Self::P384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
        )
    }
}

/// One key of the set.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// The key's `alg`, if the JWK names one: then the only algorithm it
    /// verifies.
    pub alg: Option<Algorithm>,
    /// The key's type.
    pub kind: KeyKind,
    /// The key, for `jsonwebtoken::decode`.
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key verifies tokens of `algorithm`.
    fn fits(&self, algorithm: Algorithm) -> bool {
        self.kind.fits(algorithm) && self.alg.is_none_or(|alg| alg == algorithm)
    }
}

/// The usable keys of a JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    fingerprint: [u8; 32],
}

/// A JWKS read: its usable keys, and why the others were skipped.
#[derive(Debug)]
pub struct ParsedKeySet {
    /// The usable keys.
    pub set: KeySet,
    /// One line per skipped key: its `kid` (or position) and the reason.
    pub skipped: Vec<String>,
}

/// Why no key of the set verifies a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoKey {
    /// The set holds no key at all.
    Empty,
    /// No key has the token's `kid`.
    UnknownKid,
    /// The key named by `kid` is for another algorithm (its JWK's `alg`).
    AlgorithmMismatch,
    /// The key named by `kid` is of a type that cannot verify the token's
    /// algorithm.
    WrongKeyType,
    /// The token names no key and no key fits its algorithm.
    NoneFits,
    /// The token names no key and several fit its algorithm.
    Ambiguous,
}

impl KeySet {
    /// Reads a JWKS document. Fails only when the document is not a JWKS
    /// (not JSON, no `keys` array); keys that cannot be used are skipped.
    pub fn parse(bytes: &[u8]) -> Result<ParsedKeySet, String> {
        let document: Value = serde_json::from_slice(bytes)
            .map_err(|error| format!("the JWKS is not JSON: {error}"))?;
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err("the JWKS has no \"keys\" array".to_owned());
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut fingerprint = Sha256::new();
        for (position, entry) in entries.iter().enumerate() {
            let name = entry
                .get("kid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("key #{position}"), |kid| format!("key {kid:?}"));
            match usable_key(entry) {
                Ok((key, material)) => {
                    fingerprint.update(
                        format!("{:?}|{:?}|{:?}|{material}\n", key.kid, key.alg, key.kind)
                            .as_bytes(),
                    );
                    keys.push(key);
                }
                Err(reason) => {
                    let line = format!("{name}: {reason}");
                    fingerprint.update(format!("skipped|{line}\n").as_bytes());
                    skipped.push(line);
                }
            }
        }
        Ok(ParsedKeySet {
            set: Self {
                keys,
                fingerprint: fingerprint.finalize().into(),
            },
            skipped,
        })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the keys (`-` for a key without one).
    pub fn kids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .map(|key| key.kid.as_deref().unwrap_or("-"))
            .collect()
    }

    /// Whether `other` holds the same keys (and skipped the same others).
    pub fn same_keys(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }

    /// The key that verifies a token of `algorithm` naming `kid`.
    pub fn select(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<&VerifyingKey, NoKey> {
        if self.keys.is_empty() {
            return Err(NoKey::Empty);
        }
        let Some(kid) = kid else {
            let mut fitting = self.keys.iter().filter(|key| key.fits(algorithm));
            return match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                (None, _) => Err(NoKey::NoneFits),
                (Some(_), Some(_)) => Err(NoKey::Ambiguous),
            };
        };
        let named: Vec<&VerifyingKey> = self
            .keys
            .iter()
            .filter(|key| key.kid.as_deref() == Some(kid))
            .collect();
        if named.is_empty() {
            return Err(NoKey::UnknownKid);
        }
        if let Some(key) = named.iter().find(|key| key.fits(algorithm)) {
            return Ok(key);
        }
        if named.iter().any(|key| key.kind.fits(algorithm)) {
            Err(NoKey::AlgorithmMismatch)
        } else {
            Err(NoKey::WrongKeyType)
        }
    }
}

/// The key `entry` describes and its public material (for the set's
/// fingerprint), or why it cannot be used.
fn usable_key(entry: &Value) -> Result<(VerifyingKey, String), String> {
    let jwk: Jwk = serde_json::from_value(entry.clone())
        .map_err(|_| "not a JWK groupd can read".to_owned())?;
    if let Some(public_key_use) = &jwk.common.public_key_use
        && *public_key_use != PublicKeyUse::Signature
    {
        return Err("its \"use\" is not \"sig\"".to_owned());
    }
    if let Some(operations) = &jwk.common.key_operations
        && !operations.contains(&KeyOperations::Verify)
    {
        return Err("its \"key_ops\" do not include \"verify\"".to_owned());
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(accepted_key_algorithm(alg)?),
    };
    let (kind, material) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = decode_part(&rsa.n, "n")?;
            let e = decode_part(&rsa.e, "e")?;
            let bits = bit_length(&n);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "its RSA modulus has {bits} bits; groupd accepts {MIN_RSA_BITS} to \
                     {MAX_RSA_BITS}"
                ));
            }
            if bit_length(&e) < 2 || bit_length(&e) > 33 {
                return Err("its RSA exponent is out of range".to_owned());
            }
            (KeyKind::Rsa, format!("{}.{}", rsa.n, rsa.e))
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let x = decode_part(&ec.x, "x")?;
            let y = decode_part(&ec.y, "y")?;
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let kind = match ec.curve {
                EllipticCurve::P256 if x.len() == 32 && y.len() == 32 => {
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| "its P-256 point is not on the curve".to_owned())?;
                    KeyKind::P256
                }
                EllipticCurve::P384 if x.len() == 48 && y.len() == 48 => {
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| "its P-384 point is not on the curve".to_owned())?;
                    KeyKind::P384
                }
                EllipticCurve::P256 | EllipticCurve::P384 => {
                    return Err("its coordinates do not have the curve's size".to_owned());
                }
                _ => return Err("its curve is not P-256 or P-384".to_owned()),
            };
            (kind, format!("{:?}.{}.{}", ec.curve, ec.x, ec.y))
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("its curve is not Ed25519".to_owned());
            }
            let x = decode_part(&okp.x, "x")?;
            let bytes: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| "its Ed25519 key is not 32 bytes".to_owned())?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "its Ed25519 key is not a valid point".to_owned())?;
            (KeyKind::Ed25519, okp.x.clone())
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not accepted".to_owned());
        }
        _ => return Err("its key type is not RSA, EC or OKP".to_owned()),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err("its \"alg\" does not fit its key type".to_owned());
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| "its key does not load".to_owned())?;
    let key = VerifyingKey {
        kid: jwk.common.key_id.clone(),
        alg,
        kind,
        decoding,
    };
    Ok((key, material))
}

/// The algorithm a JWK's `alg` names, when groupd accepts it.
fn accepted_key_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, String> {
    Algorithm::try_from(alg)
        .ok()
        .filter(|alg| ACCEPTED_ALGORITHMS.contains(alg))
        .ok_or_else(|| "its \"alg\" is not one groupd accepts".to_owned())
}

/// A base64url member of a JWK, decoded.
fn decode_part(text: &str, member: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("its \"{member}\" is not base64url"))
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|byte| *byte != 0) {
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::dev::{KeyAlgorithm as DevAlgorithm, SigningKey, jwks};

    fn parse(document: &Value) -> ParsedKeySet {
        KeySet::parse(document.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn usable_keys_of_every_type_are_kept() {
        let keys: Vec<SigningKey> = [
            DevAlgorithm::Eddsa,
            DevAlgorithm::Es256,
            DevAlgorithm::Es384,
        ]
        .into_iter()
        .map(|alg| SigningKey::generate(alg).unwrap())
        .collect();
        let parsed = parse(&jwks(&keys.iter().collect::<Vec<_>>()));
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert_eq!(parsed.set.len(), 3);
        for key in &keys {
            let alg = key.algorithm().jwt_algorithm();
            let found = parsed.set.select(Some(key.kid()), alg).unwrap();
            assert_eq!(found.kid.as_deref(), Some(key.kid()));
        }
    }

    #[test]
    fn unusable_keys_are_skipped_with_their_reason() {
        let ed = SigningKey::generate(DevAlgorithm::Eddsa).unwrap();
        let mut encryption = ed.public_jwk();
        encryption["use"] = json!("enc");
        encryption["kid"] = json!("enc");
        let mut hmac_alg = ed.public_jwk();
        hmac_alg["alg"] = json!("HS256");
        hmac_alg["kid"] = json!("hs");
        let mut mismatch = ed.public_jwk();
        mismatch["alg"] = json!("ES256");
        mismatch["kid"] = json!("mismatch");
        let mut short = ed.public_jwk();
        short["x"] = json!("AAAA");
        short["kid"] = json!("short");
        let document = json!({"keys": [
            encryption,
            hmac_alg,
            mismatch,
            short,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "small-rsa"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "bad-ec"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x25519"},
            {"kty": "weird", "kid": "weird"},
            ed.public_jwk(),
        ]});
        let parsed = parse(&document);
        assert_eq!(parsed.set.kids(), vec![ed.kid()]);
        assert_eq!(parsed.skipped.len(), 9, "{:?}", parsed.skipped);
        for kid in [
            "enc",
            "hs",
            "mismatch",
            "short",
            "oct",
            "small-rsa",
            "bad-ec",
            "x25519",
            "weird",
        ] {
            assert!(
                parsed
                    .skipped
                    .iter()
                    .any(|line| line.starts_with(&format!("key \"{kid}\""))),
                "{kid}: {:?}",
                parsed.skipped
            );
        }
        assert!(KeySet::parse(b"not json").is_err());
        assert!(KeySet::parse(b"{\"no_keys\": []}").is_err());
    }

    #[test]
    fn a_token_without_kid_is_verified_only_by_the_one_fitting_key() {
        let ed = SigningKey::generate(DevAlgorithm::Eddsa).unwrap();
        let ec = SigningKey::generate(DevAlgorithm::Es256).unwrap();
        let one_each = parse(&jwks(&[&ed, &ec])).set;
        let key = one_each.select(None, Algorithm::EdDSA).unwrap();
        assert_eq!(key.kid.as_deref(), Some(ed.kid()));
        assert_eq!(
            one_each.select(None, Algorithm::ES384).unwrap_err(),
            NoKey::NoneFits
        );
        let other_ed = SigningKey::generate(DevAlgorithm::Eddsa).unwrap();
        let two_ed = parse(&jwks(&[&ed, &other_ed])).set;
        assert_eq!(
            two_ed.select(None, Algorithm::EdDSA).unwrap_err(),
            NoKey::Ambiguous
        );
        assert_eq!(
            KeySet::default()
                .select(None, Algorithm::EdDSA)
                .unwrap_err(),
            NoKey::Empty
        );
    }

    #[test]
    fn a_named_key_must_fit_the_token_algorithm() {
        let ec = SigningKey::generate(DevAlgorithm::Es256).unwrap();
        let set = parse(&jwks(&[&ec])).set;
        assert_eq!(
            set.select(Some("other"), Algorithm::ES256).unwrap_err(),
            NoKey::UnknownKid
        );
        assert_eq!(
            set.select(Some(ec.kid()), Algorithm::EdDSA).unwrap_err(),
            NoKey::WrongKeyType
        );
        let rsa = SigningKey::generate(DevAlgorithm::Rs256).unwrap();
        let set = parse(&jwks(&[&rsa])).set;
        assert!(set.select(Some(rsa.kid()), Algorithm::RS256).is_ok());
        assert_eq!(
            set.select(Some(rsa.kid()), Algorithm::PS256).unwrap_err(),
            NoKey::AlgorithmMismatch,
            "the JWK says RS256"
        );
        let without_alg = json!({"keys": [rsa.public_jwk_for(None)]});
        let set = parse(&without_alg).set;
        assert!(set.select(Some(rsa.kid()), Algorithm::PS256).is_ok());
        assert!(set.select(Some(rsa.kid()), Algorithm::RS512).is_ok());
    }

    #[test]
    fn the_fingerprint_changes_with_the_keys_only() {
        let ed = SigningKey::generate(DevAlgorithm::Eddsa).unwrap();
        let ec = SigningKey::generate(DevAlgorithm::Es256).unwrap();
        let first = parse(&jwks(&[&ed])).set;
        let again = parse(&jwks(&[&ed])).set;
        let more = parse(&jwks(&[&ed, &ec])).set;
        assert!(first.same_keys(&again));
        assert!(!first.same_keys(&more));
    }
}
