//! Signing keys and tokens for development and tests: what `groupd
//! dev-keys` and `groupd dev-token` do, and what the tests sign their tokens
//! with. groupd itself never signs a token; it only verifies them
//! (`auth::jwt`).
//!
//! A key is named by its RFC 7638 thumbprint (SHA-256, base64url), so the
//! `kid` of a token is found again from the private key alone.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The file `groupd dev-keys` writes the private key to.
pub const PRIVATE_KEY_FILE: &str = "private.pem";
/// The file `groupd dev-keys` writes the JWKS to.
pub const JWKS_FILE: &str = "jwks.json";

/// The algorithm of a development key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519 (`EdDSA`).
    Eddsa,
    /// ECDSA on P-256 (`ES256`).
    Es256,
    /// ECDSA on P-384 (`ES384`).
    Es384,
    /// RSA, 2048 bits, PKCS#1 v1.5 signatures (`RS256`); the same key also
    /// signs `RS384`, `RS512` and `PS*`.
    Rs256,
}

impl KeyAlgorithm {
    /// The JWT algorithm the key signs with by default.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::Eddsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

/// A private signing key with its public JWK.
pub struct SigningKey {
    algorithm: KeyAlgorithm,
    private_pem: String,
    encoding: EncodingKey,
    public: PublicParts,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The public half of a key, as JWK members.
#[derive(Debug, Clone)]
enum PublicParts {
    Okp {
        x: String,
    },
    Ec {
        crv: &'static str,
        x: String,
        y: String,
    },
    Rsa {
        n: String,
        e: String,
    },
}

impl PublicParts {
    /// The members RFC 7638 hashes, in its order (lexicographic), as the
    /// canonical JSON it prescribes.
    fn thumbprint_input(&self) -> String {
        match self {
            Self::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            Self::Ec { crv, x, y } => {
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            Self::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        }
    }

    fn members(&self) -> Value {
        match self {
            Self::Okp { x } => json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            Self::Ec { crv, x, y } => json!({"kty": "EC", "crv": crv, "x": x, "y": y}),
            Self::Rsa { n, e } => json!({"kty": "RSA", "n": n, "e": e}),
        }
    }
}

impl SigningKey {
    /// A fresh key of `algorithm`, from the operating system's random
    /// number generator.
    pub fn generate(algorithm: KeyAlgorithm) -> anyhow::Result<Self> {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        use rsa::Generate as _;
        let pem = match algorithm {
            KeyAlgorithm::Eddsa => {
                ed25519_dalek::SigningKey::from_bytes(&rand::random()).to_pkcs8_pem(LineEnding::LF)
            }
            KeyAlgorithm::Es256 => p256::ecdsa::SigningKey::try_generate()
                .context("cannot draw random bytes")?
                .to_pkcs8_pem(LineEnding::LF),
            KeyAlgorithm::Es384 => p384::ecdsa::SigningKey::try_generate()
                .context("cannot draw random bytes")?
                .to_pkcs8_pem(LineEnding::LF),
            KeyAlgorithm::Rs256 => {
                let mut rng = getrandom::SysRng;
                rsa::PrivateKey::new(&mut rng, 2048)
                    .context("cannot generate an RSA key")?
                    .to_pkcs8_pem(LineEnding::LF)
            }
        }
        .context("cannot encode the key as PKCS#8")?;
        Self::from_pem(&pem)
    }

