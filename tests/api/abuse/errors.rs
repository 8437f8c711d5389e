//! Bounded errors and strict input. A request with thousands of problems
//! or a value of a megabyte gets an error a gRPC client with the usual
//! 8 KiB limit on trailers can read, and log lines of bounded length; JSON
//! that repeats a key, query text that is not UTF-8, an enum number the
//! contract does not define and a deadline already past are refused,
//! naming the field, and change nothing.

use std::{net::SocketAddr, time::Duration};

use groupd::pb::{self, group_service_client::GroupServiceClient};
use reqwest::{Method, header};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt as _;

use crate::helpers::*;

both_backends!(
    thousands_of_violations_answer_an_error_that_fits_in_8_kib_of_trailers,
    a_megabyte_value_gets_a_short_error_and_short_log_lines,
    a_json_object_repeating_a_key_is_400_naming_the_key_and_changes_nothing,
    query_text_that_is_not_utf8_is_400_naming_the_parameter_and_changes_nothing,
    an_enum_number_the_contract_does_not_define_is_invalid_argument_on_its_field,
    a_zero_grpc_timeout_is_deadline_exceeded_and_writes_nothing,
);

/// The largest header list (trailers) gRPC clients accept by default:
/// grpc-core's `grpc.max_metadata_size`, counted as HTTP/2 counts a header
/// list (name, value and 32 bytes per entry).
const TRAILER_LIMIT: usize = 8 * 1024;

/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// How many copies of one member the hostile request carries.
const DUPLICATES: usize = 5000;

/// A client that refuses replies whose header lists exceed
/// [`TRAILER_LIMIT`], as grpc-core's clients do.
async fn bounded_client(addr: SocketAddr) -> GroupServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .http2_max_header_list_size(u32::try_from(TRAILER_LIMIT).unwrap())
        .connect()
        .await
        .unwrap();
    GroupServiceClient::new(channel)
}

/// Sends one unary call as raw HTTP/2, with `metadata` as headers, and
/// returns the reply's headers: for an error, the trailers exactly as the
/// server wrote them (an error answer is trailers-only). Unlike tonic's
/// client, it enforces no `grpc-timeout` of its own.
async fn raw_unary(
    addr: SocketAddr,
    method: &str,
    message: &impl prost::Message,
    metadata: &[(&str, &str)],
) -> header::HeaderMap {
    let payload = message.encode_to_vec();
    let mut body = vec![0_u8];
    body.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&payload);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut request = client
        .post(format!("http://{addr}/groups.v1.GroupService/{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers");
    for (name, value) in metadata {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(HANG_GUARD, request.body(body).send())
        .await
        .expect("the server answered")
        .expect("the raw call went through");
    response.headers().clone()
}

/// The size of a header list as HTTP/2 and grpc-core count it, `:status`
/// included.
fn header_list_bytes(headers: &header::HeaderMap) -> usize {
    let status = ":status".len() + "200".len() + 32;
    status
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum::<usize>()
}

/// Asserts the BadRequest of `status` lists a bounded prefix of `total`
/// violations and counts the rest in its last one; returns how many it
/// listed.
#[track_caller]
fn assert_bounded_list(listed: &[(String, String)], total: usize) -> usize {
    assert!(
        listed.len() > 1 && listed.len() <= 101,
        "{} violations listed",
        listed.len()
    );
    let shown = listed.len() - 1;
    let (field, description) = listed.last().unwrap();
    assert_eq!(field, "", "the last violation is about the request");
    assert_eq!(
        description,
        &format!("and {} more violations", total - shown),
        "the last violation counts the unlisted ones"
    );
    shown
}

fn pairs(violations: &[tonic_types::FieldViolation]) -> Vec<(String, String)> {
    violations
        .iter()
        .map(|v| (v.field.clone(), v.description.clone()))
        .collect()
}

/// A CreateGroup request with one 62-character member listed
/// [`DUPLICATES`] times: that many violations but one.
fn flood() -> (String, pb::CreateGroupRequest) {
    let id = "m".repeat(62);
    let request = pb::CreateGroupRequest {
        group: Some(pb::Group {
            name: "flood".to_owned(),
            members: members(&vec![id.as_str(); DUPLICATES]),
            ..Default::default()
        }),
        ..Default::default()
    };
    (id, request)
}

async fn thousands_of_violations_answer_an_error_that_fits_in_8_kib_of_trailers(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let groups = group_count(&app).await;
    let (id, request) = flood();

    // A client with grpc-core's limit reads the error as what it is.
    let mut bounded = bounded_client(app.addr).await;
    let status = bounded.create_group(request.clone()).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let listed = pairs(&violations(&status));
    let shown = assert_bounded_list(&listed, DUPLICATES - 1);
    assert_eq!(listed[0].0, "group.members[1].id");
    assert_eq!(listed[0].1, format!("{id:?} is listed twice"));
    assert!(
        status.message().ends_with("more violations"),
        "{}",
        status.message()
    );

    // On the wire: the trailers as the server wrote them.
    let trailers = raw_unary(app.addr, "CreateGroup", &request, &[]).await;
    assert_eq!(trailers["grpc-status"], "3");
    let size = header_list_bytes(&trailers);
    assert!(
        size < TRAILER_LIMIT,
        "the error took {size} bytes of trailers"
    );
    eprintln!(
        "{DUPLICATES} duplicate members: {size} bytes of trailers \
         (grpc-message {} bytes, grpc-status-details-bin {} bytes), {shown} violations listed",
        trailers["grpc-message"].len(),
        trailers["grpc-status-details-bin"].len()
    );

    // The same list in an update of an existing group: the same bounded
    // error, and the group is as it was.
    let update = pb::UpdateGroupRequest {
        group: Some(pb::Group {
            members: request.group.clone().unwrap().members,
            ..patch(&group.id)
        }),
        update_mask: Some(mask(&["members"])),
        ..Default::default()
    };
    let status = bounded.update_group(update).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_bounded_list(&pairs(&violations(&status)), DUPLICATES - 1);

    // Over HTTP: 400 with a bounded body.
    let body = serde_json::json!({
        "name": "flood",
        "members": vec![serde_json::json!({"id": id}); DUPLICATES],
    });
    let reply = http_call(&app, Method::POST, "/v1/groups", Some(&body)).await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_bounded_list(&http_violations(&reply), DUPLICATES - 1);
    let length = reply.body.to_string().len();
    assert!(length < TRAILER_LIMIT, "the error body took {length} bytes");

    // Several such callers at once, while a well-behaved one keeps
    // creating and reading groups: every well-behaved call succeeds.
    let hostile: Vec<_> = (0..6)
        .map(|_| {
            let mut client = app.client();
            let request = request.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    let status = client.create_group(request.clone()).await.unwrap_err();
                    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                }
            })
        })
        .collect();
    for index in 0..10 {
        let created = create_named(&app, &format!("calm-{index}")).await;
        assert_eq!(get(&app, &created.id).await, created);
    }
    for task in hostile {
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("the hostile callers finished")
            .expect("every hostile call got INVALID_ARGUMENT");
    }

    // Nothing was written but the well-behaved client's groups.
    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, groups + 10);
}

