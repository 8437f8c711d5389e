//! Remote keys from a real issuer over HTTP: discovery, rotation, the
//! refetch for an unknown kid and its rate limit, and outages.

use std::{sync::Arc, time::Duration};

use groupd::auth::{KeysFrom, refusal::*};
use tokio_util::sync::CancellationToken;

use super::{support::*, *};

async fn discovering(issuer: &Issuer) -> Authenticator {
    let mut config = config();
    config.jwt = Some(jwt_config(&issuer.url(), KeysFrom::Discovery));
    build(config).await
}

fn token(issuer: &Issuer, key: &SigningKey, subject: &str) -> String {
    sign(
        key,
        &claims(&issuer.url(), AUDIENCE, subject, &["groups.reader"]),
    )
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuer() {
    let first = key(KeyAlgorithm::Es256);
    let issuer = Issuer::start(&[&first]).await;
    let auth = discovering(&issuer).await;
    assert_eq!((issuer.discovery_hits(), issuer.jwks_hits()), (1, 1));
    let alice = caller(&auth, &bearer(&token(&issuer, &first, "alice"))).await;
    assert_eq!(alice.principal().as_str(), "alice");
    assert_eq!(issuer.jwks_hits(), 1, "a known key needs no fetch");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let old = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&old]).await;
    let mut config = config();
    config.jwt = Some(jwt_config(&issuer.url(), KeysFrom::Url(issuer.jwks_url())));
    let auth = build(config).await;
    let old_token = token(&issuer, &old, "alice");
    caller(&auth, &bearer(&old_token)).await;

    let new = key(KeyAlgorithm::Rs256);
    issuer.set_keys(&[&new]);
    let new_token = token(&issuer, &new, "bob");
    assert_eq!(
        caller(&auth, &bearer(&new_token))
            .await
            .principal()
            .as_str(),
        "bob"
    );
    assert_eq!(issuer.jwks_hits(), 2, "one fetch for the unknown kid");
    assert_eq!(issuer.discovery_hits(), 0, "a JWKS URL needs no discovery");
    let (reason, message) = refusal(auth.authenticate(&bearer(&old_token), None).await);
    assert_eq!(
        reason, CREDENTIALS_INVALID,
        "the retired key verifies no more: {message}"
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let known = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&known]).await;
    let auth = Arc::new(discovering(&issuer).await);
    assert_eq!(issuer.jwks_hits(), 1);
    // A flood of tokens naming keys nobody has.
    let mut flood = Vec::new();
    for n in 0..20 {
        let auth = auth.clone();
        let garbage = token(&issuer, &key(KeyAlgorithm::Eddsa), &format!("user{n}"));
        flood.push(tokio::spawn(async move {
            auth.authenticate(&bearer(&garbage), None).await
        }));
    }
    for result in flood {
        let (reason, message) = refusal(result.await.unwrap_or_else(|error| panic!("{error}")));
        assert_eq!(reason, CREDENTIALS_INVALID);
        assert!(message.contains("does not hold"), "{message}");
    }
    assert_eq!(issuer.jwks_hits(), 2, "twenty unknown kids, one fetch");
    let again = token(&issuer, &key(KeyAlgorithm::Eddsa), "late");
    refusal(auth.authenticate(&bearer(&again), None).await);
    assert_eq!(issuer.jwks_hits(), 2, "still within the interval");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refusal(auth.authenticate(&bearer(&again), None).await);
    assert_eq!(issuer.jwks_hits(), 3, "the interval passed");
    // A known key never waits on the gate.
    caller(&auth, &bearer(&token(&issuer, &known, "alice"))).await;
    assert_eq!(issuer.jwks_hits(), 3);
}

