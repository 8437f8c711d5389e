//! Bearer tokens against a JWKS file: every accepted key type, every
//! refusal with its reason, the cache, and the file read again when it
//! changes.

use std::time::Duration;

use groupd::{
    auth::{KeysFrom, refusal::*},
    domain::Role,
};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use super::{support::*, *};

const ISSUER: &str = "https://issuer.test";

/// An authenticator trusting the keys of a JWKS file holding `document`.
async fn with_jwks(dir: &TempDir, document: &Value) -> Authenticator {
    let path = dir.write("jwks.json", document.to_string());
    let mut config = config();
    config.jwt = Some(jwt_config(ISSUER, KeysFrom::File(path)));
    build(config).await
}

fn claims_for(subject: &str, roles: &[&str]) -> Value {
    claims(ISSUER, AUDIENCE, subject, roles)
}

#[tokio::test]
async fn tokens_of_every_accepted_algorithm_are_accepted() {
    let dir = TempDir::new();
    let rsa = key(KeyAlgorithm::Rs256);
    let p256 = key(KeyAlgorithm::Es256);
    let p384 = key(KeyAlgorithm::Es384);
    let ed = key(KeyAlgorithm::Eddsa);
    // The RSA key's JWK names no alg, so it verifies every RSA algorithm.
    let document = json!({"keys": [
        rsa.public_jwk_for(None), p256.public_jwk(), p384.public_jwk(), ed.public_jwk(),
    ]});
    let auth = with_jwks(&dir, &document).await;
    let mut tokens = vec![
        sign(&p256, &claims_for("p256", &[])),
        sign(&p384, &claims_for("p384", &[])),
    ];
    tokens.push(sign(&ed, &claims_for("ed", &[])));
    for algorithm in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
    ] {
        let mut header = Header::new(algorithm);
        header.kid = Some(rsa.kid().to_owned());
        tokens.push(sign_with(
            &rsa,
            &header,
            &claims_for(&format!("{algorithm:?}"), &[]),
        ));
    }
    for token in &tokens {
        let caller = caller(&auth, &bearer(token)).await;
        assert_eq!(caller.principal().as_str(), payload(token)["sub"]);
    }
}

#[tokio::test]
async fn a_token_grants_the_roles_groupd_knows_from_its_roles_claim() {
    let dir = TempDir::new();
    let ed = key(KeyAlgorithm::Eddsa);
    let auth = with_jwks(&dir, &jwks(&[&ed])).await;
    let token = sign(
        &ed,
        &claims_for("alice", &["groups.admin", "openid", "groups.reader"]),
    );
    let alice = caller(&auth, &bearer(&token)).await;
    assert_eq!(alice.principal().as_str(), "alice");
    assert_eq!(roles(&alice), vec![Role::Admin, Role::Reader]);
    let mut spaced = claims_for("bob", &[]);
    spaced["roles"] = json!("groups.creator email");
    let bob = caller(&auth, &bearer(&sign(&ed, &spaced))).await;
    assert_eq!(roles(&bob), vec![Role::Creator]);
    let mut listed = claims_for("carol", &[]);
    listed["aud"] = json!(["another-service", AUDIENCE]);
    assert_eq!(
        caller(&auth, &bearer(&sign(&ed, &listed)))
            .await
            .principal()
            .as_str(),
        "carol",
        "an aud array including groupd's is accepted"
    );
}

