//! Label filters after writes: every write that changes a group's labels
//! (create, update by mask or whole, a value changed, a key removed or
//! added) is what the next filter sees, deleted groups keep theirs, and a
//! database whose groups were written before labels had rows of their own
//! answers the same filters the same way once migrated.

use std::collections::BTreeSet;

use groupd::pb;
use migrations::MigratorTrait as _;

use super::set;
use crate::helpers::*;

both_backends!(
    label_filters_see_every_write_of_a_groups_labels,
    the_label_migration_fills_the_labels_of_groups_written_before_it,
);

/// The names of the groups `filter` selects, deleted ones shown or not.
async fn names(app: &TestApp, filter: &str, show_deleted: bool) -> BTreeSet<String> {
    list_all(
        app,
        pb::ListGroupsRequest {
            filter: filter.to_owned(),
            show_deleted,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|group| group.name)
    .collect()
}

async fn label_filters_see_every_write_of_a_groups_labels(app: TestApp) {
    let ops = create(
        &app,
        with_labels(named("ops"), &[("team", "sre"), ("tier", "1")]),
    )
    .await;
    let dev = create(&app, with_labels(named("dev"), &[("team", "dev")])).await;
    create(&app, named("bare")).await;
    assert_eq!(names(&app, "labels.team = sre", false).await, set(&["ops"]));

    // A value changed, a key removed and one added, through the mask.
    let mut changed = patch(&ops.id);
    changed.labels = label_map(&[("team", "platform"), ("env", "prod")])
        .into_iter()
        .collect();
    update(&app, changed, Some(&["labels"])).await;
    for (filter, expected) in [
        ("labels.team = sre", &[][..]),
        ("labels.team = platform", &["ops"][..]),
        ("labels:tier", &[]),
        ("labels.tier = \"\"", &["bare", "dev", "ops"]),
        ("labels.env:PRO", &["ops"]),
        ("labels.team != platform", &["bare", "dev"]),
    ] {
        assert_eq!(names(&app, filter, false).await, set(expected), "{filter}");
    }

    // One label path of the mask: only that key changes.
    let mut changed = patch(&dev.id);
    changed.labels = label_map(&[("tier", "2")]).into_iter().collect();
    update(&app, changed, Some(&["labels.tier"])).await;
    assert_eq!(names(&app, "labels.tier = 2", false).await, set(&["dev"]));
    assert_eq!(names(&app, "labels.team = dev", false).await, set(&["dev"]));

    // Writes that leave the labels alone leave the rows alone.
    set_description(&app, &dev.id, "unrelated").await;
    add(&app, &dev.id, &["alice"], &[]).await;
    assert_eq!(
        names(&app, "labels.team = dev labels.tier = 2", false).await,
        set(&["dev"])
    );

    // Every label removed.
    update(&app, patch(&ops.id), Some(&["labels"])).await;
    assert_eq!(names(&app, "labels:team", false).await, set(&["dev"]));
    assert_eq!(names(&app, "labels:env", false).await, set(&[]));

    // A deleted group keeps its labels, and has them back when undeleted.
    delete(&app, &dev.id).await;
    assert_eq!(names(&app, "labels.team = dev", false).await, set(&[]));
    assert_eq!(names(&app, "labels.team = dev", true).await, set(&["dev"]));
    try_undelete(&app, &dev.id, "").await.expect("undelete");
    assert_eq!(names(&app, "labels.team = dev", false).await, set(&["dev"]));
}

async fn the_label_migration_fills_the_labels_of_groups_written_before_it(app: TestApp) {
    for (name, labels) in [
        ("a", &[("team", "sre"), ("note", "it's 50%")][..]),
        ("b", &[("team", "dev"), ("empty", "")][..]),
        ("c", &[][..]),
    ] {
        create(&app, with_labels(named(name), labels)).await;
    }
    let filters = [
        "labels.team = sre",
        "labels.team != sre",
        "labels:note",
        "labels.note:\"50%\"",
        "labels.empty = \"\"",
        "labels:empty",
        "-labels:team",
    ];
    let mut before = Vec::new();
    for filter in filters {
        before.push(names(&app, filter, false).await);
    }

    // Back to the schema before the label rows (their table dropped), then
    // migrated again: the migration refills them from the groups' JSON.
    let db = connect_admin(app.database_url()).await.unwrap();
    migrations::Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(
        migrations::Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .len(),
        1,
        "one migration undone"
    );
    migrations::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();

    for (filter, expected) in filters.iter().zip(&before) {
        assert_eq!(&names(&app, filter, false).await, expected, "{filter}");
    }
    assert_eq!(before[0], set(&["a"]));
    assert_eq!(before[4], set(&["a", "b", "c"]));
    assert_eq!(before[5], set(&["b"]));
}
