//! Which credential decides, client certificates, the roles file, and the
//! challenge of an HTTP 401.

use std::{sync::Arc, time::Duration};

use groupd::{
    auth::{KeysFrom, PeerIdentity, refusal::*},
    config::Settings,
    domain::Role,
};

use super::{support::*, *};

const ISSUER: &str = "https://issuer.test";

/// Every mode on: JWT (a key file), Basic (alice), mTLS, and a roles file.
struct AllModes {
    dir: TempDir,
    key: SigningKey,
    auth: Authenticator,
}

async fn all_modes() -> AllModes {
    let dir = TempDir::new();
    let key = key(KeyAlgorithm::Es256);
    let jwks_path = dir.write("jwks.json", jwks(&[&key]).to_string());
    let users = dir.write("users", htpasswd_line("alice", "correct horse"));
    let roles = dir.write(
        "roles.json",
        r#"{"alice": ["groups.creator"], "spiffe://example.org/ci": ["groups.admin"]}"#,
    );
    let mut config = config();
    config.jwt = Some(jwt_config(ISSUER, KeysFrom::File(jwks_path)));
    config.basic_users_file = Some(users);
    config.roles_file = Some(roles);
    config.mtls = true;
    AllModes {
        dir,
        key,
        auth: build(config).await,
    }
}

fn peer(id: &str) -> PeerIdentity {
    PeerIdentity(id.to_owned())
}

#[tokio::test]
async fn the_authorization_header_decides_before_the_client_certificate() {
    let all = all_modes().await;
    let ci = peer("spiffe://example.org/ci");
    let token = sign(
        &all.key,
        &claims(ISSUER, AUDIENCE, "alice", &["groups.reader"]),
    );
    let alice = all.auth.authenticate(&bearer(&token), Some(&ci)).await;
    let alice = alice.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(alice.principal().as_str(), "alice");
    assert_eq!(
        roles(&alice),
        vec![Role::Reader, Role::Creator],
        "the token's roles plus the roles file's"
    );
    // A bad header is refused, not passed over for the certificate.
    let (reason, _) = refusal(all.auth.authenticate(&bearer("garbage"), Some(&ci)).await);
    assert_eq!(reason, CREDENTIALS_INVALID);
    let (reason, _) = refusal(
        all.auth
            .authenticate(&basic("alice", "wrong"), Some(&ci))
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID);
    // Without a header, the certificate.
    let ci = all
        .auth
        .authenticate(&http::HeaderMap::new(), Some(&ci))
        .await;
    let ci = ci.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ci.principal().as_str(), "spiffe://example.org/ci");
    assert_eq!(
        roles(&ci),
        vec![Role::Admin],
        "mTLS roles come from the roles file only"
    );
    let basic_alice = caller(&all.auth, &basic("alice", "correct horse")).await;
    assert_eq!(roles(&basic_alice), vec![Role::Creator]);
    drop(all.dir);
}

