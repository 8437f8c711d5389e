//! UpdateGroup: the 15 rules of a masked update (mask paths, no mask, `*`,
//! repeated fields and label keys, bad paths, output-only fields, scope,
//! etags, allow_missing, validate_only, validation of the merged group,
//! deleted groups, concurrency, history), one or more scenarios each, named
//! `rule_NN_...` so that a failure points at the rule it breaks.
//!
//! Rule 3 (HTTP PATCH without a mask uses the JSON body's keys, PUT means
//! `*`) concerns the HTTP/JSON gateway: its scenarios are in `http.rs`.

use groupd::pb;
use tonic::Code;

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
    rule_08_a_different_scope_is_invalid_argument,
    rule_08_the_same_scope_is_ignored,
    rule_09_a_stale_etag_is_aborted_whether_or_not_the_mask_names_etag,
    rule_09_the_current_etag_succeeds_and_naming_etag_in_the_mask_is_no_error,
    rule_09_the_etag_is_accepted_without_quotes,
    rule_09_a_made_up_etag_is_aborted,
    rule_10_allow_missing_creates_a_missing_group_ignoring_the_mask,
    rule_10_a_missing_group_without_allow_missing_is_not_found,
    rule_10_allow_missing_does_not_resurrect_a_deleted_group,
    rule_10_allow_missing_validates_the_group_it_would_create,
    rule_10_allow_missing_on_an_existing_group_is_a_normal_masked_update,
    rule_11_validate_only_returns_the_would_be_group_and_writes_nothing,
    rule_11_validate_only_still_checks_everything,
    rule_11_validate_only_with_allow_missing_creates_nothing,
    rule_12_members_replaced_without_an_admin_still_listed_is_invalid,
    rule_12_admins_replaced_with_a_non_member_is_invalid,
    rule_12_merged_scalar_fields_are_validated,
    rule_12_a_labels_key_path_cannot_exceed_64_labels,
    rule_12_a_rename_to_a_name_taken_in_the_scope_is_already_exists,
    rule_12_a_rename_to_a_free_name_succeeds,
    rule_12_member_of_cannot_name_the_group_itself_or_a_missing_or_deleted_group,
    rule_12_a_member_of_cycle_is_failed_precondition,
    rule_13_updating_a_deleted_group_is_not_found_until_it_is_undeleted,
    rule_14_two_concurrent_updates_with_disjoint_masks_both_take_effect,
    rule_15_every_update_appends_one_history_entry_with_its_effective_mask,
    update_is_a_write_new_etag_later_update_time_same_create_time,
    every_write_moves_update_time_forward_even_when_the_clock_is_behind_it,
    update_with_an_empty_group_id_is_invalid,
    update_without_a_group_is_invalid,
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

    let updated = update(
        &app,
        pb::Group {
            description: "relative".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
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

async fn rule_08_a_different_scope_is_invalid_argument(app: TestApp) {
    let group = rich_group(&app).await;
    let global = create_named(&app, "global").await;
    let before = snapshot(&app, &group.id).await;
    let before_global = snapshot(&app, &global.id).await;

    let cases: [(&pb::Group, &str, Option<&[&str]>); 5] = [
        (&group, "tenant-b", None),
        (&group, "tenant-b", Some(&["scope"])),
        (&group, "tenant-b", Some(&["description", "scope"])),
        (&group, "", Some(&["scope"])),
        (&global, "tenant-x", Some(&["scope"])),
    ];
    for (target, scope, paths) in cases {
        let status = try_update(
            &app,
            pb::Group {
                scope: scope.to_owned(),
                description: "moved".to_owned(),
                ..patch(&target.id)
            },
            paths,
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "group.scope");
    }
    assert_unchanged(&app, &before).await;
    assert_unchanged(&app, &before_global).await;
}

async fn rule_08_the_same_scope_is_ignored(app: TestApp) {
    let group = rich_group(&app).await;

    let masked = update(
        &app,
        pb::Group {
            scope: "tenant-a".to_owned(),
            description: "masked".to_owned(),
            ..patch(&group.id)
        },
        Some(&["scope", "description"]),
    )
    .await;
    assert_eq!(masked.scope, "tenant-a");
    assert_eq!(masked.description, "masked");

    let unmasked = update(
        &app,
        pb::Group {
            scope: "tenant-a".to_owned(),
            description: "unmasked".to_owned(),
            ..patch(&group.id)
        },
        None,
    )
    .await;
    assert_eq!(unmasked.scope, "tenant-a");
    assert_eq!(unmasked.description, "unmasked");
}

async fn rule_09_a_stale_etag_is_aborted_whether_or_not_the_mask_names_etag(app: TestApp) {
    let group = rich_group(&app).await;
    let stale = group.etag.clone();
    update(
        &app,
        pb::Group {
            description: "someone else".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    let before = snapshot(&app, &group.id).await;
    assert_ne!(before.group.etag, stale);

    for paths in [
        Some(&["description"][..]),
        Some(&["description", "etag"][..]),
        None,
    ] {
        let status = try_update(
            &app,
            pb::Group {
                description: "lost update".to_owned(),
                etag: stale.clone(),
                ..patch(&group.id)
            },
            paths,
        )
        .await
        .unwrap_err();
        assert_etag_mismatch(&status);
        assert_metadata_id(&status, &group.id);
    }
    assert_unchanged(&app, &before).await;
}

async fn rule_09_the_current_etag_succeeds_and_naming_etag_in_the_mask_is_no_error(app: TestApp) {
    let group = rich_group(&app).await;

    let first = update(
        &app,
        pb::Group {
            description: "first".to_owned(),
            etag: group.etag.clone(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    assert_eq!(first.description, "first");
    assert_ne!(first.etag, group.etag);
    assert_quoted_etag(&first.etag);

    let second = update(
        &app,
        pb::Group {
            description: "second".to_owned(),
            etag: first.etag.clone(),
            ..patch(&group.id)
        },
        Some(&["description", "etag"]),
    )
    .await;
    assert_eq!(second.description, "second");
    assert_ne!(second.etag, first.etag);
}

async fn rule_09_the_etag_is_accepted_without_quotes(app: TestApp) {
    let group = rich_group(&app).await;
    let bare = group.etag.trim_matches('"').to_owned();
    assert_ne!(bare, group.etag);

    let updated = update(
        &app,
        pb::Group {
            description: "bare etag".to_owned(),
            etag: bare.clone(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    assert_eq!(updated.description, "bare etag");

    // The bare form of a stale etag is still stale.
    let status = try_update(
        &app,
        pb::Group {
            description: "stale bare etag".to_owned(),
            etag: bare,
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await
    .unwrap_err();
    assert_etag_mismatch(&status);
}

async fn rule_09_a_made_up_etag_is_aborted(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    for etag in ["\"made-up\"", "made-up"] {
        let status = try_update(
            &app,
            pb::Group {
                description: "forged".to_owned(),
                etag: etag.to_owned(),
                ..patch(&group.id)
            },
            Some(&["description"]),
        )
        .await
        .unwrap_err();
        assert_etag_mismatch(&status);
    }
    assert_unchanged(&app, &before).await;
}

async fn rule_10_allow_missing_creates_a_missing_group_ignoring_the_mask(app: TestApp) {
    let created = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(with_labels(
                pb::Group {
                    name: "upserted".to_owned(),
                    description: "made by update".to_owned(),
                    email: "up@example.com".to_owned(),
                    members: members(&["alice"]),
                    ..patch("upserted-id")
                },
                &[("k", "v")],
            )),
            update_mask: Some(mask(&["description"])),
            allow_missing: true,
            validate_only: false,
        },
    )
    .await
    .unwrap();

    assert_eq!(created.id, "upserted-id");
    assert_eq!(created.name, "upserted", "the mask is ignored on creation");
    assert_eq!(created.description, "made by update");
    assert_eq!(created.email, "up@example.com");
    assert_eq!(ids(&created.members), ["alice"]);
    assert_eq!(labels_of(&created), label_map(&[("k", "v")]));
    assert_eq!(created.state(), pb::State::Active);
    assert_eq!(created.created_by, ANONYMOUS);
    assert_eq!(get(&app, "upserted-id").await, created);

    let history = changes(&app, "upserted-id").await;
    assert_eq!(kinds(&history), [pb::ChangeKind::Create]);
    assert_eq!(history[0].version, 1);
}

async fn rule_10_a_missing_group_without_allow_missing_is_not_found(app: TestApp) {
    let status = try_update(
        &app,
        pb::Group {
            name: "ghost".to_owned(),
            ..patch("ghost-id")
        },
        Some(&["name"]),
    )
    .await
    .unwrap_err();
    assert_not_found(&status, "ghost-id");
    let status = try_get(&app, "ghost-id").await.unwrap_err();
    assert_not_found(&status, "ghost-id");
}

async fn rule_10_allow_missing_does_not_resurrect_a_deleted_group(app: TestApp) {
    let group = rich_group(&app).await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    let status = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                name: "rich".to_owned(),
                description: "resurrected".to_owned(),
                ..patch(&group.id)
            }),
            update_mask: None,
            allow_missing: true,
            validate_only: false,
        },
    )
    .await
    .unwrap_err();
    assert_not_found(&status, &group.id);
    assert_unchanged(&app, &before).await;
}

async fn rule_10_allow_missing_validates_the_group_it_would_create(app: TestApp) {
    let status = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "nameless".to_owned(),
                ..patch("nameless-id")
            }),
            update_mask: Some(mask(&["description"])),
            allow_missing: true,
            validate_only: false,
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.name");
    let status = try_get(&app, "nameless-id").await.unwrap_err();
    assert_not_found(&status, "nameless-id");
}

async fn rule_10_allow_missing_on_an_existing_group_is_a_normal_masked_update(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                name: "not-in-mask".to_owned(),
                description: "in mask".to_owned(),
                ..patch(&group.id)
            }),
            update_mask: Some(mask(&["description"])),
            allow_missing: true,
            validate_only: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.description, "in mask");
    assert_only_changed(&group, &updated, &["description"]);
    assert_eq!(
        kinds(&changes(&app, &group.id).await),
        [pb::ChangeKind::Create, pb::ChangeKind::Update]
    );
}

async fn rule_11_validate_only_returns_the_would_be_group_and_writes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let would_be = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "would be".to_owned(),
                members: members(&["alice", "zed"]),
                ..patch(&group.id)
            }),
            update_mask: Some(mask(&["description", "members"])),
            allow_missing: false,
            validate_only: true,
        },
    )
    .await
    .unwrap();

    assert_eq!(would_be.description, "would be");
    assert_eq!(ids(&would_be.members), ["alice", "zed"]);
    assert_eq!(would_be.member_count, 2);
    assert_only_changed(&group, &would_be, &["description", "members"]);
    assert_unchanged(&app, &before).await;
}

