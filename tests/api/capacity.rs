//! A group at the default member limit (100,000): filled in requests of
//! 10,000, the limit holds, and small changes stay small.

use groupd::pb;

use crate::helpers::*;

both_backends!(a_group_holds_100000_members_and_small_changes_leave_them_alone);

const PER_REQUEST: usize = 10_000;
const LIMIT: usize = 100_000;

fn principal(i: usize) -> String {
    format!("user-{i:06}")
}

async fn a_group_holds_100000_members_and_small_changes_leave_them_alone(app: TestApp) {
    let group = create_named(&app, "everyone").await;
    for batch in 0..LIMIT / PER_REQUEST {
        let ids = (batch * PER_REQUEST..(batch + 1) * PER_REQUEST).map(principal);
        let added = app
            .client()
            .add_group_members(pb::AddGroupMembersRequest {
                id: group.id.clone(),
                members: ids.map(|id| pb::Member { id }).collect(),
                admins: Vec::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("batch {batch} failed: {status:?}"))
            .into_inner();
        assert_eq!(
            usize::try_from(added.member_count).unwrap(),
            (batch + 1) * PER_REQUEST
        );
    }

    // The limit holds, and the refused request changes nothing.
    let before = snapshot(&app, &group.id).await;
    let status = try_add(&app, &group.id, &["one-too-many"], &[])
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "members");
    assert_unchanged(&app, &before).await;

    // Changing the description keeps every member and records no
    // membership change.
    let updated = set_description(&app, &group.id, "all staff").await;
    assert_eq!(updated.description, "all staff");
    assert_eq!(usize::try_from(updated.member_count).unwrap(), LIMIT);
    assert_eq!(updated.members.len(), LIMIT);
    let history = changes(&app, &group.id).await;
    let last = history.last().unwrap();
    assert_eq!(last.kind(), pb::ChangeKind::Update);
    assert!(last.members_added.is_empty() && last.members_removed.is_empty());

    // Swapping one member answers with the count, not the whole list.
    let removed = remove(&app, &group.id, &[&principal(0)], &[]).await;
    assert_eq!(usize::try_from(removed.member_count).unwrap(), LIMIT - 1);
    assert!(removed.members.is_empty());
    let added = add(&app, &group.id, &["newcomer"], &["newcomer"]).await;
    assert_eq!(usize::try_from(added.member_count).unwrap(), LIMIT);

    let page = app
        .client()
        .list_group_members(pb::ListGroupMembersRequest {
            id: group.id.clone(),
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&page.members),
        ["newcomer", &principal(1), &principal(2)]
    );
    let stored = get(&app, &group.id).await;
    assert_eq!(stored.members.len(), LIMIT);
    assert_eq!(ids(&stored.admins), ["newcomer"]);
}
