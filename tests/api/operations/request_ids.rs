//! Request ids: a caller's `x-request-id` is echoed back, and one is
//! generated when the caller sends none, a new one per call, over gRPC (on
//! success and on error) and over HTTP (the gateway's own refusals
//! included).

use groupd::pb;
use tonic::Code;

use crate::helpers::*;

both_backends!(request_ids_are_taken_or_generated_and_echoed_over_grpc_and_http);

async fn request_ids_are_taken_or_generated_and_echoed_over_grpc_and_http(app: TestApp) {
    let group = create_named(&app, "traced").await;
    let mut client = app.client();

    // gRPC: the caller's id comes back in the response metadata, on
    // success and on error.
    let mut request = tonic::Request::new(pb::GetGroupRequest {
        id: group.id.clone(),
        view: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-1".parse().unwrap());
    let answer = client.get_group(request).await.expect("GetGroup");
    assert_eq!(
        answer.metadata().get("x-request-id").unwrap(),
        "caller-chosen-1"
    );
    let mut request = tonic::Request::new(pb::GetGroupRequest {
        id: "no-such-group".to_owned(),
        view: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-2".parse().unwrap());
    let status = client.get_group(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "caller-chosen-2"
    );

    // Without one, the server generates a UUID, a new one per call.
    let mut generated = Vec::new();
    for _ in 0..2 {
        let answer = client
            .get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view: 0,
            })
            .await
            .expect("GetGroup");
        let id = answer.metadata().get("x-request-id").unwrap();
        let id = uuid::Uuid::parse_str(id.to_str().unwrap()).expect("a UUID");
        generated.push(id);
    }
    assert_ne!(generated[0], generated[1]);

    // HTTP: the same, in headers; the gateway's own refusals too.
    let reply = send(
        app.request(reqwest::Method::GET, &format!("/v1/groups/{}", group.id))
            .header("x-request-id", "http-caller-1"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some("http-caller-1"));
    let reply = send(
        app.request(reqwest::Method::GET, "/v1/no/such/route")
            .header("x-request-id", "http-caller-2"),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("http-caller-2"));
    let reply = http_get(&app, &format!("/v1/groups/{}", group.id)).await;
    let generated = reply.header("x-request-id").expect("a generated id");
    uuid::Uuid::parse_str(generated).expect("a UUID");
}