    /// The key a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) holds: Ed25519,
    /// P-256, P-384 or RSA.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let der = key.to_pkcs8_der().context("cannot encode the key")?;
            let x = b64(key.verifying_key().as_bytes());
            return Ok(Self::new(
                KeyAlgorithm::Eddsa,
                pem,
                EncodingKey::from_ed_der(der.as_bytes()),
                PublicParts::Okp { x },
            ));
        }
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            let der = key.to_pkcs8_der().context("cannot encode the key")?;
            let point = key.verifying_key().to_sec1_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                bail!("the P-256 key has no public point");
            };
            return Ok(Self::new(
                KeyAlgorithm::Es256,
                pem,
                EncodingKey::from_ec_der(der.as_bytes()),
                PublicParts::Ec {
                    crv: "P-256",
                    x: b64(x),
                    y: b64(y),
                },
            ));
        }
        if let Ok(key) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            let der = key.to_pkcs8_der().context("cannot encode the key")?;
            let point = key.verifying_key().to_sec1_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                bail!("the P-384 key has no public point");
            };
            return Ok(Self::new(
                KeyAlgorithm::Es384,
                pem,
                EncodingKey::from_ec_der(der.as_bytes()),
                PublicParts::Ec {
                    crv: "P-384",
                    x: b64(x),
                    y: b64(y),
                },
            ));
        }
        if let Ok(key) = rsa::PrivateKey::from_pkcs8_pem(pem) {
            use rsa::{pkcs1::EncodeRsaPrivateKey as _, traits::PublicKeyParts as _};
            let der = key.to_pkcs1_der().context("cannot encode the key")?;
            let public = key.to_public_key();
            let n = b64(&public.n().to_be_bytes_trimmed_vartime());
            let e = b64(&public.e().to_be_bytes_trimmed_vartime());
            return Ok(Self::new(
                KeyAlgorithm::Rs256,
                pem,
                EncodingKey::from_rsa_der(der.as_bytes()),
                PublicParts::Rsa { n, e },
            ));
        }
        bail!("not an unencrypted PKCS#8 private key of Ed25519, P-256, P-384 or RSA")
    }

    fn new(algorithm: KeyAlgorithm, pem: &str, encoding: EncodingKey, public: PublicParts) -> Self {
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public.thumbprint_input()));
        Self {
            algorithm,
            private_pem: pem.to_owned(),
            encoding,
            public,
            kid,
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The public JWK: key type members, `kid`, `use: sig` and the `alg`
    /// of [`KeyAlgorithm::jwt_algorithm`].
    pub fn public_jwk(&self) -> Value {
        self.public_jwk_for(Some(self.algorithm.jwt_algorithm()))
    }

    /// The public JWK with `alg` set to `algorithm`, or without `alg`.
    pub fn public_jwk_for(&self, algorithm: Option<Algorithm>) -> Value {
        let mut jwk = self.public.members();
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".to_owned(), json!(self.kid));
            members.insert("use".to_owned(), json!("sig"));
            if let Some(algorithm) = algorithm {
                members.insert("alg".to_owned(), json!(algorithm_name(algorithm)));
            }
        }
        jwk
    }

    /// A JWT of `claims`, signed with the key's default algorithm and naming
    /// the key by `kid`.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm.jwt_algorithm());
        header.kid = Some(self.kid.clone());
        self.sign_with(&header, claims)
    }

    /// A JWT of `claims` with this `header` (its `alg` must fit the key).
    pub fn sign_with(&self, header: &Header, claims: &Value) -> anyhow::Result<String> {
        jsonwebtoken::encode(header, claims, &self.encoding).context("cannot sign the token")
    }
}

/// The name of `algorithm` in a JWT header or a JWK.
pub fn algorithm_name(algorithm: Algorithm) -> String {
    // The enum's variants are named as the registry names the algorithms.
    format!("{algorithm:?}")
}

/// A JWKS document holding `keys`' public JWKs.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
}

/// The claims of a development token: `iss`, `aud`, `sub`, `roles`, `iat`,
/// `nbf` and `exp` (now plus `ttl`).
pub fn claims(
    issuer: &str,
    audience: &str,
    subject: &str,
    roles: &[String],
    ttl: Duration,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
    })
}

/// Writes a fresh key of `algorithm` to `dir/private.pem` (mode 0600) and
/// its JWKS to `dir/jwks.json`, refusing to overwrite either. Returns the
/// key.
pub fn write_keys(dir: &Path, algorithm: KeyAlgorithm) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate(algorithm)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(JWKS_FILE);
    for path in [&private, &public] {
        if path.exists() {
            bail!(
                "{} exists; groupd dev-keys does not overwrite keys",
                path.display()
            );
        }
    }
    let jwks = serde_json::to_string_pretty(&jwks(&[&key]))?;
    write_new(&private, key.private_pem().as_bytes(), 0o600)?;
    write_new(&public, format!("{jwks}\n").as_bytes(), 0o644)?;
    Ok(key)
}

/// The private key at `path`: a PKCS#8 PEM file, or a directory holding
/// `private.pem`.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let file: PathBuf = if path.is_dir() {
        path.join(PRIVATE_KEY_FILE)
    } else {
        path.to_owned()
    };
    let pem =
        fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    SigningKey::from_pem(&pem).with_context(|| format!("{} holds no usable key", file.display()))
}

/// Creates `path` (which must not exist) with `mode` and `contents`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
