//! The operations of groupd, independent of any transport: each takes a
//! domain request, runs it in one transaction of the [`Store`], and
//! returns domain values or an [`Error`]. The gRPC layer (and the HTTP
//! gateway through it) calls these and nothing else.
//!
//! Every write follows the same steps: lock what it changes, load what the
//! domain needs to decide, let the domain plan the write (all violations at
//! once), ask the store what only the database knows (a free name, live
//! parents, no cycle), then write the plan and its history entry and
//! commit. A request that fails or is `validate_only` drops its
//! transaction, which rolls it back.
//!
//! Every operation takes the [`Caller`] and checks it against the domain's
//! `policy` inside its transaction, before anything about the group is
//! revealed: a caller who may not touch a group is refused the same way
//! whether or not it exists. Every group returned carries the caller's
//! `permissions` on it.

mod create;
mod lifecycle;
mod listing;
mod members;
mod membership;
pub mod page_token;
mod update;
mod watch;

use std::time::{SystemTime, UNIX_EPOCH};

use self::page_token::PageTokens;
pub use self::watch::{WatchEvent, WatchStream};
use crate::{
    domain::{
        Caller, ChangeKind, Group, GroupChange, GroupFields, GroupId, Limits, MemberEntry,
        Principal, Role, Timestamp,
        membership::MembershipDelta,
        policy::{self, Permission, Standing},
        reply,
    },
    error::Error,
    feed::Feed,
    store::{GroupRow, ReadTx, Store, WriteTx},
};

/// groupd's operations over a [`Store`].
#[derive(Debug, Clone)]
pub struct GroupService {
    store: Store,
    limits: Limits,
    tokens: PageTokens,
    feed: Feed,
}

/// The current time, never earlier than one microsecond after `after`, so
/// that `update_time` strictly increases with every write to a group.
fn now_after(after: Option<Timestamp>) -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let floor = after.map_or(i64::MIN, |t| t.as_micros().saturating_add(1));
    Timestamp::from_micros(micros.max(floor))
}

impl GroupService {
    /// The service over `store`, signing page tokens with `tokens`, and
    /// streaming changes from `feed`.
    pub fn new(store: Store, limits: Limits, tokens: PageTokens, feed: Feed) -> Self {
        Self {
            store,
            limits,
            tokens,
            feed,
        }
    }

    /// The change feed's reader, to start and stop it.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The store, for health checks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Gives `group` its members and admins (the FULL view) when they fit
    /// in a reply with it, and says whether they did. Writes answer the
    /// FULL view when it fits and the BASIC view otherwise (`member_count`
    /// still says how many members there are), so that a committed write is
    /// never answered with an error because its reply is too large. The
    /// members are not even read when their number alone rules them out.
    async fn attach_members(&self, tx: &ReadTx, group: &mut Group) -> Result<bool, Error> {
        attach_members(tx, group, self.limits.max_reply_bytes).await
    }

    /// Gives `group` the member list `members` when the FULL view fits in a
    /// reply, and says whether it did.
    fn attach_if_it_fits(&self, group: &mut Group, members: Vec<MemberEntry>) -> bool {
        attach_if_it_fits(group, members, self.limits.max_reply_bytes)
    }

    /// The room a page has for its items.
    fn page_room(&self) -> usize {
        self.limits
            .max_reply_bytes
            .saturating_sub(reply::PAGE_OVERHEAD)
    }
}

/// Gives `group` its members and admins when its FULL view fits in `room`
/// bytes, reading them only when their number does not rule them out (nor
/// says there are none); says whether they were given.
async fn attach_members(tx: &ReadTx, group: &mut Group, room: usize) -> Result<bool, Error> {
    let count = usize::try_from(group.member_count).unwrap_or(usize::MAX);
    if reply::group_basic(group).saturating_add(reply::least_membership(count)) > room {
        group.members = None;
        return Ok(false);
    }
    if count == 0 {
        // The row's count is kept in the same transaction as the rows
        // (every write of members updates both): a round trip saved.
        group.members = Some(Vec::new());
        return Ok(true);
    }
    let members = tx.load_members(&group.id).await?;
    Ok(attach_if_it_fits(group, members, room))
}

