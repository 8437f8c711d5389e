//! The update mask (rules 1 to 7): paths are relative to the group; no
//! mask, or an empty one, updates every populated field and nothing else;
//! `*` replaces every writable field; a repeated field or the labels map
//! named in the mask is replaced whole, and a `labels.<key>` path sets or
//! deletes that one key; a bad path is refused and changes nothing; and
//! output-only fields are ignored, in the body and in the mask.

use groupd::pb;

use crate::helpers::*;

both_backends!(
    rule_01_mask_paths_are_relative_to_the_group,
    rule_02_no_mask_updates_every_populated_field_and_nothing_else,
    rule_02_an_empty_mask_is_the_same_as_no_mask,
    rule_02_no_mask_cannot_clear_a_field_with_its_zero_value,
    rule_04_star_replaces_every_writable_field_and_blanks_absent_ones,
    rule_04_star_sets_every_writable_field_from_the_request,
    rule_04_star_with_another_path_is_invalid,
    rule_05_a_repeated_field_in_the_mask_is_replaced_whole,
    rule_05_labels_in_the_mask_replaces_the_whole_map,
    rule_05_a_labels_key_path_sets_only_that_key,
    rule_05_a_labels_key_path_deletes_the_key_when_the_request_lacks_it,
    rule_05_a_labels_key_path_adds_a_new_key,
    rule_06_a_bad_mask_path_is_invalid_argument_naming_the_path_and_changes_nothing,
    rule_06_a_bad_path_next_to_a_good_one_still_changes_nothing,
    rule_07_output_only_fields_are_ignored_in_the_body_and_the_mask,
    rule_07_output_only_fields_are_ignored_without_a_mask,
);

async fn rule_01_mask_paths_are_relative_to_the_group(app: TestApp) {
    let group = rich_group(&app).await;

    let before = snapshot(&app, &group.id).await;
    let status = try_update(
        &app,
        pb::Group {
            description: "prefixed".to_owned(),
            ..patch(&group.id)
        },
        Some(&["group.description"]),
    )
    .await
    .unwrap_err();
    assert_bad_mask_path(&status, "group.description");
    assert_unchanged(&app, &before).await;

    let updated = set_description(&app, &group.id, "relative").await;
    assert_eq!(updated.description, "relative");
    assert_only_changed(&before.group, &updated, &["description"]);
}

async fn rule_02_no_mask_updates_every_populated_field_and_nothing_else(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        with_labels(
            pb::Group {
                description: "after".to_owned(),
                provenance: "scim".to_owned(),
                ..patch(&group.id)
            },
            &[("c", "3")],
        ),
        None,
    )
    .await;

    assert_eq!(updated.description, "after");
    assert_eq!(updated.provenance, "scim");
    assert_eq!(
        labels_of(&updated),
        label_map(&[("c", "3")]),
        "a populated map is replaced whole"
    );
    assert_only_changed(&group, &updated, &["description", "provenance", "labels"]);
    assert_eq!(get(&app, &group.id).await, updated, "the update was stored");
}

async fn rule_02_an_empty_mask_is_the_same_as_no_mask(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        pb::Group {
            email: "after@example.com".to_owned(),
            ..patch(&group.id)
        },
        Some(&[]),
    )
    .await;

    assert_eq!(updated.email, "after@example.com");
    assert_only_changed(&group, &updated, &["email"]);
}

async fn rule_02_no_mask_cannot_clear_a_field_with_its_zero_value(app: TestApp) {
    let group = rich_group(&app).await;

    // Only the id is populated: `inactive: false` and the empty description
    // are zero values, so the implied mask names no field.
    let updated = update(
        &app,
        pb::Group {
            inactive: false,
            description: String::new(),
            ..patch(&group.id)
        },
        None,
    )
    .await;

    assert!(updated.inactive);
    assert_eq!(updated.description, "before");
    assert_only_changed(&group, &updated, &[]);
}

