//! The calls to groupd: one [`Worker`] per task, each with its own groups
//! to write and its own place in the listing, every reply checked.

use std::sync::Arc;

use groupd::pb;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::{
    checks,
    cli::Kind,
    client::{Client, not_ok},
    dataset::Dataset,
    run::Worker,
    stats::Outcome,
};

/// ListGroups' page size.
pub const LIST_PAGE: usize = 50;

/// One task's calls to groupd.
#[derive(Debug)]
pub struct GroupdWorker {
    client: Client,
    data: Arc<Dataset>,
    rng: StdRng,
    /// Makes this run's new values and principals its own.
    run: String,
    task: usize,
    calls: u64,
    /// The next ListGroups page; empty for the first.
    page_token: String,
    /// The etag of this task's last update.
    etag: Option<String>,
    /// The member count of this task's add group, when known.
    add_count: Option<i32>,
    /// Membership calls ask for the database.
    fully_consistent: bool,
}

impl GroupdWorker {
    pub fn new(
        client: Client,
        data: Arc<Dataset>,
        run: &str,
        task: usize,
        fully_consistent: bool,
    ) -> Self {
        let add_count = data.add_groups[task].1;
        Self {
            client,
            data,
            rng: StdRng::seed_from_u64(0x6c6f_6164 ^ task as u64),
            run: run.to_owned(),
            task,
            calls: 0,
            page_token: String::new(),
            etag: None,
            add_count,
            fully_consistent,
        }
    }

    async fn get(&mut self) -> Outcome {
        let id = self.data.groups[self.rng.random_range(0..self.data.groups.len())].clone();
        let request = self.client.request(pb::GetGroupRequest {
            id: id.clone(),
            view: pb::GroupView::Basic.into(),
        });
        match self.client.grpc().get_group(request).await {
            Ok(reply) => judge(checks::get(reply.get_ref(), &id, &self.data.name)),
            Err(status) => not_ok(&status),
        }
    }

    async fn list(&mut self) -> Outcome {
        let request = self.client.request(pb::ListGroupsRequest {
            page_size: LIST_PAGE as i32,
            page_token: std::mem::take(&mut self.page_token),
            ..Default::default()
        });
        match self.client.grpc().list_groups(request).await {
            Ok(reply) => {
                let page = reply.into_inner();
                let outcome = judge(checks::list(&page, LIST_PAGE, self.data.size));
                // Walks the pages, then starts again from the first.
                self.page_token = page.next_page_token;
                outcome
            }
            Err(status) => not_ok(&status),
        }
    }

    async fn check(&mut self) -> Outcome {
        let request = self.client.request(pb::CheckMembershipRequest {
            id: self.data.chain[0].clone(),
            member_id: self.data.chain_member.clone(),
            fully_consistent: self.fully_consistent,
        });
        match self.client.grpc().check_membership(request).await {
            Ok(reply) => judge(checks::membership(reply.get_ref(), &self.data.chain_path())),
            Err(status) => not_ok(&status),
        }
    }

    async fn member_groups(&mut self) -> Outcome {
        let request = self.client.request(pb::ListMemberGroupsRequest {
            member_id: self.data.chain_member.clone(),
            transitive: true,
            page_size: LIST_PAGE as i32,
            page_token: String::new(),
            fully_consistent: self.fully_consistent,
        });
        match self.client.grpc().list_member_groups(request).await {
            Ok(reply) => judge(checks::member_groups(
                reply.get_ref(),
                &self.data.chain_sorted(),
            )),
            Err(status) => not_ok(&status),
        }
    }

    async fn update(&mut self) -> Outcome {
        let id = self.data.update_groups[self.task].clone();
        let description = format!(
            "groupd-load {} task {} call {}",
            self.run, self.task, self.calls
        );
        let request = self.client.request(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                id: id.clone(),
                description: description.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".to_owned()],
            }),
            ..Default::default()
        });
        match self.client.grpc().update_group(request).await {
            Ok(reply) => {
                let group = reply.into_inner();
                let outcome = judge(checks::update(
                    &group,
                    &id,
                    &description,
                    self.etag.as_deref(),
                ));
                self.etag = Some(group.etag);
                outcome
            }
            Err(status) => {
                self.etag = None;
                not_ok(&status)
            }
        }
    }

    async fn add(&mut self) -> Outcome {
        let id = self.data.add_groups[self.task].0.clone();
        let principal = format!(
            "{}-t{}-{}-{}",
            self.data.name, self.task, self.run, self.calls
        );
        let request = self.client.request(pb::AddGroupMembersRequest {
            id: id.clone(),
            members: vec![pb::Member { id: principal }],
            admins: Vec::new(),
        });
        match self.client.grpc().add_group_members(request).await {
            Ok(reply) => {
                let group = reply.into_inner();
                let outcome = judge(checks::add(&group, &id, self.add_count));
                self.add_count = Some(group.member_count);
                outcome
            }
            Err(status) => {
                // The count is unknown after a failure: the addition may
                // have been committed.
                self.add_count = None;
                not_ok(&status)
            }
        }
    }
}

impl Worker for GroupdWorker {
    async fn call(&mut self, kind: Kind) -> Outcome {
        self.calls += 1;
        match kind {
            Kind::Get => self.get().await,
            Kind::List => self.list().await,
            Kind::Check => self.check().await,
            Kind::MemberGroups => self.member_groups().await,
            Kind::Update => self.update().await,
            Kind::Add => self.add().await,
        }
    }
}

fn judge(checked: Result<(), checks::Wrong>) -> Outcome {
    match checked {
        Ok(()) => Outcome::Right,
        Err(wrong) => Outcome::Wrong(wrong),
    }
}
