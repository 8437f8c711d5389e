//! Nested groups: CheckMembership and ListMemberGroups, direct and
//! transitive through `member_of`, shortest paths, deleted groups breaking
//! chains, pagination, and cycles refused when two writers race to close
//! one, through one server or two replicas on one database.

use std::{collections::BTreeSet, sync::Arc};

use groupd::pb;
use tokio::sync::Barrier;
use tonic::{Code, Status};

use crate::helpers::*;

both_backends!(
    direct_members_and_admins_are_direct_members_with_a_one_group_path,
    membership_is_transitive_through_member_of_with_the_exact_shortest_path,
    membership_does_not_flow_down_or_sideways,
    a_diamond_gives_a_valid_shortest_path_and_lists_the_top_once,
    a_deleted_intermediate_group_cuts_the_chain_and_undelete_restores_it,
    a_deleted_group_carries_no_membership_for_its_members,
    removing_a_member_or_dropping_a_member_of_edge_ends_transitive_membership,
    check_membership_of_a_missing_group_is_not_found,
    check_membership_with_an_empty_id_or_a_bad_member_id_is_invalid_argument,
    check_membership_with_a_malformed_group_id_is_invalid_argument,
    list_member_groups_direct_lists_the_live_groups_holding_the_principal_in_basic_view,
    list_member_groups_transitive_adds_every_live_ancestor_once,
    list_member_groups_pages_hold_every_group_once_in_id_order,
    list_member_groups_page_size_defaults_to_50_is_capped_and_negative_is_invalid,
    a_list_member_groups_token_is_bound_to_its_member_and_transitive_flag,
    list_member_groups_of_an_unknown_principal_is_empty_and_a_malformed_one_is_invalid,
    two_updates_racing_to_close_a_two_group_cycle_never_both_succeed,
    two_updates_racing_to_close_a_two_group_cycle_through_two_replicas_never_both_succeed,
    two_updates_racing_to_close_a_three_group_cycle_never_both_succeed,
    two_updates_racing_to_close_a_three_group_cycle_through_two_replicas_never_both_succeed,
    concurrent_member_of_changes_that_close_no_cycle_all_succeed,
);

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

// ---------------------------------------------------------------------------
// Builders and calls.
// ---------------------------------------------------------------------------

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