/// A status message bounded by what a caller can read at a glance.
#[track_caller]
fn assert_short(status: &Status) {
    assert!(
        status.message().len() < 300,
        "{} bytes of message: {:.300}",
        status.message().len(),
        status.message()
    );
    let details = status.details().len();
    assert!(details < 2048, "{details} bytes of details");
}

async fn a_megabyte_value_gets_a_short_error_and_short_log_lines(app: TestApp) {
    let group = create_named(&app, "kept").await;
    let before = snapshot(&app, &group.id).await;
    // A groupd of its own, to read its log; on the test's database.
    let mut child = Child::serve(app.database_url(), &[], ChildLog::Keep).await;
    let mut client = child.client().await;
    let huge = "g".repeat(1 << 20);
    let long_request_id = "r".repeat(4096);

    // GetGroup of a megabyte id: NOT_FOUND quoting its beginning, without
    // the id in the metadata, and with a long request id.
    let mut request = tonic::Request::new(pb::GetGroupRequest {
        id: huge.clone(),
        view: 0,
    });
    request
        .metadata_mut()
        .insert("x-request-id", long_request_id.parse().unwrap());
    let status = client.get_group(request).await.unwrap_err();
    assert_error(&status, Code::NotFound, "GROUP_NOT_FOUND");
    assert_short(&status);
    assert!(status.message().contains(&"g".repeat(64)));
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("id"), None);
    // The caller's request id is still echoed as sent.
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        long_request_id.as_str()
    );

    // UpdateGroup and CreateGroup quoting a megabyte id in a violation.
    let status = client
        .update_group(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "x".to_owned(),
                ..patch(&huge)
            }),
            update_mask: Some(mask(&["description"])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "group.id");
    assert_short(&status);
    let status = client
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "big".to_owned(),
                members: members(&[huge.as_str()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "group.members[0].id");
    assert_short(&status);
    let status = client
        .list_groups(pb::ListGroupsRequest {
            order_by: huge.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid_argument(&status, "order_by");
    assert_short(&status);

    // Over HTTP: a 32 KB id in the path, and a 32 KB unknown query
    // parameter the gateway refuses itself.
    let http = reqwest::Client::new();
    let long = "h".repeat(32 * 1024);
    let reply = send(
        http.get(format!("http://{}/v1/groups/{long}", child.http_addr))
            .header("x-request-id", &long_request_id),
    )
    .await;
    assert_http_error(&reply, 404, Code::NotFound, "GROUP_NOT_FOUND");
    assert!(reply.body.to_string().len() < 1024, "{}", reply.body);
    let reply = send(http.get(format!("http://{}/v1/groups?{long}=1", child.http_addr))).await;
    assert_http_invalid(&reply, "hhhh");
    assert!(reply.body.to_string().len() < 2048, "{}", reply.body);

    // Every line the child logged for these calls is short, and shows the
    // beginning of the request id.
    let finished = |event: &serde_json::Value| {
        event["message"] == "call finished" || event["message"] == "request refused by the gateway"
    };
    let lines = child.wait_for_log(6, finished).await;
    for line in &lines {
        let text = line.to_string();
        assert!(
            text.len() < 2048,
            "a log line of {} bytes: {:.500}",
            text.len(),
            text
        );
    }
    let with_id: Vec<_> = lines
        .iter()
        .filter_map(|line| line["span"]["request_id"].as_str())
        .filter(|id| id.starts_with("rrr"))
        .collect();
    assert!(
        !with_id.is_empty(),
        "no line shows the long request id: {lines:?}"
    );
    assert!(with_id.iter().all(|id| id.len() <= 128), "{with_id:?}");
    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, 1);
    child.terminate().await;
    assert_eq!(child.wait().await.code(), Some(0));
}

/// Sends `method path` with a raw JSON body.
async fn raw_json(app: &TestApp, method: Method, path: &str, body: &'static str) -> HttpReply {
    send(
        app.request(method, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body),
    )
    .await
}

async fn a_json_object_repeating_a_key_is_400_naming_the_key_and_changes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let groups = group_count(&app).await;
    let path = group_path(&group.id);
    let add = format!("{path}:addMembers");
    let cases: [(Method, &str, &str, &str); 6] = [
        // Top level of the body, under the body field.
        (
            Method::POST,
            "/v1/groups",
            r#"{"name": "a", "name": "b"}"#,
            "group.name",
        ),
        // In a map.
        (
            Method::PATCH,
            &path,
            r#"{"labels": {"team": "a", "team": "b"}}"#,
            "group.labels.team",
        ),
        // In an object in a list.
        (
            Method::PATCH,
            &path,
            r#"{"members": [{"id": "x"}, {"id": "y", "id": "z"}]}"#,
            "group.members[1].id",
        ),
        // The same value twice is refused too.
        (
            Method::PATCH,
            &path,
            r#"{"description": "same", "description": "same"}"#,
            "group.description",
        ),
        // A body that is the whole request.
        (
            Method::POST,
            &add,
            r#"{"members": [{"id": "a"}], "members": [{"id": "b"}]}"#,
            "members",
        ),
        // One field under both its names.
        (
            Method::PATCH,
            &path,
            r#"{"memberOf": [], "member_of": []}"#,
            "group.member_of",
        ),
    ];
    for (method, path, body, field) in cases {
        let reply = raw_json(&app, method, path, body).await;
        assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");
        let listed = http_violations(&reply);
        assert!(
            listed.iter().any(|(at, _)| at == field),
            "{body}: expected a violation on {field}, got {listed:?}"
        );
    }
    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, groups);

    // The same bodies without the repetition are served.
    let reply = raw_json(&app, Method::PATCH, &path, r#"{"labels": {"team": "b"}}"#).await;
    assert_eq!(labels_of_json(&http_ok(reply)), [("team", "b")]);
}

