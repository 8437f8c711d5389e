//! Basic authentication (`Authorization: Basic base64(user:password)`)
//! against an htpasswd file of bcrypt hashes (`--basic-users-file`).
//!
//! The file holds one `user:hash` per line; blank lines and lines starting
//! with `#` are ignored. Only bcrypt hashes (`$2y$`, `$2b$`, `$2a$`) are
//! accepted: a line of another format (MD5 `$apr1$`, `{SHA}`, crypt,
//! plain text), a user name that is not a valid principal id, or a user
//! named twice is skipped and logged by line number and user, never with
//! its hash. The file is read again when it changes; a version that cannot
//! be read keeps the last good users.
//!
//! bcrypt runs on the blocking pool, at most one verification per core at a
//! time, so a flood of wrong passwords queues instead of starving the
//! runtime. A user the file does not name is checked against a dummy hash of
//! the file's highest cost, so that the time an answer takes does not tell
//! which users exist. A verified header is remembered for
//! [`BasicAuth::cache_ttl`] by an HMAC-SHA256 of it under a key drawn at
//! start, never by the password; a reload of the file forgets them all.

use std::{
    collections::HashMap,
    path::Path,
    str::FromStr as _,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::{
    cache::{BoundedCache, DEFAULT_CAPACITY},
    refusal,
    watched::WatchedFile,
};
use crate::{domain::Principal, error::Error};

/// How long a verified Basic header is remembered by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// The longest Basic credentials read (base64 text).
const MAX_CREDENTIALS_BYTES: usize = 4096;

/// The bcrypt cost of the dummy hash when the file holds no user.
const DEFAULT_COST: u32 = bcrypt::DEFAULT_COST;

/// The users of a users file, by name.
struct Users {
    hashes: HashMap<String, String>,
    /// A hash no password matches in practice, of the file's highest cost,
    /// checked for users the file does not name.
    dummy: String,
    generation: u64,
}

/// A users file read: its users and what was skipped in it.
#[derive(Debug)]
pub struct ParsedUsers {
    /// Each user's bcrypt hash.
    pub hashes: HashMap<String, String>,
    /// One line per skipped line.
    pub skipped: Vec<String>,
}

/// Reads an htpasswd file of bcrypt hashes. Fails only when it is not
/// UTF-8; lines that cannot be used are skipped.
pub fn parse_users(bytes: &[u8]) -> Result<ParsedUsers, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the users file is not UTF-8".to_owned())?;
    let mut hashes = HashMap::new();
    let mut skipped = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line is never echoed: a mistaken one may hold a password.
        let Some((user, hash)) = line.split_once(':') else {
            skipped.push(format!("line {number} is not user:hash; skipped"));
            continue;
        };
        let Some(principal) = Principal::parse(user) else {
            skipped.push(format!(
                "line {number}: the user name is not a valid principal id; skipped"
            ));
            continue;
        };
        let named = crate::domain::quote(principal.as_str());
        if !is_bcrypt(hash) {
            skipped.push(format!(
                "line {number}: user {named} has no bcrypt hash ($2y$, $2b$ or $2a$); skipped"
            ));
            continue;
        }
        if hashes.contains_key(principal.as_str()) {
            skipped.push(format!(
                "line {number}: user {named} is named again; the first line holds"
            ));
            continue;
        }
        hashes.insert(principal.as_str().to_owned(), hash.to_owned());
    }
    Ok(ParsedUsers { hashes, skipped })
}

/// Whether `hash` is a well-formed bcrypt hash of a version accepted.
fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
        && bcrypt::HashParts::from_str(hash).is_ok()
}

/// The cost of a bcrypt hash.
fn cost_of(hash: &str) -> Option<u32> {
    bcrypt::HashParts::from_str(hash)
        .ok()
        .map(|parts| parts.get_cost())
}