async fn rule_04_star_replaces_every_writable_field_and_blanks_absent_ones(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        pb::Group {
            name: "rich".to_owned(),
            ..patch(&group.id)
        },
        Some(&["*"]),
    )
    .await;

    assert_eq!(updated.name, "rich");
    assert_eq!(
        updated.scope, "tenant-a",
        "an empty scope under * is not sent"
    );
    assert_eq!(updated.description, "");
    assert_eq!(updated.email, "");
    assert!(updated.members.is_empty());
    assert!(updated.admins.is_empty());
    assert!(updated.member_of.is_empty());
    assert!(updated.assigned_roles.is_empty());
    assert!(!updated.inactive);
    assert_eq!(updated.provenance, "");
    assert!(updated.labels.is_empty());
    assert_eq!(updated.member_count, 0);
    assert_eq!(updated.state(), pb::State::Active);
    assert_eq!(updated.create_time, group.create_time);
    assert_eq!(get(&app, &group.id).await, updated, "the update was stored");
}

async fn rule_04_star_sets_every_writable_field_from_the_request(app: TestApp) {
    let group = rich_group(&app).await;
    let other_parent = create_named(&app, "other-parent").await;

    let updated = update(
        &app,
        with_labels(
            pb::Group {
                name: "renamed".to_owned(),
                scope: "tenant-a".to_owned(),
                description: "after".to_owned(),
                email: "after@example.com".to_owned(),
                members: members(&["dave", "carol"]),
                admins: members(&["dave"]),
                member_of: refs(&[&other_parent.id]),
                assigned_roles: roles(&["roles/editor"]),
                inactive: false,
                provenance: "scim".to_owned(),
                ..patch(&group.id)
            },
            &[("z", "26")],
        ),
        Some(&["*"]),
    )
    .await;

    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.scope, "tenant-a");
    assert_eq!(updated.description, "after");
    assert_eq!(updated.email, "after@example.com");
    assert_eq!(ids(&updated.members), ["carol", "dave"]);
    assert_eq!(ids(&updated.admins), ["dave"]);
    assert_eq!(updated.member_of, refs(&[&other_parent.id]));
    assert_eq!(updated.assigned_roles, roles(&["roles/editor"]));
    assert!(!updated.inactive);
    assert_eq!(updated.provenance, "scim");
    assert_eq!(labels_of(&updated), label_map(&[("z", "26")]));
    assert_eq!(updated.member_count, 2);
}

async fn rule_04_star_with_another_path_is_invalid(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_update(
        &app,
        pb::Group {
            name: "rich".to_owned(),
            description: "star and more".to_owned(),
            ..patch(&group.id)
        },
        Some(&["*", "description"]),
    )
    .await
    .unwrap_err();
    assert_bad_mask_path(&status, "*");
    assert_unchanged(&app, &before).await;
}

async fn rule_05_a_repeated_field_in_the_mask_is_replaced_whole(app: TestApp) {
    let group = rich_group(&app).await;
    let new_parent = create_named(&app, "new-parent").await;

    let updated = update(
        &app,
        pb::Group {
            members: members(&["dave", "carol"]),
            admins: members(&["carol"]),
            member_of: refs(&[&new_parent.id]),
            assigned_roles: roles(&["roles/owner", "roles/auditor"]),
            ..patch(&group.id)
        },
        Some(&["members", "admins", "member_of", "assigned_roles"]),
    )
    .await;

    assert_eq!(ids(&updated.members), ["carol", "dave"]);
    assert_eq!(ids(&updated.admins), ["carol"]);
    assert_eq!(updated.member_of, refs(&[&new_parent.id]));
    let mut role_ids: Vec<_> = updated.assigned_roles.iter().map(|r| &r.role_id).collect();
    role_ids.sort();
    assert_eq!(role_ids, ["roles/auditor", "roles/owner"]);
    assert_eq!(updated.member_count, 2);
    assert_only_changed(
        &group,
        &updated,
        &["members", "admins", "member_of", "assigned_roles"],
    );
}

async fn rule_05_labels_in_the_mask_replaces_the_whole_map(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        with_labels(patch(&group.id), &[("c", "3")]),
        Some(&["labels"]),
    )
    .await;
    assert_eq!(labels_of(&updated), label_map(&[("c", "3")]));

    let cleared = update(&app, patch(&group.id), Some(&["labels"])).await;
    assert!(cleared.labels.is_empty(), "an empty map clears the labels");
    assert_only_changed(&group, &cleared, &["labels"]);
}

