//! The paged listings: ListGroups, ListGroupMembers and ListGroupChanges.
//! Each page is fetched with one extra item to tell whether another page
//! follows; page tokens are signed and bound to the query they continue.

use serde::de::DeserializeOwned;

use super::{GroupService, attach_members, authorize, give_permissions_all, standing};
use crate::{
    domain::{
        Caller, Group, GroupChange, View,
        listing::{GroupCursor, Page},
        policy::{self, Permission, Standing},
        reply,
        requests::{ListGroups, ListOfGroup},
        watch::Cursor,
    },
    error::Error,
    store::{GroupQuery, ReadTx},
};

impl GroupService {
    /// Lists the groups `caller` may read a page at a time, with the number
    /// all pages hold: every group for those who may read any, the groups
    /// they are direct members of for the others.
    pub async fn list_groups(
        &self,
        caller: &Caller,
        request: ListGroups,
    ) -> Result<Page<Group>, Error> {
        let member = (!policy::allows(caller, Standing::STRANGER, Permission::Get))
            .then(|| caller.principal().as_str().to_owned());
        let query_key = format!(
            "groups|{}|{}|{}",
            request.filter_text.trim(),
            request.order.canonical(),
            request.show_deleted
        );
        let after: Option<GroupCursor> = self.tokens.decode(&query_key, &request.page.token)?;
        // Checks the filter's budget and holds a listing slot (see
        // `Store::read_listing`).
        let tx = self.store.read_listing(request.filter.as_ref()).await?;
        let groups = tx
            .list_groups(&GroupQuery {
                show_deleted: request.show_deleted,
                filter: request.filter.clone(),
                order: request.order,
                after,
                limit: request.page.size + 1,
                member: member.clone(),
            })
            .await?;
        let total = tx
            .count_groups(
                request.show_deleted,
                request.filter.as_ref(),
                member.as_deref(),
            )
            .await?;
        let mut groups = groups;
        give_permissions_all(&tx, caller, &mut groups).await?;
        if request.view == View::Full {
            // Members for the groups the page has room for; a group whose
            // members alone would not fit any page is listed without them.
            let room = self.page_room();
            let mut used = 0;
            for group in &mut groups {
                attach_members(&tx, group, room).await?;
                used += reply::field(reply::group(group));
                if used > room {
                    break;
                }
            }
        }
        let mut page = self.page(
            &query_key,
            groups,
            request.page.size,
            reply::group,
            |last| GroupCursor::after(last, request.order.field),
        )?;
        page.total_size = Some(total);
        // In the listing's snapshot: every change not shown comes after it.
        page.cursor = Some(Cursor::at(tx.feed_head().await?));
        Ok(page)
    }

    /// Lists a group's direct members a page at a time, sorted by id.
    pub async fn list_members(
        &self,
        caller: &Caller,
        request: ListOfGroup,
    ) -> Result<Page<String>, Error> {
        let (tx, query_key, after) = self
            .open_group_listing::<String>(caller, Permission::Get, "members", &request)
            .await?;
        let members = tx
            .list_members(&request.id, after.as_deref(), request.page.size + 1)
            .await?;
        self.page(
            &query_key,
            members,
            request.page.size,
            |id| reply::reference(id.len()),
            Clone::clone,
        )
    }

    /// Lists a group's history a page at a time, oldest first.
    pub async fn list_changes(
        &self,
        caller: &Caller,
        request: ListOfGroup,
    ) -> Result<Page<GroupChange>, Error> {
        let (tx, query_key, after) = self
            .open_group_listing(caller, Permission::ListChanges, "changes", &request)
            .await?;
        let mut changes = tx
            .list_changes(&request.id, after.unwrap_or(0), request.page.size + 1)
            .await?;
        let room = self.page_room();
        for change in &mut changes {
            reply::fit_change(change, room);
        }
        self.page(&query_key, changes, request.page.size, reply::change, |c| {
            c.version
        })
    }

    /// Starts a listing of one group's `kind` of items: the token's cursor
    /// (tokens are bound to the kind and the group), the key it is bound
    /// to, and a transaction in which the group exists, live or deleted, and
    /// `caller` holds `permission` on it.
    async fn open_group_listing<C: DeserializeOwned>(
        &self,
        caller: &Caller,
        permission: Permission,
        kind: &str,
        request: &ListOfGroup,
    ) -> Result<(ReadTx, String, Option<C>), Error> {
        let tx = self.store.read().await?;
        let exists = tx.group_exists(&request.id).await?.then_some(());
        let standing = standing(&tx, caller, &request.id).await?;
        authorize(caller, exists, standing, permission, &request.id)?;
        let query_key = format!("{kind}|{}", request.id);
        let after = self.tokens.decode(&query_key, &request.page.token)?;
        Ok((tx, query_key, after))
    }

    /// The page of `items`, fetched with one extra item to tell whether
    /// another page follows: at most `page_size` items, and as many as fit
    /// in a reply by their `size` (at least one), with the token of the next
    /// page (empty when there is none) made from the last item's `cursor`.
    pub(super) fn page<T, C: serde::Serialize>(
        &self,
        query_key: &str,
        mut items: Vec<T>,
        page_size: u64,
        size: impl Fn(&T) -> usize,
        cursor: impl Fn(&T) -> C,
    ) -> Result<Page<T>, Error> {
        let wanted = usize::try_from(page_size).unwrap_or(usize::MAX);
        let room = self.page_room();
        let mut used = 0;
        let mut kept = 0;
        for item in &items {
            used += reply::field(size(item));
            if kept == wanted || (kept > 0 && used > room) {
                break;
            }
            kept += 1;
        }
        let mut next_page_token = String::new();
        if items.len() > kept {
            items.truncate(kept);
            if let Some(last) = items.last() {
                next_page_token = self.tokens.encode(query_key, &cursor(last))?;
            }
        }
        Ok(Page {
            items,
            next_page_token,
            total_size: None,
            cursor: None,
        })
    }
}
