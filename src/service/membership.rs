//! CheckMembership and ListMemberGroups: membership through `member_of`,
//! read in one transaction, upward from the groups a principal is directly
//! in, so the cost is the size of the principal's ancestry, not of the
//! hierarchy. Deleted groups carry no membership and cut the chains through
//! them.

use std::{collections::BTreeSet, ops::Bound};

use super::{GroupService, give_permissions_all, not_found};
use crate::{
    domain::{
        Caller, Group, GroupId,
        hierarchy::{Ancestry, MembershipCheck},
        listing::Page,
        policy::{self, Permission},
        reply,
        requests::{CheckMembership, ListMemberGroups},
    },
    error::Error,
    index::{Lookup, MembershipIndex},
};

impl GroupService {
    /// Whether a principal is a member of a group, directly or through
    /// `member_of`, and by which shortest path. A deleted group has no
    /// members. A caller may ask about itself, and those who may read
    /// every membership about anyone. A missing group is NOT_FOUND only
    /// for callers who may read every group; to the others, asking about
    /// themselves, it is a group they are not a member of, so that the
    /// answer does not tell whether a group exists.
    pub async fn check_membership(
        &self,
        caller: &Caller,
        request: CheckMembership,
    ) -> Result<MembershipCheck, Error> {
        ask_about(caller, request.member_id.as_str())?;
        let target = request.id.as_str();
        let check = if let Some(index) = self.fresh_index(request.fully_consistent).await {
            match index.lookup(target, request.member_id.as_str()) {
                Lookup::Missing => return absent(caller, &request.id),
                Lookup::Deleted => return Ok(MembershipCheck::default()),
                Lookup::Live { own, edges } => shortest_path(target, own, edges),
            }
        } else {
            let tx = self.store.read_walk().await?;
            let Some(group) = tx.find_group(&request.id).await? else {
                return absent(caller, &request.id);
            };
            if !group.is_live() {
                return Ok(MembershipCheck::default());
            }
            let own = tx.live_groups_of_member(&request.member_id).await?;
            if own.iter().any(|g| g == target) {
                return Ok(MembershipCheck::direct(target));
            }
            let edges = tx.ancestry_edges(&own).await?;
            shortest_path(target, own, edges)
        };
        // A chain of groups can be longer than a reply can carry (thousands
        // of levels): answered with an error rather than a reply the
        // transport would refuse.
        if reply::membership_check(&check) > self.limits.max_reply_bytes {
            return Err(Error::FailedPrecondition {
                reason: "MEMBERSHIP_PATH_TOO_LONG",
                message: format!(
                    "the principal is a member of {:?} through a chain of {} groups, too long to \
                     return in one reply",
                    target,
                    check.path.len()
                ),
            });
        }
        Ok(check)
    }

    /// The membership index, when it is on, the call did not ask for the
    /// database, and the index holds every write this server acknowledged
    /// before the call (waiting briefly for it to); `None` sends the call
    /// to the database.
    async fn fresh_index(&self, fully_consistent: bool) -> Option<&MembershipIndex> {
        let index = self.feed.index()?;
        if fully_consistent {
            index.asked_for_database();
            return None;
        }
        let commits = self.store.commits().count();
        index.usable(commits).await.then_some(index)
    }

    /// The live groups a principal belongs to, directly or (with
    /// `transitive`) also through `member_of`, a page at a time, sorted by
    /// id, in the BASIC view.
    pub async fn list_member_groups(
        &self,
        caller: &Caller,
        request: ListMemberGroups,
    ) -> Result<Page<Group>, Error> {
        ask_about(caller, request.member_id.as_str())?;
        let query_key = format!("member-groups|{}|{}", request.member_id, request.transitive);
        let after: Option<String> = self.tokens.decode(&query_key, &request.page.token)?;
        let (tx, ids) = if let Some(index) = self.fresh_index(request.fully_consistent).await {
            let (own, edges) = index.groups_of(request.member_id.as_str(), request.transitive);
            (self.store.read().await?, reached(own, edges))
        } else if request.transitive {
            let tx = self.store.read_walk().await?;
            let own = tx.live_groups_of_member(&request.member_id).await?;
            let edges = tx.ancestry_edges(&own).await?;
            (tx, reached(own, edges))
        } else {
            let tx = self.store.read().await?;
            let own = tx.live_groups_of_member(&request.member_id).await?;
            (tx, own.into_iter().collect())
        };
        let take = usize::try_from(request.page.size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let page_ids: Vec<String> = ids
            .range::<String, _>((start, Bound::Unbounded))
            .take(take)
            .cloned()
            .collect();
        let mut groups = tx.groups_by_ids(&page_ids).await?;
        give_permissions_all(&tx, caller, &mut groups).await?;
        self.page(&query_key, groups, request.page.size, reply::group, |g| {
            g.id.as_str().to_owned()
        })
    }
}

/// The answer about a group that does not exist: NOT_FOUND for callers
/// who may read every group, and "not a member" for the others.
fn absent(caller: &Caller, id: &GroupId) -> Result<MembershipCheck, Error> {
    if policy::reveals_absence(caller, Permission::Get) {
        return Err(not_found(id));
    }
    Ok(MembershipCheck::default())
}

/// Whether a principal directly in `own` (sorted) is a member of `target`,
/// and by which shortest chain along `edges`.
fn shortest_path(target: &str, own: Vec<String>, edges: Vec<(String, String)>) -> MembershipCheck {
    if own.iter().any(|g| g == target) {
        return MembershipCheck::direct(target);
    }
    Ancestry::walk(own, edges).check(target)
}

/// Every group reached from `own` (sorted) along `edges`, `own` included.
fn reached(own: Vec<String>, edges: Vec<(String, String)>) -> BTreeSet<String> {
    Ancestry::walk(own, edges).into_reached()
}

/// PERMISSION_DENIED unless `caller` may ask about `principal`'s
/// memberships.
fn ask_about(caller: &Caller, principal: &str) -> Result<(), Error> {
    if policy::may_ask_about(caller, principal) {
        return Ok(());
    }
    let permission = Permission::ReadMemberships;
    Err(Error::PermissionDenied {
        permission: permission.as_str(),
        message: format!(
            "permission {} is denied: a caller may ask only about its own memberships",
            permission.as_str()
        ),
    })
}
