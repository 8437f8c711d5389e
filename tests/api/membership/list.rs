//! ListMemberGroups: direct and transitive, each group once, pages and
//! their tokens, and invalid requests.

use groupd::pb;

use super::{group, member_groups, member_groups_paged, strings, try_member_groups};
use crate::helpers::*;

both_backends!(
    list_member_groups_direct_lists_the_live_groups_holding_the_principal_in_basic_view,
    list_member_groups_transitive_adds_every_live_ancestor_once,
    list_member_groups_pages_hold_every_group_once_in_id_order,
    list_member_groups_page_size_defaults_to_50_is_capped_and_negative_is_invalid,
    a_list_member_groups_token_is_bound_to_its_member_and_transitive_flag,
    list_member_groups_of_an_unknown_principal_is_empty_and_a_malformed_one_is_invalid,
);

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
        "/ab",
        "a#b",
        "x\0y",
        long_principal.as_str(),
    ] {
        let status = try_member_groups(&mut client, bad, true, 0, "")
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "member_id");
    }
}
