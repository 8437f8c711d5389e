//! CreateGroup: ids and the fields it returns, validation, name and id
//! uniqueness, `validate_only` and `request_id` retries. One file per
//! theme; the check that nothing was stored, which they share, is here.

mod ids_and_fields;
mod uniqueness;
mod validate_only_and_request_id;
mod validation;

use groupd::pb;

use crate::helpers::*;

/// Asserts that no group at all is stored, deleted ones included.
async fn assert_no_groups(app: &TestApp) {
    let page = list(
        app,
        pb::ListGroupsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        page.groups.is_empty(),
        "groups were stored: {:?}",
        page.groups
    );
    assert_eq!(page.total_size, 0);
}
