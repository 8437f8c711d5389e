//! The filter table: one seeded set of eight groups (one of them deleted)
//! and many filters, each row saying which names its filter selects or
//! that it is refused, covering every field and operator, precedence,
//! quoting and escapes, LIKE wildcards, injection attempts, and nesting and
//! length beyond the limits. Afterwards every seeded group is still there,
//! unchanged and writable.

use std::collections::BTreeSet;

use groupd::pb;

use super::{SeedRow, seed_group, set};
use crate::helpers::*;

both_backends!(the_filter_table_every_field_operator_precedence_quoting_and_injection);

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
    for row in &SEED_ROWS {
        created.push(create(app, seed_group(row, members(&["alice"]))).await);
    }
    let deleted = created
        .iter()
        .position(|g| g.name == DELETED_SEED)
        .expect("the seed has the group to delete");
    created[deleted] = delete(app, &created[deleted].id).await;
    created
}

/// The filters of the table, accepted and refused, for other checks to
/// run over.
pub(super) fn table_filters() -> Vec<String> {
    filter_table().into_iter().map(|case| case.filter).collect()
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
