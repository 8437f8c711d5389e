//! Identifiers, parsed once: a [`GroupId`], [`PrincipalId`] or [`RoleId`]
//! can only be made by its `parse`, which checks the pattern, so code that
//! holds one never checks it again.
//!
//! The patterns are simple character classes, checked by hand rather than
//! with a regex engine: they are fixed, short, and on every request path.
//! The `*_PATTERN` constants spell the same rules as regular expressions for
//! documents (the OpenAPI description); a property test keeps the two equal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest name, scope or group id, in bytes (all ASCII).
pub const NAME_MAX_BYTES: usize = 128;
/// The longest principal id, in bytes.
pub const PRINCIPAL_ID_MAX_BYTES: usize = 256;
/// The longest role id, in bytes.
pub const ROLE_ID_MAX_BYTES: usize = 256;

/// The pattern of names, scopes and group ids ([`is_name`]).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// The pattern of principal ids ([`PrincipalId`]).
pub const PRINCIPAL_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,255}$";
/// The pattern of role ids ([`RoleId`]).
pub const ROLE_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,255}$";
/// The pattern of label keys ([`is_label_key`]).
pub const LABEL_KEY_PATTERN: &str = "^[a-z][a-z0-9_.-]{0,62}$";

/// Why a text is not an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// The text is empty: the identifier is missing.
    Empty,
    /// The text does not follow the identifier's pattern.
    Malformed,
}

/// Whether `text` is an ASCII letter or digit followed by at most
/// `max_len - 1` letters, digits or `extra` characters.
fn is_token(text: &str, max_len: usize, extra: &[u8]) -> bool {
    let bytes = text.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= max_len
                && first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(b))
        }
        None => false,
    }
}

/// [`NAME_PATTERN`]: group names and scopes (and group ids, which follow
/// the same rule).
pub fn is_name(text: &str) -> bool {
    is_token(text, NAME_MAX_BYTES, b"._-")
}

/// [`LABEL_KEY_PATTERN`]: label keys.
pub fn is_label_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= 63
                && first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(b))
        }
        None => false,
    }
}

/// Declares an identifier newtype whose only constructor is `parse`.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier `text`, if it follows the pattern.
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                if text.is_empty() {
                    Err(IdError::Empty)
                } else if ($valid)(text.as_str()) {
                    Ok(Self(text))
                } else {
                    Err(IdError::Malformed)
                }
            }

            /// Whether `text` would parse.
            pub fn is_valid(text: &str) -> bool {
                ($valid)(text)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<Self, String> {
                Self::parse(text.clone())
                    .map_err(|_| format!("{} is not a valid {}", super::text::quote(&text), stringify!($name)))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A group's id: a client-chosen id follows [`NAME_PATTERN`], and the
    /// server-assigned UUIDs fit it too.
    GroupId,
    is_name
);

identifier!(
    /// A principal's id (a user or a service): [`PRINCIPAL_ID_PATTERN`].
    PrincipalId,
    |text: &str| is_token(text, PRINCIPAL_ID_MAX_BYTES, b"._@:/-")
);

identifier!(
    /// An opaque role id: [`ROLE_ID_PATTERN`].
    RoleId,
    |text: &str| is_token(text, ROLE_ID_MAX_BYTES, b"._@:/-")
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_one_word_pattern() {
        assert!(is_name("some-group"));
        assert!(is_name("a"));
        assert!(is_name(&"a".repeat(128)));
        assert!(!is_name(&"a".repeat(129)));
        assert!(!is_name("-leading"));
        assert!(!is_name("two words"));
        assert!(!is_name(""));
        assert!(!is_name("ünicode"));
    }

    #[test]
    fn principal_ids_name_users_service_accounts_and_spiffe_ids() {
        assert!(PrincipalId::is_valid("alice@example.com"));
        assert!(PrincipalId::is_valid("system:serviceaccount:payments:api"));
        assert!(PrincipalId::is_valid(
            "spiffe://example.org/ns/payments/sa/api"
        ));
        assert!(!PrincipalId::is_valid("/alice"));
        assert!(!PrincipalId::is_valid("alice smith"));
        assert!(!PrincipalId::is_valid("alice?x"));
        assert!(RoleId::is_valid("roles/admin:read"));
        assert!(!RoleId::is_valid(":admin"));
    }

    #[test]
    fn label_keys_start_with_a_lowercase_letter() {
        assert!(is_label_key("team"));
        assert!(is_label_key("k8s.io-name_1"));
        assert!(!is_label_key("Team"));
        assert!(!is_label_key("1team"));
        assert!(!is_label_key(&format!("a{}", "b".repeat(63))));
    }

    #[test]
    fn parsing_tells_a_missing_id_from_a_malformed_one() {
        assert_eq!(GroupId::parse(""), Err(IdError::Empty));
        assert_eq!(GroupId::parse("a b"), Err(IdError::Malformed));
        assert_eq!(GroupId::parse("a\0b"), Err(IdError::Malformed));
        assert_eq!(
            GroupId::parse("g-1").map(GroupId::into_string),
            Ok("g-1".into())
        );
        assert!(GroupId::is_valid("0b5a3f3e-8d4e-4c2a-9d0c-2f6e1a7b9c10"));
    }

    #[test]
    fn ids_deserialize_only_when_they_parse() {
        let id: Result<GroupId, _> = serde_json::from_str("\"g-1\"");
        assert_eq!(id.map(GroupId::into_string).ok(), Some("g-1".to_owned()));
        assert!(serde_json::from_str::<GroupId>("\"not an id\"").is_err());
        assert_eq!(
            serde_json::to_string(&PrincipalId::parse("alice").ok()).ok(),
            Some("\"alice\"".to_owned())
        );
    }

    proptest::proptest! {
        /// The documented patterns (served in the OpenAPI document) accept
        /// exactly what the hand-written checks accept.
        #[test]
        fn patterns_match_the_checks(text in "[A-Za-z0-9._@:/ -]{0,3}[a-z0-9_.@-]{0,300}") {
            for (pattern, check) in [
                (NAME_PATTERN, is_name as fn(&str) -> bool),
                (PRINCIPAL_ID_PATTERN, PrincipalId::is_valid),
                (ROLE_ID_PATTERN, RoleId::is_valid),
                (LABEL_KEY_PATTERN, is_label_key),
            ] {
                let regex = regex::Regex::new(pattern).unwrap();
                proptest::prop_assert_eq!(regex.is_match(&text), check(&text), "{} on {:?}", pattern, text);
            }
        }
    }
}
