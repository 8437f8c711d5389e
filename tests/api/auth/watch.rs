//! The change stream over HTTP with authentication on: refused without
//! credentials before anything streams, and each caller's stream shows the
//! groups that caller may read.

use reqwest::Method;
use tonic::Code;

use super::{Auth, Who};
use crate::{
    helpers::*,
    http::watch::{Stream, watch},
};

pub(super) async fn the_change_stream_over_http_needs_credentials_and_shows_what_each_caller_may_read(
    app: TestApp,
    auth: Auth,
) {
    for accept in ["application/x-ndjson", "text/event-stream"] {
        let reply = send(
            auth.http(&app, Who::Nobody, Method::GET, &watch("?startFromNow=true"))
                .header("accept", accept),
        )
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("Bearer"), "{challenge:?}");
    }

    let path = watch("?startFromNow=true");
    let mut reader = Stream::open(
        auth.http(&app, Who::Reader, Method::GET, &path),
        "application/x-ndjson",
    )
    .await;
    let mut member = Stream::open(
        auth.http(&app, Who::Member, Method::GET, &path),
        "application/x-ndjson",
    )
    .await;
    let closed = auth.create(&app, Who::Root, named("closed")).await.unwrap();
    let mut shared = named("shared");
    shared.members = members(&["member"]);
    let shared = auth.create(&app, Who::Root, shared).await.unwrap();

    // groups.reader reads every group; a member only its own.
    assert_eq!(reader.change().await["groupId"], closed.id.as_str());
    assert_eq!(reader.change().await["groupId"], shared.id.as_str());
    assert_eq!(member.change().await["groupId"], shared.id.as_str());
}
