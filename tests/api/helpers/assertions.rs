//! Assertions on gRPC answers and on stored groups.

use groupd::pb;
use tonic::{Code, Status};
use tonic_types::{FieldViolation, StatusExt};

use super::{TestApp, changes, labels_of, try_get_view};

/// The ErrorInfo domain every groupd error carries.
pub const DOMAIN: &str = "groups.v1";

/// The principal recorded as creator and updater until authentication lands.
pub const ANONYMOUS: &str = "anonymous";

/// A group and the length of its history, to prove that a rejected write
/// changed nothing.
#[derive(Debug)]
pub struct Snapshot {
    pub group: pb::Group,
    pub history: usize,
}

/// Records the stored state of a group.
pub async fn snapshot(app: &TestApp, id: &str) -> Snapshot {
    Snapshot {
        group: try_get_view(app, id, pb::GroupView::Full)
            .await
            .unwrap_or_else(|status| panic!("GetGroup {id} failed: {status:?}")),
        history: changes(app, id).await.len(),
    }
}

/// Asserts that the group is exactly as snapshotted: same etag, same fields,
/// no new history entry.
pub async fn assert_unchanged(app: &TestApp, before: &Snapshot) {
    let after = snapshot(app, &before.group.id).await;
    assert_eq!(
        after.group.etag, before.group.etag,
        "a rejected or no-op write changed the etag"
    );
    assert_eq!(
        after.group, before.group,
        "a rejected or no-op write changed the group"
    );
    assert_eq!(
        after.history, before.history,
        "a rejected or no-op write appended a history entry"
    );
}

/// Asserts the code, and an ErrorInfo with `reason` in domain `groups.v1`.
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(
        status.code(),
        code,
        "expected {code:?}/{reason}, got {status:?}"
    );
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "ErrorInfo reason of {status:?}");
    assert_eq!(info.domain, DOMAIN, "ErrorInfo domain of {status:?}");
}

/// The field violations of a status's BadRequest.
pub fn violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
        .field_violations
}

/// Asserts INVALID_ARGUMENT with reason INVALID_ARGUMENT and a BadRequest
/// field violation that `wanted` accepts; `expected` describes it for the
/// failure message.
#[track_caller]
fn assert_invalid_where(status: &Status, expected: &str, wanted: impl Fn(&FieldViolation) -> bool) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let violations = violations(status);
    assert!(
        violations.iter().any(wanted),
        "expected {expected}, got {violations:?}"
    );
}

/// Asserts INVALID_ARGUMENT with reason INVALID_ARGUMENT and a BadRequest
/// field violation on exactly `field`.
#[track_caller]
pub fn assert_invalid_argument(status: &Status, field: &str) {
    let expected = format!("a field violation on {field:?}");
    assert_invalid_where(status, &expected, |v| v.field == field);
}

/// Asserts INVALID_ARGUMENT with a field violation on a field starting with
/// `prefix` (for fields whose index or key the behaviour doc leaves open).
#[track_caller]
pub fn assert_invalid_argument_on(status: &Status, prefix: &str) {
    let expected = format!("a field violation under {prefix:?}");
    assert_invalid_where(status, &expected, |v| v.field.starts_with(prefix));
}

/// Asserts INVALID_ARGUMENT with a violation on `group.labels` (or
/// `group.labels[...]`) that names `key` in its field or description.
#[track_caller]
pub fn assert_invalid_label(status: &Status, key: &str) {
    let expected = format!("a violation on group.labels naming {key:?}");
    assert_invalid_where(status, &expected, |v| {
        v.field.starts_with("group.labels")
            && (v.field.contains(key) || v.description.contains(key))
    });
}

/// Asserts INVALID_ARGUMENT with a violation on `update_mask` whose
/// description quotes `path`.
#[track_caller]
pub fn assert_bad_mask_path(status: &Status, path: &str) {
    let expected = format!("an update_mask violation quoting {path:?}");
    assert_invalid_where(status, &expected, |v| {
        v.field == "update_mask" && v.description.contains(path)
    });
}

/// Asserts NOT_FOUND / GROUP_NOT_FOUND with the group id in the metadata.
#[track_caller]
pub fn assert_not_found(status: &Status, id: &str) {
    assert_error(status, Code::NotFound, "GROUP_NOT_FOUND");
    assert_metadata_id(status, id);
}

/// Asserts that the ErrorInfo metadata names the group `id`.
#[track_caller]
pub fn assert_metadata_id(status: &Status, id: &str) {
    let metadata = status
        .get_details_error_info()
        .map(|info| info.metadata)
        .unwrap_or_default();
    assert_eq!(
        metadata.get("id").map(String::as_str),
        Some(id),
        "ErrorInfo metadata id of {status:?}"
    );
}

/// Asserts ALREADY_EXISTS with the given reason.
#[track_caller]
pub fn assert_already_exists(status: &Status, reason: &str) {
    assert_error(status, Code::AlreadyExists, reason);
}

/// Asserts ABORTED / ETAG_MISMATCH.
#[track_caller]
pub fn assert_etag_mismatch(status: &Status) {
    assert_error(status, Code::Aborted, "ETAG_MISMATCH");
}

/// Asserts that an etag is in RFC 7232 quoted form.
#[track_caller]
pub fn assert_quoted_etag(etag: &str) {
    assert!(
        etag.len() >= 3 && etag.starts_with('"') && etag.ends_with('"'),
        "etag {etag:?} is not in quoted form"
    );
}

/// Asserts that every writable field but those in `changed` (proto names)
/// is as in `before`, and that the output-only creation fields stayed.
#[track_caller]
pub fn assert_only_changed(before: &pb::Group, after: &pb::Group, changed: &[&str]) {
    let same = |field: &str| !changed.contains(&field);
    if same("name") {
        assert_eq!(after.name, before.name, "name changed");
    }
    assert_eq!(after.scope, before.scope, "scope changed");
    if same("description") {
        assert_eq!(after.description, before.description, "description changed");
    }
    if same("email") {
        assert_eq!(after.email, before.email, "email changed");
    }
    if same("members") {
        assert_eq!(after.members, before.members, "members changed");
    }
    if same("admins") {
        assert_eq!(after.admins, before.admins, "admins changed");
    }
    if same("member_of") {
        assert_eq!(after.member_of, before.member_of, "member_of changed");
    }
    if same("assigned_roles") {
        assert_eq!(
            after.assigned_roles, before.assigned_roles,
            "assigned_roles changed"
        );
    }
    if same("inactive") {
        assert_eq!(after.inactive, before.inactive, "inactive changed");
    }
    if same("provenance") {
        assert_eq!(after.provenance, before.provenance, "provenance changed");
    }
    if same("labels") {
        assert_eq!(labels_of(after), labels_of(before), "labels changed");
    }
    assert_eq!(after.state(), pb::State::Active, "state changed");
    assert_eq!(after.create_time, before.create_time, "create_time changed");
    assert_eq!(after.created_by, before.created_by, "created_by changed");
}
