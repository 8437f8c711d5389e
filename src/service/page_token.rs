//! Opaque page tokens (AIP-158) that reject tampering.
//!
//! A token is the JSON of the listing's query fingerprint and cursor,
//! followed by a truncated HMAC-SHA256 over it, in URL-safe base64. The key
//! is a secret kept in the database, so every replica accepts every other
//! replica's tokens, and a client can neither forge a cursor nor reuse a
//! token with a different query.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Sha256;

use crate::error::Error;

/// Bytes of the MAC kept in a token: 128 bits.
const MAC_LEN: usize = 16;

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens { key: <redacted> }")
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// The fingerprint of the query the token continues.
    q: String,
    /// Where the next page starts.
    c: T,
}

impl PageTokens {
    /// Tokens signed with `key`.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self) -> Result<Hmac<Sha256>, Error> {
        Hmac::<Sha256>::new_from_slice(&self.key).map_err(Error::internal)
    }

    /// The token that continues the listing `query` at `cursor`.
    pub fn encode<T: Serialize>(&self, query: &str, cursor: &T) -> Result<String, Error> {
        let mut bytes = serde_json::to_vec(&Envelope {
            q: query.to_owned(),
            c: cursor,
        })
        .map_err(Error::internal)?;
        let tag = self.mac()?.chain_update(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The cursor in `token`, which must have been issued for `query`;
    /// `None` for the empty token (the first page).
    pub fn decode<T: DeserializeOwned>(
        &self,
        query: &str,
        token: &str,
    ) -> Result<Option<T>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            Error::invalid(
                "page_token",
                "page_token is not a token this service issued",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let split = bytes.len().checked_sub(MAC_LEN).ok_or_else(invalid)?;
        let (payload, tag) = bytes.split_at(split);
        self.mac()?
            .chain_update(payload)
            .verify_truncated_left(tag)
            .map_err(|_| invalid())?;
        let envelope: Envelope<T> = serde_json::from_slice(payload).map_err(|_| invalid())?;
        if envelope.q != query {
            return Err(Error::invalid(
                "page_token",
                "page_token was issued for a different query: keep every other field of the request unchanged between pages",
            ));
        }
        Ok(Some(envelope.c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(b"test key".to_vec())
    }

    #[test]
    fn tokens_round_trip_for_the_same_query() {
        let token = tokens().encode("q", &42_i64).unwrap_or_default();
        assert_eq!(tokens().decode::<i64>("q", &token).ok().flatten(), Some(42));
        assert_eq!(tokens().decode::<i64>("q", "").ok().flatten(), None);
    }

    #[test]
    fn tampered_foreign_or_garbage_tokens_are_rejected() {
        let token = tokens().encode("q", &42_i64).unwrap_or_default();
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        bytes[6] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert!(tokens().decode::<i64>("q", &tampered).is_err());
        assert!(tokens().decode::<i64>("other", &token).is_err());
        assert!(
            PageTokens::new(b"other key".to_vec())
                .decode::<i64>("q", &token)
                .is_err()
        );
        assert!(tokens().decode::<i64>("q", "not base64!").is_err());
        assert!(tokens().decode::<i64>("q", "AAAA").is_err());
    }

    #[test]
    fn a_forged_cursor_under_the_old_mac_is_rejected() {
        let token = tokens().encode("q", &42_i64).unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        assert_eq!(payload, br#"{"q":"q","c":42}"#);
        // Still valid JSON for the same query, with another cursor: only
        // the MAC tells the forgery apart.
        let mut forged = br#"{"q":"q","c":97}"#.to_vec();
        forged.extend_from_slice(tag);
        let forged = URL_SAFE_NO_PAD.encode(forged);
        let refused = tokens().decode::<i64>("q", &forged);
        assert!(
            matches!(refused, Err(Error::InvalidArgument { .. })),
            "{refused:?}"
        );
    }
}
