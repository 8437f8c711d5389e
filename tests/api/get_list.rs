//! GetGroup and ListGroups: views, deleted groups, pagination, ordering.

use std::collections::BTreeSet;

use groupd::pb;
use sea_orm::ConnectionTrait as _;

use crate::helpers::*;

both_backends!(
    get_of_a_missing_group_is_not_found,
    get_defaults_to_the_full_view,
    get_with_the_basic_view_leaves_out_members_and_admins_but_keeps_member_count,
    get_returns_a_deleted_group_with_state_deleted_and_delete_time,
    list_of_an_empty_database_returns_nothing,
    list_defaults_to_the_basic_view_and_can_return_the_full_view,
    list_with_page_size_zero_returns_50_groups,
    list_rejects_a_negative_page_size,
    list_with_a_huge_page_size_returns_every_group_in_one_page,
    list_caps_the_page_size_at_1000,
    list_page_tokens_visit_every_group_exactly_once,
    list_orders_by_create_time_by_default,
    list_orders_by_name_ascending_and_descending_across_pages,
    list_orders_by_update_time,
    list_rejects_an_unknown_order_by,
    list_rejects_a_tampered_or_garbage_page_token,
    list_rejects_a_page_token_whose_cursor_was_forged_under_its_old_mac,
    list_orders_mixed_case_names_byte_wise,
    list_rejects_a_page_token_reused_with_a_different_order_by,
    list_rejects_a_page_token_reused_with_a_different_show_deleted,
    list_hides_deleted_groups_unless_show_deleted,
);

// The test makes a database of its own whose default collation is not
// byte-wise (PostgreSQL only: SQLite has no such setting).
postgres_only!(list_orders_names_byte_wise_whatever_the_databases_default_collation);

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

async fn create_many(app: &TestApp, count: usize, prefix: &str) -> Vec<pb::Group> {
    let mut groups = Vec::with_capacity(count);
    for i in 0..count {
        groups.push(create_named(app, &format!("{prefix}{i:04}")).await);
    }
    groups
}

fn names(groups: &[pb::Group]) -> Vec<String> {
    groups.iter().map(|group| group.name.clone()).collect()
}

