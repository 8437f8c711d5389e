//! Concurrent writers on one group, through one server or through two
//! replicas on the same database: no lost update (disjoint masks all land), etag
//! compare-and-set, and unique names under races.

use std::collections::BTreeSet;

use groupd::pb;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    update_with_disjoint_masks_from_many_tasks_loses_nothing,
    update_with_disjoint_masks_through_two_replicas_loses_nothing,
    etag_compare_and_set_counter_never_loses_an_increment,
    etag_compare_and_set_counter_through_two_replicas_never_loses_an_increment,
    concurrent_additions_of_distinct_members_all_land,
    concurrent_creates_of_the_same_name_let_exactly_one_win,
    concurrent_creates_of_one_chosen_id_let_exactly_one_win,
    concurrent_creates_with_one_request_id_all_answer_the_one_group_they_create,
    a_page_token_from_one_replica_works_on_another,
    // Identical retries racing the first attempt: on PostgreSQL a retry that
    // looked the request_id up before the first attempt committed then
    // meets the first attempt's name (in the name check, or on the live-name
    // unique index, which PostgreSQL may check before the request_id's) and
    // must still answer with the group the first attempt created.
    concurrent_identical_retries_of_a_create_all_answer_the_one_group_it_created,
);

const TASKS: usize = 16;

type Client = groupd::pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

async fn update_with_disjoint_masks_from_many_tasks_loses_nothing(app: TestApp) {
    let guarded = |page: &str, outcome: &str| {
        sample(
            page,
            &format!("groupd_sqlite_guarded_writes{outcome}_total"),
        )
        .unwrap_or(0.0)
    };
    let before = metrics_page(&app).await;
    disjoint_label_updates(&app, &[app.client()]).await;
    let after = metrics_page(&app).await;
    let written = guarded(&after, "") - guarded(&before, "");
    let redone = guarded(&after, "_redone") - guarded(&before, "_redone");
    if app.database_url().starts_with("sqlite:") {
        // Each update was first handed over guarded (read outside the
        // transaction): the first of them to be run found the group as
        // it read it; those that found it changed were done again, in the
        // transaction, and none was lost (checked above).
        assert!(written >= 1.0, "{written} guarded writes written");
        assert!(
            written + redone >= f64::from(u32::try_from(TASKS).unwrap()),
            "{written} written and {redone} redone of {TASKS}"
        );
    } else {
        assert!(
            written.abs() < f64::EPSILON && redone.abs() < f64::EPSILON,
            "PostgreSQL reads in the write's transaction"
        );
    }
}

async fn update_with_disjoint_masks_through_two_replicas_loses_nothing(app: TestApp) {
    let replica = app.spawn_replica().await;
    disjoint_label_updates(&app, &[app.client(), replica.client]).await;
}

/// Sets `labels.k<i>` from TASKS concurrent tasks spread over `clients`, then
/// checks that every label landed, each write once.
async fn disjoint_label_updates(app: &TestApp, clients: &[Client]) {
    let group = create_named(app, "contended").await;

    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let mut client = clients[i % clients.len()].clone();
        let id = group.id.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            let mut body = patch(&id);
            body.labels.insert(key.clone(), format!("v{i}"));
            client
                .update_group(pb::UpdateGroupRequest {
                    group: Some(body),
                    update_mask: Some(mask(&[&format!("labels.{key}")])),
                    allow_missing: false,
                    validate_only: false,
                })
                .await
                .map(tonic::Response::into_inner)
        }));
    }
    let mut etags = BTreeSet::new();
    for task in tasks {
        let updated = task
            .await
            .unwrap()
            .unwrap_or_else(|status| panic!("a concurrent update failed: {status:?}"));
        etags.insert(updated.etag);
    }
    assert_eq!(etags.len(), TASKS, "every write produced its own etag");

    let stored = get(app, &group.id).await;
    let expected: Vec<(String, String)> = (0..TASKS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let expected: std::collections::BTreeMap<_, _> = expected.into_iter().collect();
    assert_eq!(labels_of(&stored), expected, "no update was lost");

    let history = changes(app, &group.id).await;
    assert_eq!(history.len(), TASKS + 1);
    let versions: Vec<i64> = history.iter().map(|change| change.version).collect();
    let expected_versions: Vec<i64> = (1..=i64::try_from(TASKS).unwrap() + 1).collect();
    assert_eq!(versions, expected_versions, "versions are consecutive");
    assert_eq!(
        history.last().unwrap().group.as_ref().unwrap().etag,
        stored.etag
    );
}

async fn etag_compare_and_set_counter_never_loses_an_increment(app: TestApp) {
    compare_and_set_counter(&app, &[app.client()]).await;
}