async fn rule_05_a_labels_key_path_sets_only_that_key(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        with_labels(patch(&group.id), &[("a", "one"), ("b", "not-in-mask")]),
        Some(&["labels.a"]),
    )
    .await;

    assert_eq!(
        labels_of(&updated),
        label_map(&[("a", "one"), ("b", "2")]),
        "only labels.a was written"
    );
    assert_only_changed(&group, &updated, &["labels"]);
}

async fn rule_05_a_labels_key_path_deletes_the_key_when_the_request_lacks_it(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(&app, patch(&group.id), Some(&["labels.b"])).await;
    assert_eq!(labels_of(&updated), label_map(&[("a", "1")]));

    // Deleting a key that is not there succeeds and leaves the rest alone.
    let again = update(&app, patch(&group.id), Some(&["labels.absent"])).await;
    assert_eq!(labels_of(&again), label_map(&[("a", "1")]));
}

async fn rule_05_a_labels_key_path_adds_a_new_key(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        with_labels(patch(&group.id), &[("zone.name", "eu-west")]),
        Some(&["labels.zone.name"]),
    )
    .await;
    assert_eq!(
        labels_of(&updated),
        label_map(&[("a", "1"), ("b", "2"), ("zone.name", "eu-west")])
    );
}

async fn rule_06_a_bad_mask_path_is_invalid_argument_naming_the_path_and_changes_nothing(
    app: TestApp,
) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    for path in [
        "nonexistent",
        "members.0",
        "members[0]",
        "members.id",
        "member_of.group_id",
        "description.foo",
        "name.first",
        "inactive.value",
        "memberOf",
        "assignedRoles",
        "group.description",
        "Description",
    ] {
        let status = try_update(
            &app,
            pb::Group {
                description: "should not land".to_owned(),
                members: members(&["zed"]),
                ..patch(&group.id)
            },
            Some(&[path]),
        )
        .await
        .unwrap_err();
        assert_bad_mask_path(&status, path);
    }
    assert_unchanged(&app, &before).await;
}

async fn rule_06_a_bad_path_next_to_a_good_one_still_changes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_update(
        &app,
        pb::Group {
            description: "should not land".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description", "bogus_field"]),
    )
    .await
    .unwrap_err();
    assert_bad_mask_path(&status, "bogus_field");
    assert_unchanged(&app, &before).await;
}

async fn rule_07_output_only_fields_are_ignored_in_the_body_and_the_mask(app: TestApp) {
    let group = rich_group(&app).await;
    let forged_time = Some(prost_types::Timestamp {
        seconds: 1_000_000_000,
        nanos: 0,
    });

    let updated = update(
        &app,
        pb::Group {
            description: "after".to_owned(),
            state: pb::State::Deleted as i32,
            create_time: forged_time,
            update_time: forged_time,
            delete_time: forged_time,
            created_by: "mallory".to_owned(),
            updated_by: "mallory".to_owned(),
            member_count: 99,
            ..patch(&group.id)
        },
        Some(&[
            "description",
            "id",
            "state",
            "create_time",
            "update_time",
            "delete_time",
            "created_by",
            "updated_by",
            "member_count",
            "etag",
        ]),
    )
    .await;

    assert_eq!(updated.id, group.id);
    assert_eq!(updated.description, "after");
    assert_eq!(updated.state(), pb::State::Active);
    assert_eq!(updated.create_time, group.create_time);
    assert!(instant(updated.update_time.as_ref()) > instant(group.update_time.as_ref()));
    assert!(updated.delete_time.is_none());
    assert_eq!(updated.created_by, ANONYMOUS);
    assert_eq!(updated.updated_by, ANONYMOUS);
    assert_eq!(updated.member_count, 2);
    assert_only_changed(&group, &updated, &["description"]);
}

async fn rule_07_output_only_fields_are_ignored_without_a_mask(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        pb::Group {
            email: "after@example.com".to_owned(),
            state: pb::State::Deleted as i32,
            created_by: "mallory".to_owned(),
            member_count: 99,
            ..patch(&group.id)
        },
        None,
    )
    .await;

    assert_eq!(updated.email, "after@example.com");
    assert_eq!(updated.state(), pb::State::Active);
    assert_eq!(updated.created_by, ANONYMOUS);
    assert_eq!(updated.member_count, 2);
    assert_only_changed(&group, &updated, &["email"]);
}