/// The labels of a JSON group, as sorted pairs.
fn labels_of_json(group: &serde_json::Value) -> Vec<(&str, &str)> {
    let mut labels: Vec<_> = group["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    labels.sort_unstable();
    labels
}

async fn query_text_that_is_not_utf8_is_400_naming_the_parameter_and_changes_nothing(app: TestApp) {
    let group = rich_group(&app).await;
    let before = snapshot(&app, &group.id).await;
    let groups = group_count(&app).await;

    // A filter whose value is the byte 0xFF: decoded lossily, it would
    // search for U+FFFD and answer an empty page.
    let reply = http_get(&app, "/v1/groups?filter=name%3D%22%FF%22").await;
    assert_http_invalid(&reply, "filter");
    let (_, description) = &http_violations(&reply)[0];
    assert!(description.contains("not UTF-8"), "{description}");
    // Valid UTF-8 escapes still decode: the same filter on the real name.
    let found = http_ok(http_get(&app, "/v1/groups?filter=name%3D%22rich%22").await);
    assert_eq!(found["groups"][0]["id"], group.id.as_str());

    // A write whose mask or id is cut UTF-8 changes nothing.
    let reply = http_call(
        &app,
        Method::PATCH,
        &format!("{}?updateMask=description%C3", group_path(&group.id)),
        Some(&serde_json::json!({"description": "changed"})),
    )
    .await;
    assert_http_invalid(&reply, "updateMask");
    let reply = http_call(
        &app,
        Method::POST,
        "/v1/groups?groupId=team%E2%82",
        Some(&serde_json::json!({"name": "new"})),
    )
    .await;
    assert_http_invalid(&reply, "groupId");
    // A parameter name that is not UTF-8 is refused too.
    let reply = http_get(&app, "/v1/groups?%FFpageSize=1").await;
    assert_http_error(&reply, 400, Code::InvalidArgument, "INVALID_ARGUMENT");

    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, groups);
}

