//! What guards an update and what the request's options do (rules 8 to
//! 11): the scope cannot change, a stale or made-up etag is refused,
//! `allow_missing` creates a missing group (and never resurrects a deleted
//! one), and `validate_only` runs every check and writes nothing.

use groupd::pb;

use crate::helpers::*;

both_backends!(
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
);

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
    set_description(&app, &group.id, "someone else").await;
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
    set_description(&app, &group.id, "moved on").await;
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
