//! ListGroups filters (the subset of AIP-160 groupd accepts): every field
//! and operator, boolean structure, paging under a filter, rejection of
//! what the filter language does not understand, a table of many filters
//! over one seeded set, label filters after writes and after the label
//! migration, and the filter evaluated in memory agreeing with its SQL.
//! One file per theme; the seed rows and the name sets they share are here.

mod agreement;
mod labels;
mod language;
mod paging;
mod table;

use std::collections::BTreeSet;

use groupd::pb;

use crate::helpers::with_labels;

/// A group to seed: name, scope, email, provenance, inactive, labels.
type SeedRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [(&'static str, &'static str)],
);

/// The group of a seed row, with `members`.
fn seed_group(row: &SeedRow, members: Vec<pb::Member>) -> pb::Group {
    let (name, scope, email, provenance, inactive, labels) = *row;
    with_labels(
        pb::Group {
            name: name.to_owned(),
            scope: scope.to_owned(),
            email: email.to_owned(),
            provenance: provenance.to_owned(),
            inactive,
            members,
            ..Default::default()
        },
        labels,
    )
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
