//! Writes that arrive together, some of which fail: on SQLite they share
//! one transaction (group commit), each in a savepoint of its own; on
//! PostgreSQL each has its own. Either way every request gets its own
//! answer, a failed one leaves nothing behind, an acknowledged one is read
//! back at once and survives a kill -9 of the server, and the change feed
//! numbers exactly the acknowledged writes, 1, 2, 3, … with no gap.

use std::collections::BTreeSet;

use groupd::{domain::watch::Cursor, pb};
use tonic::{Code, Status};

use crate::{
    helpers::*,
    watch::{Seen, changes_of, drain_for, from_oldest, open_with},
};

both_backends!(concurrent_writes_that_fail_and_succeed_each_get_their_own_answer_and_only_the_acknowledged_last);

/// Groups written to; each gets five concurrent requests, two of which
/// succeed.
const GROUPS: usize = 12;

/// Connections the requests are spread over.
const CONNECTIONS: usize = 4;

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

/// The five requests sent at once for group `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// Sets `g-i`'s description, with its current etag: succeeds.
    Update,
    /// Sets `g-i`'s description with the etag of its first version:
    /// ABORTED, whatever the order.
    StaleUpdate,
    /// Creates a group named `taken-i`, which exists: ALREADY_EXISTS.
    DuplicateCreate,
    /// Renames `taken-i` to `g-i`, which is taken: ALREADY_EXISTS.
    DuplicateRename,
    /// Creates `fresh-i`: succeeds.
    Create,
}

const REQUESTS: [Request; 5] = [
    Request::Update,
    Request::StaleUpdate,
    Request::DuplicateCreate,
    Request::DuplicateRename,
    Request::Create,
];

/// The groups of one index `i` as set up before the burst.
#[derive(Debug, Clone)]
struct Setup {
    /// `g-i` at its first version, and at its second.
    first: pb::Group,
    second: pb::Group,
    /// `taken-i`.
    taken: pb::Group,
}

fn group_named(name: &str, description: &str) -> pb::Group {
    pb::Group {
        name: name.to_owned(),
        description: description.to_owned(),
        ..Default::default()
    }
}

