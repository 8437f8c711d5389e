//! The operations of groupd, independent of any transport: each takes a
//! domain request, runs it in one database transaction, and returns domain
//! values or an [`Error`]. The gRPC layer (and the HTTP gateway through it)
//! calls these and nothing else.

pub mod page_token;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{SystemTime, UNIX_EPOCH},
};

use sea_orm::DatabaseTransaction;

use self::page_token::PageTokens;
use crate::{
    domain::{
        ChangeKind, FieldViolation, Group, GroupChange, GroupFields, Limits, MaskPath, MemberEntry,
        Membership, Principal, State, Timestamp, UpdateMask, View, filter,
        listing::{self, GroupCursor, OrderBy},
        membership::{self, MembershipDelta},
        validate,
    },
    error::Error,
    store::{self, GroupQuery, Store},
};

/// A CreateGroup request.
#[derive(Debug, Clone, Default)]
pub struct CreateGroup {
    /// The group's writable fields.
    pub fields: GroupFields,
    /// Its initial members and admins.
    pub membership: Membership,
    /// The id to give it; empty for a server-assigned UUID.
    pub group_id: String,
    /// Check only; write nothing.
    pub validate_only: bool,
    /// A UUID making retries idempotent; may be empty.
    pub request_id: String,
}

/// An UpdateGroup request.
#[derive(Debug, Clone, Default)]
pub struct UpdateGroup {
    /// The group's id.
    pub id: String,
    /// The etag the client read, or empty.
    pub etag: String,
    /// The new values of the fields.
    pub fields: GroupFields,
    /// The new members and admins.
    pub membership: Membership,
    /// The mask paths; `None` (or no paths) for the implied mask.
    pub update_mask: Option<Vec<String>>,
    /// Create the group when it does not exist.
    pub allow_missing: bool,
    /// Check only; write nothing.
    pub validate_only: bool,
}

/// A ListGroups request.
#[derive(Debug, Clone, Default)]
pub struct ListGroups {
    /// Requested page size.
    pub page_size: i32,
    /// The previous page's token.
    pub page_token: String,
    /// The filter.
    pub filter: String,
    /// The order.
    pub order_by: String,
    /// Include deleted groups.
    pub show_deleted: bool,
    /// The view; `None` means BASIC.
    pub view: Option<View>,
}

/// A group about to be inserted.
struct NewGroup<'a> {
    id: String,
    fields: GroupFields,
    membership: &'a Membership,
    validate_only: bool,
    request_id: Option<&'a str>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
    /// How many items all pages hold, where the listing counts them.
    pub total_size: Option<u64>,
}