#[tokio::test]
async fn refused_tokens_say_why_and_never_echo_the_token() {
    let dir = TempDir::new();
    let ed = key(KeyAlgorithm::Eddsa);
    let rsa = key(KeyAlgorithm::Rs256);
    let auth = with_jwks(&dir, &jwks(&[&ed, &rsa])).await;
    let now = now();
    let valid = sign(&ed, &claims_for("alice", &["groups.admin"]));
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims_for("alice", &["groups.admin"]);
        change(&mut claims);
        sign(&ed, &claims)
    };
    let public_key_bytes = ed.public_jwk()["x"].as_str().unwrap_or_default().to_owned();
    let mut ps256 = Header::new(Algorithm::PS256);
    ps256.kid = Some(rsa.kid().to_owned());
    let stranger = key(KeyAlgorithm::Eddsa);
    // An ES256 token naming the Ed25519 key.
    let p256 = key(KeyAlgorithm::Es256);
    let mut es256_naming_ed = Header::new(Algorithm::ES256);
    es256_naming_ed.kid = Some(ed.kid().to_owned());
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now - 120)),
            TOKEN_EXPIRED,
            "expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now + 120)),
            TOKEN_NOT_YET_VALID,
            "not valid yet",
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.test")),
            CREDENTIALS_INVALID,
            "issuer",
        ),
        (
            "no issuer",
            with(&|c| {
                c.as_object_mut().map(|c| c.remove("iss"));
            }),
            CREDENTIALS_INVALID,
            "\"iss\"",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("another-service")),
            CREDENTIALS_INVALID,
            "audience",
        ),
        (
            "audience list without groupd",
            with(&|c| c["aud"] = json!(["a", "b"])),
            CREDENTIALS_INVALID,
            "audience",
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().map(|c| c.remove("exp"));
            }),
            CREDENTIALS_INVALID,
            "\"exp\"",
        ),
        (
            "exp not a number",
            with(&|c| c["exp"] = json!("tomorrow")),
            CREDENTIALS_INVALID,
            "\"exp\"",
        ),
        (
            "alg none",
            unsigned(ed.kid(), &claims_for("alice", &[])),
            CREDENTIALS_INVALID,
            "alg none",
        ),
        (
            "HS256 with the public key as secret",
            hmac_signed(
                public_key_bytes.as_bytes(),
                ed.kid(),
                &claims_for("alice", &[]),
            ),
            CREDENTIALS_INVALID,
            "HMAC",
        ),
        (
            "payload tampered",
            with_payload(&valid, &claims_for("mallory", &["groups.admin"])),
            CREDENTIALS_INVALID,
            "signature does not verify",
        ),
        (
            "signature truncated",
            truncated(&valid),
            CREDENTIALS_INVALID,
            "signature does not verify",
        ),
        (
            "unknown key",
            sign(&stranger, &claims_for("alice", &[])),
            CREDENTIALS_INVALID,
            "does not hold",
        ),
        (
            "key used with another alg than its JWK says",
            sign_with(&rsa, &ps256, &claims_for("alice", &[])),
            CREDENTIALS_INVALID,
            "not the one its key is for",
        ),
        (
            "key type that does not fit the alg",
            sign_with(&p256, &es256_naming_ed, &claims_for("alice", &[])),
            CREDENTIALS_INVALID,
            "does not fit the type of its key",
        ),
        (
            "malformed",
            "not-a-token".to_owned(),
            CREDENTIALS_INVALID,
            "well-formed",
        ),
        (
            "malformed parts",
            "e30.e30.e30".to_owned(),
            CREDENTIALS_INVALID,
            "well-formed",
        ),
        (
            "no principal",
            with(&|c| {
                c.as_object_mut().map(|c| c.remove("sub"));
            }),
            CREDENTIALS_INVALID,
            "\"sub\"",
        ),
        (
            "invalid principal",
            with(&|c| c["sub"] = json!("not a principal!")),
            CREDENTIALS_INVALID,
            "principal id",
        ),
    ];
    for (case, token, reason, says) in cases {
        let (got, message) = refusal(auth.authenticate(&bearer(&token), None).await);
        assert_eq!(got, reason, "{case}: {message}");
        assert!(message.contains(says), "{case}: {message}");
        assert_no_secret(&message, &[&token, &public_key_bytes]);
    }
    assert_eq!(
        caller(&auth, &bearer(&valid)).await.principal().as_str(),
        "alice"
    );
}

