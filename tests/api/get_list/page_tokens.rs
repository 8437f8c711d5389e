//! Page tokens that are refused: one tampered with or made up, one whose
//! cursor was forged under its old MAC, and one reused with a different
//! order_by or show_deleted. The genuine token still goes on where its page
//! ended.

use groupd::pb;

use super::{create_many, names};
use crate::helpers::*;

both_backends!(
    list_rejects_a_tampered_or_garbage_page_token,
    list_rejects_a_page_token_whose_cursor_was_forged_under_its_old_mac,
    list_rejects_a_page_token_reused_with_a_different_order_by,
    list_rejects_a_page_token_reused_with_a_different_show_deleted,
);

/// Returns a token that differs from `token` in one character.
fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn list_rejects_a_tampered_or_garbage_page_token(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(!first.next_page_token.is_empty());

    for token in [
        tamper(&first.next_page_token),
        format!("{}x", first.next_page_token),
        "not-a-token".to_owned(),
        "%%%".to_owned(),
    ] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }
}

async fn list_rejects_a_page_token_whose_cursor_was_forged_under_its_old_mac(app: TestApp) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    for name in ["alpha", "bravo", "charlie"] {
        create_named(&app, name).await;
    }
    let request = pb::ListGroupsRequest {
        page_size: 1,
        order_by: "name".to_owned(),
        ..Default::default()
    };
    let first = list(&app, request.clone()).await;
    assert_eq!(names(&first.groups), ["alpha"]);

    // The token is JSON followed by a 16-byte MAC. Move its cursor past
    // "bravo" and keep the old MAC: still valid JSON, for the same query.
    let bytes = URL_SAFE_NO_PAD
        .decode(&first.next_page_token)
        .expect("a base64url token");
    let (payload, mac) = bytes.split_at(bytes.len() - 16);
    let payload = String::from_utf8(payload.to_vec()).expect("a JSON payload");
    assert_eq!(payload.matches("\"alpha\"").count(), 1, "{payload}");
    let forged_payload = payload.replace("\"alpha\"", "\"bz\"");
    serde_json::from_str::<serde_json::Value>(&forged_payload).expect("still JSON");
    let mut forged = forged_payload.into_bytes();
    forged.extend_from_slice(mac);
    let forged = URL_SAFE_NO_PAD.encode(forged);

    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_token: forged,
            ..request.clone()
        },
    )
    .await
    .expect_err("a forged cursor is refused, not followed (it would skip bravo)");
    assert_invalid_argument(&status, "page_token");

    // The genuine token still continues where the first page ended.
    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_token: first.next_page_token,
            ..request
        },
    )
    .await;
    assert_eq!(names(&second.groups), ["bravo"]);
}

async fn list_rejects_a_page_token_reused_with_a_different_order_by(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;

    for order_by in ["name desc", "create_time", ""] {
        let status = try_list(
            &app,
            pb::ListGroupsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                order_by: order_by.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_invalid_argument(&status, "page_token");
    }

    // The same request goes on fine.
    let second = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            order_by: "name".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&second.groups), ["g0001"]);
}

async fn list_rejects_a_page_token_reused_with_a_different_show_deleted(app: TestApp) {
    create_many(&app, 3, "g").await;
    let first = list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let status = try_list(
        &app,
        pb::ListGroupsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_argument(&status, "page_token");
}