async fn try_check(
    app: &TestApp,
    id: &str,
    member_id: &str,
) -> Result<pb::CheckMembershipResponse, Status> {
    app.client()
        .check_membership(pb::CheckMembershipRequest {
            id: id.to_owned(),
            member_id: member_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
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

async fn try_member_groups(
    client: &mut Client,
    member_id: &str,
    transitive: bool,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListMemberGroupsResponse, Status> {
    client
        .list_member_groups(pb::ListMemberGroupsRequest {
            member_id: member_id.to_owned(),
            transitive,
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
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

// ---------------------------------------------------------------------------
// CheckMembership.
// ---------------------------------------------------------------------------

async fn direct_members_and_admins_are_direct_members_with_a_one_group_path(app: TestApp) {
    let created = create(
        &app,
        pb::Group {
            name: "crew".to_owned(),
            members: members(&["alice", "bob"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;
    let id = created.id.as_str();
    // An admin added alone is made a member too.
    add(&app, id, &[], &["carol"]).await;

    for principal in ["alice", "bob", "carol"] {
        assert_eq!(check(&app, id, principal).await, direct(id), "{principal}");
    }
    assert_eq!(check(&app, id, "dave").await, outsider());
    // Principal ids are compared exactly.
    assert_eq!(check(&app, id, "Alice").await, outsider());

    for principal in ["alice", "carol"] {
        assert_eq!(member_groups(&app, principal, false).await, [id]);
        assert_eq!(member_groups(&app, principal, true).await, [id]);
    }
}

async fn membership_is_transitive_through_member_of_with_the_exact_shortest_path(app: TestApp) {
    // alice ∈ leaf → mid → upper → top.
    group(&app, "top", &[], &[]).await;
    group(&app, "upper", &["top"], &[]).await;
    group(&app, "mid", &["upper"], &[]).await;
    group(&app, "leaf", &["mid"], &["alice"]).await;

    assert_eq!(check(&app, "leaf", "alice").await, direct("leaf"));
    assert_eq!(check(&app, "mid", "alice").await, through(&["leaf", "mid"]));
    assert_eq!(
        check(&app, "upper", "alice").await,
        through(&["leaf", "mid", "upper"])
    );
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["leaf", "mid", "upper", "top"])
    );

    // Also directly in `upper`: the shortest chain to `top` now starts there.
    add(&app, "upper", &["alice"], &[]).await;
    assert_eq!(check(&app, "upper", "alice").await, direct("upper"));
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["upper", "top"])
    );
    assert_eq!(check(&app, "mid", "alice").await, through(&["leaf", "mid"]));

    // Direct wins over any chain.
    add(&app, "top", &["alice"], &[]).await;
    assert_eq!(check(&app, "top", "alice").await, direct("top"));
}

async fn membership_does_not_flow_down_or_sideways(app: TestApp) {
    // bob ∈ top; alice ∈ left → top; carol ∈ right → top.
    group(&app, "top", &[], &["bob"]).await;
    group(&app, "left", &["top"], &["alice"]).await;
    group(&app, "right", &["top"], &["carol"]).await;

    assert_eq!(check(&app, "left", "bob").await, outsider(), "not down");
    assert_eq!(
        check(&app, "right", "alice").await,
        outsider(),
        "not sideways"
    );
    assert_eq!(
        check(&app, "left", "carol").await,
        outsider(),
        "not sideways"
    );
    assert_eq!(
        check(&app, "top", "carol").await,
        through(&["right", "top"])
    );
    assert_eq!(member_groups(&app, "bob", true).await, ["top"]);
    assert_eq!(member_groups(&app, "carol", true).await, ["right", "top"]);
}

async fn a_diamond_gives_a_valid_shortest_path_and_lists_the_top_once(app: TestApp) {
    // leaf → {left, right} → top, and a longer way leaf → long1 → long2 → top.
    group(&app, "top", &[], &[]).await;
    group(&app, "left", &["top"], &[]).await;
    group(&app, "right", &["top"], &[]).await;
    group(&app, "long2", &["top"], &[]).await;
    group(&app, "long1", &["long2"], &[]).await;
    group(&app, "leaf", &["left", "right", "long1"], &["alice"]).await;

    let answer = check(&app, "top", "alice").await;
    assert_valid_path(&app, &answer, "alice", "top", 3).await;
    assert!(
        answer.path[1] == "left" || answer.path[1] == "right",
        "{answer:?}"
    );
    assert_eq!(
        check(&app, "long2", "alice").await,
        through(&["leaf", "long1", "long2"])
    );

    let expected = strings(&["leaf", "left", "long1", "long2", "right", "top"]);
    assert_eq!(member_groups(&app, "alice", true).await, expected);
    assert_eq!(member_groups(&app, "alice", false).await, ["leaf"]);
    // Paged one at a time, the top still comes once.
    let paged: Vec<String> = member_groups_paged(&app, "alice", true, 1)
        .await
        .iter()
        .flat_map(|page| id_list(page))
        .collect();
    assert_eq!(paged, expected);

    // A diamond from two direct groups: alice also in `right` directly.
    add(&app, "right", &["alice"], &[]).await;
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["right", "top"])
    );
    assert_eq!(member_groups(&app, "alice", false).await, ["leaf", "right"]);
    assert_eq!(member_groups(&app, "alice", true).await, expected);
}

async fn a_deleted_intermediate_group_cuts_the_chain_and_undelete_restores_it(app: TestApp) {
    // leaf → mid → top, and a longer way leaf → alt1 → alt2 → top.
    group(&app, "top", &[], &[]).await;
    group(&app, "mid", &["top"], &[]).await;
    group(&app, "alt2", &["top"], &[]).await;
    group(&app, "alt1", &["alt2"], &[]).await;
    group(&app, "leaf", &["mid", "alt1"], &["alice"]).await;
    // bob reaches top only through mid.
    group(&app, "solo", &["mid"], &["bob"]).await;
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["leaf", "mid", "top"])
    );
    assert_eq!(
        check(&app, "top", "bob").await,
        through(&["solo", "mid", "top"])
    );

    delete(&app, "mid").await;
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["leaf", "alt1", "alt2", "top"]),
        "the chain through the deleted mid is cut; the longer one remains"
    );
    assert_eq!(
        check(&app, "top", "bob").await,
        outsider(),
        "bob's only chain is cut"
    );
    assert_eq!(
        check(&app, "mid", "alice").await,
        outsider(),
        "a deleted group has no members, and it is no error to ask"
    );
    assert_eq!(member_groups(&app, "bob", true).await, ["solo"]);
    assert_eq!(
        member_groups(&app, "alice", true).await,
        ["alt1", "alt2", "leaf", "top"]
    );

    try_undelete(&app, "mid", "")
        .await
        .unwrap_or_else(|status| panic!("UndeleteGroup mid failed: {status:?}"));
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["leaf", "mid", "top"])
    );
    assert_eq!(
        check(&app, "top", "bob").await,
        through(&["solo", "mid", "top"])
    );
    assert_eq!(
        member_groups(&app, "bob", true).await,
        ["mid", "solo", "top"]
    );
}

