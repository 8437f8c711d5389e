//! Configuration and logs: the start log shows the effective configuration
//! with the database password redacted, and each call logs its request id;
//! a password is never logged, even when the database cannot be reached;
//! invalid settings are refused before anything starts; and
//! --skip-migrations refuses a stale schema until `groupd migrate` has run.

use groupd::pb;

use crate::helpers::*;

both_backends!(the_start_log_shows_the_effective_configuration_and_calls_log_their_request_id);

/// A password the test's PostgreSQL (trust authentication) ignores, so it
/// can be put in a URL that still connects.
const SECRET: &str = "pw-s3cr3t-do-not-log";

async fn the_start_log_shows_the_effective_configuration_and_calls_log_their_request_id(
    app: TestApp,
) {
    let (url, shown) = match app.database_url().strip_prefix("postgres://postgres@") {
        Some(rest) => (
            format!("postgres://postgres:{SECRET}@{rest}"),
            format!("postgres://postgres:REDACTED@{rest}"),
        ),
        None => (app.database_url().to_owned(), app.database_url().to_owned()),
    };
    let mut child = Child::serve(
        &url,
        &["--request-timeout", "97s", "--db-max-connections", "3"],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let mut request = tonic::Request::new(pb::CreateGroupRequest {
        group: Some(named("logged")),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    client.create_group(request).await.expect("CreateGroup");

    let config = child
        .wait_for_log(1, |event| event["message"] == "effective configuration")
        .await
        .remove(0);
    assert_eq!(config["database_url"], shown.as_str(), "{config}");
    assert_eq!(config["request_timeout"], "97s", "{config}");
    assert_eq!(config["db_max_connections"], 3, "{config}");
    assert_eq!(config["grpc_addr"], "127.0.0.1:0", "{config}");
    assert_eq!(config["skip_migrations"], true, "{config}");

    let call = child
        .wait_for_log(1, |event| {
            event["message"] == "call finished" && event["span"]["request_id"] == "trace-me-42"
        })
        .await
        .remove(0);
    let span = &call["span"];
    assert_eq!(span["name"], "call", "{call}");
    assert_eq!(span["method"], "CreateGroup", "{call}");
    assert_eq!(span["transport"], "grpc", "{call}");
    assert_eq!(span["principal"], "anonymous", "{call}");
    // The outcome is the line's own, not repeated in the span.
    assert_eq!(call["code"], "OK", "{call}");
    assert!(
        call["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{call}"
    );
    assert_eq!(span.get("code"), None, "{call}");
    // One span deep: not listed again under `spans`.
    assert_eq!(call.get("spans"), None, "{call}");

    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
    let whole = serde_json::to_string(&child.log()).unwrap();
    assert!(!whole.contains(SECRET), "the password was logged: {whole}");
}

#[tokio::test]
async fn a_database_password_is_never_logged_even_when_the_database_cannot_be_reached() {
    // Nothing listens on port 1.
    let url = format!("postgres://groupd:{SECRET}@127.0.0.1:1/groupd");
    let (status, log) = Child::run(
        &[
            "serve",
            "--database-url",
            &url,
            "--db-connect-timeout",
            "1s",
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("postgres://groupd:REDACTED@127.0.0.1:1/groupd"),
        "{log}"
    );
    assert!(log.contains("groupd failed"), "{log}");
    assert!(!log.contains(SECRET), "the password was logged: {log}");
}

#[tokio::test]
async fn invalid_settings_are_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("groupd_cfg_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("never.db");
    let url = format!("sqlite://{}", db.display());
    let mysql = format!("mysql://groupd:{SECRET}@db/groupd");
    for (args, env, names) in [
        (
            vec!["serve", "--database-url", &url, "--db-max-connections", "0"],
            vec![],
            "--db-max-connections",
        ),
        (
            vec!["serve", "--database-url", &url],
            vec![("GROUPD_REQUEST_TIMEOUT", "0s")],
            "--request-timeout",
        ),
        (
            vec!["serve", "--database-url", &url],
            vec![("GROUPD_DRAIN_TIMEOUT", "soon")],
            "--drain-timeout",
        ),
        (
            vec![
                "serve",
                "--database-url",
                &url,
                "--grpc-addr",
                "127.0.0.1:7",
            ],
            vec![("GROUPD_HTTP_ADDR", "127.0.0.1:7")],
            "--http-addr",
        ),
        (
            vec!["serve", "--database-url", &mysql],
            vec![],
            "--database-url",
        ),
        (
            vec!["migrate"],
            vec![("GROUPD_DATABASE_URL", mysql.as_str())],
            "--database-url",
        ),
        // A message limit too small for the history entry a request of the
        // default size may record: some reply could never be sent.
        (
            vec![
                "serve",
                "--database-url",
                &url,
                "--max-message-bytes",
                "1000000",
            ],
            vec![],
            "--max-members-per-request",
        ),
    ] {
        let (status, log) = Child::run(&args, &env).await;
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {log}");
        assert!(
            log.contains(names),
            "{args:?} {env:?} should name {names}: {log}"
        );
        assert!(!log.contains(SECRET), "a password was echoed: {log}");
    }
    assert!(!db.exists(), "a refused start created the database");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn skip_migrations_refuses_a_stale_schema_until_migrate_has_run() {
    let path = std::env::temp_dir().join(format!(
        "groupd_migrate_{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = format!("sqlite://{}", path.display());
    let serve = [
        "serve",
        "--database-url",
        &url,
        "--skip-migrations",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let (status, log) = Child::run(&serve, &[]).await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("run `groupd migrate` first"), "{log}");

    let (status, log) = Child::run(&["migrate", "--database-url", &url], &[]).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("migrations applied"), "{log}");

    let mut child = Child::serve(&url, &[], ChildLog::Keep).await;
    let created = child
        .client()
        .await
        .create_group(pb::CreateGroupRequest {
            group: Some(named("after-migrate")),
            ..Default::default()
        })
        .await
        .expect("serving on the migrated schema");
    assert_eq!(created.get_ref().name, "after-migrate");
    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
