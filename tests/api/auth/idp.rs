//! The scenarios' identity provider: an Ed25519 key pair generated for the
//! test, its public half in a JWKS file the server reads, and tokens signed
//! with the private half.

use std::path::PathBuf;

use base64::Engine as _;
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The issuer the server trusts.
pub const ISSUER: &str = "https://issuer.groupd.test";
/// The audience the server expects.
pub const AUDIENCE: &str = "groupd";

/// A key pair and the JWKS file of its public key.
pub struct Idp {
    dir: PathBuf,
    key: EncodingKey,
    kid: String,
}

impl Idp {
    /// A fresh key pair, its JWKS written to a directory of its own.
    pub fn new() -> Self {
        let signing = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let pem = signing
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let key = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let kid = format!("test-{}", uuid::Uuid::new_v4().simple());
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signing.verifying_key().as_bytes());
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig",
        }]});
        let dir =
            std::env::temp_dir().join(format!("groupd_idp_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        Self { dir, key, kid }
    }

    /// The server flags that trust this provider.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--auth",
            "jwt",
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
            "--jwt-jwks-file",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([self.dir.join("jwks.json").display().to_string()])
        .collect()
    }

    /// A token for `sub` with `roles`, valid for ten minutes.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        let now = now();
        self.sign(&json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "roles": roles,
            "iat": now, "exp": now + 600,
        }))
    }

    /// A token for `sub` with `roles` whose `exp` passed two minutes ago,
    /// beyond the server's 30 s of leeway; otherwise as good as
    /// [`Idp::token`]'s.
    pub fn expired_token(&self, sub: &str, roles: &[&str]) -> String {
        let now = now();
        self.sign(&json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "roles": roles,
            "iat": now - 900, "exp": now - 120,
        }))
    }

    /// `claims` signed with the provider's key, naming it by `kid`.
    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
