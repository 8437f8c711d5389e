//! CheckMembership and ListMemberGroups: membership through `member_of`,
//! read in one transaction, upward from the groups a principal is directly
//! in, so the cost is the size of the principal's ancestry, not of the
//! hierarchy. Deleted groups carry no membership and cut the chains through
//! them.

use std::ops::Bound;

use super::{GroupService, give_permissions_all, not_found};
use crate::{
    domain::{
        Caller, Group,
        hierarchy::{Ancestry, MembershipCheck},
        listing::Page,
        policy::{self, Permission},
        reply,
        requests::{CheckMembership, ListMemberGroups},
    },
    error::Error,
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
        let tx = self.store.read_walk().await?;
        let Some(group) = tx.find_group(&request.id).await? else {
            if policy::reveals_absence(caller, Permission::Get) {
                return Err(not_found(&request.id));
            }
            return Ok(MembershipCheck::default());
        };
        if !group.is_live() {
            return Ok(MembershipCheck::default());
        }
        let own = tx.live_groups_of_member(&request.member_id).await?;
        let target = request.id.as_str();
        if own.iter().any(|g| g == target) {
            return Ok(MembershipCheck::direct(target));
        }
        let edges = tx.ancestry_edges(&own).await?;
        let check = Ancestry::walk(own, edges).check(target);
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
        let tx = if request.transitive {
            self.store.read_walk().await?
        } else {
            self.store.read().await?
        };
        let own = tx.live_groups_of_member(&request.member_id).await?;
        let ids = if request.transitive {
            let edges = tx.ancestry_edges(&own).await?;
            Ancestry::walk(own, edges).into_reached()
        } else {
            own.into_iter().collect()
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