#[tokio::test]
async fn the_last_good_keys_are_kept_while_the_issuer_is_down() {
    let first = key(KeyAlgorithm::Es384);
    let issuer = Issuer::start(&[&first]).await;
    let auth = discovering(&issuer).await;
    issuer.set_down(true);
    assert!(
        !auth.refresh_remote_keys().await,
        "the scheduled refresh fails"
    );
    let alice = caller(&auth, &bearer(&token(&issuer, &first, "alice"))).await;
    assert_eq!(
        alice.principal().as_str(),
        "alice",
        "the keys in use are kept"
    );
    let rotated = key(KeyAlgorithm::Es384);
    let (reason, _) = refusal(
        auth.authenticate(&bearer(&token(&issuer, &rotated, "bob")), None)
            .await,
    );
    assert_eq!(reason, CREDENTIALS_INVALID, "the refetch failed");
    assert_eq!(
        caller(&auth, &bearer(&token(&issuer, &first, "carol")))
            .await
            .principal()
            .as_str(),
        "carol",
        "a failed refetch keeps the keys too"
    );
    issuer.set_keys(&[&first, &rotated]);
    issuer.set_down(false);
    assert!(auth.refresh_remote_keys().await);
    caller(&auth, &bearer(&token(&issuer, &rotated, "bob"))).await;
}

#[tokio::test]
async fn groupd_starts_without_keys_and_answers_keys_unavailable_until_they_arrive() {
    let first = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&first]).await;
    issuer.set_down(true);
    let auth = Arc::new(discovering(&issuer).await);
    let Some(jwt) = auth.jwt() else {
        panic!("jwt is on")
    };
    assert!(!jwt.key_set_loaded());
    let alice = token(&issuer, &first, "alice");
    let (reason, message) = refusal(auth.authenticate(&bearer(&alice), None).await);
    assert_eq!(reason, KEYS_UNAVAILABLE, "{message}");
    assert_no_secret(&message, &[&alice]);

    issuer.set_down(false);
    let shutdown = CancellationToken::new();
    let task = auth.spawn_refresh(shutdown.clone());
    // The refresh task retries every refetch interval (1 s here) while no
    // key was ever fetched.
    let Some(jwt) = auth.jwt() else {
        panic!("jwt is on")
    };
    assert!(
        eventually(async || jwt.key_set_loaded()).await,
        "the keys never arrived"
    );
    assert_eq!(
        caller(&auth, &bearer(&alice)).await.principal().as_str(),
        "alice"
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let first = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&first]).await;
    // Tokens and configuration name the issuer with a trailing path the
    // discovery document does not.
    let claimed = format!("{}/", issuer.url());
    let mut config = config();
    config.jwt = Some(jwt_config(&claimed, KeysFrom::Discovery));
    let auth = build(config).await;
    assert_eq!(issuer.discovery_hits(), 1);
    assert_eq!(
        issuer.jwks_hits(),
        0,
        "the JWKS of a mismatched issuer is not fetched"
    );
    let token = sign(&first, &claims(&claimed, AUDIENCE, "alice", &[]));
    let (reason, _) = refusal(auth.authenticate(&bearer(&token), None).await);
    assert_eq!(reason, KEYS_UNAVAILABLE);
    assert_eq!(
        issuer.discovery_hits(),
        2,
        "the token asked for the keys again"
    );
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_and_the_keys_in_use_kept() {
    let first = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&first]).await;
    let auth = discovering(&issuer).await;
    let padding = "x".repeat(groupd::auth::remote::MAX_RESPONSE_BYTES);
    let mut huge = jwks(&[&first]);
    huge["padding"] = serde_json::json!(padding);
    issuer.set_jwks(huge);
    assert!(!auth.refresh_remote_keys().await);
    caller(&auth, &bearer(&token(&issuer, &first, "alice"))).await;
}

#[tokio::test]
async fn redirects_are_followed_within_bounds_and_never_to_plain_http_elsewhere() {
    let first = key(KeyAlgorithm::Eddsa);
    let issuer = Issuer::start(&[&first]).await;
    let at = |path: &str| {
        let mut config = config();
        config.jwt = Some(jwt_config(
            &issuer.url(),
            KeysFrom::Url(issuer.url_of(path)),
        ));
        config
    };
    let moved = build(at("/moved")).await;
    caller(&moved, &bearer(&token(&issuer, &first, "alice"))).await;
    for refused in ["/loop", "/elsewhere"] {
        let auth = build(at(refused)).await;
        let Some(jwt) = auth.jwt() else {
            panic!("jwt is on")
        };
        assert!(!jwt.key_set_loaded(), "{refused}");
    }
}
