//! ListGroups filters (the subset of AIP-160 groupd accepts): every field and
//! operator, boolean structure, paging under a filter, and rejection of
//! what the filter language does not understand.

use std::collections::BTreeSet;

use groupd::pb;

use crate::helpers::*;

both_backends!(
    filters_match_each_field_by_equality_and_inequality,
    filters_combine_with_and_or_not_and_parentheses,
    the_has_operator_matches_substrings_ignoring_case_and_label_presence,
    like_wildcards_in_a_filter_value_match_only_themselves,
    a_backslash_in_a_has_filter_value_matches_only_a_backslash,
    a_state_filter_selects_deleted_groups_when_they_are_shown,
    pages_of_a_filtered_listing_hold_every_match_once_and_total_size_counts_matches,
    a_page_token_cannot_be_reused_with_a_different_filter,
    a_filter_it_does_not_understand_is_invalid_argument_on_the_filter_field,
    the_filter_table_every_field_operator_precedence_quoting_and_injection,
);

/// Four groups with distinct values in every filterable field.
async fn seed(app: &TestApp) {
    let groups = [
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
    for (name, scope, email, provenance, inactive, labels) in groups {
        create(
            app,
            with_labels(
                pb::Group {
                    name: name.to_owned(),
                    scope: scope.to_owned(),
                    email: email.to_owned(),
                    provenance: provenance.to_owned(),
                    inactive,
                    ..Default::default()
                },
                labels,
            ),
        )
        .await;
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

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
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

// ---------------------------------------------------------------------------
// The filter table: one seeded set, many filters.
// ---------------------------------------------------------------------------

/// What a filter of the table must do.
enum Expect {
    /// Select exactly these names.
    Names(&'static [&'static str]),
    /// Be refused: INVALID_ARGUMENT, a violation on `filter` naming where.
    Rejected,
    /// Either select exactly these names or be refused (a filter whose
    /// reading the contract leaves open, but which may do nothing else).
    NamesOrRejected(&'static [&'static str]),
}

/// One row: a filter, whether deleted groups are shown, the expectation.
struct Case {
    filter: String,
    show_deleted: bool,
    expect: Expect,
}

fn ok(filter: &str, names: &'static [&'static str]) -> Case {
    Case {
        filter: filter.to_owned(),
        show_deleted: false,
        expect: Expect::Names(names),
    }
}

fn ok_shown(filter: &str, names: &'static [&'static str]) -> Case {
    Case {
        show_deleted: true,
        ..ok(filter, names)
    }
}

fn rejected(filter: &str) -> Case {
    Case {
        filter: filter.to_owned(),
        show_deleted: false,
        expect: Expect::Rejected,
    }
}

fn nothing_or_rejected(filter: &str) -> Case {
    Case {
        filter: filter.to_owned(),
        show_deleted: false,
        expect: Expect::NamesOrRejected(&[]),
    }
}

/// Every live group of [`table_seed`].
const LIVE: &[&str] = &["ALPHA", "Beta", "a_b", "alpha", "axb", "delta", "gamma"];

/// name, scope, email, provenance, inactive, labels.
type SeedRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [(&'static str, &'static str)],
);

/// Eight groups (one deleted) with distinct values in every filterable
/// field, and label values holding quotes, LIKE wildcards, a backslash and
/// non-ASCII capitals.
const SEED_ROWS: [SeedRow; 8] = [
    (
        "alpha",
        "site-a",
        "alpha@example.com",
        "ldap",
        true,
        &[("team", "sre"), ("tier", "1"), ("note", "it's")],
    ),
    ("ALPHA", "site-b", "", "local", false, &[("team", "dev")]),
    (
        "Beta",
        "site-a",
        "",
        "local",
        false,
        &[("team", "dev"), ("note", "50%_off")],
    ),
    (
        "gamma",
        "site-b",
        "gamma@example.org",
        "",
        false,
        &[("quote", "say \"hi\""), ("city", "ÉCOLE")],
    ),
    (
        "delta",
        "",
        "ops@example.com",
        "scim",
        true,
        &[("tier", "2"), ("path", "back\\slash")],
    ),
    ("a_b", "", "", "", false, &[]),
    ("axb", "", "", "", false, &[]),
    (
        "omega",
        "site-b",
        "omega@example.com",
        "ldap",
        false,
        &[("team", "sre")],
    ),
];

