//! Ordering: by create_time by default, by name ascending and descending
//! across pages, by update_time, and an unknown order_by refused; names are
//! ordered byte-wise, in one page and across pages, whatever the
//! database's default collation.

use groupd::pb;
use sea_orm::ConnectionTrait as _;

use super::names;
use crate::helpers::*;

both_backends!(
    list_orders_by_create_time_by_default,
    list_orders_by_name_ascending_and_descending_across_pages,
    list_orders_by_update_time,
    list_rejects_an_unknown_order_by,
    list_orders_mixed_case_names_byte_wise,
);

// The test makes a database of its own whose default collation is not
// byte-wise (PostgreSQL only: SQLite has no such setting).
postgres_only!(list_orders_names_byte_wise_whatever_the_databases_default_collation);

type Client = pb::group_service_client::GroupServiceClient<tonic::transport::Channel>;

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
    let touched = set_description(&app, &first.id, "touched last").await;
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