async fn an_enum_number_the_contract_does_not_define_is_invalid_argument_on_its_field(
    app: TestApp,
) {
    let group = create(
        &app,
        pb::Group {
            members: members(&["alice"]),
            ..named("viewed")
        },
    )
    .await;
    let mut client = app.client();
    for view in [3, 7, -1, i32::MAX] {
        let status = client
            .get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view,
            })
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "view");
        let status = client
            .list_groups(pb::ListGroupsRequest {
                view,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_invalid_argument(&status, "view");
        for path in [
            format!("{}?view={view}", group_path(&group.id)),
            format!("/v1/groups?view={view}"),
        ] {
            assert_http_invalid(&http_get(&app, &path).await, "view");
        }
    }

    // The defined views are served as before.
    let basic = try_get_view(&app, &group.id, pb::GroupView::Basic)
        .await
        .unwrap();
    assert!(basic.members.is_empty());
    let full = try_get_view(&app, &group.id, pb::GroupView::Full)
        .await
        .unwrap();
    assert_eq!(ids(&full.members), ["alice"]);
    assert_eq!(get(&app, &group.id).await, full);
    let page = http_ok(http_get(&app, "/v1/groups?view=2").await);
    assert_eq!(page["groups"][0]["members"][0]["id"], "alice");
}

/// The error a raw call of `method` with `grpc-timeout: timeout` answers.
async fn with_timeout(
    app: &TestApp,
    method: &str,
    message: &impl prost::Message,
    timeout: &str,
) -> Status {
    let trailers = raw_unary(app.addr, method, message, &[("grpc-timeout", timeout)]).await;
    Status::from_header_map(&trailers)
        .unwrap_or_else(|| panic!("{method} with {timeout} succeeded: {trailers:?}"))
}

async fn a_zero_grpc_timeout_is_deadline_exceeded_and_writes_nothing(app: TestApp) {
    let group = create_named(&app, "timed").await;
    let before = snapshot(&app, &group.id).await;
    let create = pb::CreateGroupRequest {
        group: Some(named("late")),
        ..Default::default()
    };
    let update = pb::UpdateGroupRequest {
        group: Some(pb::Group {
            description: "late".to_owned(),
            ..patch(&group.id)
        }),
        update_mask: Some(mask(&["description"])),
        ..Default::default()
    };
    let read = pb::GetGroupRequest {
        id: group.id.clone(),
        view: 0,
    };
    // Sent raw: tonic's own client would cut the call itself, before the
    // server could answer.
    for timeout in ["0n", "0S", "0H"] {
        let status = with_timeout(&app, "CreateGroup", &create, timeout).await;
        assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
        let status = with_timeout(&app, "UpdateGroup", &update, timeout).await;
        assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
        let status = with_timeout(&app, "GetGroup", &read, timeout).await;
        assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    }

    // Through the gateway, which forwards the header: 504.
    let reply = send(
        app.request(Method::POST, "/v1/groups")
            .header("grpc-timeout", "0n")
            .json(&serde_json::json!({"name": "late"})),
    )
    .await;
    assert_http_error(&reply, 504, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");

    assert_unchanged(&app, &before).await;
    assert_eq!(group_count(&app).await, 1);

    // A deadline in the future is served: the header is read, not refused.
    let mut request = tonic::Request::new(read);
    request
        .metadata_mut()
        .insert("grpc-timeout", "30S".parse().unwrap());
    let read_back = app.client().get_group(request).await.unwrap().into_inner();
    assert_eq!(read_back, before.group);
}
