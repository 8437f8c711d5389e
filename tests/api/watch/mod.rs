//! WatchGroupChanges: one ordered, resumable stream of every committed
//! change. `order` holds the guarantees (commit order, no gap, no repeat,
//! resuming, list-then-watch, a write held open); `faults` what ends a
//! stream (shutdown, a database outage, a slow reader, retention, limits);
//! `replicas` two servers on one database; `requests` the request's
//! options and its refusals; `upgrade` the migration of a database with
//! history.

mod faults;
mod order;
mod replicas;
mod requests;
mod upgrade;

use std::time::Duration;

use groupd::pb::{self, watch_group_changes_response::Event};
use tonic::{Code, Status, Streaming};

use crate::helpers::*;

/// How long a test waits for a message it expects: a bound against hangs,
/// not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(15);

/// A request starting after `cursor`.
pub fn after(cursor: &str) -> pb::WatchGroupChangesRequest {
    pb::WatchGroupChangesRequest {
        cursor: cursor.to_owned(),
        ..Default::default()
    }
}

/// A request starting now.
pub fn from_now() -> pb::WatchGroupChangesRequest {
    pb::WatchGroupChangesRequest {
        start_from_now: true,
        ..Default::default()
    }
}

/// A request starting at the oldest change retained.
pub fn from_oldest() -> pb::WatchGroupChangesRequest {
    pb::WatchGroupChangesRequest {
        start_from_oldest: true,
        ..Default::default()
    }
}

/// Opens a stream with `client`, panicking on refusal.
pub async fn open_with(
    client: &mut pb::group_service_client::GroupServiceClient<tonic::transport::Channel>,
    request: pb::WatchGroupChangesRequest,
) -> Streaming<pb::WatchGroupChangesResponse> {
    client
        .watch_group_changes(request)
        .await
        .unwrap_or_else(|status| panic!("WatchGroupChanges refused: {status:?}"))
        .into_inner()
}

/// Opens a stream on the app's server.
pub async fn open(
    app: &TestApp,
    request: pb::WatchGroupChangesRequest,
) -> Streaming<pb::WatchGroupChangesResponse> {
    open_with(&mut app.client(), request).await
}

/// The refusal of a stream that should not open (or that ends at once).
pub async fn refused(app: &TestApp, request: pb::WatchGroupChangesRequest) -> Status {
    match app.client().watch_group_changes(request).await {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            match tokio::time::timeout(PATIENCE, stream.message()).await {
                Ok(Err(status)) => status,
                other => panic!("the stream was not refused: {other:?}"),
            }
        }
    }
}

/// One change as a test compares it: group id, version, kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seen {
    pub group_id: String,
    pub version: i64,
    pub kind: pb::ChangeKind,
}

/// A change message's change, with its cursor.
pub fn seen(message: &pb::WatchGroupChangesResponse) -> Option<(Seen, String)> {
    match &message.event {
        Some(Event::Change(change)) => {
            let group = change.group.as_ref().expect("a change carries its group");
            assert_eq!(group.id, message.group_id, "group_id is the change's group");
            Some((
                Seen {
                    group_id: message.group_id.clone(),
                    version: change.version,
                    kind: change.kind(),
                },
                message.cursor.clone(),
            ))
        }
        Some(Event::Heartbeat(_)) => None,
        None => panic!("a message with neither a change nor a heartbeat"),
    }
}

/// The next message, within [`PATIENCE`].
pub async fn next_message(
    stream: &mut Streaming<pb::WatchGroupChangesResponse>,
) -> Result<pb::WatchGroupChangesResponse, Status> {
    match tokio::time::timeout(PATIENCE, stream.message()).await {
        Ok(Ok(Some(message))) => Ok(message),
        Ok(Ok(None)) => panic!("the stream ended without a status"),
        Ok(Err(status)) => Err(status),
        Err(_) => panic!("no message within {PATIENCE:?}"),
    }
}

/// The next `count` changes (heartbeats skipped), with their cursors.
pub async fn changes_of(
    stream: &mut Streaming<pb::WatchGroupChangesResponse>,
    count: usize,
) -> Vec<(Seen, String)> {
    let mut found = Vec::with_capacity(count);
    while found.len() < count {
        let message = next_message(stream)
            .await
            .unwrap_or_else(|status| panic!("the stream failed: {status:?}"));
        if let Some(change) = seen(&message) {
            found.push(change);
        }
    }
    found
}

/// The changes of `found`, without cursors.
pub fn plain(found: &[(Seen, String)]) -> Vec<Seen> {
    found.iter().map(|(change, _)| change.clone()).collect()
}

/// What the stream sends within `quiet` (changes only), expecting it to
/// stay open.
pub async fn drain_for(
    stream: &mut Streaming<pb::WatchGroupChangesResponse>,
    quiet: Duration,
) -> Vec<Seen> {
    let mut found = Vec::new();
    let until = tokio::time::Instant::now() + quiet;
    while let Ok(message) = tokio::time::timeout_at(until, stream.message()).await {
        let message = message
            .unwrap_or_else(|status| panic!("the stream failed: {status:?}"))
            .expect("the stream stays open");
        if let Some((change, _)) = seen(&message) {
            found.push(change);
        }
    }
    found
}

/// A change of `id` at `version`.
pub fn change(id: &str, version: i64, kind: pb::ChangeKind) -> Seen {
    Seen {
        group_id: id.to_owned(),
        version,
        kind,
    }
}

/// The cursor of a listing made now.
pub async fn listing_cursor(app: &TestApp) -> String {
    let cursor = list(app, pb::ListGroupsRequest::default()).await.cursor;
    assert!(!cursor.is_empty(), "ListGroups gives a cursor");
    cursor
}

/// Asserts `status` is `code` with ErrorInfo `reason`.
pub fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_error(status, code, reason);
}

/// The open streams the server's metrics count.
pub async fn open_streams(app: &TestApp) -> i64 {
    let page = metrics_page(app).await;
    sample(&page, "groupd_watch_streams")
        .map(|open| open as i64)
        .unwrap_or_else(|| panic!("no groupd_watch_streams in the metrics"))
}

/// Sets group `id`'s description to `text` with `client` (a writer task's
/// own client), panicking on error.
pub async fn describe_with(
    client: &mut pb::group_service_client::GroupServiceClient<tonic::transport::Channel>,
    id: &str,
    text: String,
) {
    let mut group = patch(id);
    group.description = text;
    client
        .update_group(pb::UpdateGroupRequest {
            group: Some(group),
            update_mask: Some(mask(&["description"])),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("UpdateGroup of {id} failed: {status:?}"));
}