async fn rule_11_validate_only_still_checks_everything(app: TestApp) {
    let group = rich_group(&app).await;
    create(
        &app,
        pb::Group {
            name: "taken".to_owned(),
            scope: "tenant-a".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let stale = group.etag.clone();
    update(
        &app,
        pb::Group {
            description: "moved on".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    let dry = |group: pb::Group, paths: &[&str]| pb::UpdateGroupRequest {
        group: Some(group),
        update_mask: Some(mask(paths)),
        allow_missing: false,
        validate_only: true,
    };

    let status = update_request(
        &app,
        dry(
            pb::Group {
                email: "nope".to_owned(),
                ..patch(&group.id)
            },
            &["email"],
        ),
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.email");

    let status = update_request(
        &app,
        dry(
            pb::Group {
                description: "stale".to_owned(),
                etag: stale,
                ..patch(&group.id)
            },
            &["description"],
        ),
    )
    .await
    .unwrap_err();
    assert_etag_mismatch(&status);

    let status = update_request(&app, dry(patch(&group.id), &["bogus"]))
        .await
        .unwrap_err();
    assert_bad_mask_path(&status, "bogus");

    let status = update_request(
        &app,
        dry(
            pb::Group {
                name: "TAKEN".to_owned(),
                ..patch(&group.id)
            },
            &["name"],
        ),
    )
    .await
    .unwrap_err();
    assert_already_exists(&status, "GROUP_NAME_TAKEN");

    assert_unchanged(&app, &before).await;
}

async fn rule_11_validate_only_with_allow_missing_creates_nothing(app: TestApp) {
    let would_be = update_request(
        &app,
        pb::UpdateGroupRequest {
            group: Some(pb::Group {
                name: "dry".to_owned(),
                ..patch("dry-id")
            }),
            update_mask: None,
            allow_missing: true,
            validate_only: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(would_be.id, "dry-id");
    assert_eq!(would_be.name, "dry");

    let status = try_get(&app, "dry-id").await.unwrap_err();
    assert_not_found(&status, "dry-id");
    let status = try_changes_page(&app, "dry-id", 0, "").await.unwrap_err();
    assert_not_found(&status, "dry-id");
}

async fn rule_12_members_replaced_without_an_admin_still_listed_is_invalid(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    // alice is an admin; replacing members without her would leave an admin
    // who is not a member.
    let status = try_update(
        &app,
        pb::Group {
            members: members(&["bob", "carol"]),
            ..patch(&group.id)
        },
        Some(&["members"]),
    )
    .await
    .unwrap_err();
    assert_invalid_argument_on(&status, "group.admins");
    assert_unchanged(&app, &before).await;

    // Removing her as admin in the same request makes it valid.
    let updated = update(
        &app,
        pb::Group {
            members: members(&["bob", "carol"]),
            ..patch(&group.id)
        },
        Some(&["members", "admins"]),
    )
    .await;
    assert_eq!(ids(&updated.members), ["bob", "carol"]);
    assert!(updated.admins.is_empty());
}

async fn rule_12_admins_replaced_with_a_non_member_is_invalid(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_update(
        &app,
        pb::Group {
            admins: members(&["zed"]),
            ..patch(&group.id)
        },
        Some(&["admins"]),
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.admins[0].id");
    assert_unchanged(&app, &before).await;

    let updated = update(
        &app,
        pb::Group {
            admins: members(&["bob"]),
            ..patch(&group.id)
        },
        Some(&["admins"]),
    )
    .await;
    assert_eq!(ids(&updated.admins), ["bob"]);
}

async fn rule_12_merged_scalar_fields_are_validated(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;

    let cases: Vec<(pb::Group, &str, &str)> = vec![
        (patch(&group.id), "name", "group.name"),
        (
            pb::Group {
                name: "bad name".to_owned(),
                ..patch(&group.id)
            },
            "name",
            "group.name",
        ),
        (
            pb::Group {
                description: "d".repeat(1025),
                ..patch(&group.id)
            },
            "description",
            "group.description",
        ),
        (
            pb::Group {
                email: "nope".to_owned(),
                ..patch(&group.id)
            },
            "email",
            "group.email",
        ),
        (
            pb::Group {
                provenance: "p".repeat(257),
                ..patch(&group.id)
            },
            "provenance",
            "group.provenance",
        ),
        (
            pb::Group {
                members: members(&["alice", "bob", "bad id"]),
                admins: members(&["alice"]),
                ..patch(&group.id)
            },
            "members",
            "group.members[2].id",
        ),
        (
            pb::Group {
                members: members(&["alice", "bob", "alice"]),
                ..patch(&group.id)
            },
            "members",
            "group.members[2].id",
        ),
    ];
    for (body, path, field) in cases {
        let status = try_update(&app, body, Some(&[path])).await.unwrap_err();
        assert_invalid_argument(&status, field);
    }

    let status = try_update(
        &app,
        with_labels(patch(&group.id), &[("Bad-Key", "x")]),
        Some(&["labels"]),
    )
    .await
    .unwrap_err();
    assert_invalid_label(&status, "Bad-Key");

    let long_value = "v".repeat(257);
    let status = try_update(
        &app,
        with_labels(patch(&group.id), &[("a", long_value.as_str())]),
        Some(&["labels.a"]),
    )
    .await
    .unwrap_err();
    assert_invalid_label(&status, "a");

    assert_unchanged(&app, &before).await;
}

async fn rule_12_a_labels_key_path_cannot_exceed_64_labels(app: TestApp) {
    let mut full = named("full");
    for i in 0..64 {
        full.labels.insert(format!("k{i}"), "v".to_owned());
    }
    let group = create(&app, full).await;
    let before = snapshot(&app, &group.id).await;

    let status = try_update(
        &app,
        with_labels(patch(&group.id), &[("k64", "one too many")]),
        Some(&["labels.k64"]),
    )
    .await
    .unwrap_err();
    assert_invalid_argument_on(&status, "group.labels");
    assert_unchanged(&app, &before).await;

    // Replacing an existing key keeps the count at 64 and is fine.
    let updated = update(
        &app,
        with_labels(patch(&group.id), &[("k0", "replaced")]),
        Some(&["labels.k0"]),
    )
    .await;
    assert_eq!(updated.labels.len(), 64);
    assert_eq!(
        updated.labels.get("k0").map(String::as_str),
        Some("replaced")
    );
}

async fn rule_12_a_rename_to_a_name_taken_in_the_scope_is_already_exists(app: TestApp) {
    let group = rich_group(&app).await;
    create(
        &app,
        pb::Group {
            name: "Taken".to_owned(),
            scope: "tenant-a".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &group.id).await;

    for (name, paths) in [
        ("taken", Some(&["name"][..])),
        ("TAKEN", None),
        ("Taken", Some(&["*"][..])),
    ] {
        let status = try_update(
            &app,
            pb::Group {
                name: name.to_owned(),
                ..patch(&group.id)
            },
            paths,
        )
        .await
        .unwrap_err();
        assert_already_exists(&status, "GROUP_NAME_TAKEN");
    }
    assert_unchanged(&app, &before).await;
}

async fn rule_12_a_rename_to_a_free_name_succeeds(app: TestApp) {
    let group = rich_group(&app).await;
    // The same name in another scope, and a deleted group's name in this
    // scope, are both free.
    create_named(&app, "elsewhere").await;
    let deleted = create(
        &app,
        pb::Group {
            name: "retired".to_owned(),
            scope: "tenant-a".to_owned(),
            ..Default::default()
        },
    )
    .await;
    delete(&app, &deleted.id).await;

    for name in ["RICH", "elsewhere", "retired"] {
        let updated = update(
            &app,
            pb::Group {
                name: name.to_owned(),
                ..patch(&group.id)
            },
            Some(&["name"]),
        )
        .await;
        assert_eq!(updated.name, name);
    }
}

async fn rule_12_member_of_cannot_name_the_group_itself_or_a_missing_or_deleted_group(
    app: TestApp,
) {
    let group = rich_group(&app).await;
    let gone = create_named(&app, "gone").await;
    delete(&app, &gone.id).await;
    let live = create_named(&app, "live").await;
    let before = snapshot(&app, &group.id).await;

    for (parents, field) in [
        (vec![group.id.as_str()], "group.member_of[0].group_id"),
        (
            vec![live.id.as_str(), "no-such-group"],
            "group.member_of[1].group_id",
        ),
        (
            vec![live.id.as_str(), gone.id.as_str()],
            "group.member_of[1].group_id",
        ),
        (
            vec![live.id.as_str(), live.id.as_str()],
            "group.member_of[1].group_id",
        ),
    ] {
        let status = try_update(
            &app,
            pb::Group {
                member_of: refs(&parents),
                ..patch(&group.id)
            },
            Some(&["member_of"]),
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, field);
    }
    assert_unchanged(&app, &before).await;
}

async fn rule_12_a_member_of_cycle_is_failed_precondition(app: TestApp) {
    // top <- middle <- bottom (each is member_of the one to its left).
    let top = create_named(&app, "top").await;
    let middle = create(
        &app,
        pb::Group {
            name: "middle".to_owned(),
            member_of: refs(&[&top.id]),
            ..Default::default()
        },
    )
    .await;
    let bottom = create(
        &app,
        pb::Group {
            name: "bottom".to_owned(),
            member_of: refs(&[&middle.id]),
            ..Default::default()
        },
    )
    .await;
    let before = snapshot(&app, &top.id).await;

    for parent in [&middle.id, &bottom.id] {
        let status = try_update(
            &app,
            pb::Group {
                member_of: refs(&[parent]),
                ..patch(&top.id)
            },
            Some(&["member_of"]),
        )
        .await
        .unwrap_err();
        assert_error(&status, Code::FailedPrecondition, "MEMBER_OF_CYCLE");
    }
    assert_unchanged(&app, &before).await;

    // A diamond is not a cycle.
    let side = create_named(&app, "side").await;
    let updated = update(
        &app,
        pb::Group {
            member_of: refs(&[&middle.id, &side.id]),
            ..patch(&bottom.id)
        },
        Some(&["member_of"]),
    )
    .await;
    assert_eq!(updated.member_of.len(), 2);
}

async fn rule_13_updating_a_deleted_group_is_not_found_until_it_is_undeleted(app: TestApp) {
    let group = rich_group(&app).await;
    delete(&app, &group.id).await;
    let before = snapshot(&app, &group.id).await;

    for paths in [Some(&["description"][..]), None] {
        let status = try_update(
            &app,
            pb::Group {
                description: "while deleted".to_owned(),
                ..patch(&group.id)
            },
            paths,
        )
        .await
        .unwrap_err();
        assert_not_found(&status, &group.id);
    }
    assert_unchanged(&app, &before).await;

    try_undelete(&app, &group.id, "").await.unwrap();
    let updated = update(
        &app,
        pb::Group {
            description: "after undelete".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    assert_eq!(updated.description, "after undelete");
    assert_eq!(updated.state(), pb::State::Active);
}

async fn rule_14_two_concurrent_updates_with_disjoint_masks_both_take_effect(app: TestApp) {
    let group = rich_group(&app).await;

    for round in 0..10 {
        let description = update(
            &app,
            pb::Group {
                description: format!("description {round}"),
                ..patch(&group.id)
            },
            Some(&["description"]),
        );
        let email = update(
            &app,
            pb::Group {
                email: format!("round{round}@example.com"),
                ..patch(&group.id)
            },
            Some(&["email"]),
        );
        // Both requests are in flight at once on the shared connection.
        let (first, second) = tokio::join!(description, email);
        assert_ne!(first.etag, second.etag);

        let stored = get(&app, &group.id).await;
        assert_eq!(stored.description, format!("description {round}"));
        assert_eq!(stored.email, format!("round{round}@example.com"));
    }
    assert_eq!(changes(&app, &group.id).await.len(), 21);
}

async fn rule_15_every_update_appends_one_history_entry_with_its_effective_mask(app: TestApp) {
    let group = rich_group(&app).await;

    let masked = update(
        &app,
        with_labels(
            pb::Group {
                description: "masked".to_owned(),
                ..patch(&group.id)
            },
            &[("team", "core")],
        ),
        Some(&["description", "labels.team"]),
    )
    .await;
    let implied = update(
        &app,
        pb::Group {
            description: "implied".to_owned(),
            email: "implied@example.com".to_owned(),
            ..patch(&group.id)
        },
        None,
    )
    .await;

    let history = changes(&app, &group.id).await;
    assert_eq!(
        kinds(&history),
        [
            pb::ChangeKind::Create,
            pb::ChangeKind::Update,
            pb::ChangeKind::Update
        ]
    );
    let versions: Vec<i64> = history.iter().map(|change| change.version).collect();
    assert_eq!(versions, [1, 2, 3]);

    assert_eq!(
        mask_paths(&history[1]),
        path_set(&["description", "labels.team"])
    );
    let recorded = history[1].group.as_ref().expect("the entry has the group");
    assert_eq!(recorded.description, "masked");
    assert_eq!(recorded.etag, masked.etag);

    assert_eq!(
        mask_paths(&history[2]),
        path_set(&["description", "email"]),
        "the implied mask is recorded as the populated fields"
    );
    let recorded = history[2].group.as_ref().expect("the entry has the group");
    assert_eq!(recorded.email, "implied@example.com");
    assert_eq!(recorded.etag, implied.etag);
}

async fn update_is_a_write_new_etag_later_update_time_same_create_time(app: TestApp) {
    let group = rich_group(&app).await;

    let updated = update(
        &app,
        pb::Group {
            description: "write".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;

    assert_ne!(updated.etag, group.etag);
    assert_quoted_etag(&updated.etag);
    assert!(instant(updated.update_time.as_ref()) > instant(group.update_time.as_ref()));
    assert_eq!(updated.create_time, group.create_time);
    assert_eq!(updated.updated_by, ANONYMOUS);
    assert_eq!(get(&app, &group.id).await, updated);
}

/// A timestamp in microseconds since the Unix epoch.
fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    let (seconds, nanos) = instant(timestamp);
    seconds * 1_000_000 + i64::from(nanos) / 1000
}

async fn every_write_moves_update_time_forward_even_when_the_clock_is_behind_it(app: TestApp) {
    use sea_orm::ConnectionTrait as _;

    let group = create_named(&app, "ahead").await;
    // The group was last written, as far as the database says, a day from
    // now (by a replica whose clock is ahead, say). This server's clock is
    // behind that, and every write must still move update_time forward.
    let ahead = micros(group.update_time.as_ref()) + 86_400_000_000;
    let db = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    let moved = db
        .execute_unprepared(&format!(
            "UPDATE groups SET update_time = {ahead} WHERE id = '{}'",
            group.id
        ))
        .await
        .expect("UPDATE");
    assert_eq!(moved.rows_affected(), 1);
    db.close().await.expect("the test's connection closes");
    assert_eq!(
        micros(get(&app, &group.id).await.update_time.as_ref()),
        ahead
    );

    let mut last = ahead;
    let mut step = |name: &str, written: &pb::Group| {
        let time = micros(written.update_time.as_ref());
        assert!(
            time > last,
            "{name}: update_time {time} is not after the previous {last}"
        );
        last = time;
    };
    let updated = update(
        &app,
        pb::Group {
            description: "first".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    step("UpdateGroup", &updated);
    let updated = update(
        &app,
        pb::Group {
            description: "second".to_owned(),
            ..patch(&group.id)
        },
        Some(&["description"]),
    )
    .await;
    step("a second UpdateGroup", &updated);
    step(
        "AddGroupMembers",
        &add(&app, &group.id, &["alice"], &[]).await,
    );
    step(
        "RemoveGroupMembers",
        &remove(&app, &group.id, &["alice"], &[]).await,
    );
    let deleted = delete(&app, &group.id).await;
    step("DeleteGroup", &deleted);
    assert_eq!(deleted.delete_time, deleted.update_time);
    let undeleted = try_undelete(&app, &group.id, "")
        .await
        .unwrap_or_else(|status| panic!("UndeleteGroup failed: {status:?}"));
    step("UndeleteGroup", &undeleted);
    assert_eq!(get(&app, &group.id).await, undeleted);

    // The history's change times are the writes' update times, so they
    // strictly increase too.
    let history = changes(&app, &group.id).await;
    let times: Vec<i64> = history
        .iter()
        .skip(1)
        .map(|change| micros(change.change_time.as_ref()))
        .collect();
    assert_eq!(times.len(), 6, "{history:?}");
    assert!(times[0] > ahead, "{times:?}");
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
}

async fn update_with_an_empty_group_id_is_invalid(app: TestApp) {
    rich_group(&app).await;
    let status = try_update(
        &app,
        pb::Group {
            description: "no id".to_owned(),
            ..Default::default()
        },
        Some(&["description"]),
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "group.id");
}

async fn update_without_a_group_is_invalid(app: TestApp) {
    let status = update_request(
        &app,
        pb::UpdateGroupRequest {
            update_mask: Some(mask(&["description"])),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(!violations(&status).is_empty());
}