async fn get_of_a_missing_group_is_not_found(app: TestApp) {
    let status = try_get(&app, "no-such-group").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn get_defaults_to_the_full_view(app: TestApp) {
    let created = create(
        &app,
        pb::Group {
            name: "full".to_owned(),
            members: members(&["carol", "alice", "bob"]),
            admins: members(&["carol", "alice"]),
            ..Default::default()
        },
    )
    .await;

    let read = get(&app, &created.id).await;
    assert_eq!(ids(&read.members), ["alice", "bob", "carol"]);
    assert_eq!(ids(&read.admins), ["alice", "carol"]);
    assert_eq!(read.member_count, 3);

    let full = try_get_view(&app, &created.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(full, read);
}

async fn get_with_the_basic_view_leaves_out_members_and_admins_but_keeps_member_count(
    app: TestApp,
) {
    let created = create(
        &app,
        pb::Group {
            name: "basic".to_owned(),
            description: "kept".to_owned(),
            members: members(&["alice", "bob"]),
            admins: members(&["alice"]),
            ..Default::default()
        },
    )
    .await;

    let basic = try_get_view(&app, &created.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert!(basic.members.is_empty());
    assert!(basic.admins.is_empty());
    assert_eq!(basic.member_count, 2);
    assert_eq!(basic.description, "kept");
    assert_eq!(basic.etag, created.etag);

    let full = try_get_view(&app, &created.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(ids(&full.members), ["alice", "bob"]);
    assert_eq!(
        pb::Group {
            members: full.members.clone(),
            admins: full.admins.clone(),
            ..basic
        },
        full,
        "BASIC differs from FULL only by members and admins"
    );
}

async fn get_returns_a_deleted_group_with_state_deleted_and_delete_time(app: TestApp) {
    let created = create_named(&app, "doomed").await;
    let deleted = delete(&app, &created.id).await;

    let read = get(&app, &created.id).await;
    assert_eq!(read.state(), pb::State::Deleted);
    assert!(read.delete_time.is_some());
    assert_eq!(read, deleted);
}

async fn list_of_an_empty_database_returns_nothing(app: TestApp) {
    let page = list(&app, pb::ListGroupsRequest::default()).await;
    assert!(page.groups.is_empty());
    assert!(page.next_page_token.is_empty());
    assert_eq!(page.total_size, 0);
}

async fn list_defaults_to_the_basic_view_and_can_return_the_full_view(app: TestApp) {
    create(
        &app,
        pb::Group {
            name: "listed".to_owned(),
            members: members(&["bob", "alice"]),
            admins: members(&["bob"]),
            ..Default::default()
        },
    )
    .await;

    let basic = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(basic.groups.len(), 1);
    assert!(basic.groups[0].members.is_empty());
    assert!(basic.groups[0].admins.is_empty());
    assert_eq!(basic.groups[0].member_count, 2);

    let full = list(
        &app,
        pb::ListGroupsRequest {
            view: pb::GroupView::Full as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&full.groups[0].members), ["alice", "bob"]);
    assert_eq!(ids(&full.groups[0].admins), ["bob"]);
}

async fn list_with_page_size_zero_returns_50_groups(app: TestApp) {
    let created = create_many(&app, 51, "g").await;

    let first = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(first.groups.len(), 50);
    assert_eq!(first.total_size, 51);
    assert!(!first.next_page_token.is_empty());

    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&second.groups), [created[50].id.clone()]);
    assert!(second.next_page_token.is_empty());
}

async fn list_rejects_a_negative_page_size(app: TestApp) {
    create_named(&app, "any").await;
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_size: -1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "page_size");
}

async fn list_with_a_huge_page_size_returns_every_group_in_one_page(app: TestApp) {
    // Proving the 1000 cap itself would need 1001 groups; this checks that a
    // size above the cap is clamped rather than rejected.
    let created = create_many(&app, 3, "g").await;
    for page_size in [1000, 1001, i32::MAX] {
        let page = list(
            &app,
            pb::ListGroupsRequest {
                page_size,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(id_list(&page.groups), id_list(&created));
        assert!(page.next_page_token.is_empty());
        assert_eq!(page.total_size, 3);
    }
}

async fn list_caps_the_page_size_at_1000(app: TestApp) {
    const GROUPS: usize = 1001;
    const WRITERS: usize = 4;

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let mut client = app.client();
        tasks.push(tokio::spawn(async move {
            for i in (writer..GROUPS).step_by(WRITERS) {
                client
                    .create_group(pb::CreateGroupRequest {
                        group: Some(named(&format!("g{i:04}"))),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|status| panic!("CreateGroup failed: {status:?}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 5000,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.groups.len(), 1000);
    assert_eq!(first.total_size, 1001);
    assert!(!first.next_page_token.is_empty());

    let last = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 5000,
            order_by: "name".to_owned(),
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&last.groups), ["g1000"]);
    assert!(last.next_page_token.is_empty());
}

async fn list_page_tokens_visit_every_group_exactly_once(app: TestApp) {
    let created = create_many(&app, 7, "paged").await;

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = list(
            &app,
            pb::ListGroupsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.total_size, 7, "total_size counts every page");
        sizes.push(page.groups.len());
        seen.extend(id_list(&page.groups));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }

    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, id_list(&created), "every group once, in order");
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
}

async fn list_orders_by_create_time_by_default(app: TestApp) {
    let created = [
        create_named(&app, "charlie").await,
        create_named(&app, "alpha").await,
        create_named(&app, "bravo").await,
    ];
    let default = list_all(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(id_list(&default), id_list(&created));

    let by_create = list_all(
        &app,
        pb::ListGroupsRequest {
            order_by: "create_time desc".to_owned(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let mut reversed = id_list(&created);
    reversed.reverse();
    assert_eq!(id_list(&by_create), reversed);
}

async fn list_orders_by_name_ascending_and_descending_across_pages(app: TestApp) {
    for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
        create_named(&app, name).await;
    }

    for order_by in ["name", "name asc"] {
        let ascending = list_all(
            &app,
            pb::ListGroupsRequest {
                order_by: order_by.to_owned(),
                page_size: 2,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            names(&ascending),
            ["alpha", "bravo", "charlie", "delta", "echo"]
        );
    }

    let descending = list_all(
        &app,
        pb::ListGroupsRequest {
            order_by: "name desc".to_owned(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        names(&descending),
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
}

async fn list_orders_by_update_time(app: TestApp) {
    let first = create_named(&app, "first").await;
    let second = create_named(&app, "second").await;
    let third = create_named(&app, "third").await;
    let touched = update(
        &app,
        pb::Group {
            description: "touched last".to_owned(),
            ..patch(&first.id)
        },
        Some(&["description"]),
    )
    .await;
    assert!(
        instant(touched.update_time.as_ref()) > instant(third.update_time.as_ref()),
        "update_time moves forward"
    );

    let by_update = list_all(
        &app,
        pb::ListGroupsRequest {
            order_by: "update_time".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let order = id_list(&by_update);
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], first.id, "the group updated last comes last");
    let position = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(position(&second.id) < position(&first.id));

    let by_update_desc = list_all(
        &app,
        pb::ListGroupsRequest {
            order_by: "update_time desc".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_update_desc[0].id, first.id);
}

async fn list_rejects_an_unknown_order_by(app: TestApp) {
    create_named(&app, "any").await;
    for order_by in ["color", "name sideways", "name desc extra", "members"] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                order_by: order_by.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "order_by");
    }
}

/// Returns a token that differs from `token` in one character.
fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn list_rejects_a_tampered_or_garbage_page_token(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(!first.next_page_token.is_empty());

    for token in [
        tamper(&first.next_page_token),
        format!("{}x", first.next_page_token),
        "not-a-token".to_owned(),
        "%%%".to_owned(),
    ] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }
}

async fn list_rejects_a_page_token_whose_cursor_was_forged_under_its_old_mac(app: TestApp) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    for name in ["alpha", "bravo", "charlie"] {
        create_named(&app, name).await;
    }
    let request = pb::ListGroupsRequest {
        page_size: 1,
        order_by: "name".to_owned(),
        ..Default::default()
    };
    let first = list(&app, request.clone()).await;
    assert_eq!(names(&first.groups), ["alpha"]);

    // The token is JSON followed by a 16-byte MAC. Move its cursor past
    // "bravo" and keep the old MAC: still valid JSON, for the same query.
    let bytes = URL_SAFE_NO_PAD
        .decode(&first.next_page_token)
        .expect("a base64url token");
    let (payload, mac) = bytes.split_at(bytes.len() - 16);
    let payload = String::from_utf8(payload.to_vec()).expect("a JSON payload");
    assert_eq!(payload.matches("\"alpha\"").count(), 1, "{payload}");
    let forged_payload = payload.replace("\"alpha\"", "\"bz\"");
    serde_json::from_str::<serde_json::Value>(&forged_payload).expect("still JSON");
    let mut forged = forged_payload.into_bytes();
    forged.extend_from_slice(mac);
    let forged = URL_SAFE_NO_PAD.encode(forged);

    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_token: forged,
            ..request.clone()
        },
    )
    .await
    .expect_err("a forged cursor is refused, not followed (it would skip bravo)");
    assert_invalid_argument(&status, "page_token");

    // The genuine token still continues where the first page ended.
    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_token: first.next_page_token,
            ..request
        },
    )
    .await;
    assert_eq!(names(&second.groups), ["bravo"]);
}

/// Valid names, distinct ignoring case (as names in one scope must be),
/// whose byte-wise order (digits, then capitals, then small letters)
/// differs from any case-insensitive or linguistic order.
const MIXED_CASE_NAMES: [&str; 8] = ["c", "B", "Z", "a", "0x", "e9", "D", "aB"];

/// [`MIXED_CASE_NAMES`] in byte-wise order, written out.
const BYTE_WISE: [&str; 8] = ["0x", "B", "D", "Z", "a", "aB", "c", "e9"];

/// Creates [`MIXED_CASE_NAMES`] through `client`, and checks that ListGroups
/// orders them byte-wise, ascending and descending, in one page and across
/// pages (where the cursor comparison must agree with the order).
async fn assert_names_ordered_byte_wise(client: &mut Client) {
    for name in MIXED_CASE_NAMES {
        client
            .create_group(pb::CreateGroupRequest {
                group: Some(named(name)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("CreateGroup {name}: {status:?}"));
    }
    let mut descending = BYTE_WISE;
    descending.reverse();
    for (order_by, expected) in [("name", BYTE_WISE), ("name desc", descending)] {
        for page_size in [1000, 3] {
            let mut listed = Vec::new();
            let mut token = String::new();
            for _ in 0..100 {
                let page = client
                    .list_groups(pb::ListGroupsRequest {
                        order_by: order_by.to_owned(),
                        page_size,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("ListGroups")
                    .into_inner();
                listed.extend(names(&page.groups));
                token = page.next_page_token;
                if token.is_empty() {
                    break;
                }
            }
            assert!(token.is_empty(), "the pages never ended: {listed:?}");
            assert_eq!(
                listed, expected,
                "order_by {order_by:?}, pages of {page_size}"
            );
        }
    }
}

async fn list_orders_mixed_case_names_byte_wise(app: TestApp) {
    assert_names_ordered_byte_wise(&mut app.client()).await;
}

/// Creates, next to the test's own database, one whose default collation
/// orders text linguistically (ICU's root locale, else en_US), and returns
/// its URL.
async fn create_linguistic_database(app: &TestApp, name: &str) -> String {
    let admin = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    let mut refusals = Vec::new();
    for locale in [
        "LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'",
        "LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'",
    ] {
        match admin
            .execute_unprepared(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 {locale}"
            ))
            .await
        {
            Ok(_) => break,
            Err(error) => refusals.push(format!("{locale}: {error}")),
        }
    }
    admin.close().await.expect("the test's connection closes");
    assert!(
        refusals.len() < 2,
        "this PostgreSQL offers no linguistic collation to test against: {refusals:?}"
    );
    let url = app.database_url();
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let url = match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    };
    // The premise: in this database, plain text comparisons ignore case
    // first, so that only the schema's own collation can order byte-wise.
    let db = connect_admin(&url).await.expect("the new database answers");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT 'a' < 'B' AS linguistic",
        ))
        .await
        .expect("a comparison")
        .expect("a row");
    let linguistic: bool = row.try_get("", "linguistic").expect("a boolean");
    assert!(linguistic, "the new database orders text byte-wise");
    db.close().await.expect("the test's connection closes");
    url
}

async fn list_orders_names_byte_wise_whatever_the_databases_default_collation(app: TestApp) {
    use tokio_util::sync::CancellationToken;

    let name = format!("groupd_test_icu_{}", uuid::Uuid::new_v4().simple());
    let url = create_linguistic_database(&app, &name).await;
    let shutdown = CancellationToken::new();
    let scenario = {
        let (url, shutdown) = (url.clone(), shutdown.clone());
        tokio::spawn(async move {
            // A server of its own on that database: it applies the
            // migrations there.
            let settings = groupd::config::Settings::parse_from_args([
                "groupd",
                "--database-url",
                &url,
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .expect("settings");
            let application = groupd::startup::Application::build(settings)
                .await
                .expect("groupd starts on the new database");
            let addr = application.grpc_addr();
            let server = tokio::spawn(application.run(shutdown.clone()));
            let mut client = Client::connect(format!("http://{addr}"))
                .await
                .expect("connects");
            assert_names_ordered_byte_wise(&mut client).await;
            shutdown.cancel();
            server
                .await
                .expect("the server task")
                .expect("run() returns Ok");
        })
    };
    let outcome = scenario.await;
    shutdown.cancel();
    let admin = connect_admin(app.database_url())
        .await
        .expect("the test connects");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .expect("DROP DATABASE");
    admin.close().await.expect("the test's connection closes");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn list_rejects_a_page_token_reused_with_a_different_order_by(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;

    for order_by in ["name desc", "create_time", ""] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                order_by: order_by.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }

    // The same request goes on fine.
    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&second.groups), ["g0001"]);
}

async fn list_rejects_a_page_token_reused_with_a_different_show_deleted(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "page_token");
}

async fn list_hides_deleted_groups_unless_show_deleted(app: TestApp) {
    let kept = create_named(&app, "kept").await;
    let gone = create_named(&app, "gone").await;
    delete(&app, &gone.id).await;

    let live = list(&app, pb::ListGroupsRequest::default()).await;
    assert_eq!(id_list(&live.groups), [kept.id.as_str()]);
    assert_eq!(live.total_size, 1);

    let all = list(
        &app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(id_list(&all.groups), [kept.id, gone.id]);
    assert_eq!(all.total_size, 2);
    assert_eq!(all.groups[1].state(), pb::State::Deleted);
    assert!(all.groups[1].delete_time.is_some());
}
