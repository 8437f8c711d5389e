//! Authentication files rewritten while the real binary serves: a grant
//! added to the roles file takes effect, a broken roles file keeps the last
//! good one, and a grant removed stops working; a JWKS rotated to a new key
//! accepts that key's tokens and refuses the old key's, even a token
//! already accepted (and remembered) before, and a broken JWKS keeps the
//! last good keys. Each change is waited for by polling, within a bound.

use groupd::pb;
use serde_json::json;
use tonic::{Code, Status};

use super::{
    files::{AuthFiles, authorized, bearer, token_by},
    served::{Served, eventually},
};
use crate::helpers::{credentials, *};

/// What the server logs when it refuses a rewritten roles file.
const ROLES_REFUSED: &str = "the roles file is refused; the last good roles are kept";
/// What the server logs when it refuses a rewritten JWKS file.
const JWKS_REFUSED: &str = "the JWKS file is refused; the last good keys are kept";

pub async fn roles_file_grants_and_revocations_apply_while_serving_and_a_broken_file_is_ignored(
    backend: Backend,
) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        files.write_roles(&json!({"someone-else": ["groups.admin"]}));
        let served = Served::start(&app, &files.flags("jwt")).await;
        let client = served.client().await;
        // The token stays the same throughout: only the file changes.
        let late = bearer(&files.token("late", &[]));
        let mut attempts = 0;
        let mut create = move || {
            attempts += 1;
            let mut client = client.clone();
            let request = authorized(
                &late,
                pb::CreateGroupRequest {
                    group: Some(named(&format!("attempt-{attempts}"))),
                    ..Default::default()
                },
            );
            async move {
                client
                    .create_group(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        };
        let refused = |result: Result<pb::Group, Status>| {
            let status = result.expect_err("created without groups.creator");
            assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
        };

        refused(create().await);

        // Granted: within a few polls of the file, the same token creates.
        files.write_roles(&json!({"late": ["groups.creator"]}));
        let created = eventually("the grant", || {
            let attempt = create();
            async move {
                match attempt.await {
                    Ok(group) => Some(group),
                    Err(status) => {
                        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                        None
                    }
                }
            }
        })
        .await;
        assert_eq!(created.created_by, "late");
        assert_eq!(ids(&created.admins), ["late"]);

        // A broken file is refused, once it was read, and the grant stays.
        files.break_roles();
        served
            .child
            .wait_for_log(1, |event| event["message"] == ROLES_REFUSED)
            .await;
        let kept = create().await;
        assert!(kept.is_ok(), "the last good roles were dropped: {kept:?}");

        // Revoked: the same token is refused again.
        files.write_roles(&json!({"late": []}));
        eventually("the revocation", || {
            let attempt = create();
            async move { attempt.await.err() }
        })
        .await;
        refused(create().await);
    })
    .await;
}

pub async fn a_rotated_jwks_accepts_the_new_key_refuses_the_old_and_survives_a_broken_file(
    backend: Backend,
) {
    run_scenario(backend, &[], |app| async move {
        let files = AuthFiles::new();
        let served = Served::start(&app, &files.flags("jwt")).await;
        let client = served.client().await;
        let list = move |token: &str| {
            let mut client = client.clone();
            let request = authorized(&bearer(token), pb::ListGroupsRequest::default());
            async move { client.list_groups(request).await.map(drop) }
        };
        let refused = |result: Result<(), Status>| {
            let status = result.expect_err("a token of a key the JWKS no longer holds");
            assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");
        };

        let old = files.token("root", &["groups.admin"]);
        let new_key = credentials::key(credentials::KeyAlgorithm::Es256);
        let new = token_by(&new_key, "root", &["groups.admin"]);
        assert_ne!(files.key.kid(), new_key.kid());
        // Twice, so that the old token is remembered as verified.
        list(&old).await.unwrap();
        list(&old).await.unwrap();
        refused(list(&new).await);

        files.write_jwks(&[&new_key]);
        eventually("the new key", || {
            let attempt = list(&new);
            async move { attempt.await.ok() }
        })
        .await;
        // The old key is gone: its token, accepted a moment ago, is not.
        refused(list(&old).await);

        // A broken JWKS keeps the keys in use.
        files.break_jwks();
        served
            .child
            .wait_for_log(1, |event| event["message"] == JWKS_REFUSED)
            .await;
        list(&new).await.unwrap();
        refused(list(&old).await);
    })
    .await;
}