#[tokio::test]
async fn requests_without_credentials_or_with_unusable_ones_are_refused_by_reason() {
    let all = all_modes().await;
    let (reason, message) = refusal(all.auth.authenticate(&http::HeaderMap::new(), None).await);
    assert_eq!(reason, CREDENTIALS_MISSING);
    assert!(
        message.contains("Bearer") && message.contains("client certificate"),
        "{message}"
    );

    let (reason, message) = refusal(
        all.auth
            .authenticate(&http::HeaderMap::new(), Some(&peer("not a principal!")))
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert!(message.contains("client certificate"), "{message}");

    let secret = "c2VjcmV0LXRva2VuLXZhbHVl";
    for (value, says) in [
        (
            format!("Token {secret}"),
            "scheme is not one groupd accepts",
        ),
        (secret.to_owned(), "not `<scheme> <credentials>`"),
        ("Bearer".to_owned(), "not `<scheme> <credentials>`"),
        ("Bearer    ".to_owned(), "not `<scheme> <credentials>`"),
    ] {
        let (reason, message) = refusal(all.auth.authenticate(&authorization(&value), None).await);
        assert_eq!(reason, CREDENTIALS_INVALID, "{value}");
        assert!(message.contains(says), "{value}: {message}");
        assert_no_secret(&message, &[secret, "Token"]);
    }
    let mut twice = bearer("a.b.c");
    twice.append(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Basic eA=="),
    );
    let (reason, message) = refusal(all.auth.authenticate(&twice, None).await);
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert!(message.contains("more than one"), "{message}");
    // Schemes are case-insensitive.
    let token = sign(&all.key, &claims(ISSUER, AUDIENCE, "bob", &[]));
    let bob = caller(&all.auth, &authorization(&format!("bearer {token}"))).await;
    assert_eq!(bob.principal().as_str(), "bob");
}

#[tokio::test]
async fn a_scheme_whose_mode_is_off_is_refused_by_name() {
    let dir = TempDir::new();
    let users = dir.write("users", htpasswd_line("alice", "correct horse"));
    let mut only_basic = config();
    only_basic.basic_users_file = Some(users);
    let auth = build(only_basic).await;
    let (reason, message) = refusal(auth.authenticate(&bearer("a.b.c"), None).await);
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert!(
        message.contains("Bearer scheme is not accepted"),
        "{message}"
    );
    // A client certificate is not a credential here either.
    let (reason, _) = refusal(
        auth.authenticate(&http::HeaderMap::new(), Some(&peer("ci")))
            .await,
    );
    assert_eq!(reason, CREDENTIALS_MISSING);

    let mut only_mtls = config();
    only_mtls.mtls = true;
    let auth = build(only_mtls).await;
    let (reason, message) = refusal(
        auth.authenticate(&basic("alice", "correct horse"), None)
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert!(
        message.contains("Basic scheme is not accepted"),
        "{message}"
    );
    assert_no_secret(&message, &["correct horse"]);
    let ci = auth
        .authenticate(&http::HeaderMap::new(), Some(&peer("ci")))
        .await;
    let ci = ci.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ci.principal().as_str(), "ci");
    assert_eq!(roles(&ci), vec![], "no roles file, no roles");
}

#[tokio::test]
async fn the_challenge_names_the_enabled_header_schemes() {
    let all = all_modes().await;
    assert_eq!(
        all.auth.challenge().as_deref(),
        Some(r#"Bearer realm="groupd", Basic realm="groupd""#)
    );
    let mut only_mtls = config();
    only_mtls.mtls = true;
    assert_eq!(build(only_mtls).await.challenge(), None);
    assert_eq!(Authenticator::none().challenge(), None);
}

#[tokio::test]
async fn with_authentication_off_every_caller_is_the_unrestricted_anonymous() {
    let off = Authenticator::none();
    assert!(!off.is_enabled());
    let caller = off
        .authenticate(&bearer("anything"), Some(&peer("ci")))
        .await;
    assert_eq!(caller.ok(), Some(groupd::domain::Caller::unrestricted()));
    let from_settings = Authenticator::from_settings(
        &Settings::parse_from_args(["groupd"]).unwrap_or_else(|e| panic!("{e}")),
    )
    .await
    .unwrap_or_else(|error| panic!("{error:#}"));
    assert!(!from_settings.is_enabled());
}

#[tokio::test]
async fn the_roles_file_is_read_again_when_it_changes() {
    let all = all_modes().await;
    let auth = Arc::new(all.auth);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = auth.spawn_refresh(shutdown.clone());
    let ci = peer("spiffe://example.org/ci");
    let roles_now = async || {
        auth.authenticate(&http::HeaderMap::new(), Some(&ci))
            .await
            .map(|caller| roles(&caller))
            .unwrap_or_default()
    };
    assert_eq!(roles_now().await, vec![Role::Admin]);
    all.dir.write(
        "roles.json",
        r#"{"spiffe://example.org/ci": ["groups.reader"]}"#,
    );
    assert!(
        eventually(async || roles_now().await == vec![Role::Reader]).await,
        "the new roles were not picked up"
    );
    all.dir.write("roles.json", "[not an object]");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        roles_now().await,
        vec![Role::Reader],
        "the last good roles are kept"
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test]
async fn the_settings_build_the_authenticator_of_their_modes() {
    let dir = TempDir::new();
    let key = key(KeyAlgorithm::Eddsa);
    let jwks_path = dir.write("jwks.json", jwks(&[&key]).to_string());
    let users = dir.write("users", htpasswd_line("alice", "correct horse"));
    let settings = Settings::parse_from_args([
        "groupd",
        "--auth",
        "jwt,basic",
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
        "--jwt-jwks-file",
        &jwks_path.display().to_string(),
        "--basic-users-file",
        &users.display().to_string(),
    ])
    .unwrap_or_else(|error| panic!("{error}"));
    let auth = Authenticator::from_settings(&settings)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let token = sign(&key, &claims(ISSUER, AUDIENCE, "bob", &[]));
    assert_eq!(
        caller(&auth, &bearer(&token)).await.principal().as_str(),
        "bob"
    );
    assert_eq!(
        caller(&auth, &basic("alice", "correct horse"))
            .await
            .principal()
            .as_str(),
        "alice"
    );
    let (reason, _) = refusal(
        auth.authenticate(&http::HeaderMap::new(), Some(&peer("ci")))
            .await,
    );
    assert_eq!(reason, CREDENTIALS_MISSING, "mtls is off");
}
