//! GetGroup and ListGroups: views, deleted groups, page sizes, page tokens
//! and ordering. One file per theme; the builders they share are here.

mod get;
mod order;
mod page_tokens;
mod pages;

use groupd::pb;

use crate::helpers::*;

async fn create_many(app: &TestApp, count: usize, prefix: &str) -> Vec<pb::Group> {
    let mut groups = Vec::with_capacity(count);
    for i in 0..count {
        groups.push(create_named(app, &format!("{prefix}{i:04}")).await);
    }
    groups
}

fn names(groups: &[pb::Group]) -> Vec<String> {
    groups.iter().map(|group| group.name.clone()).collect()
}
