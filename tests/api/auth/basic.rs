//! Basic authentication end to end, through the real binary: an htpasswd
//! file of bcrypt hashes made here, roles from the roles file. The right
//! password works in gRPC metadata and in the HTTP header; a wrong one, an
//! unknown user, or the hash itself is refused CREDENTIALS_INVALID with
//! nothing written; and neither the answers nor the log ever hold a
//! password, a hash or the credentials' base64.

use groupd::pb;
use serde_json::json;
use tonic::Code;

use super::{
    files::{AuthFiles, User, authorized, basic},
    served::{Served, principal_of},
};
use crate::helpers::*;

pub async fn basic_credentials_work_over_grpc_and_http_and_stay_out_of_answers_and_logs(
    backend: Backend,
) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        let alice = User::new("alice");
        let bob = User::new("bob");
        files.write_users(&[&alice, &bob]);
        files.write_roles(&json!({"alice": ["groups.admin"]}));
        let served = Served::start(&app, &files.flags("basic")).await;
        let mut client = served.client().await;
        let mut calls = 0;

        // alice's password, in gRPC metadata and in the HTTP header: the
        // roles file makes her groups.admin.
        let mut group = named("by-basic");
        group.members = members(&["bob"]);
        let created = client
            .create_group(authorized(
                &alice.basic(),
                pb::CreateGroupRequest {
                    group: Some(group),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        calls += 1;
        assert_eq!(created.created_by, "alice");
        let body = http_ok(
            send(
                served
                    .request(reqwest::Method::POST, "/v1/groups", Some(&alice.basic()))
                    .json(&json!({"name": "by-basic-http"})),
            )
            .await,
        );
        calls += 1;
        assert_eq!(body["createdBy"], "alice");

        // bob has no role: he reads the group he is a member of, and may
        // not create one.
        let read = client
            .get_group(authorized(
                &bob.basic(),
                pb::GetGroupRequest {
                    id: created.id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        calls += 1;
        assert!(read.is_ok(), "{read:?}");
        let status = client
            .create_group(authorized(
                &bob.basic(),
                pb::CreateGroupRequest {
                    group: Some(named("by-bob")),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        calls += 1;
        assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

        // Refused credentials: a wrong password, an unknown user with a
        // real password, the hash as the password, another user's
        // password. Each tries a write over gRPC and over HTTP.
        let before = snapshot(&app, &created.id).await;
        let groups = group_count(&app).await;
        let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
        let refused = [
            basic("alice", &wrong),
            basic("mallory", &alice.password),
            basic("alice", &alice.hash),
            basic("alice", &bob.password),
        ];
        let secrets: Vec<String> = [
            alice.password.clone(),
            bob.password.clone(),
            alice.hash.clone(),
            bob.hash.clone(),
            wrong.clone(),
        ]
        .into_iter()
        .chain(
            refused
                .iter()
                .chain([&alice.basic(), &bob.basic()])
                .map(|credential| credential.trim_start_matches("Basic ").to_owned()),
        )
        .collect();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let assert_holds_no_secret = |text: &str| {
            for secret in &secrets {
                assert!(!text.contains(secret), "a secret in {text:?}");
            }
        };
        for credential in &refused {
            let mut update = patch(&created.id);
            update.description = "by a refused caller".to_owned();
            let status = client
                .update_group(authorized(
                    credential,
                    pb::UpdateGroupRequest {
                        group: Some(update),
                        update_mask: Some(mask(&["description"])),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            calls += 1;
            assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");
            assert_holds_no_secret(status.message());
            let status = client
                .create_group(authorized(
                    credential,
                    pb::CreateGroupRequest {
                        group: Some(named("by-a-refused-caller")),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            calls += 1;
            assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");
            assert_holds_no_secret(status.message());

            let reply = send(
                served
                    .request(
                        reqwest::Method::PATCH,
                        &group_path(&created.id),
                        Some(credential),
                    )
                    .json(&json!({"description": "by a refused caller"})),
            )
            .await;
            calls += 1;
            assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_INVALID");
            assert_eq!(
                reply.header("www-authenticate"),
                Some(r#"Basic realm="groupd""#)
            );
            assert_holds_no_secret(&reply.body.to_string());
        }
        assert_unchanged(&app, &before).await;
        assert_eq!(group_count(&app).await, groups);

        // Every call logged once: the accepted ones naming their
        // principal, the refused ones with their code and no principal;
        // and no line of the log holds a secret.
        let logged = served.finished_calls(calls).await;
        let principals: Vec<(Option<&str>, &str)> = logged
            .iter()
            .map(|call| (principal_of(call), call["code"].as_str().unwrap()))
            .collect();
        let mut expected = vec![
            (Some("alice"), "OK"),
            (Some("alice"), "OK"),
            (Some("bob"), "OK"),
            (Some("bob"), "PERMISSION_DENIED"),
        ];
        expected.extend(std::iter::repeat_n((None, "UNAUTHENTICATED"), 12));
        assert_eq!(principals, expected);
        for call in logged
            .iter()
            .filter(|call| call["code"] == "UNAUTHENTICATED")
        {
            assert!(call["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        served.assert_log_holds_none_of(&secrets);
    })
    .await;
}
