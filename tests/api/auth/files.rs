//! The authentication files of a server started by a scenario itself: a
//! JWKS of a key generated here, a roles file and an htpasswd users file of
//! real bcrypt hashes, in a directory of their own that the scenario may
//! rewrite while the server runs; the flags naming them; and credentials
//! (bearer tokens, Basic headers) to send.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};
use tonic::Request;

use super::idp::{AUDIENCE, ISSUER};
use crate::helpers::credentials::{self, KeyAlgorithm, SigningKey, TempDir};

/// A server's authentication files and the key its JWKS holds at first.
pub struct AuthFiles {
    dir: TempDir,
    /// The key the JWKS file holds when written by [`AuthFiles::new`].
    pub key: SigningKey,
}

/// A user of the users file: its name, password and bcrypt hash.
pub struct User {
    /// The user name, which is its principal id.
    pub name: &'static str,
    /// The password.
    pub password: String,
    /// The bcrypt hash the users file holds.
    pub hash: String,
}

impl User {
    /// A user with a random password, hashed with bcrypt at cost 4: fast,
    /// and still real bcrypt.
    pub fn new(name: &'static str) -> Self {
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let line = credentials::htpasswd_line(name, &password);
        let hash = line.split_once(':').unwrap().1.to_owned();
        Self {
            name,
            password,
            hash,
        }
    }

    /// Its htpasswd line.
    pub fn line(&self) -> String {
        format!("{}:{}", self.name, self.hash)
    }

    /// Its `authorization` value with its password.
    pub fn basic(&self) -> String {
        basic(self.name, &self.password)
    }
}

impl AuthFiles {
    /// A fresh directory with a JWKS of one new Ed25519 key, an empty roles
    /// file and an empty users file.
    pub fn new() -> Self {
        let files = Self {
            dir: TempDir::new(),
            key: credentials::key(KeyAlgorithm::Eddsa),
        };
        files.write_jwks(&[&files.key]);
        files.write_roles(&json!({}));
        files.write_users(&[]);
        files
    }

    /// The JWKS file.
    pub fn jwks(&self) -> PathBuf {
        self.dir.join("jwks.json")
    }

    /// The roles file.
    pub fn roles(&self) -> PathBuf {
        self.dir.join("roles.json")
    }

    /// The users file.
    pub fn users(&self) -> PathBuf {
        self.dir.join("users.htpasswd")
    }

    /// Replaces the JWKS with `keys`' public keys (a rename, as a secret
    /// volume does).
    pub fn write_jwks(&self, keys: &[&SigningKey]) {
        self.dir
            .write("jwks.json", credentials::jwks(keys).to_string());
    }

    /// Replaces the JWKS with text that is not JSON.
    pub fn break_jwks(&self) {
        self.dir.write("jwks.json", "{\"keys\": [");
    }

    /// Replaces the roles file with `roles`.
    pub fn write_roles(&self, roles: &Value) {
        self.dir.write("roles.json", roles.to_string());
    }

    /// Replaces the roles file with text that is not JSON.
    pub fn break_roles(&self) {
        self.dir.write("roles.json", "{\"half\": [");
    }

    /// Replaces the users file with `users`' lines.
    pub fn write_users(&self, users: &[&User]) {
        let text: String = users.iter().map(|user| user.line() + "\n").collect();
        self.dir.write("users.htpasswd", text);
    }

    /// The server flags of `modes` (`--auth` as given, e.g. `jwt,basic`):
    /// each enabled mode's files, and the roles file.
    pub fn flags(&self, modes: &str) -> Vec<String> {
        let mut flags = vec!["--auth".to_owned(), modes.to_owned()];
        let path = |path: PathBuf| path.display().to_string();
        if modes.split(',').any(|mode| mode == "jwt") {
            flags.extend([
                "--jwt-issuer".to_owned(),
                ISSUER.to_owned(),
                "--jwt-audience".to_owned(),
                AUDIENCE.to_owned(),
                "--jwt-jwks-file".to_owned(),
                path(self.jwks()),
            ]);
        }
        if modes.split(',').any(|mode| mode == "basic") {
            flags.extend(["--basic-users-file".to_owned(), path(self.users())]);
        }
        flags.extend(["--roles-file".to_owned(), path(self.roles())]);
        flags
    }

    /// A token for `sub` with `roles`, signed by [`AuthFiles::key`], valid
    /// for ten minutes.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        token_by(&self.key, sub, roles)
    }
}

/// A token for `sub` with `roles`, signed by `key`, valid for ten minutes.
pub fn token_by(key: &SigningKey, sub: &str, roles: &[&str]) -> String {
    credentials::sign(key, &credentials::claims(ISSUER, AUDIENCE, sub, roles))
}

/// A token for `sub` signed by `key` whose `exp` passed two minutes ago,
/// beyond the server's 30 s of leeway.
pub fn expired_token_by(key: &SigningKey, sub: &str, roles: &[&str]) -> String {
    let mut claims = credentials::claims(ISSUER, AUDIENCE, sub, roles);
    let now = credentials::now();
    claims["iat"] = json!(now - 900);
    claims["exp"] = json!(now - 120);
    credentials::sign(key, &claims)
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `message` as a gRPC request whose `authorization` is `credential`.
pub fn authorized<T>(credential: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", credential.parse().unwrap());
    request
}
