//! A filter evaluated in memory (`Filter::matches`) selects exactly what
//! its SQL selects. Over groups that differ in every filterable way (labels
//! present, absent and empty; mixed case, non-ASCII and the Kelvin sign;
//! scopes, emails, provenance; inactive; deleted), every filter of the
//! table and edge cases of this file's own select on ListGroups, with
//! deleted groups shown and not, the ids that `matches` selects among the
//! same groups read with GetGroup; again after writes that change what the
//! filters see. A filter ListGroups refuses is one the parser or the
//! default budget refuses.

use std::collections::BTreeSet;

use groupd::{
    domain::{
        Group, GroupFields, GroupId, State, Timestamp,
        filter::{self, Filter, FilterBudget},
    },
    pb,
};

use super::table::table_filters;
use crate::helpers::*;

both_backends!(filters_evaluated_in_memory_select_what_list_groups_selects);

/// A group to create: name, scope, email, provenance, inactive, labels,
/// and whether it is then deleted.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [(&'static str, &'static str)],
    bool,
);

const ROWS: [Row; 10] = [
    (
        "alpha",
        "site-a",
        "alpha@example.com",
        "ldap",
        true,
        &[("team", "sre"), ("tier", "1"), ("note", "it's")],
        false,
    ),
    (
        "ALPHA",
        "site-b",
        "",
        "local",
        false,
        &[("team", "dev"), ("empty", "")],
        false,
    ),
    (
        "Beta",
        "Site-A",
        "Ops@Example.COM",
        "LDAP",
        false,
        &[("team", "DEV"), ("note", "50%_off"), ("empty", "")],
        false,
    ),
    (
        "gamma",
        "site-b",
        "gamma@example.org",
        "",
        false,
        &[("quote", "say \"hi\""), ("city", "ÉCOLE")],
        false,
    ),
    (
        "delta",
        "",
        "ops@example.com",
        "scim",
        true,
        &[("tier", "2"), ("path", "back\\slash")],
        true,
    ),
    ("a_b", "", "", "", false, &[], false),
    // The provenance starts with the Kelvin sign, which full Unicode case
    // folding (not ASCII's) makes a `k`.
    (
        "axb",
        "",
        "",
        "\u{212A}elvin",
        false,
        &[("city", "école")],
        false,
    ),
    (
        "omega",
        "site-b",
        "omega@example.com",
        "ldap",
        false,
        &[("team", "sre"), ("empty", "")],
        true,
    ),
    ("Sigma", "site-a", "", "Émile", true, &[("team", "")], false),
    ("zeta", "", "", "", false, &[], true),
];

/// Edge cases beyond the table's: empty values and empty labels, case
/// (ASCII and not), label lookups the store merges or keeps once, and the
/// state among other terms.
const EDGE_FILTERS: &[&str] = &[
    // Empty label values, missing labels, empty needles.
    "labels.empty = \"\"",
    "labels.empty != \"\"",
    "labels:empty",
    "labels.empty:*",
    "-labels:empty",
    "labels.empty:\"\"",
    "NOT labels.empty:\"\"",
    "labels.missing:\"\"",
    "-labels.missing:\"\"",
    "labels.missing = \"\"",
    "labels.missing != \"\"",
    "name:\"\"",
    "-name:\"\"",
    "provenance:\"\"",
    "labels.team = \"\"",
    "labels.team != \"\"",
    "labels.team:*",
    "-labels.team:*",
    // Case: `=` exact, `:` ASCII-insensitive only.
    "labels.team = DEV",
    "labels.team = dev",
    "labels.team:dev",
    "labels.team != dev",
    "provenance = LDAP",
    "provenance:LDAP",
    "provenance:k",
    "provenance:K",
    "provenance:\"\u{212A}\"",
    "provenance:ELVIN",
    "provenance:\"é\"",
    "provenance:\"É\"",
    "provenance:\"émile\"",
    "provenance:\"ÉMILE\"",
    "labels.city:\"école\"",
    "labels.city:\"ÉCOLE\"",
    "labels.city:COLE",
    "labels.city = \"école\"",
    "email:EXAMPLE",
    "email = \"Ops@Example.COM\"",
    "email = \"ops@example.com\"",
    "email:\"OPS@EXAMPLE.COM\"",
    "-email:*",
    "scope:site",
    "scope = Site-A",
    "scope = site-a",
    "scope:\"SITE-A\"",
    "-scope:*",
    // The state and the flag among other terms.
    "state != DELETED",
    "state = ACTIVE OR inactive = true",
    "NOT state = ACTIVE AND labels:team",
    "state = DELETED inactive = true",
    "-state = DELETED -inactive = true",
    "inactive != false OR labels.empty = \"\"",
    // Label terms the store merges into one lookup, or keeps apart.
    "-labels.team:s -labels.tier:1",
    "-labels.team = sre AND -labels:tier",
    "labels.team = sre OR labels:tier OR labels.note:OFF",
    "-labels.team:x OR -labels:tier",
    "NOT (labels.team = sre OR labels.tier = 2)",
    "NOT (labels.team = sre AND labels.tier = 1)",
    "labels.team != sre labels.empty = \"\"",
    "labels.team = sre OR labels.team = \"\"",
    "(labels.team = dev OR name = alpha) (labels.team = sre OR name = ALPHA)",
    "labels.team:* OR provenance = \"\"",
    "name:A AND NOT (scope:b OR labels:note)",
    // Repeated terms.
    "name = alpha name = alpha",
    "labels:team OR labels:team",
    "-labels:team -labels:team",
    "-labels:team OR -labels:team",
];

