//! The HTTP port's operational endpoints: `/metrics` counts calls over both
//! transports, and `/openapi.json` serves the document `groupd openapi`
//! prints.

use serde_json::json;
use tonic::Code;

use crate::helpers::*;

both_backends!(
    metrics_count_grpc_and_http_calls_by_method_and_code,
    the_served_openapi_document_is_the_generated_one,
);

async fn metrics_count_grpc_and_http_calls_by_method_and_code(app: TestApp) {
    // Two gRPC calls: one that works, one that fails.
    let created = create_named(&app, "counted").await;
    assert_eq!(
        try_get(&app, "missing").await.unwrap_err().code(),
        Code::NotFound
    );
    // Four HTTP requests: one that works, one the RPC refuses, one the
    // gateway refuses before any RPC runs, and one no route matches.
    let ok = app
        .http
        .get(app.url(&format!("/v1/groups/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let missing = app
        .http
        .get(app.url("/v1/groups/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let malformed = app
        .http
        .post(app.url("/v1/groups"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let unrouted = app.http.get(app.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(unrouted.status(), 404);

    let page = metrics_page(&app).await;
    let count = |transport: &str, method: &str, code: &str| {
        sample(
            &page,
            &format!(
                "groupd_requests_total{{transport=\"{transport}\",method=\"{method}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(count("grpc", "CreateGroup", "OK"), Some(1.0), "{page}");
    assert_eq!(count("grpc", "GetGroup", "NOT_FOUND"), Some(1.0), "{page}");
    assert_eq!(count("http", "GetGroup", "OK"), Some(1.0), "{page}");
    assert_eq!(count("http", "GetGroup", "NOT_FOUND"), Some(1.0), "{page}");
    assert_eq!(
        count("http", "CreateGroup", "INVALID_ARGUMENT"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(count("http", "unmatched", "NOT_FOUND"), Some(1.0), "{page}");
    // Over HTTP the call is counted once, under http, not also under grpc.
    assert_eq!(count("grpc", "GetGroup", "OK"), None, "{page}");
    // Latency histograms, per transport and method.
    let histogram_count = |transport: &str, method: &str| {
        sample(
            &page,
            &format!(
                "groupd_request_duration_seconds_count{{transport=\"{transport}\",method=\"{method}\"}}"
            ),
        )
    };
    assert_eq!(histogram_count("grpc", "GetGroup"), Some(1.0), "{page}");
    assert_eq!(histogram_count("http", "GetGroup"), Some(2.0), "{page}");
    assert!(page.trim_end().ends_with("# EOF"));
}

async fn the_served_openapi_document_is_the_generated_one(app: TestApp) {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(served, groupd::http::openapi::contract_document().unwrap());
    assert_eq!(served["openapi"], json!("3.0.3"));
    assert!(served["paths"]["/v1/groups/{id}"]["patch"].is_object());
}
