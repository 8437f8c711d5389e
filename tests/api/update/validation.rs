//! Validation of the merged group (rule 12): the group as the mask leaves
//! it is validated, not the request, so that no update stores what
//! CreateGroup would refuse: admins are members, every field is within its
//! limits, a name is unique in its scope, and `member_of` names live groups
//! other than the group itself and closes no cycle. An update without a
//! group, or without the group's id, is refused too.

use groupd::pb;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    rule_12_members_replaced_without_an_admin_still_listed_is_invalid,
    rule_12_admins_replaced_with_a_non_member_is_invalid,
    rule_12_merged_scalar_fields_are_validated,
    rule_12_a_labels_key_path_cannot_exceed_64_labels,
    rule_12_a_rename_to_a_name_taken_in_the_scope_is_already_exists,
    rule_12_a_rename_to_a_free_name_succeeds,
    rule_12_member_of_cannot_name_the_group_itself_or_a_missing_or_deleted_group,
    rule_12_a_member_of_cycle_is_failed_precondition,
    update_with_an_empty_group_id_is_invalid,
    update_without_a_group_is_invalid,
);

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