async fn a_deleted_group_carries_no_membership_for_its_members(app: TestApp) {
    group(&app, "top", &[], &[]).await;
    group(&app, "leaf", &["top"], &["alice"]).await;
    delete(&app, "leaf").await;

    assert_eq!(
        check(&app, "leaf", "alice").await,
        outsider(),
        "deleted target"
    );
    assert_eq!(check(&app, "top", "alice").await, outsider(), "through it");
    assert!(member_groups(&app, "alice", false).await.is_empty());
    assert!(member_groups(&app, "alice", true).await.is_empty());

    // Deleting the top too: asking about it is still no error.
    delete(&app, "top").await;
    assert_eq!(check(&app, "top", "alice").await, outsider());

    try_undelete(&app, "top", "").await.unwrap();
    try_undelete(&app, "leaf", "").await.unwrap();
    assert_eq!(check(&app, "leaf", "alice").await, direct("leaf"));
    assert_eq!(check(&app, "top", "alice").await, through(&["leaf", "top"]));
    assert_eq!(member_groups(&app, "alice", true).await, ["leaf", "top"]);
}

async fn removing_a_member_or_dropping_a_member_of_edge_ends_transitive_membership(app: TestApp) {
    group(&app, "top", &[], &[]).await;
    group(&app, "mid", &["top"], &[]).await;
    group(&app, "leaf", &["mid"], &["alice", "bob"]).await;
    assert_eq!(
        check(&app, "top", "alice").await,
        through(&["leaf", "mid", "top"])
    );

    // RemoveGroupMembers.
    remove(&app, "leaf", &["alice"], &[]).await;
    assert_eq!(check(&app, "leaf", "alice").await, outsider());
    assert_eq!(check(&app, "top", "alice").await, outsider());
    assert!(member_groups(&app, "alice", true).await.is_empty());

    // UpdateGroup replacing the members.
    update(
        &app,
        pb::Group {
            members: members(&["carol"]),
            ..patch("leaf")
        },
        Some(&["members"]),
    )
    .await;
    assert_eq!(check(&app, "top", "bob").await, outsider());
    assert_eq!(
        check(&app, "top", "carol").await,
        through(&["leaf", "mid", "top"])
    );

    // UpdateGroup dropping the mid → top edge.
    set_parents(&app, "mid", &[]).await;
    assert_eq!(check(&app, "top", "carol").await, outsider());
    assert_eq!(check(&app, "mid", "carol").await, through(&["leaf", "mid"]));
    assert_eq!(member_groups(&app, "carol", true).await, ["leaf", "mid"]);

    // And putting it back restores it.
    set_parents(&app, "mid", &["top"]).await;
    assert_eq!(
        check(&app, "top", "carol").await,
        through(&["leaf", "mid", "top"])
    );
}