/// Basic authentication against a users file.
pub struct BasicAuth {
    file: Mutex<WatchedFile>,
    users: RwLock<Arc<Users>>,
    cache: Mutex<BoundedCache<Principal>>,
    cache_key: [u8; 32],
    cache_ttl: Duration,
    permits: Arc<tokio::sync::Semaphore>,
    verifications: AtomicU64,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("BasicAuth")
            .field("file", &file.path())
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Basic authentication against the users file at `path`, read now (it
    /// must exist and be readable). Runs bcrypt once (the dummy hash):
    /// call it off the async workers.
    pub fn load(path: &Path, cache_ttl: Duration) -> anyhow::Result<Self> {
        let parallelism = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        let basic = Self {
            file: Mutex::new(WatchedFile::new(path)),
            users: RwLock::new(Arc::new(Users {
                hashes: HashMap::new(),
                dummy: String::new(),
                generation: 0,
            })),
            cache: Mutex::new(BoundedCache::new(DEFAULT_CAPACITY)),
            cache_key: rand::random(),
            cache_ttl,
            permits: Arc::new(tokio::sync::Semaphore::new(parallelism)),
            verifications: AtomicU64::new(0),
        };
        basic.reload()?;
        Ok(basic)
    }

    /// How long a verified header is remembered.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    /// How many bcrypt verifications ran since start.
    pub fn bcrypt_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many users the file in use names.
    pub fn user_count(&self) -> usize {
        self.current().hashes.len()
    }

    /// Reads the users file again if it changed. Returns whether new users
    /// were installed (forgetting every remembered header); fails, keeping
    /// the users in use, when it cannot be read. Runs bcrypt once when it
    /// reads: call it off the async workers.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let path = file.path().display().to_string();
        let Some(contents) = file
            .read_if_changed()
            .map_err(|error| anyhow::anyhow!("cannot read the users file {path}: {error}"))?
        else {
            return Ok(false);
        };
        let parsed = parse_users(&contents)
            .map_err(|problem| anyhow::anyhow!("the users file {path}: {problem}"))?;
        for skipped in &parsed.skipped {
            tracing::warn!(basic_users_file = %path, "{skipped}");
        }
        let cost = parsed
            .hashes
            .values()
            .filter_map(|hash| cost_of(hash))
            .max()
            .unwrap_or(DEFAULT_COST);
        let dummy = bcrypt::hash(rand::random::<[u8; 16]>(), cost)
            .map_err(|error| anyhow::anyhow!("cannot make the dummy hash: {error}"))?;
        tracing::info!(basic_users_file = %path, users = parsed.hashes.len(), "Basic users loaded");
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        let generation = users.generation + 1;
        *users = Arc::new(Users {
            hashes: parsed.hashes,
            dummy,
            generation,
        });
        drop(users);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(true)
    }

    /// The user the credentials (the base64 text after `Basic `) name, when
    /// the password is theirs.
    pub async fn verify(&self, credentials: &str) -> Result<Principal, Error> {
        if credentials.len() > MAX_CREDENTIALS_BYTES {
            return Err(refusal::invalid(format!(
                "the Basic credentials are longer than {MAX_CREDENTIALS_BYTES} bytes"
            )));
        }
        let digest = self.digest(credentials)?;
        let users = self.current();
        let now = SystemTime::now();
        if let Some(principal) = self.lock_cache().get(&digest, now, users.generation) {
            return Ok(principal);
        }
        let decoded = STANDARD
            .decode(credentials)
            .map_err(|_| refusal::invalid("the Basic credentials are not base64"))?;
        let Some(colon) = decoded.iter().position(|byte| *byte == b':') else {
            return Err(refusal::invalid(
                "the Basic credentials are not user:password",
            ));
        };
        let (user, password) = (&decoded[..colon], decoded[colon + 1..].to_vec());
        let user = std::str::from_utf8(user).unwrap_or_default();
        let (hash, known) = match users.hashes.get(user) {
            Some(hash) => (hash.clone(), true),
            None => (users.dummy.clone(), false),
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .map_err(Error::internal)?;
        let principal = Principal::parse(user)
            .filter(|_| matches && known)
            .ok_or_else(|| refusal::invalid("the user name or password is wrong"))?;
        self.lock_cache().insert(
            digest,
            principal.clone(),
            now + self.cache_ttl,
            users.generation,
        );
        Ok(principal)
    }

    /// The cache key of `credentials`: their HMAC-SHA256 under the
    /// process's key.
    fn digest(&self, credentials: &str) -> Result<[u8; 32], Error> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.cache_key).map_err(Error::internal)?;
        mac.update(credentials.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    fn current(&self) -> Arc<Users> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, BoundedCache<Principal>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_lines_of_valid_users_are_kept() {
        let alice = bcrypt::hash("alice-password", 4).unwrap();
        let alice_2a = alice.replacen("$2b$", "$2a$", 1);
        let bob = bcrypt::hash("bob-password", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let file = format!(
            "# users\n\nalice:{alice}\r\nbob:{bob}\ncarol:$apr1$abc$0123456789012345678901\n\
             dave:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nerin:plain-secret\nno colon here\n\
             bad id!:{alice}\nalice:{alice_2a}\nmallory:$2b$04$short\n"
        );
        let parsed = parse_users(file.as_bytes()).unwrap();
        let mut users: Vec<&String> = parsed.hashes.keys().collect();
        users.sort();
        assert_eq!(users, vec!["alice", "bob"]);
        assert_eq!(parsed.hashes["alice"], alice, "the first line holds");
        assert_eq!(parsed.skipped.len(), 7, "{:?}", parsed.skipped);
        let skipped = parsed.skipped.join("\n");
        for secret in [
            "plain-secret",
            "$apr1$",
            "W6ph5",
            &alice[7..],
            "$2b$04$short",
        ] {
            assert!(!skipped.contains(secret), "{secret} leaked: {skipped}");
        }
        assert!(skipped.contains("line 5: user \"carol\""), "{skipped}");
        assert!(skipped.contains("line 8 is not user:hash"), "{skipped}");
        assert!(parse_users(b"\xff\xfe").is_err());
    }
}
