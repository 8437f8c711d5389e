//! The change stream's buffer of recent changes is bounded by the memory
//! its entries hold, as `groupd::feed::held_bytes` computes it. Checked here
//! against what the allocator is really asked for when an entry is made and
//! shared: the figure must never count less than that, and never more than
//! malloc's own overhead per allocation on top of it.
//!
//! A test binary of its own, with a counting global allocator, and one
//! test in it, so that no other test allocates while an entry is counted.

use std::{alloc::System, collections::BTreeMap, sync::Arc};

use groupd::{
    domain::{ChangeKind, Group, GroupChange, GroupId, Timestamp},
    feed::held_bytes,
    store::{EncodedOnce, FeedEntry},
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// malloc's most overhead on one allocation: an 8-byte header, rounding to
/// 16 bytes, and its 32-byte smallest chunk.
const MOST_OVERHEAD: usize = 32;
/// malloc's least overhead on one allocation: its header.
const LEAST_OVERHEAD: usize = 8;

fn strings(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:04}")).collect()
}

fn entry(labels: usize, members: usize, mask: &[&str]) -> FeedEntry {
    let Ok(id) = GroupId::parse("payments-oncall") else {
        panic!("the group id is valid");
    };
    let mut group = Group::absent(id);
    group.fields.name = "payments-oncall".to_owned();
    group.fields.description = "Who is paged for the payments service, day and night".to_owned();
    group.fields.email = "payments-oncall@example.com".to_owned();
    group.fields.provenance = "hr-sync".to_owned();
    group.fields.member_of = strings("parent", 2);
    group.fields.assigned_roles = strings("role", 1);
    group.fields.labels = (0..labels)
        .map(|i| (format!("label-{i:03}"), format!("value of label {i}")))
        .collect::<BTreeMap<_, _>>();
    group.created_by = "user:alice@example.com".to_owned();
    group.updated_by = "service:hr-sync".to_owned();
    group.version = 12;
    FeedEntry {
        position: 41,
        change: GroupChange {
            version: 12,
            change_time: Timestamp::from_micros(1_700_000_000_000_000),
            actor: "service:hr-sync".to_owned(),
            kind: ChangeKind::Update,
            update_mask: mask.iter().map(|path| (*path).to_owned()).collect(),
            group,
            members_added: strings("user:new", members),
            members_removed: strings("user:gone", members / 2),
            admins_added: Vec::new(),
            admins_removed: strings("user:demoted", 1),
            delta_truncated: false,
        },
        encoded: EncodedOnce::default(),
    }
}

#[test]
fn an_entry_is_counted_at_no_less_than_it_allocates_and_at_most_mallocs_overhead_more() {
    let cases = [
        ("a plain update", entry(0, 0, &["description"])),
        (
            "an update of labels",
            entry(3, 0, &["labels.team", "labels.tier"]),
        ),
        ("many labels", entry(120, 0, &["labels"])),
        ("a membership change", entry(2, 200, &[])),
    ];
    for (what, source) in cases {
        // What the reader does with an entry it read: it is shared in the
        // ring behind an `Arc`. A clone allocates each string and list at
        // its source's capacity, and each map node as the source's.
        let region = Region::new(GLOBAL);
        let shared = Arc::new(source.clone());
        let made = region.change();
        let held = held_bytes(&shared);

        let asked = made.bytes_allocated;
        let allocations = made.allocations;
        assert!(allocations > 0, "{what}");
        assert!(
            held >= asked + LEAST_OVERHEAD * allocations,
            "{what}: counted {held} bytes, but {allocations} allocations asked for {asked}"
        );
        assert!(
            held <= asked + MOST_OVERHEAD * allocations,
            "{what}: counted {held} bytes, more than {allocations} allocations of {asked} \
             bytes can take"
        );
    }

    let small = held_bytes(&entry(0, 0, &["description"]));
    let labels = held_bytes(&entry(50, 0, &["labels"]));
    let members = held_bytes(&entry(0, 50, &[]));
    assert!(labels > small + 50 * 2 * 24, "{labels} against {small}");
    assert!(members > small + 75 * 24, "{members} against {small}");
}