#[tokio::test]
async fn tokens_without_kid_are_verified_only_by_the_one_key_that_fits() {
    let dir = TempDir::new();
    let ed = key(KeyAlgorithm::Eddsa);
    let ec = key(KeyAlgorithm::Es256);
    let auth = with_jwks(&dir, &jwks(&[&ed, &ec])).await;
    let no_kid = Header::new(Algorithm::EdDSA);
    let token = sign_with(&ed, &no_kid, &claims_for("alice", &[]));
    assert_eq!(
        caller(&auth, &bearer(&token)).await.principal().as_str(),
        "alice"
    );

    let other = key(KeyAlgorithm::Eddsa);
    let auth = with_jwks(&TempDir::new(), &jwks(&[&ed, &other])).await;
    let token = sign_with(&ed, &no_kid, &claims_for("alice", &[]));
    let (reason, message) = refusal(auth.authenticate(&bearer(&token), None).await);
    assert_eq!(reason, CREDENTIALS_INVALID);
    assert!(message.contains("several keys"), "{message}");
}

#[tokio::test]
async fn verified_tokens_are_cached_until_they_expire() {
    let dir = TempDir::new();
    let ed = key(KeyAlgorithm::Eddsa);
    let path = dir.write("jwks.json", jwks(&[&ed]).to_string());
    let mut config = config();
    let mut jwt = jwt_config(ISSUER, KeysFrom::File(path));
    jwt.rules.leeway = Duration::ZERO;
    config.jwt = Some(jwt);
    let auth = build(config).await;
    let Some(state) = auth.jwt() else {
        panic!("jwt is on")
    };
    let mut short = claims_for("alice", &[]);
    short["exp"] = json!(now() + 2);
    let token = sign(&ed, &short);
    caller(&auth, &bearer(&token)).await;
    caller(&auth, &bearer(&token)).await;
    assert_eq!(state.cached_tokens(), 1, "the second check was a cache hit");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (reason, _) = refusal(auth.authenticate(&bearer(&token), None).await);
    assert_eq!(reason, TOKEN_EXPIRED, "a cached token still expires");
}

#[tokio::test]
async fn the_jwks_file_is_read_again_when_it_changes_and_a_broken_one_is_ignored() {
    let dir = TempDir::new();
    let old = key(KeyAlgorithm::Eddsa);
    let new = key(KeyAlgorithm::Es256);
    let path = dir.write("jwks.json", jwks(&[&old]).to_string());
    let mut config = config();
    config.jwt = Some(jwt_config(ISSUER, KeysFrom::File(path)));
    let auth = Arc::new(build(config).await);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = auth.spawn_refresh(shutdown.clone());

    let old_token = sign(&old, &claims_for("alice", &[]));
    caller(&auth, &bearer(&old_token)).await;
    dir.write("jwks.json", jwks(&[&new]).to_string());
    let new_token = sign(&new, &claims_for("bob", &[]));
    assert!(
        eventually(async || auth.authenticate(&bearer(&new_token), None).await.is_ok()).await,
        "the new key was not picked up"
    );
    let (reason, message) = refusal(auth.authenticate(&bearer(&old_token), None).await);
    assert_eq!(
        reason, CREDENTIALS_INVALID,
        "a cached token goes with its key: {message}"
    );

    dir.write("jwks.json", "{ this is not JSON");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = sign(&new, &claims_for("carol", &[]));
    assert_eq!(
        caller(&auth, &bearer(&fresh)).await.principal().as_str(),
        "carol",
        "the last good keys are kept"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap_or_else(|_| panic!("the refresh task did not stop"))
        .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test]
async fn a_jwks_file_that_is_missing_or_has_no_usable_key_fails_the_start() {
    let dir = TempDir::new();
    let mut missing = config();
    missing.jwt = Some(jwt_config(ISSUER, KeysFrom::File(dir.join("absent.json"))));
    assert!(Authenticator::new(missing).await.is_err());
    let path = dir.write(
        "jwks.json",
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string(),
    );
    let mut symmetric = config();
    symmetric.jwt = Some(jwt_config(ISSUER, KeysFrom::File(path)));
    let error = Authenticator::new(symmetric)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    assert!(error.is_some_and(|e| e.contains("no usable key") && !e.contains("c2VjcmV0")));
}

use std::sync::Arc;
