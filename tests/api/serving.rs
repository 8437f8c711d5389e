//! What the gRPC port serves besides GroupService's data: health,
//! reflection (v1 and v1alpha), and graceful shutdown.

use std::time::Duration;

use groupd::pb;

use prost::Message as _;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

both_backends!(
    health_reports_serving_for_the_server_and_the_group_service,
    reflection_v1_lists_and_describes_the_group_service,
    reflection_v1alpha_lists_and_describes_the_group_service,
);

both_backends!(
    args ["--shutdown-delay", "200ms"];
    graceful_shutdown_reports_not_serving_then_run_returns_ok,
);

// A window far longer than the checks made inside it can take on a loaded
// machine; the test ends the server itself once they are done.
both_backends!(
    args ["--shutdown-delay", "300s"];
    during_the_shutdown_delay_health_answers_not_serving_and_calls_are_still_served,
);

// A database outage can only be staged on PostgreSQL. The refused database
// answers at once, so the connect timeout stays at its default: a short one
// would only risk failing the reconnection after the outage on a loaded
// machine.
postgres_only!(
    args ["--db-health-interval", "200ms"];
    a_database_outage_answers_unavailable_and_health_follows_the_database,
);

// Sessions ended under the pool (a restart, a failover) are staged on
// PostgreSQL, whose server can end them.
postgres_only!(calls_after_the_database_ended_every_session_succeed);

const SERVICE: &str = "groups.v1.GroupService";

/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn check(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    let answer = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap_or_else(|status| panic!("health check of {service:?} failed: {status:?}"))
        .into_inner();
    ServingStatus::try_from(answer.status).expect("a known serving status")
}

async fn health_reports_serving_for_the_server_and_the_group_service(app: TestApp) {
    assert!(app.addr.ip().is_loopback());
    assert_ne!(app.addr.port(), 0, "grpc_addr() reports the bound port");
    let mut health = HealthClient::new(app.channel.clone());

    assert_eq!(check(&mut health, "").await, ServingStatus::Serving);
    assert_eq!(check(&mut health, SERVICE).await, ServingStatus::Serving);

    let status = health
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

async fn reflection_v1_lists_and_describes_the_group_service(app: TestApp) {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let mut client = ServerReflectionClient::new(app.channel.clone());
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(SERVICE.to_owned())),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let listed = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::ListServicesResponse(listed)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|name| name == SERVICE), "{names:?}");
    assert!(
        names.iter().any(|name| name == "grpc.health.v1.Health"),
        "{names:?}"
    );

    let described = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    assert_describes_group_service(&files.file_descriptor_proto);
}

async fn reflection_v1alpha_lists_and_describes_the_group_service(app: TestApp) {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let mut client = ServerReflectionClient::new(app.channel.clone());
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(SERVICE.to_owned())),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let listed = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::ListServicesResponse(listed)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|name| name == SERVICE), "{names:?}");

    let described = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    assert_describes_group_service(&files.file_descriptor_proto);
}

/// Asserts that the encoded files include groups/v1/groups.proto with the
/// GroupService and its RPCs, as grpcurl `describe` needs.
fn assert_describes_group_service(encoded: &[Vec<u8>]) {
    let files: Vec<prost_types::FileDescriptorProto> = encoded
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let file = files
        .iter()
        .find(|file| file.name() == "groups/v1/groups.proto")
        .unwrap_or_else(|| {
            panic!(
                "groups/v1/groups.proto not among {:?}",
                files.iter().map(|f| f.name()).collect::<Vec<_>>()
            )
        });
    assert_eq!(file.package(), "groups.v1");
    let service = file
        .service
        .iter()
        .find(|service| service.name() == "GroupService")
        .expect("GroupService is described");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    for rpc in ["CreateGroup", "GetGroup", "UpdateGroup", "ListGroupChanges"] {
        assert!(methods.contains(&rpc), "{rpc} missing from {methods:?}");
    }
}

/// Opens a health Watch of the server's overall status and checks that it
/// starts SERVING.
async fn watch_overall(
    health: &mut HealthClient<tonic::transport::Channel>,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    watch
}

async fn graceful_shutdown_reports_not_serving_then_run_returns_ok(app: TestApp) {
    let group = create_named(&app, "survivor").await;
    let server = app.take_server().expect("the server task");
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = watch_overall(&mut health).await;

    app.shutdown.cancel();

    // The watch reports NOT_SERVING as soon as shutdown begins.
    wait_for_status(&mut watch, ServingStatus::NotServing).await;

    // An open Watch is an in-flight call: end it so the drain can finish.
    // The delay then ends, and run() returns (nothing here has to happen
    // within the delay).
    drop(watch);
    let outcome = tokio::time::timeout(HANG_GUARD, server)
        .await
        .unwrap_or_else(|_| panic!("run() did not return within {HANG_GUARD:?} of the cancel"))
        .expect("the server task did not panic");
    assert!(outcome.is_ok(), "run() returned {outcome:?}");

    let after = try_get(&app, &group.id).await;
    assert!(
        after.is_err(),
        "the server still answers after run() returned"
    );
}

