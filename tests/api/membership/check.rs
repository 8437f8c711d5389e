//! CheckMembership: direct and transitive through `member_of`, the
//! shortest path, deleted groups cutting chains, and invalid requests.

use groupd::pb;

use super::{
    assert_valid_path, check, direct, group, member_groups, member_groups_paged, outsider,
    set_parents, strings, through, try_check,
};
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
);

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
        "/ab",
        ":ab",
        "a?b",
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