/// Gives `group` the member list `members` when its FULL view fits in
/// `room` bytes; says whether it did.
fn attach_if_it_fits(group: &mut Group, members: Vec<MemberEntry>, room: usize) -> bool {
    let fits = reply::group_basic(group).saturating_add(reply::membership(&members)) <= room;
    group.members = fits.then_some(members);
    fits
}

/// Group `id` (live or deleted) as a write answers it, or NOT_FOUND: see
/// [`GroupService::attach_members`]; PERMISSION_DENIED when `caller` may
/// not read it.
async fn answer_group(
    service: &GroupService,
    tx: &ReadTx,
    caller: &Caller,
    id: &GroupId,
) -> Result<Group, Error> {
    let (found, standing) = with_standing(tx.find_group_for(id, standing_read_for(caller)).await?);
    let mut group = authorize(caller, found, standing, Permission::Get, id)?;
    service.attach_members(tx, &mut group).await?;
    group.permissions = policy::permissions(caller, standing);
    Ok(group)
}

/// The standing of `caller` in group `id`; not read for `groups.admin`,
/// whose rights do not depend on it.
async fn standing(tx: &ReadTx, caller: &Caller, id: &GroupId) -> Result<Standing, Error> {
    match standing_read_for(caller) {
        Some(principal) => tx.standing(id, principal).await,
        None => Ok(Standing::STRANGER),
    }
}

/// The principal whose standing a call of `caller` reads with the group
/// (see [`standing`]): none for `groups.admin`.
fn standing_read_for(caller: &Caller) -> Option<&str> {
    (!caller.has(Role::Admin)).then(|| caller.principal().as_str())
}

/// A group read with the caller's standing in it, as the group if any and
/// the standing (a stranger's in a missing group).
fn with_standing(found: Option<(Group, Standing)>) -> (Option<Group>, Standing) {
    found.map_or((None, Standing::STRANGER), |(group, standing)| {
        (Some(group), standing)
    })
}

/// `group` when `caller`, standing so in it, holds `permission` on it.
/// Otherwise, and when the group is missing, PERMISSION_DENIED, said the
/// same way whether or not it exists; NOT_FOUND for a missing group only
/// when the caller's right does not depend on the group (see
/// [`policy::reveals_absence`]).
fn authorize<G>(
    caller: &Caller,
    group: Option<G>,
    standing: Standing,
    permission: Permission,
    id: &GroupId,
) -> Result<G, Error> {
    match group {
        Some(group) if policy::allows(caller, standing, permission) => Ok(group),
        None if policy::reveals_absence(caller, permission) => Err(not_found(id)),
        _ => Err(denied(permission, id.as_str())),
    }
}

/// PERMISSION_DENIED for `permission` on group `id`.
fn denied(permission: Permission, id: &str) -> Error {
    Error::PermissionDenied {
        permission: permission.as_str(),
        message: format!(
            "permission {} is denied on group {} (or the group does not exist)",
            permission.as_str(),
            crate::domain::quote(id)
        ),
    }
}

/// Gives `group` the permissions `caller` holds on it, reading the
/// caller's standing (in `tx`, so after the call's own write).
async fn give_permissions(tx: &ReadTx, caller: &Caller, group: &mut Group) -> Result<(), Error> {
    let standing = standing(tx, caller, &group.id).await?;
    group.permissions = policy::permissions(caller, standing);
    Ok(())
}

/// Gives each of `groups` the permissions `caller` holds on it, with one
/// read of the caller's standings.
async fn give_permissions_all(
    tx: &ReadTx,
    caller: &Caller,
    groups: &mut [Group],
) -> Result<(), Error> {
    let standings = if caller.has(Role::Admin) {
        std::collections::HashMap::new()
    } else {
        let ids: Vec<String> = groups.iter().map(|g| g.id.as_str().to_owned()).collect();
        tx.standings(caller.principal().as_str(), &ids).await?
    };
    for group in groups {
        let standing = standings
            .get(group.id.as_str())
            .copied()
            .unwrap_or(Standing::STRANGER);
        group.permissions = policy::permissions(caller, standing);
    }
    Ok(())
}