async fn create_with(client: &mut Client, group: pb::Group) -> Result<pb::Group, Status> {
    client
        .create_group(pb::CreateGroupRequest {
            group: Some(group),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn update_with(
    client: &mut Client,
    group: pb::Group,
    paths: &[&str],
) -> Result<pb::Group, Status> {
    client
        .update_group(pb::UpdateGroupRequest {
            group: Some(group),
            update_mask: Some(mask(paths)),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_with(client: &mut Client, id: &str) -> pb::Group {
    client
        .get_group(pb::GetGroupRequest {
            id: id.to_owned(),
            view: pb::GroupView::Basic as i32,
        })
        .await
        .unwrap_or_else(|status| panic!("GetGroup {id} failed: {status:?}"))
        .into_inner()
}

/// Sends `request` for group `i`; an acknowledged write is read back at
/// once, on the same connection, and must be there.
async fn send(
    mut client: Client,
    i: usize,
    request: Request,
    setup: Setup,
) -> Result<pb::Group, Status> {
    let answer = match request {
        Request::Update => {
            let mut body = patch(&setup.second.id);
            body.description = format!("after-{i}");
            body.etag = setup.second.etag.clone();
            update_with(&mut client, body, &["description"]).await
        }
        Request::StaleUpdate => {
            let mut body = patch(&setup.first.id);
            body.description = format!("stale-{i}");
            body.etag = setup.first.etag.clone();
            update_with(&mut client, body, &["description"]).await
        }
        Request::DuplicateCreate => {
            create_with(&mut client, group_named(&format!("taken-{i}"), "duplicate")).await
        }
        Request::DuplicateRename => {
            let mut body = patch(&setup.taken.id);
            body.name = format!("g-{i}");
            update_with(&mut client, body, &["name"]).await
        }
        Request::Create => {
            create_with(&mut client, group_named(&format!("fresh-{i}"), "fresh")).await
        }
    };
    if let Ok(written) = &answer {
        let read = get_with(&mut client, &written.id).await;
        assert_eq!(
            read.etag, written.etag,
            "{request:?} {i}: read back at once"
        );
        assert_eq!(read.description, written.description);
    }
    answer
}

/// The number of group commits a server has made, from its `/metrics`.
async fn group_commits(http: &reqwest::Client, child: &Child) -> f64 {
    let page = metrics_page_at(http, child.http_addr.parse().unwrap()).await;
    sample(&page, "groupd_sqlite_group_commits_total")
        .unwrap_or_else(|| panic!("no group commit counter in:\n{page}"))
}

async fn concurrent_writes_that_fail_and_succeed_each_get_their_own_answer_and_only_the_acknowledged_last(
    app: TestApp,
) {
    let sqlite = app.database_url().starts_with("sqlite:");
    let mut first = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(first.client().await);
    }
    let mut setups = Vec::new();
    for i in 0..GROUPS {
        let client = &mut clients[0];
        let created = create_with(client, group_named(&format!("g-{i}"), "first"))
            .await
            .unwrap();
        let mut body = patch(&created.id);
        body.description = "second".to_owned();
        let second = update_with(client, body, &["description"]).await.unwrap();
        let taken = create_with(client, group_named(&format!("taken-{i}"), "taken"))
            .await
            .unwrap();
        setups.push(Setup {
            first: created,
            second,
            taken,
        });
    }
    let http = reqwest::Client::new();
    let commits_before = group_commits(&http, &first).await;

    // Every request at once, the failing ones among the others.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(GROUPS * REQUESTS.len()));
    let mut tasks = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        for (n, request) in REQUESTS.into_iter().enumerate() {
            let client = clients[(i * REQUESTS.len() + n) % CONNECTIONS].clone();
            let setup = setup.clone();
            let start = std::sync::Arc::clone(&start);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                (i, request, send(client, i, request, setup).await)
            }));
        }
    }
    let mut acknowledged = 0;
    let mut fresh = Vec::new();
    for task in tasks {
        let (i, request, answer) = task.await.unwrap();
        match (request, answer) {
            (Request::Update, Ok(group)) => {
                assert_eq!(group.description, format!("after-{i}"));
                acknowledged += 1;
            }
            (Request::Create, Ok(group)) => {
                assert_eq!(group.name, format!("fresh-{i}"));
                fresh.push(group);
                acknowledged += 1;
            }
            (Request::StaleUpdate, Err(status)) => assert_etag_mismatch(&status),
            (Request::DuplicateCreate | Request::DuplicateRename, Err(status)) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{i}: {status:?}");
                assert_already_exists(&status, "GROUP_NAME_TAKEN");
            }
            (request, answer) => panic!("{request:?} {i} answered {answer:?}"),
        }
    }
    assert_eq!(acknowledged, 2 * GROUPS);

    let commits = group_commits(&http, &first).await - commits_before;
    if sqlite {
        // Writes that arrived together shared commits (the counter does
        // not count the failed ones' rolled-back savepoints).
        assert!(
            commits >= 1.0 && commits < f64::from(u32::try_from(acknowledged).unwrap()),
            "{commits} commits for {acknowledged} acknowledged writes"
        );
    } else {
        assert!(
            commits.abs() < f64::EPSILON,
            "PostgreSQL commits each write"
        );
    }

    // SIGKILL: no graceful shutdown, no pool close, no checkpoint.
    first.process.kill().await.expect("SIGKILL delivered");
    let second = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
    let mut client = second.client().await;

    let mut expected_feed = BTreeSet::new();
    for (i, setup) in setups.iter().enumerate() {
        let group = get_with(&mut client, &setup.first.id).await;
        assert_eq!(
            group.description,
            format!("after-{i}"),
            "g-{i} after restart"
        );
        assert_eq!(group.name, format!("g-{i}"));
        assert_eq!(
            kinds(&changes(&app, &group.id).await),
            [
                pb::ChangeKind::Create,
                pb::ChangeKind::Update,
                pb::ChangeKind::Update
            ],
            "g-{i}: the stale update left no history entry"
        );
        let taken = get_with(&mut client, &setup.taken.id).await;
        assert_eq!(
            (&taken.name, &taken.etag),
            (&setup.taken.name, &setup.taken.etag),
            "taken-{i} is as it was"
        );
        assert_eq!(
            kinds(&changes(&app, &taken.id).await),
            [pb::ChangeKind::Create],
            "taken-{i}: the refused rename left no history entry"
        );
        for version in 1..=3 {
            expected_feed.insert((group.id.clone(), version));
        }
        expected_feed.insert((taken.id.clone(), 1));
    }
    for group in &fresh {
        let read = get_with(&mut client, &group.id).await;
        assert_eq!(
            (&read.name, &read.etag),
            (&group.name, &group.etag),
            "{} after restart",
            group.name
        );
        assert_eq!(changes(&app, &group.id).await.len(), 1);
        expected_feed.insert((group.id.clone(), 1));
    }
    assert_eq!(
        group_count(&app).await,
        3 * GROUPS,
        "no duplicate name was created"
    );

    // The change feed, read again from the start on the restarted server:
    // every acknowledged write once, at positions 1, 2, 3, … with no gap,
    // each group's versions in order.
    let mut stream = open_with(&mut client, from_oldest()).await;
    let feed = changes_of(&mut stream, expected_feed.len()).await;
    let positions: Vec<i64> = feed
        .iter()
        .map(|(_, cursor)| Cursor::parse(cursor, "cursor").unwrap().position())
        .collect();
    let gapless: Vec<i64> = (1..=i64::try_from(feed.len()).unwrap()).collect();
    assert_eq!(positions, gapless, "positions 1..n with no gap");
    let seen: BTreeSet<(String, i64)> = feed
        .iter()
        .map(
            |(
                Seen {
                    group_id, version, ..
                },
                _,
            )| (group_id.clone(), *version),
        )
        .collect();
    assert_eq!(seen, expected_feed, "exactly the acknowledged writes");
    for setup in &setups {
        let versions: Vec<i64> = feed
            .iter()
            .filter(|(change, _)| change.group_id == setup.first.id)
            .map(|(change, _)| change.version)
            .collect();
        assert_eq!(versions, [1, 2, 3], "in version order");
    }
    assert_eq!(
        drain_for(&mut stream, std::time::Duration::from_millis(300)).await,
        Vec::<Seen>::new(),
        "nothing more"
    );
}
