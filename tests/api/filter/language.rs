//! The filter language on small seeds: each field by equality and
//! inequality; AND, OR, NOT and parentheses; the has operator (substrings
//! ignoring case, and label presence); LIKE wildcards and backslashes in a
//! value matching only themselves; the state of deleted groups; and what
//! the language does not understand refused on the `filter` field.

use std::collections::BTreeSet;

use groupd::pb;

use super::{SeedRow, seed_group, set};
use crate::helpers::*;

both_backends!(
    filters_match_each_field_by_equality_and_inequality,
    filters_combine_with_and_or_not_and_parentheses,
    the_has_operator_matches_substrings_ignoring_case_and_label_presence,
    like_wildcards_in_a_filter_value_match_only_themselves,
    a_backslash_in_a_has_filter_value_matches_only_a_backslash,
    a_state_filter_selects_deleted_groups_when_they_are_shown,
    a_filter_it_does_not_understand_is_invalid_argument_on_the_filter_field,
);

/// Four groups with distinct values in every filterable field.
async fn seed(app: &TestApp) {
    let groups: [SeedRow; 4] = [
        (
            "alpha",
            "site-a",
            "alpha@example.com",
            "ldap",
            true,
            &[("team", "sre"), ("tier", "1")][..],
        ),
        ("Beta", "site-a", "", "local", false, &[("team", "dev")][..]),
        (
            "gamma",
            "site-b",
            "gamma@example.org",
            "local",
            false,
            &[][..],
        ),
        (
            "delta",
            "",
            "ops@example.com",
            "",
            true,
            &[("tier", "2")][..],
        ),
    ];
    for row in &groups {
        create(app, seed_group(row, Vec::new())).await;
    }
}

