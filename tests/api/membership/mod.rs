//! Nested groups: CheckMembership and ListMemberGroups, direct and
//! transitive through `member_of`, shortest paths, deleted groups breaking
//! chains, pagination, and cycles refused when two writers race to close
//! one, through one server or two replicas on one database. One file per
//! call, one for the races; the builders and calls they share are here.

mod check;
mod cycles;
mod index;
mod list;

use groupd::pb;
use tonic::Status;

use crate::helpers::*;

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

/// Creates a group whose id and name are `id`, with `parents` as its
/// `member_of` and `principals` as its members.
async fn group(app: &TestApp, id: &str, parents: &[&str], principals: &[&str]) -> pb::Group {
    create_request(
        app,
        pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: id.to_owned(),
                member_of: refs(parents),
                members: members(principals),
                ..Default::default()
            }),
            group_id: id.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|status| panic!("CreateGroup {id} failed: {status:?}"))
}

/// Sets the `member_of` of group `id` through UpdateGroup.
async fn set_parents(app: &TestApp, id: &str, parents: &[&str]) -> pb::Group {
    update(
        app,
        pb::Group {
            member_of: refs(parents),
            ..patch(id)
        },
        Some(&["member_of"]),
    )
    .await
}

/// CheckMembership, asked of the server's membership index and of the
/// database (`fully_consistent`): every scenario checks that both give
/// the same answer, or the same error.
async fn try_check(
    app: &TestApp,
    id: &str,
    member_id: &str,
) -> Result<pb::CheckMembershipResponse, Status> {
    let ask = |fully_consistent| pb::CheckMembershipRequest {
        id: id.to_owned(),
        member_id: member_id.to_owned(),
        fully_consistent,
    };
    let indexed = app
        .client()
        .check_membership(ask(false))
        .await
        .map(tonic::Response::into_inner);
    let consistent = app
        .client()
        .check_membership(ask(true))
        .await
        .map(tonic::Response::into_inner);
    assert_same(
        &indexed,
        &consistent,
        &format!("CheckMembership({id}, {member_id})"),
    );
    indexed
}

/// Asserts the index's answer and the database's are the same.
fn assert_same<T: PartialEq + std::fmt::Debug>(
    indexed: &Result<T, Status>,
    consistent: &Result<T, Status>,
    what: &str,
) {
    match (indexed, consistent) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: the index and the database disagree"),
        (Err(a), Err(b)) => assert_eq!(
            (a.code(), a.message()),
            (b.code(), b.message()),
            "{what}: the index and the database fail differently"
        ),
        _ => panic!("{what}: the index answered {indexed:?}, the database {consistent:?}"),
    }
}

async fn check(app: &TestApp, id: &str, member_id: &str) -> pb::CheckMembershipResponse {
    try_check(app, id, member_id)
        .await
        .unwrap_or_else(|status| panic!("CheckMembership({id}, {member_id}) failed: {status:?}"))
}

/// The answer for a direct member of `id`.
fn direct(id: &str) -> pb::CheckMembershipResponse {
    pb::CheckMembershipResponse {
        is_member: true,
        direct: true,
        path: vec![id.to_owned()],
    }
}

/// The answer for a transitive member reaching the last group by `path`.
fn through(path: &[&str]) -> pb::CheckMembershipResponse {
    pb::CheckMembershipResponse {
        is_member: true,
        direct: false,
        path: path.iter().map(|id| (*id).to_owned()).collect(),
    }
}

/// The answer for a principal that is not a member.
fn outsider() -> pb::CheckMembershipResponse {
    pb::CheckMembershipResponse::default()
}

/// Asserts that `answer` is a transitive membership of `member_id` in
/// `target` through a real chain of live groups of exactly `length` groups:
/// the first holds the member, each is `member_of` the next, the last is
/// `target`.
async fn assert_valid_path(
    app: &TestApp,
    answer: &pb::CheckMembershipResponse,
    member_id: &str,
    target: &str,
    length: usize,
) {
    assert!(
        answer.is_member && !answer.direct,
        "{member_id} in {target}: expected a transitive membership, got {answer:?}"
    );
    assert_eq!(
        answer.path.len(),
        length,
        "{member_id} in {target}: the path {:?} is not a shortest one",
        answer.path
    );
    assert_eq!(answer.path.last().map(String::as_str), Some(target));
    let first = get(app, &answer.path[0]).await;
    assert!(
        ids(&first.members).iter().any(|id| id == member_id),
        "the path {:?} starts at a group without {member_id}",
        answer.path
    );
    for step in answer.path.windows(2) {
        let child = get(app, &step[0]).await;
        let parent = get(app, &step[1]).await;
        assert_eq!(child.state(), pb::State::Active, "{} is deleted", child.id);
        assert_eq!(
            parent.state(),
            pb::State::Active,
            "{} is deleted",
            parent.id
        );
        assert!(
            child.member_of.iter().any(|r| r.group_id == parent.id),
            "the path {:?} steps from {} to {}, which is not among its member_of",
            answer.path,
            child.id,
            parent.id
        );
    }
}

/// ListMemberGroups, asked of the server's membership index and of the
/// database (`fully_consistent`): both must list the same groups, and
/// both have a next page or neither.
async fn try_member_groups(
    client: &mut Client,
    member_id: &str,
    transitive: bool,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListMemberGroupsResponse, Status> {
    let ask = |fully_consistent| pb::ListMemberGroupsRequest {
        member_id: member_id.to_owned(),
        transitive,
        page_size,
        page_token: page_token.to_owned(),
        fully_consistent,
    };
    let indexed = client
        .list_member_groups(ask(false))
        .await
        .map(tonic::Response::into_inner);
    let consistent = client
        .list_member_groups(ask(true))
        .await
        .map(tonic::Response::into_inner);
    let shape = |reply: &Result<pb::ListMemberGroupsResponse, Status>| {
        reply
            .as_ref()
            .map(|r| (r.groups.clone(), r.next_page_token.is_empty()))
            .map_err(Clone::clone)
    };
    assert_same(
        &shape(&indexed),
        &shape(&consistent),
        &format!("ListMemberGroups({member_id}, transitive {transitive})"),
    );
    indexed
}

/// Every group ListMemberGroups returns, `page_size` at a time, checking
/// that each page but the last is full.
async fn member_groups_paged(
    app: &TestApp,
    member_id: &str,
    transitive: bool,
    page_size: i32,
) -> Vec<Vec<pb::Group>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = try_member_groups(&mut app.client(), member_id, transitive, page_size, &token)
            .await
            .unwrap_or_else(|status| panic!("ListMemberGroups {member_id} failed: {status:?}"));
        pages.push(page.groups);
        if page.next_page_token.is_empty() {
            return pages;
        }
        token = page.next_page_token;
    }
    panic!("ListMemberGroups did not reach its last page after 1000 pages");
}

/// The ids of every group ListMemberGroups returns, in order.
async fn member_groups(app: &TestApp, member_id: &str, transitive: bool) -> Vec<String> {
    member_groups_paged(app, member_id, transitive, 1000)
        .await
        .iter()
        .flat_map(|page| id_list(page))
        .collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
