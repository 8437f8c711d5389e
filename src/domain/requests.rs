//! The requests groupd serves, as domain values. The transports build them
//! (the gRPC layer with `TryFrom`, which the HTTP gateway reaches through
//! it): what can be checked without the database or the configured limits
//! is parsed there, once, so an operation never checks an id or a page size
//! again.

use super::{
    GroupFields, Membership, UpdateMask, View,
    filter::Filter,
    ids::{GroupId, PrincipalId},
    listing::OrderBy,
};

/// CreateGroup. Its fields are checked together, with the limits, when the
/// group is planned (see [`super::create`]), so that one answer lists every
/// problem, the chosen id's included.
#[derive(Debug, Clone, Default)]
pub struct CreateGroup {
    /// The group's writable fields.
    pub fields: GroupFields,
    /// Its initial members and admins.
    pub membership: Membership,
    /// The id the client chose, as sent; empty for a server-assigned UUID.
    pub group_id: String,
    /// Check only; write nothing.
    pub validate_only: bool,
    /// A UUID making retries idempotent, as sent; may be empty.
    pub request_id: String,
}

/// UpdateGroup: the fields and membership the mask names replace the
/// stored ones (see [`super::update`]).
#[derive(Debug, Clone)]
pub struct UpdateGroup {
    /// The group to update.
    pub id: GroupId,
    /// The etag the client read, or empty for no check.
    pub etag: String,
    /// The request's values of the writable fields; only those the mask
    /// names are read.
    pub fields: GroupFields,
    /// The request's members and admins; read only when the mask names
    /// them.
    pub membership: Membership,
    /// The paths to apply: the request's mask, or the one its populated
    /// fields imply.
    pub mask: UpdateMask,
    /// Create the group when it does not exist (the mask is then ignored).
    pub allow_missing: bool,
    /// Check only; write nothing.
    pub validate_only: bool,
}

impl UpdateGroup {
    /// The member and admin lists the mask names, as sent; a list the mask
    /// leaves out is empty, because it is never read.
    pub fn masked_lists(&self) -> (&[String], &[String]) {
        let members: &[String] = if self.mask.replaces_members() {
            &self.membership.members
        } else {
            &[]
        };
        let admins: &[String] = if self.mask.replaces_admins() {
            &self.membership.admins
        } else {
            &[]
        };
        (members, admins)
    }
}

/// GetGroup.
#[derive(Debug, Clone)]
pub struct GetGroup {
    /// The group, live or deleted.
    pub id: GroupId,
    /// How much of it to return.
    pub view: View,
}

/// DeleteGroup (a soft delete).
#[derive(Debug, Clone)]
pub struct DeleteGroup {
    /// The group to delete.
    pub id: GroupId,
    /// The etag the client read, or empty for no check.
    pub etag: String,
    /// Succeed when the group is missing or already deleted.
    pub allow_missing: bool,
}

/// UndeleteGroup.
#[derive(Debug, Clone)]
pub struct UndeleteGroup {
    /// The deleted group to bring back.
    pub id: GroupId,
    /// The etag the client read, or empty for no check.
    pub etag: String,
}

/// Whether a [`ChangeMembers`] request adds or removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperation {
    /// AddGroupMembers: add members, and admins (who become members too).
    Add,
    /// RemoveGroupMembers: remove members (who stop being admins too), and
    /// demote admins.
    Remove,
}

/// AddGroupMembers or RemoveGroupMembers: a set operation on the named
/// principals only.
#[derive(Debug, Clone)]
pub struct ChangeMembers {
    /// The group whose membership changes.
    pub id: GroupId,
    /// Add or remove.
    pub operation: SetOperation,
    /// The principals to add or remove as members, and to promote or demote
    /// as admins, as sent (checked with the per-request limit).
    pub membership: Membership,
}

/// Which page of a listing a request asks for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// How many items to return at most (already defaulted and capped).
    pub size: u64,
    /// The previous page's token; empty for the first page.
    pub token: String,
}

/// ListGroups.
#[derive(Debug, Clone)]
pub struct ListGroups {
    /// Which page.
    pub page: PageRequest,
    /// The parsed filter; `None` matches every group.
    pub filter: Option<Filter>,
    /// The filter as sent, which page tokens are bound to.
    pub filter_text: String,
    /// The order of the listing.
    pub order: OrderBy,
    /// Whether deleted groups are listed too.
    pub show_deleted: bool,
    /// How much of each group to return.
    pub view: View,
}

/// ListGroupMembers or ListGroupChanges: a page of one group's members or
/// history.
#[derive(Debug, Clone)]
pub struct ListOfGroup {
    /// The group, live or deleted.
    pub id: GroupId,
    /// Which page.
    pub page: PageRequest,
}

/// CheckMembership.
#[derive(Debug, Clone)]
pub struct CheckMembership {
    /// The group asked about.
    pub id: GroupId,
    /// The principal asked about.
    pub member_id: PrincipalId,
    /// Read the database rather than the membership index.
    pub fully_consistent: bool,
}

/// ListMemberGroups.
#[derive(Debug, Clone)]
pub struct ListMemberGroups {
    /// The principal whose groups are listed.
    pub member_id: PrincipalId,
    /// Also the groups reached through `member_of`.
    pub transitive: bool,
    /// Which page.
    pub page: PageRequest,
    /// Read the database rather than the membership index.
    pub fully_consistent: bool,
}
