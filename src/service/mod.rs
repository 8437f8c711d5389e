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

mod create;
mod lifecycle;
mod listing;
mod members;
mod membership;
pub mod page_token;
mod update;

use std::time::{SystemTime, UNIX_EPOCH};

use self::page_token::PageTokens;
use crate::{
    domain::{
        ChangeKind, Group, GroupChange, GroupFields, GroupId, Limits, MemberEntry, Principal,
        Timestamp, membership::MembershipDelta, reply,
    },
    error::Error,
    store::{ReadTx, Store, WriteTx},
};

/// groupd's operations over a [`Store`].
#[derive(Debug, Clone)]
pub struct GroupService {
    store: Store,
    limits: Limits,
    tokens: PageTokens,
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
    /// The service over `store`, signing page tokens with `tokens`.
    pub fn new(store: Store, limits: Limits, tokens: PageTokens) -> Self {
        Self {
            store,
            limits,
            tokens,
        }
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
/// bytes, reading them only when their number does not rule them out; says
/// whether they were given.
async fn attach_members(tx: &ReadTx, group: &mut Group, room: usize) -> Result<bool, Error> {
    let count = usize::try_from(group.member_count).unwrap_or(usize::MAX);
    if reply::group_basic(group).saturating_add(reply::least_membership(count)) > room {
        group.members = None;
        return Ok(false);
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
/// [`GroupService::attach_members`].
async fn answer_group(service: &GroupService, tx: &ReadTx, id: &GroupId) -> Result<Group, Error> {
    let mut group = tx.find_group(id).await?.ok_or_else(|| not_found(id))?;
    service.attach_members(tx, &mut group).await?;
    Ok(group)
}

/// Locks and returns live group `id` for a write, or NOT_FOUND.
async fn lock_live(tx: &WriteTx, id: &GroupId) -> Result<Group, Error> {
    match tx.lock_group(id).await? {
        Some(group) if group.is_live() => Ok(group),
        _ => Err(not_found(id)),
    }
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

/// Writes the membership rows of a write to `group` (already updated) and
/// appends its history entry; every write ends here, then commits.
async fn record(
    tx: &WriteTx,
    actor: &Principal,
    group: &Group,
    kind: ChangeKind,
    update_mask: Vec<String>,
    delta: &MembershipDelta,
) -> Result<(), Error> {
    tx.apply_membership(&group.id, delta).await?;
    tx.append_change(&GroupChange {
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
    })
    .await
}
