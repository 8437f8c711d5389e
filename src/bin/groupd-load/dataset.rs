//! The dataset the calls run against, built through the API or found
//! again: every group the tool creates carries the label `load=<name>`,
//! and a ListGroups filter on it finds them in a later run, which creates
//! only what is missing.
//!
//! Ids are derived from the dataset's name (`<name>-g<i>`, …), so a run
//! that was interrupted resumes, and two runs agree on them:
//!
//! - `groups` plain groups `<name>-g<i>`; principal `<name>-p<j>` is a
//!   direct member of group `j % groups`;
//! - an 8-level chain `<name>-chain0` (top) … `<name>-chain7`, each level
//!   a member of the one above, with the principal `<name>-chain-member`
//!   a direct member of the bottom group: CheckMembership and
//!   ListMemberGroups find it in all 8 through `member_of`;
//! - one group per task for UpdateGroup (`<name>-update<t>`) and one for
//!   AddGroupMembers (`<name>-add<t>.<generation>`), so that writers do
//!   not contend: a task's add group takes one new member per call, and a
//!   new generation is started once it holds [`ADD_GROUP_ROTATION`].

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::{Context as _, bail};
use groupd::pb;

use crate::client::Client;

/// Levels of the membership chain.
pub const CHAIN_LEVELS: usize = 8;

/// Members an add group may hold before a new one replaces it (groupd
/// allows 100,000 by default).
pub const ADD_GROUP_ROTATION: i32 = 50_000;

/// Principals per CreateGroup or AddGroupMembers call while building.
const MEMBERS_PER_CALL: usize = 1000;

/// Groups created at once while building.
const BUILDERS: usize = 8;

/// The dataset, as the calls use it.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// The plain groups' ids.
    pub groups: Vec<String>,
    /// The chain's groups, the top first.
    pub chain: Vec<String>,
    /// The principal at the bottom of the chain.
    pub chain_member: String,
    /// One group per task for UpdateGroup.
    pub update_groups: Vec<String>,
    /// One group per task for AddGroupMembers, with its member count when
    /// known (not for a group created now: with authentication on, its
    /// creator joined it).
    pub add_groups: Vec<(String, Option<i32>)>,
    /// Groups of the dataset on the server, every kind.
    pub size: usize,
    /// Groups this run created.
    pub created: usize,
}

impl Dataset {
    /// The CheckMembership path of the chain member to the chain's top:
    /// from its own group (the bottom) up.
    pub fn chain_path(&self) -> Vec<String> {
        self.chain.iter().rev().cloned().collect()
    }

    /// The chain member's groups sorted by id, as ListMemberGroups
    /// returns them.
    pub fn chain_sorted(&self) -> Vec<String> {
        let mut sorted = self.chain.clone();
        sorted.sort();
        sorted
    }
}

/// What the dataset holds: the flags it is built from.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub groups: u32,
    pub principals: u32,
    pub tasks: usize,
}

impl Shape {
    fn label(self) -> String {
        format!("groups={},principals={}", self.groups, self.principals)
    }
}

/// One group to create.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    labels: BTreeMap<String, String>,
    parent: Option<String>,
    members: Vec<String>,
}