async fn check_membership_of_a_missing_group_is_not_found(app: TestApp) {
    group(&app, "real", &[], &["alice"]).await;
    let status = try_check(&app, "missing", "alice").await.unwrap_err();
    assert_not_found(&status, "missing");
    let uuid = uuid::Uuid::new_v4().to_string();
    let status = try_check(&app, &uuid, "alice").await.unwrap_err();
    assert_not_found(&status, &uuid);
}

async fn check_membership_with_an_empty_id_or_a_bad_member_id_is_invalid_argument(app: TestApp) {
    group(&app, "real", &[], &["alice"]).await;
    let status = try_check(&app, "", "alice").await.unwrap_err();
    assert_invalid_argument(&status, "id");
    let long_principal = format!("a{}", "b".repeat(256));
    for bad in [
        "",
        "has space",
        "@leading",
        "a/b",
        "a:b",
        "x\0y",
        long_principal.as_str(),
    ] {
        let status = try_check(&app, "real", bad).await.unwrap_err();
        assert_invalid_argument(&status, "member_id");
    }
    // The longest valid principal id is fine.
    let longest = format!("a{}", "b".repeat(255));
    assert_eq!(check(&app, "real", &longest).await, outsider());
    // Both wrong: both named.
    let status = try_check(&app, "", "").await.unwrap_err();
    assert_invalid_argument(&status, "id");
    assert_invalid_argument(&status, "member_id");
}