async fn etag_compare_and_set_counter_through_two_replicas_never_loses_an_increment(app: TestApp) {
    let replica = app.spawn_replica().await;
    compare_and_set_counter(&app, &[app.client(), replica.client]).await;
}

/// WORKERS tasks spread over `clients` each increment `labels.counter`
/// INCREMENTS times by get + update-with-etag, retrying on ABORTED; every
/// acknowledged increment must show in the counter and in the history.
async fn compare_and_set_counter(app: &TestApp, clients: &[Client]) {
    const WORKERS: usize = 6;
    const INCREMENTS: usize = 4;
    const MAX_ATTEMPTS: usize = 200;

    let group = create(app, with_labels(named("counter"), &[("counter", "0")])).await;

    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let mut client = clients[worker % clients.len()].clone();
        let id = group.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut successes = 0;
            let mut attempts = 0;
            while successes < INCREMENTS && attempts < MAX_ATTEMPTS {
                attempts += 1;
                let current = client
                    .get_group(pb::GetGroupRequest {
                        id: id.clone(),
                        view: pb::GroupView::Basic as i32,
                    })
                    .await
                    .unwrap_or_else(|status| panic!("GetGroup failed: {status:?}"))
                    .into_inner();
                let value: u64 = current.labels["counter"].parse().unwrap();
                let mut body = patch(&id);
                body.etag = current.etag.clone();
                body.labels
                    .insert("counter".to_owned(), (value + 1).to_string());
                match client
                    .update_group(pb::UpdateGroupRequest {
                        group: Some(body),
                        update_mask: Some(mask(&["labels.counter"])),
                        allow_missing: false,
                        validate_only: false,
                    })
                    .await
                {
                    Ok(_) => successes += 1,
                    Err(status) if status.code() == Code::Aborted => {
                        assert_etag_mismatch(&status);
                    }
                    Err(status) => panic!("an increment failed: {status:?}"),
                }
            }
            successes
        }));
    }
    let mut successes = 0;
    for task in tasks {
        successes += task.await.unwrap();
    }

    assert_eq!(
        successes,
        WORKERS * INCREMENTS,
        "every worker finished its increments within {MAX_ATTEMPTS} attempts"
    );
    let stored = get(app, &group.id).await;
    assert_eq!(
        stored.labels["counter"],
        successes.to_string(),
        "the counter equals the number of acknowledged increments"
    );
    let updates = changes(app, &group.id)
        .await
        .iter()
        .filter(|change| change.kind() == pb::ChangeKind::Update)
        .count();
    assert_eq!(
        updates, successes,
        "one UPDATE entry per acknowledged increment"
    );
}

