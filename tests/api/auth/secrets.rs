//! No secret anywhere: the real binary with `--auth jwt,basic` is sent an
//! expired token, a tampered one, one cut short, one of a key it does not
//! know, and a wrong Basic password, over gRPC and HTTP. Each is refused
//! with its reason, counted in `/metrics` under UNAUTHENTICATED, and logged
//! with its code and the message its caller got; no line of the log holds
//! any token (or any of its three parts), password, hash, or Basic
//! credentials.

use groupd::pb;
use serde_json::json;
use tonic::Code;

use super::{
    files::{AuthFiles, User, authorized, basic, bearer, expired_token_by, token_by},
    idp::{AUDIENCE, ISSUER},
    served::{Served, principal_of, requests_total},
};
use crate::helpers::{credentials, *};

pub async fn refused_credentials_are_counted_and_logged_by_code_and_never_written_down(
    backend: Backend,
) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        let alice = User::new("alice");
        files.write_users(&[&alice]);
        files.write_roles(&json!({"alice": ["groups.admin"]}));
        let served = Served::start(&app, &files.flags("jwt,basic")).await;
        let mut client = served.client().await;

        // Two accepted calls, one per scheme.
        let root = files.token("root", &["groups.admin"]);
        let group = client
            .create_group(authorized(
                &bearer(&root),
                pb::CreateGroupRequest {
                    group: Some(named("watched")),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(group.created_by, "root");
        let read = client
            .get_group(authorized(
                &alice.basic(),
                pb::GetGroupRequest {
                    id: group.id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        assert!(read.is_ok(), "{read:?}");

        // The refused credentials and the reason each is refused for.
        let other_key = credentials::key(credentials::KeyAlgorithm::Es256);
        let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
        let mallory = credentials::claims(ISSUER, AUDIENCE, "mallory", &["groups.admin"]);
        let refused = [
            (
                bearer(&expired_token_by(&files.key, "root", &["groups.admin"])),
                "TOKEN_EXPIRED",
            ),
            (
                bearer(&credentials::with_payload(&root, &mallory)),
                "CREDENTIALS_INVALID",
            ),
            (
                bearer(&credentials::truncated(&root)),
                "CREDENTIALS_INVALID",
            ),
            (
                bearer(&token_by(&other_key, "root", &["groups.admin"])),
                "CREDENTIALS_INVALID",
            ),
            (basic("alice", &wrong), "CREDENTIALS_INVALID"),
        ];
        let mut messages = Vec::new();
        for (credential, reason) in &refused {
            let status = client
                .get_group(authorized(
                    credential,
                    pb::GetGroupRequest {
                        id: group.id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            assert_error(&status, Code::Unauthenticated, reason);
            messages.push(status.message().to_owned());
            let reply = send(served.request(
                reqwest::Method::GET,
                &group_path(&group.id),
                Some(credential),
            ))
            .await;
            assert_http_error(&reply, 401, Code::Unauthenticated, reason);
            assert_eq!(
                reply.header("www-authenticate"),
                Some(r#"Bearer realm="groupd", Basic realm="groupd""#)
            );
            messages.push(reply.body["message"].as_str().unwrap().to_owned());
        }

        // Counted under UNAUTHENTICATED, per transport.
        let page = served.metrics().await;
        let refusals = refused.len() as f64;
        assert_eq!(
            requests_total(&page, "grpc", "GetGroup", "UNAUTHENTICATED"),
            Some(refusals),
            "{page}"
        );
        assert_eq!(
            requests_total(&page, "http", "GetGroup", "UNAUTHENTICATED"),
            Some(refusals),
            "{page}"
        );
        assert_eq!(
            requests_total(&page, "grpc", "GetGroup", "OK"),
            Some(1.0),
            "{page}"
        );

        // Logged with their code and the message their caller got, and
        // with no principal.
        let logged = served.finished_calls(2 + 2 * refused.len()).await;
        assert_eq!(principal_of(&logged[0]), Some("root"));
        assert_eq!(principal_of(&logged[1]), Some("alice"));
        for (call, message) in logged[2..].iter().zip(&messages) {
            assert_eq!(call["code"], "UNAUTHENTICATED", "{call}");
            assert_eq!(call["error"].as_str(), Some(message.as_str()), "{call}");
            assert_eq!(principal_of(call), None, "{call}");
        }

        // No credential, nor any part of a token, anywhere in the log.
        let mut secrets = vec![
            root.clone(),
            alice.password.clone(),
            alice.hash.clone(),
            wrong.clone(),
            alice.basic().trim_start_matches("Basic ").to_owned(),
        ];
        for (credential, _) in &refused {
            let text = credential
                .trim_start_matches("Bearer ")
                .trim_start_matches("Basic ");
            secrets.push(text.to_owned());
            if credential.starts_with("Bearer ") {
                secrets.extend(
                    text.split('.')
                        .filter(|part| part.len() >= 8)
                        .map(str::to_owned),
                );
            }
        }
        secrets.extend(root.split('.').map(str::to_owned));
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        served.assert_log_holds_none_of(&secrets);
    })
    .await;
}