/// A group id that no group can have (group ids follow the name pattern
/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`) is a malformed argument, not a
/// missing group.
async fn check_membership_with_a_malformed_group_id_is_invalid_argument(app: TestApp) {
    group(&app, "real", &[], &["alice"]).await;
    let too_long = format!("a{}", "b".repeat(128));
    for bad in [
        " ",
        "has space",
        "-leading-dash",
        "a/b",
        "a@b",
        "x\0y",
        &too_long,
    ] {
        let status = try_check(&app, bad, "alice").await.unwrap_err();
        assert_invalid_argument(&status, "id");
    }
}

// ---------------------------------------------------------------------------
// ListMemberGroups.
// ---------------------------------------------------------------------------

async fn list_member_groups_direct_lists_the_live_groups_holding_the_principal_in_basic_view(
    app: TestApp,
) {
    group(&app, "parent", &[], &[]).await;
    create_request(
        &app,
        pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "b-admin".to_owned(),
                members: members(&["alice", "bob"]),
                admins: members(&["alice"]),
                member_of: refs(&["parent"]),
                ..Default::default()
            }),
            group_id: "b-admin".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    group(&app, "a-plain", &[], &["alice"]).await;
    group(&app, "c-gone", &[], &["alice"]).await;
    group(&app, "d-other", &[], &["bob"]).await;
    delete(&app, "c-gone").await;

    let pages = member_groups_paged(&app, "alice", false, 0).await;
    assert_eq!(pages.len(), 1);
    let listed = &pages[0];
    assert_eq!(id_list(listed), ["a-plain", "b-admin"], "sorted, live only");
    for listed in listed {
        assert!(listed.members.is_empty(), "BASIC view: {listed:?}");
        assert!(listed.admins.is_empty(), "BASIC view: {listed:?}");
        assert_eq!(listed.state(), pb::State::Active);
        assert_eq!(listed.name, listed.id);
        assert!(!listed.etag.is_empty());
    }
    assert_eq!(listed[0].member_count, 1);
    assert_eq!(listed[1].member_count, 2);
    assert_eq!(listed[1].member_of, refs(&["parent"]));
    let stored = try_get_view(&app, "b-admin", pb::GroupView::Basic)
        .await
        .unwrap();
    assert_eq!(listed[1], stored, "the same group GetGroup shows in BASIC");

    assert_eq!(
        member_groups(&app, "alice", true).await,
        ["a-plain", "b-admin", "parent"]
    );
}

async fn list_member_groups_transitive_adds_every_live_ancestor_once(app: TestApp) {
    // alice ∈ x1 → {y1, y2}; y1 → z; y2 → z; z → dead → beyond.
    group(&app, "beyond", &[], &[]).await;
    group(&app, "dead", &["beyond"], &[]).await;
    group(&app, "z", &["dead"], &[]).await;
    group(&app, "y1", &["z"], &[]).await;
    group(&app, "y2", &["z"], &[]).await;
    group(&app, "x1", &["y1", "y2"], &["alice"]).await;
    // Unrelated groups stay out.
    group(&app, "unrelated", &[], &["bob"]).await;
    group(&app, "child", &["x1"], &["carol"]).await;

    assert_eq!(
        member_groups(&app, "alice", true).await,
        ["beyond", "dead", "x1", "y1", "y2", "z"]
    );
    delete(&app, "dead").await;
    assert_eq!(
        member_groups(&app, "alice", true).await,
        ["x1", "y1", "y2", "z"],
        "the chain stops at the deleted group, and what lies beyond it is cut"
    );
    assert_eq!(member_groups(&app, "alice", false).await, ["x1"]);
    assert_eq!(
        member_groups(&app, "carol", true).await,
        ["child", "x1", "y1", "y2", "z"]
    );
}

async fn list_member_groups_pages_hold_every_group_once_in_id_order(app: TestApp) {
    // Seven direct groups, created out of order.
    for id in ["g5", "g1", "g7", "g3", "g2", "g6", "g4"] {
        group(&app, id, &[], &["alice"]).await;
    }
    let pages = member_groups_paged(&app, "alice", false, 3).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<String> = pages.iter().flat_map(|page| id_list(page)).collect();
    assert_eq!(listed, strings(&["g1", "g2", "g3", "g4", "g5", "g6", "g7"]));

    // Transitive: bob in four groups reaching three more.
    group(&app, "p-top", &[], &[]).await;
    group(&app, "p-a", &["p-top"], &[]).await;
    group(&app, "p-b", &["p-top"], &[]).await;
    for id in ["d1", "d2", "d3", "d4"] {
        let parent = if id < "d3" { "p-a" } else { "p-b" };
        group(&app, id, &[parent], &["bob"]).await;
    }
    let pages = member_groups_paged(&app, "bob", true, 3).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<String> = pages.iter().flat_map(|page| id_list(page)).collect();
    assert_eq!(
        listed,
        strings(&["d1", "d2", "d3", "d4", "p-a", "p-b", "p-top"])
    );
    // A page size equal to the number of groups: every group once, whether
    // or not a token to an empty last page is issued.
    let pages = member_groups_paged(&app, "bob", false, 4).await;
    let listed: Vec<String> = pages.iter().flat_map(|page| id_list(page)).collect();
    assert_eq!(listed, strings(&["d1", "d2", "d3", "d4"]));
}

async fn list_member_groups_page_size_defaults_to_50_is_capped_and_negative_is_invalid(
    app: TestApp,
) {
    for i in 0..51 {
        group(&app, &format!("g{i:02}"), &[], &["alice"]).await;
    }
    let mut client = app.client();
    let first = try_member_groups(&mut client, "alice", false, 0, "")
        .await
        .unwrap();
    assert_eq!(first.groups.len(), 50, "page_size 0 means 50");
    assert!(!first.next_page_token.is_empty());
    let rest = try_member_groups(&mut client, "alice", false, 0, &first.next_page_token)
        .await
        .unwrap();
    assert_eq!(id_list(&rest.groups), ["g50"]);
    assert!(rest.next_page_token.is_empty());

    let all = try_member_groups(&mut client, "alice", true, 5000, "")
        .await
        .unwrap_or_else(|status| {
            panic!("a page_size over 1000 is capped, not refused: {status:?}")
        });
    assert_eq!(all.groups.len(), 51);
    assert!(all.next_page_token.is_empty());

    for negative in [-1, i32::MIN] {
        let status = try_member_groups(&mut client, "alice", false, negative, "")
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "page_size");
    }
}

async fn a_list_member_groups_token_is_bound_to_its_member_and_transitive_flag(app: TestApp) {
    group(&app, "top", &[], &[]).await;
    for id in ["g1", "g2", "g3"] {
        group(&app, id, &["top"], &["alice", "bob"]).await;
    }
    let mut client = app.client();
    let first = try_member_groups(&mut client, "alice", false, 1, "")
        .await
        .unwrap();
    assert_eq!(id_list(&first.groups), ["g1"]);
    let token = first.next_page_token;
    assert!(!token.is_empty());

    let status = try_member_groups(&mut client, "bob", false, 1, &token)
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "page_token");
    let status = try_member_groups(&mut client, "alice", true, 1, &token)
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "page_token");
    for garbage in ["garbage", "AAAA", &format!("{token}x")] {
        let status = try_member_groups(&mut client, "alice", false, 1, garbage)
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }
    // Another page size is fine, and the token still works where it belongs.
    let second = try_member_groups(&mut client, "alice", false, 5, &token)
        .await
        .unwrap();
    assert_eq!(id_list(&second.groups), ["g2", "g3"]);
    assert!(second.next_page_token.is_empty());
}

async fn list_member_groups_of_an_unknown_principal_is_empty_and_a_malformed_one_is_invalid(
    app: TestApp,
) {
    group(&app, "real", &[], &["alice"]).await;
    let mut client = app.client();
    for transitive in [false, true] {
        let answer = try_member_groups(&mut client, "nobody", transitive, 0, "")
            .await
            .unwrap();
        assert!(answer.groups.is_empty());
        assert!(answer.next_page_token.is_empty());
    }
    let long_principal = format!("a{}", "b".repeat(256));
    for bad in [
        "",
        "has space",
        "-leading",
        "a/b",
        "x\0y",
        long_principal.as_str(),
    ] {
        let status = try_member_groups(&mut client, bad, true, 0, "")
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "member_id");
    }
}

// ---------------------------------------------------------------------------
// Cycles closed by concurrent writers.
// ---------------------------------------------------------------------------

/// How many fresh rings each race scenario tries.
const ROUNDS: usize = 10;

async fn two_updates_racing_to_close_a_two_group_cycle_never_both_succeed(app: TestApp) {
    race_to_close_cycles(&app, &[app.client()], 2).await;
}

async fn two_updates_racing_to_close_a_two_group_cycle_through_two_replicas_never_both_succeed(
    app: TestApp,
) {
    let replica = app.spawn_replica().await;
    race_to_close_cycles(&app, &[app.client(), replica.client], 2).await;
}

async fn two_updates_racing_to_close_a_three_group_cycle_never_both_succeed(app: TestApp) {
    race_to_close_cycles(&app, &[app.client()], 3).await;
}

async fn two_updates_racing_to_close_a_three_group_cycle_through_two_replicas_never_both_succeed(
    app: TestApp,
) {
    let replica = app.spawn_replica().await;
    race_to_close_cycles(&app, &[app.client(), replica.client], 3).await;
}

/// Sets `member_of` of group `id` to `[parent]` through `client`.
/// Adds every `(child, parent)` edge at once: one task per edge, spread
/// over `clients` (shifted by `round`), all released by one barrier.
async fn link_all(
    clients: &[Client],
    round: usize,
    edges: &[(String, String)],
) -> Vec<Result<pb::Group, Status>> {
    let barrier = Arc::new(Barrier::new(edges.len()));
    let tasks: Vec<_> = edges
        .iter()
        .enumerate()
        .map(|(i, (child, parent))| {
            let client = clients[(i + round) % clients.len()].clone();
            let (child, parent) = (child.clone(), parent.clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                link(client, child, parent).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn link(mut client: Client, id: String, parent: String) -> Result<pb::Group, Status> {
    client
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                member_of: refs(&[&parent]),
                ..patch(&id)
            }),
            update_mask: Some(mask(&["member_of"])),
            allow_missing: false,
            validate_only: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// ROUNDS times, on a fresh ring of `size` groups r0..r{size-1} where
/// r0 → r1 → … → r{size-2} already hold, two tasks (spread over `clients`)
/// at once add the two edges that would close the ring: r{size-2} → r{size-1}
/// and r{size-1} → r0. (For size 2: r0 → r1 and r1 → r0.) Exactly one may
/// succeed; the other is FAILED_PRECONDITION/MEMBER_OF_CYCLE, or ABORTED on
/// a serialization conflict. Whatever happened, no cycle is stored.
async fn race_to_close_cycles(app: &TestApp, clients: &[Client], size: usize) {
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let ring: Vec<String> = (0..size).map(|i| format!("ring{round}-{i}")).collect();
        for (i, id) in ring.iter().enumerate().rev() {
            // Every edge but the two raced ones exists beforehand (parents
            // are created first).
            let parents: Vec<&str> = if i + 2 < size {
                vec![ring[i + 1].as_str()]
            } else {
                Vec::new()
            };
            group(app, id, &parents, &[]).await;
        }
        let edges = [
            (ring[size - 2].clone(), ring[size - 1].clone()),
            (ring[size - 1].clone(), ring[0].clone()),
        ];
        let results = link_all(clients, round, &edges).await;

        let winners = results.iter().filter(|result| result.is_ok()).count();
        // The loser is told about the cycle, not about a deadlock: the
        // hierarchy lock is taken before the group's row lock.
        for status in results.iter().filter_map(|result| result.as_ref().err()) {
            assert_error(status, Code::FailedPrecondition, "MEMBER_OF_CYCLE");
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one of the two updates closing the cycle must succeed: {results:?}"
        );

        // The stored graph has no cycle: only the acknowledged edge is there.
        let mut stored = Vec::new();
        for (child, parent) in &edges {
            let child = get(app, child).await;
            stored.push(child.member_of.iter().any(|r| &r.group_id == parent));
        }
        let acknowledged: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(
            stored, acknowledged,
            "round {round}: the stored edges differ from the acknowledged writes {results:?}"
        );
        outcomes.push(
            results
                .iter()
                .map(|result| match result {
                    Ok(_) => "OK".to_owned(),
                    Err(status) => format!("{:?}", status.code()),
                })
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    let kinds: BTreeSet<&String> = outcomes.iter().collect();
    eprintln!("cycle race outcomes (ring of {size}): {kinds:?}");
}

/// Concurrent `member_of` changes that together close no cycle (a chain
/// growing at both ends, siblings joining one parent) all take effect,
/// spread over two replicas.
async fn concurrent_member_of_changes_that_close_no_cycle_all_succeed(app: TestApp) {
    let replica = app.spawn_replica().await;
    let clients = [app.client(), replica.client];
    for round in 0..ROUNDS {
        let id = |name: &str| format!("r{round}-{name}");
        for name in ["top", "a", "b", "c", "s1", "s2"] {
            group(&app, &id(name), &[], &[]).await;
        }
        // a → b, b → c and c → top at once: a chain, no cycle; and s1, s2
        // both joining top.
        let edges = [
            (id("a"), id("b")),
            (id("b"), id("c")),
            (id("c"), id("top")),
            (id("s1"), id("top")),
            (id("s2"), id("top")),
        ];
        let results = link_all(&clients, round, &edges).await;
        for (result, (child, parent)) in results.into_iter().zip(&edges) {
            if let Err(status) = result {
                panic!("round {round}: {child} → {parent} failed: {status:?}");
            }
        }
        add(&app, &id("a"), &["alice"], &[]).await;
        assert_eq!(
            check(&app, &id("top"), "alice").await,
            through(&[&id("a"), &id("b"), &id("c"), &id("top")])
        );
    }
}
