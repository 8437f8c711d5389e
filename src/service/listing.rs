//! The paged listings: ListGroups, ListGroupMembers and ListGroupChanges.
//! Each page is fetched with one extra item to tell whether another page
//! follows; page tokens are signed and bound to the query they continue.

use serde::de::DeserializeOwned;

use super::{GroupService, not_found};
use crate::{
    domain::{
        Group, GroupChange, View,
        listing::{GroupCursor, Page},
        requests::{ListGroups, ListOfGroup},
    },
    error::Error,
    store::{GroupQuery, ReadTx},
};

impl GroupService {
    /// Lists groups a page at a time, with the number all pages hold.
    pub async fn list_groups(&self, request: ListGroups) -> Result<Page<Group>, Error> {
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
            })
            .await?;
        let total = tx
            .count_groups(request.show_deleted, request.filter.as_ref())
            .await?;
        let mut page = self.page(&query_key, groups, request.page.size, |last| {
            GroupCursor::after(last, request.order.field)
        })?;
        if request.view == View::Full {
            for group in &mut page.items {
                group.members = Some(tx.load_members(&group.id).await?);
            }
        }
        page.total_size = Some(total);
        Ok(page)
    }

    /// Lists a group's direct members a page at a time, sorted by id.
    pub async fn list_members(&self, request: ListOfGroup) -> Result<Page<String>, Error> {
        let (tx, query_key, after) = self
            .open_group_listing::<String>("members", &request)
            .await?;
        let members = tx
            .list_members(&request.id, after.as_deref(), request.page.size + 1)
            .await?;
        self.page(&query_key, members, request.page.size, Clone::clone)
    }

    /// Lists a group's history a page at a time, oldest first.
    pub async fn list_changes(&self, request: ListOfGroup) -> Result<Page<GroupChange>, Error> {
        let (tx, query_key, after) = self.open_group_listing("changes", &request).await?;
        let changes = tx
            .list_changes(&request.id, after.unwrap_or(0), request.page.size + 1)
            .await?;
        self.page(&query_key, changes, request.page.size, |c| c.version)
    }

    /// Starts a listing of one group's `kind` of items: the token's cursor
    /// (tokens are bound to the kind and the group), the key it is bound
    /// to, and a transaction in which the group exists, live or deleted.
    async fn open_group_listing<C: DeserializeOwned>(
        &self,
        kind: &str,
        request: &ListOfGroup,
    ) -> Result<(ReadTx, String, Option<C>), Error> {
        let query_key = format!("{kind}|{}", request.id);
        let after = self.tokens.decode(&query_key, &request.page.token)?;
        let tx = self.store.read().await?;
        if !tx.group_exists(&request.id).await? {
            return Err(not_found(&request.id));
        }
        Ok((tx, query_key, after))
    }

    /// The page of `items`, fetched with one extra item to tell whether
    /// another page follows: trimmed to `page_size`, with the token of the
    /// next page (empty when there is none) made from the last item's
    /// `cursor`.
    pub(super) fn page<T, C: serde::Serialize>(
        &self,
        query_key: &str,
        mut items: Vec<T>,
        page_size: u64,
        cursor: impl Fn(&T) -> C,
    ) -> Result<Page<T>, Error> {
        let mut next_page_token = String::new();
        if items.len() > usize::try_from(page_size).unwrap_or(usize::MAX) {
            items.pop();
            if let Some(last) = items.last() {
                next_page_token = self.tokens.encode(query_key, &cursor(last))?;
            }
        }
        Ok(Page {
            items,
            next_page_token,
            total_size: None,
        })
    }
}