/// Finds dataset `name` on the server and creates what it lacks.
pub async fn prepare(clients: &[Client], name: &str, shape: Shape) -> anyhow::Result<Dataset> {
    let started = Instant::now();
    let mut client = clients
        .first()
        .cloned()
        .context("no connection to build the dataset on")?;
    let existing = find(&mut client, name).await?;
    let label = |kind: &str| {
        BTreeMap::from([
            ("load".to_owned(), name.to_owned()),
            ("load-kind".to_owned(), kind.to_owned()),
        ])
    };

    // The plain groups; a dataset of another shape is not reused.
    let shape_label = shape.label();
    if let Some(other) = existing.values().find_map(|group| {
        group
            .labels
            .get("load-shape")
            .filter(|found| **found != shape_label)
    }) {
        bail!(
            "dataset {name:?} was built with {other}, not {shape_label}: run with those flags \
             or choose another --dataset"
        );
    }
    let group_count = shape.groups as usize;
    let mut members: Vec<Vec<String>> = vec![Vec::new(); group_count];
    for principal in 0..shape.principals as usize {
        members[principal % group_count].push(format!("{name}-p{principal}"));
    }
    let mut plain = Vec::with_capacity(group_count);
    let mut todo = Vec::new();
    // Groups that exist with fewer members than they should (a build cut
    // short between its calls): adding members already there is a no-op.
    let mut short = Vec::new();
    for (index, members) in members.into_iter().enumerate() {
        let id = format!("{name}-g{index}");
        match existing.get(&id) {
            Some(group) if (group.member_count as usize) < members.len() => {
                short.push((id.clone(), members));
            }
            Some(_) => {}
            None => {
                let mut labels = label("plain");
                labels.insert("load-shape".to_owned(), shape_label.clone());
                todo.push(Spec {
                    id: id.clone(),
                    labels,
                    parent: None,
                    members,
                });
            }
        }
        plain.push(id);
    }

    // The chain, top first: each level needs the one above it.
    let chain: Vec<String> = (0..CHAIN_LEVELS)
        .map(|level| format!("{name}-chain{level}"))
        .collect();
    let chain_member = format!("{name}-chain-member");
    let mut chain_todo = Vec::new();
    for (level, id) in chain.iter().enumerate() {
        let parent = level.checked_sub(1).map(|above| chain[above].clone());
        match existing.get(id) {
            Some(group) => {
                let parents: Vec<&str> = group
                    .member_of
                    .iter()
                    .map(|parent| parent.group_id.as_str())
                    .collect();
                if parents != parent.as_deref().into_iter().collect::<Vec<_>>() {
                    bail!(
                        "group {id} of dataset {name:?} is not where the chain needs it \
                         (member_of {parents:?}); choose another --dataset"
                    );
                }
            }
            None => chain_todo.push(Spec {
                id: id.clone(),
                labels: label("chain"),
                parent,
                members: if level == CHAIN_LEVELS - 1 {
                    vec![chain_member.clone()]
                } else {
                    Vec::new()
                },
            }),
        }
    }

    // The tasks' own groups.
    let mut update_groups = Vec::with_capacity(shape.tasks);
    let mut add_groups = Vec::with_capacity(shape.tasks);
    for task in 0..shape.tasks {
        let id = format!("{name}-update{task}");
        if !existing.contains_key(&id) {
            let mut labels = label("update");
            labels.insert("load-task".to_owned(), task.to_string());
            todo.push(Spec {
                id: id.clone(),
                labels,
                parent: None,
                members: Vec::new(),
            });
        }
        update_groups.push(id);

        // The newest generation of the task's add group, unless full.
        let newest = (0..)
            .map(|generation| format!("{name}-add{task}.{generation}"))
            .enumerate()
            .take_while(|(_, id)| existing.contains_key(id))
            .last();
        let (id, count) = match newest {
            Some((_, id)) if existing[&id].member_count < ADD_GROUP_ROTATION => {
                let count = existing[&id].member_count;
                (id, Some(count))
            }
            newest => {
                let generation = newest.map_or(0, |(generation, _)| generation + 1);
                let id = format!("{name}-add{task}.{generation}");
                let mut labels = label("add");
                labels.insert("load-task".to_owned(), task.to_string());
                todo.push(Spec {
                    id: id.clone(),
                    labels,
                    parent: None,
                    members: Vec::new(),
                });
                (id, None)
            }
        };
        add_groups.push((id, count));
    }

    let created = chain_todo.len() + todo.len();
    if created > 0 || !short.is_empty() {
        eprintln!(
            "dataset {name:?}: creating {created} groups ({} found), {} principals",
            existing.len(),
            shape.principals
        );
    }
    for spec in chain_todo {
        create(&mut client, spec).await?;
    }
    build(clients, todo).await?;
    for (id, members) in short {
        add_members(&mut client, &id, &members).await?;
    }
    if created > 0 {
        eprintln!(
            "dataset {name:?}: built in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let size = existing.len() + created;
    Ok(Dataset {
        name: name.to_owned(),
        groups: plain,
        chain,
        chain_member,
        update_groups,
        add_groups,
        size,
        created,
    })
}

/// Every group labelled as dataset `name`'s, by id.
async fn find(client: &mut Client, name: &str) -> anyhow::Result<HashMap<String, pb::Group>> {
    let mut found = HashMap::new();
    let mut page_token = String::new();
    loop {
        let request = client.request(pb::ListGroupsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            filter: format!("labels.load = \"{name}\""),
            view: pb::GroupView::Basic.into(),
            ..Default::default()
        });
        let page = client
            .grpc()
            .list_groups(request)
            .await
            .context("ListGroups of the dataset's groups")?
            .into_inner();
        found.extend(
            page.groups
                .into_iter()
                .map(|group| (group.id.clone(), group)),
        );
        if page.next_page_token.is_empty() {
            return Ok(found);
        }
        page_token = page.next_page_token;
    }
}

/// Creates `specs` from several tasks at once.
async fn build(clients: &[Client], specs: Vec<Spec>) -> anyhow::Result<()> {
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut builders = tokio::task::JoinSet::new();
    for builder in 0..BUILDERS.min(specs.len()) {
        let mut client = clients[builder % clients.len()].clone();
        let specs = Arc::clone(&specs);
        let next = Arc::clone(&next);
        builders.spawn(async move {
            while let Some(spec) = specs.get(next.fetch_add(1, Ordering::Relaxed)) {
                create(&mut client, spec.clone()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = builders.join_next().await {
        done.context("a builder task failed")??;
    }
    Ok(())
}

/// Creates one group with its members.
async fn create(client: &mut Client, spec: Spec) -> anyhow::Result<()> {
    let (first, rest) = spec
        .members
        .split_at(spec.members.len().min(MEMBERS_PER_CALL));
    let request = client.request(pb::CreateGroupRequest {
        group: Some(pb::Group {
            name: spec.id.clone(),
            description: "a group of groupd-load's dataset".to_owned(),
            labels: spec.labels.into_iter().collect(),
            member_of: spec
                .parent
                .into_iter()
                .map(|group_id| pb::GroupRef { group_id })
                .collect(),
            members: first
                .iter()
                .map(|id| pb::Member { id: id.clone() })
                .collect(),
            ..Default::default()
        }),
        group_id: spec.id.clone(),
        ..Default::default()
    });
    client
        .grpc()
        .create_group(request)
        .await
        .with_context(|| format!("CreateGroup {}", spec.id))?;
    add_members(client, &spec.id, rest).await
}

/// Adds `members` to group `id`, a call per [`MEMBERS_PER_CALL`].
async fn add_members(client: &mut Client, id: &str, members: &[String]) -> anyhow::Result<()> {
    for chunk in members.chunks(MEMBERS_PER_CALL) {
        let request = client.request(pb::AddGroupMembersRequest {
            id: id.to_owned(),
            members: chunk
                .iter()
                .map(|id| pb::Member { id: id.clone() })
                .collect(),
            admins: Vec::new(),
        });
        client
            .grpc()
            .add_group_members(request)
            .await
            .with_context(|| format!("AddGroupMembers to {id}"))?;
    }
    Ok(())
}
