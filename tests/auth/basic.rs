//! Basic authentication against a real htpasswd file of bcrypt hashes.

use std::time::Duration;

use groupd::{auth::refusal::CREDENTIALS_INVALID, domain::Role};

use super::{support::*, *};

/// An authenticator of the users `lines` name, with `alice` a reader in the
/// roles file.
async fn with_users(dir: &TempDir, lines: &[String]) -> Authenticator {
    let users = dir.write("users", format!("# test users\n{}\n", lines.join("\n")));
    let roles = dir.write("roles.json", r#"{"alice": ["groups.reader"]}"#);
    let mut config = config();
    config.basic_users_file = Some(users);
    config.roles_file = Some(roles);
    build(config).await
}

fn verifications(auth: &Authenticator) -> u64 {
    auth.basic().map_or(0, |basic| basic.bcrypt_verifications())
}

#[tokio::test]
async fn the_right_password_authenticates_with_the_roles_file_roles() {
    let dir = TempDir::new();
    let auth = with_users(&dir, &[htpasswd_line("alice", "correct horse")]).await;
    let alice = caller(&auth, &basic("alice", "correct horse")).await;
    assert_eq!(alice.principal().as_str(), "alice");
    assert_eq!(roles(&alice), vec![Role::Reader]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_are_refused_alike_and_both_run_bcrypt() {
    let dir = TempDir::new();
    let line = htpasswd_line("alice", "correct horse");
    let hash = line
        .split_once(':')
        .map(|(_, hash)| hash.to_owned())
        .unwrap_or_default();
    let auth = with_users(&dir, &[line]).await;
    let (reason, wrong) = refusal(
        auth.authenticate(&basic("alice", "battery staple"), None)
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert_eq!(verifications(&auth), 1);
    let (reason, unknown) = refusal(
        auth.authenticate(&basic("mallory", "battery staple"), None)
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert_eq!(wrong, unknown, "the answer does not tell which users exist");
    assert_eq!(
        verifications(&auth),
        2,
        "an unknown user costs a bcrypt too"
    );
    for message in [&wrong, &unknown] {
        assert_no_secret(
            message,
            &["battery staple", "correct horse", &hash, &hash[7..]],
        );
    }
    // Failures are not cached: a guess costs a bcrypt every time.
    refusal(
        auth.authenticate(&basic("alice", "battery staple"), None)
            .await,
    );
    assert_eq!(verifications(&auth), 3);
}

#[tokio::test]
async fn a_verified_header_is_remembered_and_costs_no_second_bcrypt() {
    let dir = TempDir::new();
    let auth = with_users(
        &dir,
        &[
            htpasswd_line("alice", "correct horse"),
            htpasswd_line("bob", "hunter2"),
        ],
    )
    .await;
    for _ in 0..5 {
        caller(&auth, &basic("alice", "correct horse")).await;
    }
    assert_eq!(verifications(&auth), 1, "four cache hits");
    caller(&auth, &basic("bob", "hunter2")).await;
    assert_eq!(verifications(&auth), 2, "another header is verified");
}

#[tokio::test]
async fn remembered_headers_expire() {
    let dir = TempDir::new();
    let users = dir.write("users", htpasswd_line("alice", "correct horse"));
    let mut config = config();
    config.basic_users_file = Some(users);
    config.basic_cache_ttl = Duration::from_millis(1500);
    let auth = build(config).await;
    caller(&auth, &basic("alice", "correct horse")).await;
    caller(&auth, &basic("alice", "correct horse")).await;
    assert_eq!(verifications(&auth), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    caller(&auth, &basic("alice", "correct horse")).await;
    assert_eq!(verifications(&auth), 2);
}

#[tokio::test]
async fn a_reload_of_the_users_file_forgets_remembered_headers() {
    let dir = TempDir::new();
    let auth = Arc::new(with_users(&dir, &[htpasswd_line("alice", "old password")]).await);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = auth.spawn_refresh(shutdown.clone());
    caller(&auth, &basic("alice", "old password")).await;
    dir.write("users", htpasswd_line("alice", "new password"));
    assert!(
        eventually(async || auth
            .authenticate(&basic("alice", "new password"), None)
            .await
            .is_ok())
        .await,
        "the new users file was not picked up"
    );
    let (reason, _) = refusal(
        auth.authenticate(&basic("alice", "old password"), None)
            .await,
    );
    assert_eq!(
        reason, CREDENTIALS_INVALID,
        "the remembered old password was forgotten"
    );
    // A file that cannot be read keeps the last good users.
    std::fs::remove_file(dir.join("users")).unwrap_or_else(|error| panic!("{error}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(auth.basic().map(|basic| basic.user_count()), Some(1));
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test]
async fn malformed_basic_credentials_are_refused_without_bcrypt() {
    let dir = TempDir::new();
    let auth = with_users(&dir, &[htpasswd_line("alice", "correct horse")]).await;
    use base64::Engine as _;
    let no_colon = base64::engine::general_purpose::STANDARD.encode("alice-correct-horse");
    for (value, says) in [
        ("Basic !!!not-base64!!!".to_owned(), "not base64"),
        (format!("Basic {no_colon}"), "not user:password"),
    ] {
        let (reason, message) = refusal(auth.authenticate(&authorization(&value), None).await);
        assert_eq!(reason, CREDENTIALS_INVALID);
        assert!(message.contains(says), "{message}");
        assert_no_secret(&message, &["alice-correct-horse", "!!!not-base64!!!"]);
    }
    assert_eq!(verifications(&auth), 0);
}

use std::sync::Arc;
