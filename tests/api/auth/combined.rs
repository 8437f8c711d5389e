//! `--auth jwt,basic`: each request is authenticated by the one credential
//! it presents, a bearer token for one caller and Basic credentials for
//! another, over gRPC and HTTP; the roles file adds to both; a credential
//! that fails is never replaced by another; and a 401 names both schemes.

use groupd::pb;
use serde_json::json;
use tonic::Code;

use super::{
    files::{AuthFiles, User, authorized, basic, bearer},
    served::Served,
};
use crate::helpers::*;

/// The challenge of a server accepting both header schemes.
const BOTH: &str = r#"Bearer realm="groupd", Basic realm="groupd""#;

pub async fn each_request_is_its_own_credential_and_a_401_names_both_schemes(backend: Backend) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        let carol = User::new("carol");
        files.write_users(&[&carol]);
        // carol's role comes from the roles file, whatever her scheme; the
        // token's owner's from its claim.
        files.write_roles(&json!({"carol": ["groups.creator"]}));
        let served = Served::start(&app, &files.flags("jwt,basic")).await;
        let mut client = served.client().await;
        let dave = bearer(&files.token("dave", &["groups.creator"]));
        let carol_token = bearer(&files.token("carol", &[]));

        let create = |credential: &str, name: &str| {
            authorized(
                credential,
                pb::CreateGroupRequest {
                    group: Some(named(name)),
                    ..Default::default()
                },
            )
        };
        for (credential, name, principal) in [
            (&dave, "by-token", "dave"),
            (&carol.basic(), "by-basic", "carol"),
            (&carol_token, "by-carols-token", "carol"),
        ] {
            let created = client
                .create_group(create(credential, name))
                .await
                .unwrap_or_else(|status| panic!("{name}: {status:?}"))
                .into_inner();
            assert_eq!(created.created_by, principal, "{name}");
            // A creator without groups.admin becomes an admin of what it
            // creates.
            assert_eq!(ids(&created.admins), [principal], "{name}");

            let body = http_ok(
                send(
                    served
                        .request(reqwest::Method::POST, "/v1/groups", Some(credential))
                        .json(&json!({"name": format!("{name}-http")})),
                )
                .await,
            );
            assert_eq!(body["createdBy"], principal, "{name} over HTTP");
        }

        // A credential that fails is the request's credential: nothing
        // else is tried. carol's Basic password is not a token, her token
        // is not a password, and a token with the Basic scheme is refused.
        let groups = group_count(&app).await;
        let dave_token = dave.trim_start_matches("Bearer ");
        for (credential, name) in [
            (bearer(&carol.password), "a password as a token"),
            (
                basic("carol", carol_token.trim_start_matches("Bearer ")),
                "a token as a password",
            ),
            (format!("Basic {dave_token}"), "a token under Basic"),
        ] {
            let status = client
                .create_group(create(&credential, "refused"))
                .await
                .unwrap_err();
            assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");
            let reply = send(
                served
                    .request(reqwest::Method::POST, "/v1/groups", Some(&credential))
                    .json(&json!({"name": "refused-http"})),
            )
            .await;
            assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_INVALID");
            assert_eq!(reply.header("www-authenticate"), Some(BOTH), "{name}");
        }
        assert_eq!(group_count(&app).await, groups, "a refused call wrote");

        // With no credentials, or a scheme groupd does not know, the 401
        // names both schemes.
        let reply = send(served.request(reqwest::Method::GET, "/v1/groups", None)).await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
        assert_eq!(reply.header("www-authenticate"), Some(BOTH));
        let reply = send(served.request(
            reqwest::Method::GET,
            "/v1/groups",
            Some("Digest username=\"carol\""),
        ))
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_INVALID");
        assert_eq!(reply.header("www-authenticate"), Some(BOTH));
        let status = client
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_MISSING");
    })
    .await;
}

pub async fn two_authorization_headers_are_refused_over_grpc_and_http(backend: Backend) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        let carol = User::new("carol");
        files.write_users(&[&carol]);
        let served = Served::start(&app, &files.flags("jwt,basic")).await;
        let root = bearer(&files.token("root", &["groups.admin"]));
        let groups = group_count(&app).await;

        // Over gRPC: a stranger's Basic credentials beside an admin's
        // token; which one would decide is not the client's to guess.
        let mut request = tonic::Request::new(pb::CreateGroupRequest {
            group: Some(named("two-credentials")),
            ..Default::default()
        });
        request
            .metadata_mut()
            .append("authorization", carol.basic().parse().unwrap());
        request
            .metadata_mut()
            .append("authorization", root.parse().unwrap());
        let status = served
            .client()
            .await
            .create_group(request)
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");

        // Over HTTP, the same.
        let reply = send(
            served
                .request(reqwest::Method::POST, "/v1/groups", None)
                .header("authorization", carol.basic())
                .header("authorization", &root)
                .json(&json!({"name": "two-credentials-http"})),
        )
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_INVALID");
        assert_eq!(group_count(&app).await, groups, "a refused call wrote");
    })
    .await;
}