async fn during_the_shutdown_delay_health_answers_not_serving_and_calls_are_still_served(
    app: TestApp,
) {
    let group = create_named(&app, "survivor").await;
    let server = app.take_server().expect("the server task");
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = watch_overall(&mut health).await;
    let mut service_watch = health
        .watch(HealthCheckRequest {
            service: SERVICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();

    app.shutdown.cancel();

    // Both statuses turn NOT_SERVING (one after the other: each is awaited).
    wait_for_status(&mut watch, ServingStatus::NotServing).await;
    wait_for_status(&mut service_watch, ServingStatus::NotServing).await;
    // The delay keeps health answering, now NOT_SERVING, so that load
    // balancers notice...
    assert_eq!(check(&mut health, "").await, ServingStatus::NotServing);
    assert_eq!(check(&mut health, SERVICE).await, ServingStatus::NotServing);
    // ...while calls are still served, and new connections accepted.
    assert_eq!(get(&app, &group.id).await, group);
    let mut fresh = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .expect("a new connection during the delay"),
    );
    assert_eq!(check(&mut fresh, "").await, ServingStatus::NotServing);
    let reply = http_get(&app, &format!("/v1/groups/{}", group.id)).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // Still within the delay: run() has not returned.
    assert!(!server.is_finished(), "run() returned during the delay");
    // The delay's end is the other test's business: stop this server now.
    server.abort();
    let ended = tokio::time::timeout(HANG_GUARD, server)
        .await
        .expect("the aborted server task ended");
    assert!(
        ended
            .as_ref()
            .is_err_and(tokio::task::JoinError::is_cancelled),
        "{ended:?}"
    );
}

/// Waits (bounded against hangs) until a health Watch reports `wanted`.
async fn wait_for_status(
    watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: ServingStatus,
) {
    let waited = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match watch.message().await {
                Ok(Some(update)) if update.status() == wanted => return,
                Ok(Some(_)) => {}
                other => panic!("the health Watch ended before {wanted:?}: {other:?}"),
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "health never reported {wanted:?}");
}

async fn a_database_outage_answers_unavailable_and_health_follows_the_database(app: TestApp) {
    let group = create_named(&app, "durable").await;
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: SERVICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    wait_for_status(&mut watch, ServingStatus::Serving).await;

    app.set_postgres_reachable(false).await;

    let status = try_get(&app, &group.id).await.unwrap_err();
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    let status = try_create(&app, named("during-outage")).await.unwrap_err();
    assert_error(&status, Code::Unavailable, "DATABASE_UNAVAILABLE");
    wait_for_status(&mut watch, ServingStatus::NotServing).await;

    app.set_postgres_reachable(true).await;

    wait_for_status(&mut watch, ServingStatus::Serving).await;
    drop(watch);
    assert_eq!(get(&app, &group.id).await, group, "the data survived");
    create_named(&app, "after-outage").await;
    let status = try_get(&app, "no-such-group").await.unwrap_err();
    assert_not_found(&status, "no-such-group");
}

async fn calls_after_the_database_ended_every_session_succeed(app: TestApp) {
    let group = create_named(&app, "survivor").await;
    // Concurrent calls open several pooled connections.
    let warm = (0..16).map(|_| try_get(&app, &group.id));
    for got in futures_util::future::join_all(warm).await {
        assert_eq!(got.unwrap(), group);
    }

    app.end_postgres_sessions().await;

    // Each pooled connection is now closed, and no connection is pinged
    // before a call uses it: a call's first statement that meets a closed
    // one is tried again on another, so no call fails.
    for _ in 0..16 {
        assert_eq!(
            try_get_view(&app, &group.id, pb::GroupView::Basic)
                .await
                .unwrap()
                .etag,
            group.etag
        );
        assert_eq!(try_get(&app, &group.id).await.unwrap(), group);
    }
    let mut changed = group.clone();
    changed.description = "after the restart".to_owned();
    let updated = try_update(&app, changed, Some(&["description"]))
        .await
        .unwrap();
    assert_eq!(updated.description, "after the restart");
    assert_eq!(get(&app, &group.id).await, updated);
}
