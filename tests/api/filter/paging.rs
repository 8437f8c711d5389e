//! Paging under a filter: the pages hold every match once and total_size
//! counts the matches, and a page token cannot be reused with another
//! filter.

use std::collections::BTreeSet;

use groupd::pb;

use crate::helpers::*;

both_backends!(
    pages_of_a_filtered_listing_hold_every_match_once_and_total_size_counts_matches,
    a_page_token_cannot_be_reused_with_a_different_filter,
);

async fn pages_of_a_filtered_listing_hold_every_match_once_and_total_size_counts_matches(
    app: TestApp,
) {
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        let team = if i % 2 == 0 { "even" } else { "odd" };
        let group = create(
            &app,
            with_labels(named(&format!("g{i}")), &[("team", team)]),
        )
        .await;
        if team == "even" {
            expected.insert(group.id);
        }
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &app,
            pb::ListGroupsRequest {
                filter: "labels.team = even".to_owned(),
                page_size: 3,
                page_token: token.clone(),
                order_by: "name desc".to_owned(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.total_size, 4);
        seen.extend(page.groups.into_iter().map(|g| g.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 4, "no group twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
}

async fn a_page_token_cannot_be_reused_with_a_different_filter(app: TestApp) {
    for i in 0..3 {
        create_named(&app, &format!("g{i}")).await;
    }
    let first = list(
        &app,
        pb::ListGroupsRequest {
            filter: "name:g".to_owned(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(!first.next_page_token.is_empty());
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            filter: "name:g1".to_owned(),
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "page_token");
}