/// The group seeded as deleted.
const DELETED_SEED: &str = "omega";

/// Creates [`SEED_ROWS`] (each with member alice) and deletes
/// [`DELETED_SEED`]; returns the groups as the writes answered them, the
/// deleted one as DeleteGroup answered it.
async fn table_seed(app: &TestApp) -> Vec<pb::Group> {
    let mut created = Vec::new();
    for (name, scope, email, provenance, inactive, labels) in SEED_ROWS {
        created.push(
            create(
                app,
                with_labels(
                    pb::Group {
                        name: name.to_owned(),
                        scope: scope.to_owned(),
                        email: email.to_owned(),
                        provenance: provenance.to_owned(),
                        inactive,
                        members: members(&["alice"]),
                        ..Default::default()
                    },
                    labels,
                ),
            )
            .await,
        );
    }
    let deleted = created
        .iter()
        .position(|g| g.name == DELETED_SEED)
        .expect("the seed has the group to delete");
    created[deleted] = delete(app, &created[deleted].id).await;
    created
}

fn filter_table() -> Vec<Case> {
    let deep = |levels: usize| format!("{}name = alpha{}", "(".repeat(levels), ")".repeat(levels));
    let long_or = {
        let mut terms: Vec<String> = (0..120).map(|i| format!("name = x{i:03}")).collect();
        terms.push("name = gamma".to_owned());
        terms.join(" OR ")
    };
    vec![
        // Each field, `=` and `!=`.
        ok("", LIVE),
        ok("name = alpha", &["alpha"]),
        ok("name = ALPHA", &["ALPHA"]),
        ok("name = \"Beta\"", &["Beta"]),
        ok("name = beta", &[]),
        ok(
            "name != alpha",
            &["ALPHA", "Beta", "a_b", "axb", "delta", "gamma"],
        ),
        ok("name=alpha", &["alpha"]),
        ok("name\t=\nalpha", &["alpha"]),
        ok("scope = site-a", &["Beta", "alpha"]),
        ok("scope = \"\"", &["a_b", "axb", "delta"]),
        ok("scope != \"\"", &["ALPHA", "Beta", "alpha", "gamma"]),
        ok("email = alpha@example.com", &["alpha"]),
        ok("email = \"ALPHA@EXAMPLE.COM\"", &[]),
        ok("provenance = local", &["ALPHA", "Beta"]),
        ok("provenance = \"\"", &["a_b", "axb", "gamma"]),
        ok(
            "provenance != ldap",
            &["ALPHA", "Beta", "a_b", "axb", "delta", "gamma"],
        ),
        ok("inactive = true", &["alpha", "delta"]),
        ok(
            "inactive = false",
            &["ALPHA", "Beta", "a_b", "axb", "gamma"],
        ),
        ok(
            "inactive != true",
            &["ALPHA", "Beta", "a_b", "axb", "gamma"],
        ),
        ok("labels.team = sre", &["alpha"]),
        ok(
            "labels.team != sre",
            &["ALPHA", "Beta", "a_b", "axb", "delta", "gamma"],
        ),
        ok("labels.tier = 1", &["alpha"]),
        ok("labels.tier = \"2\"", &["delta"]),
        ok("labels.missing = \"\"", LIVE),
        ok("labels.team.x = sre", &[]),
        // `:` (has).
        ok("name:alpha", &["ALPHA", "alpha"]),
        ok("name:ETA", &["Beta"]),
        ok("name:*", LIVE),
        ok("email:EXAMPLE.ORG", &["gamma"]),
        ok("email:*", &["alpha", "delta", "gamma"]),
        ok("provenance:*", &["ALPHA", "Beta", "alpha", "delta"]),
        ok("scope:SITE", &["ALPHA", "Beta", "alpha", "gamma"]),
        ok("labels:tier", &["alpha", "delta"]),
        ok("labels.tier:*", &["alpha", "delta"]),
        ok("labels.team:D", &["ALPHA", "Beta"]),
        // The state, with deleted groups shown and not.
        ok("state = DELETED", &[]),
        ok("name = omega", &[]),
        ok_shown("state = DELETED", &["omega"]),
        ok_shown("state = STATE_DELETED AND labels.team = sre", &["omega"]),
        ok_shown(
            "state = ACTIVE",
            &["ALPHA", "Beta", "a_b", "alpha", "axb", "delta", "gamma"],
        ),
        ok_shown("labels.team = sre", &["alpha", "omega"]),
        // AND, OR, NOT, juxtaposition, precedence, parentheses.
        ok("scope = site-a AND inactive = true", &["alpha"]),
        ok("scope = site-a inactive = false", &["Beta"]),
        ok("name = alpha name = Beta", &[]),
        ok(
            "name = alpha OR name = gamma AND scope = site-a",
            &["alpha"],
        ),
        ok(
            "name = alpha OR name = gamma scope = site-b",
            &["alpha", "gamma"],
        ),
        ok(
            "(name = alpha OR name = gamma) AND scope = site-b",
            &["gamma"],
        ),
        ok("NOT name = alpha AND scope = site-a", &["Beta"]),
        ok(
            "NOT (name = alpha AND scope = site-a)",
            &["ALPHA", "Beta", "a_b", "axb", "delta", "gamma"],
        ),
        ok(
            "-scope = site-a",
            &["ALPHA", "a_b", "axb", "delta", "gamma"],
        ),
        ok("NOT NOT name = alpha", &["alpha"]),
        ok(
            "scope = site-a AND (inactive = false OR labels:tier)",
            &["Beta", "alpha"],
        ),
        ok(
            "labels.team = sre OR labels.team = dev",
            &["ALPHA", "Beta", "alpha"],
        ),
        ok(&deep(20), &["alpha"]),
        ok(&long_or, &["gamma"]),
        // Quoting and escapes.
        ok("labels.quote = \"say \\\"hi\\\"\"", &["gamma"]),
        ok("labels.path = \"back\\\\slash\"", &["delta"]),
        ok("labels.note = \"it's\"", &["alpha"]),
        ok("labels.note:\"'\"", &["alpha"]),
        ok("labels.note:\"50%_OFF\"", &["Beta"]),
        ok("labels.city = \"ÉCOLE\"", &["gamma"]),
        ok("labels.city:\"ÉCOLE\"", &["gamma"]),
        ok("name = \"α\"", &[]),
        // LIKE wildcards match only themselves.
        ok("name:\"_\"", &["a_b"]),
        ok("name = \"a_b\"", &["a_b"]),
        ok("name = \"a%\"", &[]),
        ok("name = \"%\"", &[]),
        ok("name:\"%\"", &[]),
        ok("labels.note:\"%\"", &["Beta"]),
        ok("labels.note:\"_\"", &["Beta"]),
        ok("name = *", &[]),
        ok("name:\"*\"", &[]),
        // Injection attempts: literal values that match nothing...
        ok("name = \"x' OR '1'='1\"", &[]),
        ok("name = \"a\\\" OR 1=1 --\"", &[]),
        ok("name = \"alpha\\\"; DELETE FROM groups; --\"", &[]),
        ok("labels.team = \"x'); DROP TABLE groups; --\"", &[]),
        ok("labels.team:\"sre' OR 'a'='a\"", &[]),
        ok("email = \"\\\" OR \\\"\\\"=\\\"\"", &[]),
        // ... or filters that are refused.
        rejected("name = \"alpha\" OR 1=1"),
        rejected("name = alpha' OR '1'='1"),
        rejected("name = 'alpha'"),
        rejected("name = alpha; DROP TABLE groups"),
        rejected("name = alpha -- comment"),
        rejected("name = alpha /* x */"),
        rejected("labels.a'b = x"),
        rejected("labels.$.x = y"),
        rejected("labels.\"team\" = sre"),
        rejected("labels.team\" = x"),
        rejected("name = \"al\0pha\""),
        nothing_or_rejected("name = alpha or name = gamma"),
        // Unbalanced parentheses, trailing and leading operators.
        rejected("(name = alpha"),
        rejected("name = alpha)"),
        rejected("((name = alpha)"),
        rejected(")("),
        rejected("()"),
        rejected("name = alpha AND"),
        rejected("name = alpha OR"),
        rejected("NOT"),
        rejected("AND name = alpha"),
        rejected("name ="),
        rejected("= alpha"),
        rejected("name alpha"),
        rejected("name == alpha"),
        rejected("name = \"alpha"),
        // Unknown fields and operators a field does not take.
        rejected("description = x"),
        rejected("id = x"),
        rejected("members = alice"),
        rejected("Name = alpha"),
        rejected("create_time > 5"),
        rejected("labels = x"),
        rejected("labels:Team"),
        rejected("state:DELETED"),
        rejected("state = gone"),
        rejected("inactive:true"),
        rejected("inactive = yes"),
        // Nesting and length beyond the limits.
        rejected(&deep(40)),
        rejected(&deep(1000)),
        rejected(&format!("{}name = alpha", "NOT ".repeat(1000))),
        rejected(&format!("name = \"{}\"", "a".repeat(3000))),
    ]
}

