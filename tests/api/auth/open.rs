//! What stays open without credentials when authentication is on: gRPC
//! health, server reflection (the schema only), `/metrics` and
//! `/openapi.json`; and that the API itself does not.

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use super::{Auth, Who};
use crate::helpers::*;

pub(super) async fn health_reflection_metrics_and_the_schema_need_no_credentials(
    app: TestApp,
    auth: Auth,
) {
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    let listed = answers
        .message()
        .await
        .unwrap()
        .expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(services)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    assert!(
        services
            .service
            .iter()
            .any(|s| s.name == "groups.v1.GroupService"),
        "{services:?}"
    );

    for path in ["/metrics", "/openapi.json"] {
        let reply = send(app.http.get(app.url(path))).await;
        assert_eq!(reply.status, 200, "{path}");
    }

    // The API does not: over gRPC and HTTP, without credentials, nothing.
    let status = auth.get(&app, Who::Nobody, "any").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let reply = send(auth.http(&app, Who::Nobody, reqwest::Method::GET, "/v1/groups")).await;
    assert_eq!(reply.status, 401);
    let metrics = send(app.http.get(app.url("/metrics"))).await;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.lines()
            .any(|line| line.contains("UNAUTHENTICATED") && line.contains("GetGroup")),
        "the refusals are counted by code: {text}"
    );
}
