//! ListGroups filters (the subset of AIP-160 groupd accepts): every field
//! and operator, boolean structure, paging under a filter, rejection of
//! what the filter language does not understand, and a table of many
//! filters over one seeded set. One file per theme; the name-set builder
//! they share is here.

mod language;
mod paging;
mod table;

use std::collections::BTreeSet;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
