//! WatchGroupChanges under authorization: a watcher receives only the
//! changes of groups it may read (`groups.reader` and `groups.admin` see
//! all), including the change that adds it and the one that removes it;
//! a caller without credentials cannot watch, over gRPC or HTTP, where
//! it is refused before anything streams.

use groupd::pb::{self, watch_group_changes_response::Event};
use reqwest::Method;
use tonic::{Code, Streaming};

use super::{Auth, Who};
use crate::{
    helpers::*,
    http::watch::{Stream, watch},
};

/// How long a scenario waits for a message it expects.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

async fn watch_as(
    app: &TestApp,
    auth: &Auth,
    who: Who,
) -> Streaming<pb::WatchGroupChangesResponse> {
    app.client()
        .watch_group_changes(auth.request(
            who,
            pb::WatchGroupChangesRequest {
                start_from_now: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("{who:?} cannot watch: {status:?}"))
        .into_inner()
}

/// The (group name, version) of each change until `last` arrives.
async fn seen_until(
    stream: &mut Streaming<pb::WatchGroupChangesResponse>,
    last: (&str, i64),
) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("a message in time")
            .expect("the stream stays open")
            .expect("the stream goes on");
        if let Some(Event::Change(change)) = message.event {
            let group = change.group.expect("the change's group");
            seen.push((group.name.clone(), change.version));
            if (group.name.as_str(), change.version) == last {
                return seen;
            }
        }
    }
}

pub(super) async fn watchers_receive_only_the_changes_of_groups_they_may_read(
    app: TestApp,
    auth: Auth,
) {
    let refused = app
        .client()
        .watch_group_changes(auth.request(Who::Nobody, pb::WatchGroupChangesRequest::default()))
        .await
        .unwrap_err();
    assert_error(&refused, Code::Unauthenticated, "CREDENTIALS_MISSING");

    let mut root = watch_as(&app, &auth, Who::Root).await;
    let mut reader = watch_as(&app, &auth, Who::Reader).await;
    let mut member = watch_as(&app, &auth, Who::Member).await;
    let mut stranger = watch_as(&app, &auth, Who::Stranger).await;
    // A cursor from before every write, for a member whose stream starts
    // reading only once later writes have committed: what it may see must
    // not depend on when its stream reads.
    let before = app
        .client()
        .list_groups(auth.request(Who::Root, pb::ListGroupsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .cursor;

    let create = |name: &str, others: &[&str]| pb::Group {
        name: name.to_owned(),
        members: crate::helpers::members(&[&["gadmin"], others].concat()),
        admins: crate::helpers::members(&["gadmin"]),
        ..Default::default()
    };
    auth.create(&app, Who::Root, create("theirs", &["member"]))
        .await
        .unwrap();
    let private = auth
        .create(&app, Who::Root, create("private", &[]))
        .await
        .unwrap();
    let describe = |text: &str| pb::UpdateGroupRequest {
        group: Some(pb::Group {
            id: private.id.clone(),
            description: text.to_owned(),
            ..Default::default()
        }),
        update_mask: Some(mask(&["description"])),
        ..Default::default()
    };
    let mut client = app.client();
    client
        .update_group(auth.request(Who::Root, describe("unseen by member")))
        .await
        .unwrap();
    client
        .add_group_members(auth.request(
            Who::Root,
            pb::AddGroupMembersRequest {
                id: private.id.clone(),
                members: members(&["member"]),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    client
        .update_group(auth.request(Who::Root, describe("seen by member")))
        .await
        .unwrap();
    // A stream reading only now, while the member is one, must still not
    // show it what came before it was added.
    let mut late = app
        .client()
        .watch_group_changes(auth.request(Who::Member, crate::watch::after(&before)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        seen_until(&mut late, ("private", 4)).await,
        [
            ("theirs".to_owned(), 1),
            ("private".to_owned(), 3),
            ("private".to_owned(), 4)
        ]
    );
    client
        .remove_group_members(auth.request(
            Who::Root,
            pb::RemoveGroupMembersRequest {
                id: private.id.clone(),
                members: members(&["member"]),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    client
        .update_group(auth.request(Who::Root, describe("unseen again")))
        .await
        .unwrap();
    // The last change, which every watcher may read.
    auth.create(&app, Who::Root, create("last", &["member", "stranger"]))
        .await
        .unwrap();

    let everything: Vec<(String, i64)> = [
        ("theirs", 1),
        ("private", 1),
        ("private", 2),
        ("private", 3),
        ("private", 4),
        ("private", 5),
        ("private", 6),
        ("last", 1),
    ]
    .iter()
    .map(|(name, version)| ((*name).to_owned(), *version))
    .collect();
    assert_eq!(seen_until(&mut root, ("last", 1)).await, everything);
    assert_eq!(seen_until(&mut reader, ("last", 1)).await, everything);
    // The member: its group, the change that added it to `private`, what
    // followed while it was a member, the change that removed it.
    let named = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs
            .iter()
            .map(|(name, version)| ((*name).to_owned(), *version))
            .collect()
    };
    let member_sees = named(&[
        ("theirs", 1),
        ("private", 3),
        ("private", 4),
        ("private", 5),
        ("last", 1),
    ]);
    assert_eq!(seen_until(&mut member, ("last", 1)).await, member_sees);
    assert_eq!(seen_until(&mut late, ("last", 1)).await, member_sees[3..]);
    assert_eq!(
        seen_until(&mut stranger, ("last", 1)).await,
        named(&[("last", 1)])
    );
}

pub(super) async fn the_change_stream_over_http_needs_credentials_and_shows_what_each_caller_may_read(
    app: TestApp,
    auth: Auth,
) {
    for accept in ["application/x-ndjson", "text/event-stream"] {
        let reply = send(
            auth.http(&app, Who::Nobody, Method::GET, &watch("?startFromNow=true"))
                .header("accept", accept),
        )
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("Bearer"), "{challenge:?}");
    }

    let path = watch("?startFromNow=true");
    let mut reader = Stream::open(
        auth.http(&app, Who::Reader, Method::GET, &path),
        "application/x-ndjson",
    )
    .await;
    let mut member = Stream::open(
        auth.http(&app, Who::Member, Method::GET, &path),
        "application/x-ndjson",
    )
    .await;
    let closed = auth.create(&app, Who::Root, named("closed")).await.unwrap();
    let mut shared = named("shared");
    shared.members = members(&["member"]);
    let shared = auth.create(&app, Who::Root, shared).await.unwrap();

    // groups.reader reads every group; a member only its own.
    assert_eq!(reader.change().await["groupId"], closed.id.as_str());
    assert_eq!(reader.change().await["groupId"], shared.id.as_str());
    assert_eq!(member.change().await["groupId"], shared.id.as_str());
}