async fn run_case(app: &TestApp, case: &Case) -> Result<(), String> {
    let answer = try_list(
        app,
        pb::ListGroupsRequest {
            filter: case.filter.clone(),
            show_deleted: case.show_deleted,
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let names = |groups: &[pb::Group]| -> BTreeSet<String> {
        groups.iter().map(|g| g.name.clone()).collect()
    };
    let refused = |status: &tonic::Status| -> Result<(), String> {
        if status.code() != tonic::Code::InvalidArgument {
            return Err(format!("refused with {status:?}, not INVALID_ARGUMENT"));
        }
        let violations = violations(status);
        let on_filter: Vec<_> = violations.iter().filter(|v| v.field == "filter").collect();
        match on_filter.first() {
            None => Err(format!("no violation on `filter`: {violations:?}")),
            Some(v) if !v.description.contains("byte") => Err(format!(
                "the message does not say where: {:?}",
                v.description
            )),
            Some(_) => Ok(()),
        }
    };
    match (&case.expect, answer) {
        (Expect::Names(expected) | Expect::NamesOrRejected(expected), Ok(page)) => {
            let got = names(&page.groups);
            if got != set(expected) {
                return Err(format!("selected {got:?}, expected {expected:?}"));
            }
            if usize::try_from(page.total_size).ok() != Some(page.groups.len()) {
                return Err(format!(
                    "total_size {} for {} groups",
                    page.total_size,
                    page.groups.len()
                ));
            }
            Ok(())
        }
        (Expect::Names(expected), Err(status)) => {
            Err(format!("refused ({status:?}), expected {expected:?}"))
        }
        (Expect::Rejected, Ok(page)) => Err(format!(
            "accepted, selecting {:?}; expected INVALID_ARGUMENT",
            names(&page.groups)
        )),
        (Expect::Rejected | Expect::NamesOrRejected(_), Err(status)) => refused(&status),
    }
}

async fn the_filter_table_every_field_operator_precedence_quoting_and_injection(app: TestApp) {
    let seeded = table_seed(&app).await;
    let table = filter_table();
    assert!(table.len() >= 30, "the table has {} rows", table.len());

    let mut failures = Vec::new();
    for case in &table {
        if let Err(problem) = run_case(&app, case).await {
            let shown = if case.filter.len() > 80 {
                format!("{}… ({} bytes)", &case.filter[..80], case.filter.len())
            } else {
                case.filter.clone()
            };
            failures.push(format!("filter {shown:?}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} filter cases failed:\n  {}",
        failures.len(),
        table.len(),
        failures.join("\n  ")
    );

    // The table is intact: every group is still there, exactly as the
    // seeding writes answered it...
    let after = list_all(
        &app,
        pb::ListGroupsRequest {
            show_deleted: true,
            view: pb::GroupView::Full as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        after.len(),
        seeded.len(),
        "every seeded group is still listed"
    );
    for written in &seeded {
        let listed = after
            .iter()
            .find(|g| g.id == written.id)
            .unwrap_or_else(|| panic!("{} is gone", written.name));
        assert_eq!(listed, written, "{} changed", written.name);
    }
    // ...and as the seed rows say, independently of what the server answered.
    for (name, scope, email, provenance, inactive, labels) in SEED_ROWS {
        let listed = after
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("{name} is gone"));
        assert_eq!(
            (
                listed.scope.as_str(),
                listed.email.as_str(),
                listed.provenance.as_str(),
                listed.inactive,
            ),
            (scope, email, provenance, inactive),
            "{name}"
        );
        assert_eq!(labels_of(listed), label_map(labels), "{name} labels");
        assert_eq!(ids(&listed.members), ["alice"], "{name} members");
        let state = if name == DELETED_SEED {
            pb::State::Deleted
        } else {
            pb::State::Active
        };
        assert_eq!(listed.state(), state, "{name} state");
    }
    // And still writable.
    create_named(&app, "after-the-table").await;
}