async fn concurrent_additions_of_distinct_members_all_land(app: TestApp) {
    let group = create_named(&app, "crowd").await;

    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let mut client = app.client();
        let id = group.id.clone();
        tasks.push(tokio::spawn(async move {
            client
                .add_group_members(pb::AddGroupMembersRequest {
                    id,
                    members: members(&[&format!("m{i:02}")]),
                    admins: Vec::new(),
                })
                .await
                .map(tonic::Response::into_inner)
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .unwrap_or_else(|status| panic!("a concurrent addition failed: {status:?}"));
    }

    let stored = get(&app, &group.id).await;
    let expected: Vec<String> = (0..TASKS).map(|i| format!("m{i:02}")).collect();
    assert_eq!(ids(&stored.members), expected);
    assert_eq!(stored.member_count, i32::try_from(TASKS).unwrap());
    let history = changes(&app, &group.id).await;
    assert_eq!(history.len(), TASKS + 1);
    let added: BTreeSet<String> = history
        .iter()
        .flat_map(|change| ids(&change.members_added))
        .collect();
    assert_eq!(added, expected.into_iter().collect());
}

async fn concurrent_creates_of_the_same_name_let_exactly_one_win(app: TestApp) {
    const RACERS: usize = 8;

    let requests = (0..RACERS).map(|i| pb::CreateGroupRequest {
        group: Some(named(if i % 2 == 0 { "Racer" } else { "racer" })),
        ..Default::default()
    });
    let mut winners = 0;
    for answer in race_creates(&[app.client()], requests).await {
        match answer {
            Ok(_) => winners += 1,
            Err(status) => assert_already_exists(&status, "GROUP_NAME_TAKEN"),
        }
    }
    assert_eq!(winners, 1);
    let listed = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(listed.total_size, 1);
}

/// Racing creates of one chosen id under different names: the losers pass
/// the existence check before the winner commits, so on PostgreSQL it is
/// the primary key that refuses them, and the database's error must still
/// answer GROUP_ID_TAKEN.
async fn concurrent_creates_of_one_chosen_id_let_exactly_one_win(app: TestApp) {
    const RACERS: usize = 8;
    const ROUNDS: usize = 4;

    let replica = app.spawn_replica().await;
    let clients = [app.client(), replica.client];
    for round in 0..ROUNDS {
        let id = format!("chosen-{round}");
        let requests = (0..RACERS).map(|i| pb::CreateGroupRequest {
            group: Some(named(&format!("racer-{round}-{i}"))),
            group_id: id.clone(),
            ..Default::default()
        });
        let mut winners = Vec::new();
        for answer in race_creates(&clients, requests).await {
            match answer {
                Ok(group) => winners.push(group),
                Err(status) => assert_already_exists(&status, "GROUP_ID_TAKEN"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(get(&app, &id).await.name, winners[0].name);
        assert_eq!(changes(&app, &id).await.len(), 1);
    }
    let listed = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(listed.total_size, i32::try_from(ROUNDS).unwrap());
}

async fn concurrent_creates_with_one_request_id_all_answer_the_one_group_they_create(app: TestApp) {
    // Each attempt names the group differently, so that on PostgreSQL an
    // attempt that looked the request_id up before the first one committed
    // can only collide with it on the request_id itself (the case the
    // service recovers from), not on the name.
    racing_creates_with_one_request_id(&app, |round, attempt| format!("attempt-{round}-{attempt}"))
        .await;
}

/// Identical retries of one CreateGroup, racing each other.
async fn concurrent_identical_retries_of_a_create_all_answer_the_one_group_it_created(
    app: TestApp,
) {
    racing_creates_with_one_request_id(&app, |round, _| format!("retried-{round}")).await;
}

/// Several rounds, each a burst of TASKS concurrent CreateGroup calls with
/// one request_id (attempt `i` of round `r` naming its group `name(r, i)`)
/// through two replicas (two connection pools): every call answers OK with
/// the same group, which is the only group stored with one history entry.
async fn racing_creates_with_one_request_id(app: &TestApp, name: impl Fn(usize, usize) -> String) {
    const ROUNDS: usize = 4;
    let replica = app.spawn_replica().await;
    let clients = [app.client(), replica.client];
    let mut created_ids = BTreeSet::new();
    for round in 0..ROUNDS {
        let request_id = uuid::Uuid::new_v4().to_string();
        let requests = (0..TASKS).map(|attempt| pb::CreateGroupRequest {
            group: Some(pb::Group {
                description: "sent once, retried many times".to_owned(),
                members: members(&["alice", "bob"]),
                admins: members(&["alice"]),
                ..named(&name(round, attempt))
            }),
            request_id: request_id.clone(),
            ..Default::default()
        });
        let answers: Vec<pb::Group> = race_creates(&clients, requests)
            .await
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|status| {
                    panic!("round {round}: an attempt of one request failed: {status:?}")
                })
            })
            .collect();
        let created = &answers[0];
        for answer in &answers {
            assert_eq!(
                answer, created,
                "round {round}: every attempt answers the same group"
            );
        }
        assert!(
            (0..TASKS).any(|attempt| created.name == name(round, attempt)),
            "round {round}: {created:?}"
        );
        assert_eq!(ids(&created.members), ["alice", "bob"]);
        assert_eq!(
            kinds(&changes(app, &created.id).await),
            [pb::ChangeKind::Create],
            "round {round}: one history entry"
        );
        created_ids.insert(created.id.clone());
    }
    // One group per round, and nothing else.
    let stored = list_all(
        app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        id_list(&stored).into_iter().collect::<BTreeSet<_>>(),
        created_ids
    );
    assert_eq!(stored.len(), ROUNDS);
}

/// Sends `requests` all at once, spread over `clients`, and returns their
/// answers in request order.
async fn race_creates(
    clients: &[Client],
    requests: impl IntoIterator<Item = pb::CreateGroupRequest>,
) -> Vec<Result<pb::Group, tonic::Status>> {
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let mut client = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                client
                    .create_group(request)
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

async fn a_page_token_from_one_replica_works_on_another(app: TestApp) {
    let replica = app.spawn_replica().await;
    for name in ["alpha", "bravo", "charlie"] {
        create_named(&app, name).await;
    }

    let request = pb::ListGroupsRequest {
        page_size: 2,
        order_by: "name".to_owned(),
        ..Default::default()
    };
    let first = list(&app, request.clone()).await;
    assert!(!first.next_page_token.is_empty());

    let second = replica
        .client
        .clone()
        .list_groups(pb::ListGroupsRequest {
            page_token: first.next_page_token,
            ..request
        })
        .await
        .unwrap_or_else(|status| panic!("the replica rejected the token: {status:?}"))
        .into_inner();
    let names: Vec<&str> = second.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["charlie"]);
    assert_eq!(second.total_size, 3);
}