/// The names of the groups `filter` selects (all pages), checking that
/// total_size agrees.
async fn select(app: &TestApp, filter: &str) -> BTreeSet<String> {
    let response = list(
        app,
        pb::ListGroupsRequest {
            filter: filter.to_owned(),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        usize::try_from(response.total_size).unwrap(),
        response.groups.len(),
        "total_size of {filter:?}"
    );
    response.groups.into_iter().map(|g| g.name).collect()
}

async fn assert_selects(app: &TestApp, cases: &[(&str, &[&str])]) {
    for (filter, expected) in cases {
        assert_eq!(
            select(app, filter).await,
            set(expected),
            "filter {filter:?}"
        );
    }
}

async fn filters_match_each_field_by_equality_and_inequality(app: TestApp) {
    seed(&app).await;
    assert_selects(
        &app,
        &[
            ("", &["alpha", "Beta", "gamma", "delta"]),
            ("name = alpha", &["alpha"]),
            ("name = \"Beta\"", &["Beta"]),
            ("name = beta", &[]),
            ("name != alpha", &["Beta", "gamma", "delta"]),
            ("scope = site-a", &["alpha", "Beta"]),
            ("scope = \"\"", &["delta"]),
            ("email = \"ops@example.com\"", &["delta"]),
            ("provenance = local", &["Beta", "gamma"]),
            ("inactive = true", &["alpha", "delta"]),
            ("inactive = false", &["Beta", "gamma"]),
            ("inactive != true", &["Beta", "gamma"]),
            ("labels.team = sre", &["alpha"]),
            ("labels.team != sre", &["Beta", "gamma", "delta"]),
            ("labels.tier = \"2\"", &["delta"]),
        ],
    )
    .await;
}

async fn filters_combine_with_and_or_not_and_parentheses(app: TestApp) {
    seed(&app).await;
    assert_selects(
        &app,
        &[
            ("scope = site-a AND inactive = true", &["alpha"]),
            ("scope = site-a inactive = false", &["Beta"]),
            ("name = alpha OR name = gamma", &["alpha", "gamma"]),
            (
                "name = alpha OR scope = site-b AND inactive = true",
                &["alpha"],
            ),
            (
                "(name = alpha OR scope = site-b) AND inactive = false",
                &["gamma"],
            ),
            ("NOT scope = site-a", &["gamma", "delta"]),
            ("-scope = site-a", &["gamma", "delta"]),
            ("NOT (inactive = true OR labels:team)", &["gamma"]),
        ],
    )
    .await;
}

async fn the_has_operator_matches_substrings_ignoring_case_and_label_presence(app: TestApp) {
    seed(&app).await;
    assert_selects(
        &app,
        &[
            ("name:ETA", &["Beta"]),
            ("name:a", &["alpha", "Beta", "gamma", "delta"]),
            ("email:example.org", &["gamma"]),
            ("email:*", &["alpha", "gamma", "delta"]),
            ("provenance:*", &["alpha", "Beta", "gamma"]),
            ("labels:tier", &["alpha", "delta"]),
            ("labels.team:*", &["alpha", "Beta"]),
            ("labels.team:S", &["alpha"]),
        ],
    )
    .await;
}

async fn like_wildcards_in_a_filter_value_match_only_themselves(app: TestApp) {
    create_named(&app, "a_b").await;
    create_named(&app, "axb").await;
    assert_selects(&app, &[("name:\"a_b\"", &["a_b"]), ("name:\"%\"", &[])]).await;
}

/// The LIKE escape character itself must be escaped too: a `\` in the
/// value is a backslash to find, not an escape of the character after it.
async fn a_backslash_in_a_has_filter_value_matches_only_a_backslash(app: TestApp) {
    for (name, text) in [
        ("one", r"a\b"),
        ("plain", "ab"),
        ("two", r"a\\b"),
        ("trailing", r"x\"),
        ("none", "xyz"),
    ] {
        create(
            &app,
            with_labels(
                pb::Group {
                    name: name.to_owned(),
                    provenance: text.to_owned(),
                    ..Default::default()
                },
                &[("path", text)],
            ),
        )
        .await;
    }
    // In the filter language a quoted `\\` is one backslash.
    assert_selects(
        &app,
        &[
            (r#"provenance:"a\\b""#, &["one"]),
            (r#"labels.path:"a\\b""#, &["one"]),
            (r#"provenance:"A\\B""#, &["one"]),
            (r#"provenance:"a\\\\b""#, &["two"]),
            (r#"labels.path:"a\\\\b""#, &["two"]),
            (r#"provenance:"\\""#, &["one", "two", "trailing"]),
            (r#"labels.path:"\\""#, &["one", "two", "trailing"]),
            (r#"provenance:"x\\""#, &["trailing"]),
            (r#"provenance:"ab""#, &["plain"]),
        ],
    )
    .await;
}

async fn a_state_filter_selects_deleted_groups_when_they_are_shown(app: TestApp) {
    let kept = create_named(&app, "kept").await;
    let gone = create_named(&app, "gone").await;
    delete(&app, &gone.id).await;
    let deleted = |show_deleted| pb::ListGroupsRequest {
        filter: "state = DELETED".to_owned(),
        show_deleted,
        ..Default::default()
    };
    assert!(list(&app, deleted(false)).await.groups.is_empty());
    let shown = list(&app, deleted(true)).await;
    assert_eq!(id_list(&shown.groups), [gone.id]);
    let active = list(
        &app,
        pb::ListGroupsRequest {
            filter: "state = STATE_ACTIVE".to_owned(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&active.groups), [kept.id]);
}

async fn a_filter_it_does_not_understand_is_invalid_argument_on_the_filter_field(app: TestApp) {
    create_named(&app, "any").await;
    for filter in [
        "color = red",
        "name",
        "name = ",
        "name = a OR",
        "(name = a",
        "name ~ a",
        "inactive = maybe",
        "state = GONE",
        "labels.Bad = x",
        "create_time > 5",
    ] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                filter: filter.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "filter");
    }
}
