//! The domain: what a group is, what makes one valid, how a field mask
//! merges a request into a stored group, and what each write changes.
//!
//! Pure code: no tonic, no sea-orm, no IO, no clock. Transport layers turn
//! requests into these types; the service plans each write here, asks the
//! store what only the database knows, and writes the plan.

pub mod caller;
pub mod create;
pub mod filter;
pub mod group;
pub mod hierarchy;
pub mod ids;
pub mod listing;
pub mod mask;
pub mod membership;
pub mod policy;
pub mod reply;
pub mod requests;
pub mod text;
pub mod update;
pub mod validate;
pub mod watch;

pub use group::{
    ChangeKind, Group, GroupChange, GroupFields, MemberEntry, Membership, State, Timestamp, View,
    etag_for,
};
pub use ids::{GroupId, IdError, PrincipalId, RoleId};
pub use mask::{MaskPath, UpdateMask};
pub use text::{clip, quote};

pub use caller::{Caller, Role};

/// The principal that made a request, as authentication established it:
/// recorded in `created_by`, `updated_by` and the history, and compared
/// with a group's members and admins. Always a valid [`PrincipalId`], so
/// that a caller can be listed in a group; with authentication off, every
/// caller is [`Principal::anonymous`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// The principal of an unauthenticated caller.
    pub fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }

    /// The principal an authenticated identity names, when it is a valid
    /// principal id.
    pub fn parse(id: &str) -> Option<Self> {
        PrincipalId::parse(id)
            .ok()
            .map(|id| Self(id.as_str().to_owned()))
    }

    /// The principal's id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Configurable limits on request, group and reply sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most principals one request may carry, and most memberships and
    /// admin roles one write may change.
    pub max_members_per_request: usize,
    /// Most direct members a group may have.
    pub max_members_per_group: usize,
    /// Largest reply, in bytes of its binary form.
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_members_per_request: 10_000,
            max_members_per_group: 100_000,
            max_reply_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Whether every reply these limits allow fits `max_reply_bytes`: a
    /// write's history entry grows with the memberships one request may
    /// change, and must always be readable. The error says how large the
    /// reply limit must be.
    pub fn check(&self) -> Result<(), String> {
        let needed = reply::smallest_reply_limit(self);
        if self.max_reply_bytes >= needed {
            Ok(())
        } else {
            Err(format!(
                "a reply limit of {} bytes is too small for {} members per request: a write's \
                 history entry may take up to {needed} bytes; raise --max-message-bytes to at \
                 least {needed} or lower --max-members-per-request",
                self.max_reply_bytes, self.max_members_per_request
            ))
        }
    }
}

/// One reason a request is invalid: the request field (or mask path) at
/// fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The path of the offending field in the request, e.g.
    /// `group.members[2].id` or `update_mask`.
    pub field: String,
    /// What is wrong, in a sentence a caller can act on.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The fields `violations` name, in order: what tests compare.
#[cfg(test)]
pub(crate) fn fields_at(violations: &[FieldViolation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}
