//! The paged listings: ListGroups, ListGroupMembers and ListGroupChanges.
//! Each page is fetched with one extra item to tell whether another page
//! follows; page tokens are signed and bound to the query they continue.

use super::{GroupService, not_found};
use crate::{
    domain::{
        Group, GroupChange, View,
        listing::{GroupCursor, Page},
        requests::{ListGroups, ListOfGroup},
    },
    error::Error,
    store::GroupQuery,
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
        let tx = self.store.read().await?;
        let mut groups = tx
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
        let next_page_token =
            self.next_token(&query_key, &mut groups, request.page.size, |last| {
                GroupCursor::after(last, request.order.field)
            })?;
        if request.view == View::Full {
            for group in &mut groups {
                group.members = Some(tx.load_members(&group.id).await?);
            }
        }
        Ok(Page {
            items: groups,
            next_page_token,
            total_size: Some(total),
        })
    }

    /// Lists a group's direct members a page at a time, sorted by id.
    pub async fn list_members(&self, request: ListOfGroup) -> Result<Page<String>, Error> {
        let query_key = format!("members|{}", request.id);
        let after: Option<String> = self.tokens.decode(&query_key, &request.page.token)?;
        let tx = self.store.read().await?;
        if !tx.group_exists(&request.id).await? {
            return Err(not_found(&request.id));
        }
        let mut members = tx
            .list_members(&request.id, after.as_deref(), request.page.size + 1)
            .await?;
        let next_page_token =
            self.next_token(&query_key, &mut members, request.page.size, Clone::clone)?;
        Ok(Page {
            items: members,
            next_page_token,
            total_size: None,
        })
    }

    /// Lists a group's history a page at a time, oldest first.
    pub async fn list_changes(&self, request: ListOfGroup) -> Result<Page<GroupChange>, Error> {
        let query_key = format!("changes|{}", request.id);
        let after: Option<i64> = self.tokens.decode(&query_key, &request.page.token)?;
        let tx = self.store.read().await?;
        if !tx.group_exists(&request.id).await? {
            return Err(not_found(&request.id));
        }
        let mut changes = tx
            .list_changes(&request.id, after.unwrap_or(0), request.page.size + 1)
            .await?;
        let next_page_token =
            self.next_token(&query_key, &mut changes, request.page.size, |c| c.version)?;
        Ok(Page {
            items: changes,
            next_page_token,
            total_size: None,
        })
    }

    /// Trims a page fetched with one extra item and returns the token of
    /// the next page (empty when there is none).
    pub(super) fn next_token<T, C: serde::Serialize>(
        &self,
        query_key: &str,
        items: &mut Vec<T>,
        page_size: u64,
        cursor: impl Fn(&T) -> C,
    ) -> Result<String, Error> {
        if items.len() <= usize::try_from(page_size).unwrap_or(usize::MAX) {
            return Ok(String::new());
        }
        items.pop();
        match items.last() {
            Some(last) => self.tokens.encode(query_key, &cursor(last)),
            None => Ok(String::new()),
        }
    }
}