/// The group of a row, as CreateGroup takes it.
fn to_create(row: &Row) -> pb::Group {
    let (name, scope, email, provenance, inactive, labels, _) = *row;
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
    )
}

/// A group as GetGroup answered it, as the domain type `matches` takes:
/// every field a filter reads (the others are left as a placeholder's).
fn as_domain(group: &pb::Group) -> Group {
    let mut domain = Group::absent(GroupId::parse(group.id.as_str()).expect("a valid id"));
    domain.fields = GroupFields {
        name: group.name.clone(),
        scope: group.scope.clone(),
        email: group.email.clone(),
        provenance: group.provenance.clone(),
        inactive: group.inactive,
        labels: labels_of(group),
        ..GroupFields::default()
    };
    domain.state = match group.state() {
        pb::State::Active => State::Active,
        pb::State::Deleted => State::Deleted,
        other => panic!("{}: state {other:?}", group.name),
    };
    domain.delete_time = group.delete_time.as_ref().map(|time| {
        Timestamp::from_micros(time.seconds * 1_000_000 + i64::from(time.nanos) / 1_000)
    });
    domain
}

/// Every group there is, each read with GetGroup.
async fn read_back(app: &TestApp) -> Vec<Group> {
    let listed = list_all(
        app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    let mut groups = Vec::new();
    for group in &listed {
        groups.push(as_domain(&get(app, &group.id).await));
    }
    groups
}

/// The filter as the server reads it: parsed, and within the default
/// budget.
fn parse_within_budget(text: &str) -> Result<Option<Filter>, String> {
    let parsed = filter::parse(text).map_err(|v| v.description)?;
    if let Some(filter) = &parsed {
        FilterBudget::DEFAULT
            .check(filter)
            .map_err(|v| v.description)?;
    }
    Ok(parsed)
}

/// What one round of comparisons saw: the different selections the
/// accepted filters made, and how many filters were refused.
#[derive(Default)]
struct Tally {
    selections: BTreeSet<BTreeSet<String>>,
    accepted: usize,
    refused: usize,
}

/// Lists each filter (deleted groups shown and not) and compares the ids
/// with the groups of `groups` that `matches` selects; returns the
/// mismatches, one line each.
async fn compare(
    app: &TestApp,
    groups: &[Group],
    filters: &[String],
    tally: &mut Tally,
) -> Vec<String> {
    let mut failures = Vec::new();
    for text in filters {
        let local = parse_within_budget(text);
        for show_deleted in [false, true] {
            let answer = try_list(
                app,
                pb::ListGroupsRequest {
                    filter: text.clone(),
                    show_deleted,
                    page_size: 1000,
                    ..Default::default()
                },
            )
            .await;
            let shown = if text.len() > 80 {
                format!("{}… ({} bytes)", &text[..80], text.len())
            } else {
                text.clone()
            };
            let case = format!("filter {shown:?}, show_deleted {show_deleted}");
            match (&local, answer) {
                (Ok(parsed), Ok(page)) => {
                    let expected: BTreeSet<String> = groups
                        .iter()
                        .filter(|group| show_deleted || group.state == State::Active)
                        .filter(|group| parsed.as_ref().is_none_or(|f| f.matches(group)))
                        .map(|group| group.id.as_str().to_owned())
                        .collect();
                    let listed: BTreeSet<String> =
                        page.groups.iter().map(|group| group.id.clone()).collect();
                    if !page.next_page_token.is_empty() {
                        failures.push(format!("{case}: more than one page"));
                    }
                    if listed != expected {
                        let name = |id: &String| {
                            groups
                                .iter()
                                .find(|group| group.id.as_str() == id)
                                .map_or(id.clone(), |group| group.fields.name.clone())
                        };
                        failures.push(format!(
                            "{case}: ListGroups selects {:?}, matches selects {:?}",
                            listed.iter().map(name).collect::<Vec<_>>(),
                            expected.iter().map(name).collect::<Vec<_>>(),
                        ));
                    }
                    tally.accepted += 1;
                    tally.selections.insert(listed);
                }
                (Err(_), Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                    tally.refused += 1;
                }
                (Err(problem), Ok(page)) => failures.push(format!(
                    "{case}: ListGroups accepts it ({} groups), the parser refuses it: {problem}",
                    page.groups.len()
                )),
                (_, Err(status)) => {
                    failures.push(format!("{case}: ListGroups refuses it: {status:?}"));
                }
            }
        }
    }
    failures
}

async fn filters_evaluated_in_memory_select_what_list_groups_selects(app: TestApp) {
    let mut created = Vec::new();
    for row in &ROWS {
        let group = create(&app, to_create(row)).await;
        if row.6 {
            delete(&app, &group.id).await;
        }
        created.push(group);
    }
    let filters: Vec<String> = table_filters()
        .into_iter()
        .chain(EDGE_FILTERS.iter().map(|filter| (*filter).to_owned()))
        .collect();

    let mut tally = Tally::default();
    let groups = read_back(&app).await;
    assert_eq!(groups.len(), ROWS.len(), "every group is read back");
    let mut failures = compare(&app, &groups, &filters, &mut tally).await;

    // Writes that change what the filters see: labels replaced (one now
    // present and empty), a deleted group back, a live one deleted, the
    // flag and the provenance changed.
    let id_of = |name: &str| {
        created
            .iter()
            .find(|group| group.name == name)
            .map(|group| group.id.clone())
            .unwrap_or_else(|| panic!("{name} was created"))
    };
    let mut relabelled = patch(&id_of("ALPHA"));
    relabelled.labels = label_map(&[("team", "sre"), ("tier", "")])
        .into_iter()
        .collect();
    update(&app, relabelled, Some(&["labels"])).await;
    try_undelete(&app, &id_of("delta"), "")
        .await
        .expect("undelete delta");
    delete(&app, &id_of("Beta")).await;
    let mut flagged = patch(&id_of("gamma"));
    flagged.inactive = true;
    flagged.provenance = "K8S".to_owned();
    update(&app, flagged, Some(&["inactive", "provenance"])).await;
    let mut emptied = patch(&id_of("axb"));
    emptied.labels = label_map(&[("empty", "")]).into_iter().collect();
    update(&app, emptied, Some(&["provenance", "labels"])).await;

    let after = read_back(&app).await;
    assert_ne!(after, groups, "the writes changed the groups");
    failures.extend(compare(&app, &after, &filters, &mut tally).await);

    assert!(
        failures.is_empty(),
        "{} disagreements between ListGroups and Filter::matches:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    // The comparison meant something: many filters ran, on both rounds,
    // and they told the groups apart in many different ways.
    assert!(
        tally.accepted >= 2 * 2 * 100,
        "{} filters accepted",
        tally.accepted
    );
    assert!(tally.refused > 0, "the refused filters of the table ran");
    assert!(
        tally.selections.len() >= 40,
        "only {} different selections",
        tally.selections.len()
    );
}