/// The answer of CheckMembership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipCheck {
    /// Whether the principal is a member, directly or through `member_of`.
    pub is_member: bool,
    /// Whether the principal is a direct member of the group.
    pub direct: bool,
    /// A shortest chain of group ids from a group the principal is directly
    /// in up to the asked group; empty when not a member.
    pub path: Vec<String>,
}

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

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// The entries of a group's membership after applying `delta` to
/// `current` (both sorted by id).
fn apply_to_entries(current: Vec<MemberEntry>, delta: &MembershipDelta) -> Vec<MemberEntry> {
    let deleted: HashSet<&str> = delta.delete.iter().map(String::as_str).collect();
    let promoted: HashSet<&str> = delta.promote.iter().map(String::as_str).collect();
    let demoted: HashSet<&str> = delta.demote.iter().map(String::as_str).collect();
    let mut entries: Vec<MemberEntry> = current
        .into_iter()
        .filter(|m| !deleted.contains(m.id.as_str()))
        .map(|mut m| {
            if promoted.contains(m.id.as_str()) {
                m.is_admin = true;
            } else if demoted.contains(m.id.as_str()) {
                m.is_admin = false;
            }
            m
        })
        .collect();
    entries.extend(delta.insert.iter().cloned());
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
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

    /// Creates a group.
    pub async fn create_group(
        &self,
        actor: &Principal,
        request: CreateGroup,
    ) -> Result<Group, Error> {
        let request_id = request.request_id.clone();
        match self.try_create_group(actor, request).await {
            // A concurrent retry with the same request_id won the race:
            // answer with the group it created, as a later retry would get.
            Err(Error::AlreadyExists {
                reason: "REQUEST_ID_TAKEN",
                ..
            }) if !request_id.is_empty() => {
                let tx = self.store.begin_read().await?;
                let id = store::find_by_request_id(&tx, &request_id)
                    .await?
                    .ok_or_else(|| Error::internal("request_id conflict without a group"))?;
                self.read_group(&tx, &id, View::Full).await
            }
            other => other,
        }
    }

    async fn try_create_group(
        &self,
        actor: &Principal,
        request: CreateGroup,
    ) -> Result<Group, Error> {
        let mut violations = Vec::new();
        if !request.group_id.is_empty() && !validate::is_group_id(&request.group_id) {
            violations.push(FieldViolation::new(
                "group_id",
                "group_id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
            ));
        }
        if !request.request_id.is_empty() && uuid::Uuid::parse_str(&request.request_id).is_err() {
            violations.push(FieldViolation::new(
                "request_id",
                "request_id must be a UUID",
            ));
        }
        let id = if request.group_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.group_id.clone()
        };
        violations.extend(self.new_group_violations(&id, &request.fields, &request.membership));
        Error::check(violations)?;

        let tx = self.store.begin_write().await?;
        if !request.request_id.is_empty()
            && let Some(existing) = store::find_by_request_id(&tx, &request.request_id).await?
        {
            return self.read_group(&tx, &existing, View::Full).await;
        }
        if store::group_exists(&tx, &id).await? {
            return Err(Error::id_taken(&id));
        }
        let new = NewGroup {
            id,
            fields: request.fields,
            membership: &request.membership,
            validate_only: request.validate_only,
            request_id: (!request.request_id.is_empty()).then_some(request.request_id.as_str()),
        };
        self.insert_new_group(tx, actor, new).await
    }

    /// What is wrong with a group about to be created with id `id`.
    fn new_group_violations(
        &self,
        id: &str,
        fields: &GroupFields,
        membership: &Membership,
    ) -> Vec<FieldViolation> {
        let mut violations = validate::group_fields(fields, id);
        violations.extend(validate::membership_lists(
            membership,
            "group.",
            &self.limits,
        ));
        violations.extend(validate::admins_are_members(membership, "group."));
        if membership.members.len() > self.limits.max_members_per_group {
            violations.push(FieldViolation::new(
                "group.members",
                format!(
                    "a group has at most {} members",
                    self.limits.max_members_per_group
                ),
            ));
        }
        violations
    }

    /// Inserts a new group, already checked by [`Self::new_group_violations`],
    /// inside `tx`: for CreateGroup and for UpdateGroup with `allow_missing`.
    /// What needs the database (parents, the name) is checked here.
    async fn insert_new_group(
        &self,
        tx: DatabaseTransaction,
        actor: &Principal,
        new: NewGroup<'_>,
    ) -> Result<Group, Error> {
        let NewGroup {
            id,
            mut fields,
            membership,
            validate_only,
            request_id,
        } = new;
        let parents = self.dead_parents(&tx, &fields.member_of, &[]).await?;
        Error::check(parents)?;
        if store::name_taken(&tx, &fields.scope, &fields.name, &id).await? {
            return Err(Error::name_taken(&id, &fields.scope, &fields.name));
        }
        fields.normalize();

        let delta = membership::replace(&[], &membership.members, &membership.admins);
        let now = now_after(None);
        let mut group = Group {
            id,
            fields,
            state: State::Active,
            create_time: now,
            update_time: now,
            delete_time: None,
            created_by: actor.as_str().to_owned(),
            updated_by: actor.as_str().to_owned(),
            member_count: delta.count_change(),
            version: 1,
            members: None,
        };
        if !validate_only {
            store::insert_group(&tx, &group, request_id).await?;
            store::apply_membership(&tx, &group.id, &delta).await?;
            self.record(&tx, actor, &group, ChangeKind::Create, Vec::new(), &delta)
                .await?;
            store::commit(tx).await?;
        }
        group.members = Some(delta.insert);
        Ok(group)
    }

    /// Which of `parents` (the request's `member_of`, in request order) are
    /// neither live groups nor in `already`, as violations.
    async fn dead_parents(
        &self,
        tx: &DatabaseTransaction,
        parents: &[String],
        already: &[String],
    ) -> Result<Vec<FieldViolation>, Error> {
        let new: Vec<String> = parents
            .iter()
            .filter(|p| !already.contains(p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let live = store::live_groups_among(tx, &new).await?;
        Ok(parents
            .iter()
            .enumerate()
            .filter(|(_, p)| !already.contains(p) && !live.contains(*p))
            .map(|(index, p)| {
                FieldViolation::new(
                    format!("group.member_of[{index}].group_id"),
                    format!("group {p:?} does not exist or is deleted"),
                )
            })
            .collect())
    }

    /// Appends the history entry of a write to `group` (already updated).
    async fn record(
        &self,
        tx: &DatabaseTransaction,
        actor: &Principal,
        group: &Group,
        kind: ChangeKind,
        update_mask: Vec<String>,
        delta: &MembershipDelta,
    ) -> Result<(), Error> {
        store::append_change(
            tx,
            &GroupChange {
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
            },
        )
        .await
    }

    /// Reads group `id` (live or deleted) in `view`.
    async fn read_group(
        &self,
        tx: &DatabaseTransaction,
        id: &str,
        view: View,
    ) -> Result<Group, Error> {
        let mut group = store::find_group(tx, id, false)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        if view == View::Full {
            group.members = Some(store::load_members(tx, id).await?);
        }
        Ok(group)
    }

    /// Locks and returns live group `id` for a write, or NOT_FOUND.
    async fn lock_live(&self, tx: &DatabaseTransaction, id: &str) -> Result<Group, Error> {
        match store::find_group(tx, id, true).await? {
            Some(group) if group.state == State::Active => Ok(group),
            _ => Err(Error::NotFound { id: id.to_owned() }),
        }
    }

    /// Marks `group` as written by `actor` now: one more version.
    fn bump(group: &mut Group, actor: &Principal) {
        group.version += 1;
        group.update_time = now_after(Some(group.update_time));
        actor.as_str().clone_into(&mut group.updated_by);
    }

    /// Returns group `id`, live or deleted.
    pub async fn get_group(&self, id: &str, view: View) -> Result<Group, Error> {
        let tx = self.store.begin_read().await?;
        self.read_group(&tx, id, view).await
    }

    /// Updates a group through a field mask (SPEC §2).
    pub async fn update_group(
        &self,
        actor: &Principal,
        request: UpdateGroup,
    ) -> Result<Group, Error> {
        let id = request.id.as_str();
        if id.is_empty() {
            return Err(Error::invalid("group.id", "group.id is required"));
        }
        if !validate::is_group_id(id) {
            return Err(Error::invalid(
                "group.id",
                format!("{id:?} is not a valid group id"),
            ));
        }
        let mask = match &request.update_mask {
            Some(paths) if !paths.is_empty() => UpdateMask::parse(paths)
                .map_err(|violations| Error::InvalidArgument { violations })?,
            _ => UpdateMask::implied(&request.fields, &request.membership),
        };
        let replace_members = mask.contains(&MaskPath::Members);
        let replace_admins = mask.contains(&MaskPath::Admins);
        // Only the lists the mask names are read from the request.
        let sent = Membership {
            members: if replace_members {
                request.membership.members.clone()
            } else {
                Vec::new()
            },
            admins: if replace_admins {
                request.membership.admins.clone()
            } else {
                Vec::new()
            },
        };
        Error::check(validate::membership_lists(&sent, "group.", &self.limits))?;

        let tx = self.store.begin_write().await?;
        if mask.updates_parents() {
            // Before the group's row lock, never after: two updates racing
            // to close a cycle from both ends would otherwise each hold its
            // row and wait for the other (a deadlock, seen as ABORTED after
            // PostgreSQL's deadlock_timeout). In this order the second
            // waits here holding nothing, then sees the first's edge and
            // answers MEMBER_OF_CYCLE.
            store::lock_hierarchy(&tx).await?;
        }
        let mut group = match store::find_group(&tx, id, true).await? {
            None if request.allow_missing => {
                if !request.etag.is_empty() {
                    return Err(Error::EtagMismatch { id: id.to_owned() });
                }
                Error::check(self.new_group_violations(id, &request.fields, &request.membership))?;
                let new = NewGroup {
                    id: id.to_owned(),
                    fields: request.fields,
                    membership: &request.membership,
                    validate_only: request.validate_only,
                    request_id: None,
                };
                return self.insert_new_group(tx, actor, new).await;
            }
            Some(group) if group.state == State::Active => group,
            _ => return Err(Error::NotFound { id: id.to_owned() }),
        };
        if !request.etag.is_empty() && !group.etag_matches(&request.etag) {
            return Err(Error::EtagMismatch { id: id.to_owned() });
        }

        let fields = mask
            .merge(&group.fields, &request.fields)
            .map_err(|violations| Error::InvalidArgument { violations })?;
        let mut violations = validate::group_fields(&fields, id);

        let mut delta = MembershipDelta::default();
        let mut current_members = None;
        if replace_members || replace_admins {
            let current = store::load_members(&tx, id).await?;
            let members: Vec<String> = if replace_members {
                sent.members.clone()
            } else {
                current.iter().map(|m| m.id.clone()).collect()
            };
            let admins: Vec<String> = if replace_admins {
                sent.admins.clone()
            } else {
                current
                    .iter()
                    .filter(|m| m.is_admin)
                    .map(|m| m.id.clone())
                    .collect()
            };
            violations.extend(validate::admins_are_members(
                &Membership {
                    members: members.clone(),
                    admins: admins.clone(),
                },
                "group.",
            ));
            if members.len() > self.limits.max_members_per_group {
                violations.push(FieldViolation::new(
                    "group.members",
                    format!(
                        "a group has at most {} members",
                        self.limits.max_members_per_group
                    ),
                ));
            }
            delta = membership::replace(&current, &members, &admins);
            current_members = Some(current);
        }
        Error::check(violations)?;
        if mask.updates_parents() && fields.member_of != group.fields.member_of {
            let dead = self
                .dead_parents(&tx, &request.fields.member_of, &group.fields.member_of)
                .await?;
            Error::check(dead)?;
            if store::reaches(&tx, &fields.member_of, id).await? {
                return Err(Error::FailedPrecondition {
                    reason: "MEMBER_OF_CYCLE",
                    message: format!(
                        "group {id:?} would become its own ancestor through member_of"
                    ),
                });
            }
        }
        let renamed = fields.name.to_lowercase() != group.fields.name.to_lowercase();
        if renamed && store::name_taken(&tx, &fields.scope, &fields.name, id).await? {
            return Err(Error::name_taken(id, &fields.scope, &fields.name));
        }

        let mut fields = fields;
        fields.normalize();
        let parents_changed = fields.member_of != group.fields.member_of;
        group.fields = fields;
        group.member_count += delta.count_change();
        Self::bump(&mut group, actor);

        let current_members = match current_members {
            Some(current) => current,
            None => store::load_members(&tx, id).await?,
        };
        if !request.validate_only {
            store::update_group(&tx, &group).await?;
            if parents_changed {
                store::replace_parents(&tx, id, &group.fields.member_of).await?;
            }
            store::apply_membership(&tx, id, &delta).await?;
            self.record(
                &tx,
                actor,
                &group,
                ChangeKind::Update,
                mask.to_paths(),
                &delta,
            )
            .await?;
            store::commit(tx).await?;
        }
        group.members = Some(apply_to_entries(current_members, &delta));
        Ok(group)
    }

    /// Soft-deletes a group.
    pub async fn delete_group(
        &self,
        actor: &Principal,
        id: &str,
        etag: &str,
        allow_missing: bool,
    ) -> Result<Group, Error> {
        let tx = self.store.begin_write().await?;
        let mut group = match store::find_group(&tx, id, true).await? {
            Some(group) if group.state == State::Active => group,
            Some(mut deleted) if allow_missing => {
                deleted.members = Some(store::load_members(&tx, id).await?);
                return Ok(deleted);
            }
            None if allow_missing => return Ok(Self::absent(id)),
            _ => return Err(Error::NotFound { id: id.to_owned() }),
        };
        if !etag.is_empty() && !group.etag_matches(etag) {
            return Err(Error::EtagMismatch { id: id.to_owned() });
        }
        Self::bump(&mut group, actor);
        group.state = State::Deleted;
        group.delete_time = Some(group.update_time);
        store::update_group(&tx, &group).await?;
        self.record(
            &tx,
            actor,
            &group,
            ChangeKind::Delete,
            Vec::new(),
            &MembershipDelta::default(),
        )
        .await?;
        group.members = Some(store::load_members(&tx, id).await?);
        store::commit(tx).await?;
        Ok(group)
    }

    /// What DeleteGroup with `allow_missing` answers for a group that never
    /// existed: just its id, in the deleted state.
    fn absent(id: &str) -> Group {
        let epoch = Timestamp::from_micros(0);
        Group {
            id: id.to_owned(),
            fields: GroupFields::default(),
            state: State::Deleted,
            create_time: epoch,
            update_time: epoch,
            delete_time: None,
            created_by: String::new(),
            updated_by: String::new(),
            member_count: 0,
            version: 0,
            members: None,
        }
    }

    /// Brings a soft-deleted group back.
    pub async fn undelete_group(
        &self,
        actor: &Principal,
        id: &str,
        etag: &str,
    ) -> Result<Group, Error> {
        let tx = self.store.begin_write().await?;
        let mut group = store::find_group(&tx, id, true)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        if group.state == State::Active {
            return Err(Error::AlreadyExists {
                reason: "GROUP_NOT_DELETED",
                message: format!("group {id:?} is not deleted"),
                id: id.to_owned(),
            });
        }
        if !etag.is_empty() && !group.etag_matches(etag) {
            return Err(Error::EtagMismatch { id: id.to_owned() });
        }
        if store::name_taken(&tx, &group.fields.scope, &group.fields.name, id).await? {
            return Err(Error::name_taken(
                id,
                &group.fields.scope,
                &group.fields.name,
            ));
        }
        Self::bump(&mut group, actor);
        group.state = State::Active;
        group.delete_time = None;
        store::update_group(&tx, &group).await?;
        self.record(
            &tx,
            actor,
            &group,
            ChangeKind::Undelete,
            Vec::new(),
            &MembershipDelta::default(),
        )
        .await?;
        group.members = Some(store::load_members(&tx, id).await?);
        store::commit(tx).await?;
        Ok(group)
    }

    /// Adds members and admins (AddGroupMembers).
    pub async fn add_members(
        &self,
        actor: &Principal,
        id: &str,
        request: Membership,
    ) -> Result<Group, Error> {
        self.change_members(actor, id, request, ChangeKind::AddMembers)
            .await
    }

    /// Removes members and demotes admins (RemoveGroupMembers).
    pub async fn remove_members(
        &self,
        actor: &Principal,
        id: &str,
        request: Membership,
    ) -> Result<Group, Error> {
        self.change_members(actor, id, request, ChangeKind::RemoveMembers)
            .await
    }

    /// Applies a set operation on membership, reading only the rows of the
    /// principals the request names, and returns the group in the BASIC
    /// view: echoing a membership of up to 100,000 principals back would
    /// read every one of them to add one.
    async fn change_members(
        &self,
        actor: &Principal,
        id: &str,
        request: Membership,
        kind: ChangeKind,
    ) -> Result<Group, Error> {
        Error::check(validate::membership_lists(&request, "", &self.limits))?;
        let tx = self.store.begin_write().await?;
        let mut group = self.lock_live(&tx, id).await?;
        let named: Vec<String> = request
            .members
            .iter()
            .chain(&request.admins)
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let existing = store::members_among(&tx, id, &named).await?;
        let delta = if kind == ChangeKind::AddMembers {
            membership::add(&existing, &request.members, &request.admins)
        } else {
            membership::remove(&existing, &request.members, &request.admins)
        };
        if delta.is_empty() {
            return Ok(group);
        }
        let count = group.member_count + delta.count_change();
        if count > len_i64(self.limits.max_members_per_group) {
            return Err(Error::invalid(
                "members",
                format!(
                    "the group would have {count} members; at most {} are allowed",
                    self.limits.max_members_per_group
                ),
            ));
        }
        group.member_count = count;
        Self::bump(&mut group, actor);
        store::update_group(&tx, &group).await?;
        store::apply_membership(&tx, id, &delta).await?;
        self.record(&tx, actor, &group, kind, Vec::new(), &delta)
            .await?;
        store::commit(tx).await?;
        Ok(group)
    }

    /// Lists groups a page at a time.
    pub async fn list_groups(&self, request: ListGroups) -> Result<Page<Group>, Error> {
        let mut violations = Vec::new();
        let page_size = listing::page_size(request.page_size).map_err(|v| violations.push(v));
        let order = OrderBy::parse(&request.order_by).map_err(|v| violations.push(v));
        let filter = filter::parse(&request.filter).map_err(|v| violations.push(v));
        let (Ok(page_size), Ok(order), Ok(filter)) = (page_size, order, filter) else {
            return Err(Error::InvalidArgument { violations });
        };
        let query_key = format!(
            "groups|{}|{}|{}",
            request.filter.trim(),
            order.canonical(),
            request.show_deleted
        );
        let after: Option<GroupCursor> = self.tokens.decode(&query_key, &request.page_token)?;

        let tx = self.store.begin_read().await?;
        let mut groups = store::list_groups(
            &tx,
            &GroupQuery {
                show_deleted: request.show_deleted,
                filter: filter.clone(),
                order,
                after,
                limit: page_size + 1,
            },
        )
        .await?;
        let total = store::count_groups(&tx, request.show_deleted, filter.as_ref()).await?;
        let next_page_token = self.next_token(&query_key, &mut groups, page_size, |last| {
            GroupCursor::after(last, order.field)
        })?;
        if request.view == Some(View::Full) {
            for group in &mut groups {
                group.members = Some(store::load_members(&tx, &group.id).await?);
            }
        }
        Ok(Page {
            items: groups,
            next_page_token,
            total_size: Some(total),
        })
    }

    /// Lists a group's direct members a page at a time.
    pub async fn list_members(
        &self,
        id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<String>, Error> {
        let page_size = listing::page_size(page_size).map_err(|v| Error::InvalidArgument {
            violations: vec![v],
        })?;
        let query_key = format!("members|{id}");
        let after: Option<String> = self.tokens.decode(&query_key, page_token)?;
        let tx = self.store.begin_read().await?;
        if !store::group_exists(&tx, id).await? {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        let mut members = store::list_members(&tx, id, after.as_deref(), page_size + 1).await?;
        let next_page_token = self.next_token(&query_key, &mut members, page_size, Clone::clone)?;
        Ok(Page {
            items: members,
            next_page_token,
            total_size: None,
        })
    }

    /// Lists a group's history, oldest first.
    pub async fn list_changes(
        &self,
        id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<GroupChange>, Error> {
        let page_size = listing::page_size(page_size).map_err(|v| Error::InvalidArgument {
            violations: vec![v],
        })?;
        let query_key = format!("changes|{id}");
        let after: Option<i64> = self.tokens.decode(&query_key, page_token)?;
        let tx = self.store.begin_read().await?;
        if !store::group_exists(&tx, id).await? {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        let mut changes = store::list_changes(&tx, id, after.unwrap_or(0), page_size + 1).await?;
        let next_page_token =
            self.next_token(&query_key, &mut changes, page_size, |c| c.version)?;
        Ok(Page {
            items: changes,
            next_page_token,
            total_size: None,
        })
    }

    /// Whether `member_id` is a member of group `id`, directly or through
    /// `member_of`, and by which shortest path. Deleted groups carry no
    /// membership: a deleted `id` has no members, and a chain through a
    /// deleted group is cut.
    pub async fn check_membership(
        &self,
        id: &str,
        member_id: &str,
    ) -> Result<MembershipCheck, Error> {
        let mut violations = Vec::new();
        if id.is_empty() {
            violations.push(FieldViolation::new("id", "id is required"));
        } else if !validate::is_group_id(id) {
            violations.push(FieldViolation::new(
                "id",
                format!("{id:?} is not a valid group id"),
            ));
        }
        check_principal(member_id, &mut violations);
        Error::check(violations)?;
        let tx = self.store.begin_read().await?;
        let Some(group) = store::find_group(&tx, id, false).await? else {
            return Err(Error::NotFound { id: id.to_owned() });
        };
        if group.state == State::Deleted {
            return Ok(MembershipCheck::default());
        }
        let own = store::live_groups_of_member(&tx, member_id).await?;
        if own.iter().any(|g| g == id) {
            return Ok(MembershipCheck {
                is_member: true,
                direct: true,
                path: vec![id.to_owned()],
            });
        }
        let walk = Ancestry::walk(&tx, own).await?;
        Ok(match walk.path_to(id) {
            Some(path) => MembershipCheck {
                is_member: true,
                direct: false,
                path,
            },
            None => MembershipCheck::default(),
        })
    }

    /// The live groups `member_id` belongs to, directly or (with
    /// `transitive`) also through `member_of`, a page at a time, sorted by
    /// id, in the BASIC view.
    pub async fn list_member_groups(
        &self,
        member_id: &str,
        transitive: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Group>, Error> {
        let mut violations = Vec::new();
        check_principal(member_id, &mut violations);
        let page_size = listing::page_size(page_size).map_err(|v| violations.push(v));
        let Ok(page_size) = page_size else {
            return Err(Error::InvalidArgument { violations });
        };
        Error::check(violations)?;
        let query_key = format!("member-groups|{member_id}|{transitive}");
        let after: Option<String> = self.tokens.decode(&query_key, page_token)?;
        let tx = self.store.begin_read().await?;
        let own = store::live_groups_of_member(&tx, member_id).await?;
        let ids: BTreeSet<String> = if transitive {
            Ancestry::walk(&tx, own).await?.reached
        } else {
            own.into_iter().collect()
        };
        let take = usize::try_from(page_size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let page_ids: Vec<String> = match &after {
            Some(after) => ids
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(take)
                .cloned()
                .collect(),
            None => ids.iter().take(take).cloned().collect(),
        };
        let mut groups = store::groups_by_ids(&tx, &page_ids).await?;
        let next_page_token =
            self.next_token(&query_key, &mut groups, page_size, |g| g.id.clone())?;
        Ok(Page {
            items: groups,
            next_page_token,
            total_size: None,
        })
    }

    /// Trims a page fetched with one extra item and returns the token of
    /// the next page (empty when there is none).
    fn next_token<T, C: serde::Serialize>(
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

/// Adds a violation when `member_id` is not a principal id.
fn check_principal(member_id: &str, violations: &mut Vec<FieldViolation>) {
    if member_id.is_empty() {
        violations.push(FieldViolation::new("member_id", "member_id is required"));
    } else if !validate::is_principal_id(member_id) {
        violations.push(FieldViolation::new(
            "member_id",
            format!("{member_id:?} is not a valid principal id"),
        ));
    }
}

/// An upward walk of the hierarchy from the groups a principal is directly
/// in, through live groups only, breadth first: the first time a group is
/// reached is by a shortest chain. The edges come from one recursive query
/// ([`store::ancestry_edges`]); the walk itself runs in memory.
#[derive(Debug, Default)]
struct Ancestry {
    /// Every group reached, the starting ones included.
    reached: BTreeSet<String>,
    /// For each group reached through `member_of`, the child it was first
    /// reached from.
    via: HashMap<String, String>,
}

impl Ancestry {
    /// Walks up from `start` (sorted). Levels are taken in id order, so the
    /// chain found is the same on every run.
    async fn walk(tx: &DatabaseTransaction, start: Vec<String>) -> Result<Self, Error> {
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for (child, parent) in store::ancestry_edges(tx, &start).await? {
            parents.entry(child).or_default().push(parent);
        }
        let mut ancestry = Self {
            reached: start.iter().cloned().collect(),
            via: HashMap::new(),
        };
        let mut frontier = start;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for child in &frontier {
                for parent in parents.get(child).into_iter().flatten() {
                    if ancestry.reached.insert(parent.clone()) {
                        ancestry.via.insert(parent.clone(), child.clone());
                        next.push(parent.clone());
                    }
                }
            }
            next.sort_unstable();
            frontier = next;
        }
        Ok(ancestry)
    }

    /// The chain from a starting group up to `target`, if reached.
    fn path_to(&self, target: &str) -> Option<Vec<String>> {
        if !self.reached.contains(target) {
            return None;
        }
        let mut path = vec![target.to_owned()];
        let mut at = target;
        while let Some(child) = self.via.get(at) {
            path.push(child.clone());
            at = child;
        }
        path.reverse();
        Some(path)
    }
}