/// PERMISSION_DENIED unless `caller` may change the members of each of
/// `parents` (added or removed as parents of a group, which adds or removes
/// that group's members to theirs); checked before whether they exist.
async fn check_parents(tx: &ReadTx, caller: &Caller, parents: &[String]) -> Result<(), Error> {
    if parents.is_empty() || caller.has(Role::Admin) {
        return Ok(());
    }
    let standings = tx.standings(caller.principal().as_str(), parents).await?;
    for parent in parents {
        let standing = standings.get(parent).copied().unwrap_or(Standing::STRANGER);
        if !policy::allows(caller, standing, Permission::UpdateMembers) {
            return Err(denied(Permission::UpdateMembers, parent));
        }
    }
    Ok(())
}

/// FAILED_PRECONDITION when a write by `caller` would leave a group with
/// no admins, which only `groups.admin` may do.
fn check_admins_left(caller: &Caller, id: &GroupId, admins_left: u64) -> Result<(), Error> {
    if admins_left == 0 && !policy::may_orphan(caller) {
        return Err(Error::FailedPrecondition {
            reason: "GROUP_WITHOUT_ADMINS",
            message: format!(
                "this write would leave group {} without admins; keep at least one",
                crate::domain::quote(id.as_str())
            ),
        });
    }
    Ok(())
}

/// NOT_FOUND for group `id`.
fn not_found(id: &GroupId) -> Error {
    Error::NotFound {
        id: id.as_str().to_owned(),
    }
}

/// ABORTED unless `etag` is empty (no check) or names the group's current
/// version.
fn check_etag(group: &Group, etag: &str) -> Result<(), Error> {
    if etag.is_empty() || group.etag_matches(etag) {
        Ok(())
    } else {
        Err(Error::EtagMismatch {
            id: group.id.as_str().to_owned(),
        })
    }
}

/// ALREADY_EXISTS when a live group other than `id` has `fields`' name in
/// its scope. The unique index is what guarantees it; this check answers
/// the common case with the group's id in the error.
async fn check_name_free(tx: &WriteTx, id: &GroupId, fields: &GroupFields) -> Result<(), Error> {
    if tx.name_taken(&fields.scope, &fields.name, id).await? {
        Err(Error::name_taken(id.as_str(), &fields.scope, &fields.name))
    } else {
        Ok(())
    }
}

/// Marks `group` as written by `actor` now: one more version.
fn touch(group: &mut Group, actor: &Principal) {
    let now = now_after(Some(group.update_time));
    group.touch(actor, now);
}

/// [`record`] for a write that updates the group's row and names no
/// fields: a membership change, a delete or an undelete.
async fn record_update(
    tx: &WriteTx,
    actor: &Principal,
    group: &Group,
    kind: ChangeKind,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    record(tx, actor, group, GroupRow::Update, kind, Vec::new(), delta).await
}

/// Writes the membership rows of a write to `group`, its history entry
/// and, for [`GroupRow::Update`], the group's row (one statement for all
/// when the delta is not too large); every write ends here, then commits
/// (or ends with [`record_and_commit`]).
async fn record(
    tx: &WriteTx,
    actor: &Principal,
    group: &Group,
    row: GroupRow,
    kind: ChangeKind,
    update_mask: Vec<String>,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    let change = change_of(actor, group, kind, update_mask, delta);
    tx.append_change(&change, row, delta).await
}

/// [`record`] for a write that updates the group's row and reads nothing
/// after it, then the commit: on SQLite one round trip fewer (see
/// [`WriteTx::append_change_and_commit`]).
async fn record_and_commit(
    tx: WriteTx,
    actor: &Principal,
    group: &Group,
    kind: ChangeKind,
    update_mask: Vec<String>,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    let change = change_of(actor, group, kind, update_mask, delta);
    tx.append_change_and_commit(&change, GroupRow::Update, delta)
        .await
}

/// The history entry of a write that left `group` as it is.
fn change_of(
    actor: &Principal,
    group: &Group,
    kind: ChangeKind,
    update_mask: Vec<String>,
    delta: &MembershipDelta,
) -> GroupChange {
    GroupChange {
        version: group.version,
        change_time: group.update_time,
        actor: actor.as_str().to_owned(),
        kind,
        update_mask,
        group: group.clone(),
        members_added: delta.members_added(),
        members_removed: delta.members_removed(),
        admins_added: delta.admins_added(),
        admins_removed: delta.admins_removed(),
        delta_truncated: false,
    }
}
