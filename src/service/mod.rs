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
        ChangeKind, Group, GroupChange, GroupFields, GroupId, Limits, Principal, Timestamp, View,
        membership::MembershipDelta,
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
}

/// Reads group `id` (live or deleted) in `view`, or NOT_FOUND.
async fn read_group(tx: &ReadTx, id: &GroupId, view: View) -> Result<Group, Error> {
    let mut group = tx.find_group(id).await?.ok_or_else(|| not_found(id))?;
    if view == View::Full {
        group.members = Some(tx.load_members(id).await?);
    }
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
    })
    .await
}
