//! Client certificates as credentials, end to end through GroupService:
//! the server serves TLS on both ports with `--tls-client-ca` and `--auth
//! mtls` (or `jwt,mtls`), certificates are generated here, and the roles
//! file grants roles to certificate identities. A certificate names its
//! caller by its SPIFFE id, else its first DNS name (never its CN), over
//! gRPC and over HTTP, where the gateway hands the connection's identity to
//! its in-process call; no certificate is no credential; and an
//! `authorization` header, when sent, decides instead of the certificate.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use groupd::pb::{self, group_service_client::GroupServiceClient};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use super::files::{AuthFiles, authorized, bearer, expired_token_by};
use crate::helpers::{
    tls::{Ca, ClientNames, Leaf, TlsDir, client_config},
    *,
};

/// The SPIFFE id the roles file makes `groups.admin`.
const ADMIN: &str = "spiffe://example.org/ns/prod/sa/admin";
/// [`ADMIN`] as one path segment.
const ADMIN_SEGMENT: &str = "spiffe:%2F%2Fexample.org%2Fns%2Fprod%2Fsa%2Fadmin";
/// The DNS name of the certificate without a SPIFFE id.
const ORDERS: &str = "orders.example.org";
/// A bound against hangs, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// The server's CA and files, and the CA its clients' certificates chain
/// to.
struct Pki {
    ca: Ca,
    clients: Ca,
    dir: TlsDir,
}

impl Pki {
    fn new() -> Self {
        let ca = Ca::new("groupd server CA");
        let clients = Ca::new("groupd client CA");
        let dir = TlsDir::new();
        dir.write_server(&ca.localhost());
        dir.write_client_ca(&[&clients]);
        Self { ca, clients, dir }
    }

    /// TLS on both ports with client certificates, plus `auth`.
    fn flags(&self, auth: Vec<String>) -> Vec<String> {
        let mut flags = self.dir.flags(true);
        flags.extend(auth);
        flags
    }

    /// A certificate with the SPIFFE id [`ADMIN`], a DNS name and a CN.
    fn admin(&self) -> Leaf {
        self.clients.client(&ClientNames {
            uris: &[ADMIN],
            dns: &["admin.example.org"],
            common_name: Some("admin"),
        })
    }

    /// A certificate with the DNS name [`ORDERS`] and the CN `orders`.
    fn orders(&self) -> Leaf {
        self.clients.client(&ClientNames {
            dns: &[ORDERS],
            common_name: Some("orders"),
            ..Default::default()
        })
    }
}

/// A GroupService client over TLS to `addr`, presenting `identity` when
/// given.
async fn client(addr: SocketAddr, ca: &Ca, identity: Option<&Leaf>) -> GroupServiceClient<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    GroupServiceClient::new(channel)
}

/// One HTTP/1.1 request over TLS to the gateway at `addr`, presenting
/// `identity` when given, with `authorization` and a JSON body when given;
/// the answer read whole.
async fn https(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
    method: http::Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> HttpReply {
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    let connector = TlsConnector::from(Arc::new(client_config(ca, identity, &["http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio::time::timeout(
        HANG_GUARD,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("the handshake hung")
    .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, format!("localhost:{}", addr.port()));
    if let Some(credential) = authorization {
        request = request.header(http::header::AUTHORIZATION, credential);
    }
    let bytes = match body {
        Some(body) => {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = tokio::time::timeout(
        HANG_GUARD,
        sender.send_request(request.body(Full::new(bytes)).unwrap()),
    )
    .await
    .expect("the reply hung")
    .unwrap();
    let (parts, body) = response.into_parts();
    let text = body.collect().await.unwrap().to_bytes();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&text)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&text).into_owned()))
    };
    HttpReply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A CreateGroup request of `group`.
fn creation(group: pb::Group) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        group: Some(group),
        ..Default::default()
    }
}

/// A GetGroup request of `id`.
fn reading(id: &str) -> pb::GetGroupRequest {
    pb::GetGroupRequest {
        id: id.to_owned(),
        ..Default::default()
    }
}

/// The sorted ids of the groups a ListGroups or ListMemberGroups answer
/// (JSON) lists.
fn listed_ids(body: &Value) -> Vec<String> {
    let mut listed: Vec<String> = body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {body}"))
        .iter()
        .map(id_of)
        .collect();
    listed.sort();
    listed
}

pub async fn client_certificates_name_their_callers_over_grpc_and_http(backend: Backend) {
    let pki = Pki::new();
    let files = AuthFiles::new();
    // `orders` is the CN of the certificate named by its DNS name: were the
    // CN its identity, it could create groups.
    files.write_roles(&json!({ADMIN: ["groups.admin"], "orders": ["groups.admin"]}));
    let flags = pki.flags(files.flags("mtls"));
    run_launched_scenario_on(backend, &flags, move |server| async move {
        let (admin_cert, orders_cert) = (pki.admin(), pki.orders());
        let mut admin = client(server.addr, &pki.ca, Some(&admin_cert)).await;
        let mut orders = client(server.addr, &pki.ca, Some(&orders_cert)).await;
        let mut nobody = client(server.addr, &pki.ca, None).await;

        // The SPIFFE id, granted groups.admin by the roles file, creates,
        // and is recorded as the creator.
        let mut group = named("shared");
        group.members = members(&[ADMIN, ORDERS]);
        group.admins = members(&[ADMIN]);
        let shared = admin
            .create_group(creation(group))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(shared.created_by, ADMIN);
        assert_eq!(shared.updated_by, ADMIN);
        let mut group = named("private");
        group.members = members(&["someone"]);
        let private = admin
            .create_group(creation(group))
            .await
            .unwrap()
            .into_inner();

        // The DNS name has no role: it reads the group it is a member of,
        // not another, and may not create.
        let read = orders
            .get_group(reading(&shared.id))
            .await
            .unwrap()
            .into_inner();
        assert!(read.permissions.iter().any(|p| p == "groups.get"));
        assert!(!read.permissions.iter().any(|p| p == "groups.update"));
        let status = orders.get_group(reading(&private.id)).await.unwrap_err();
        assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
        let status = orders
            .create_group(creation(named("by-orders")))
            .await
            .unwrap_err();
        assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

        // No certificate, no credentials.
        let status = nobody
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_MISSING");
        let status = nobody
            .create_group(creation(named("by-nobody")))
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_MISSING");
        // A header decides before the certificate, even a valid one: a
        // Bearer token is not accepted here.
        let status = admin
            .create_group(authorized(
                "Bearer not-a-token",
                creation(named("by-header")),
            ))
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_INVALID");

        // Over HTTP, through the gateway: the same identities.
        let created = https(
            server.http_addr,
            &pki.ca,
            Some(&admin_cert),
            http::Method::POST,
            "/v1/groups",
            None,
            Some(&json!({"name": "shared-http", "members": [{"id": ORDERS}]})),
        )
        .await;
        let created = http_ok(created);
        assert_eq!(created["createdBy"], ADMIN);
        let shared_http = id_of(&created);
        let read = https(
            server.http_addr,
            &pki.ca,
            Some(&orders_cert),
            http::Method::GET,
            &group_path(&shared_http),
            None,
            None,
        )
        .await;
        assert_eq!(http_ok(read)["name"], "shared-http");
        let refused = https(
            server.http_addr,
            &pki.ca,
            Some(&orders_cert),
            http::Method::POST,
            "/v1/groups",
            None,
            Some(&json!({"name": "by-orders-http"})),
        )
        .await;
        assert_http_error(&refused, 403, Code::PermissionDenied, "PERMISSION_DENIED");
        // Each asks about its own memberships; the SPIFFE id's `/`s are
        // percent-encoded in the path.
        let own = https(
            server.http_addr,
            &pki.ca,
            Some(&orders_cert),
            http::Method::GET,
            &format!("/v1/members/{ORDERS}/groups"),
            None,
            None,
        )
        .await;
        let mut expected = vec![shared.id.clone(), shared_http.clone()];
        expected.sort();
        assert_eq!(listed_ids(&http_ok(own)), expected);
        let own = https(
            server.http_addr,
            &pki.ca,
            Some(&admin_cert),
            http::Method::GET,
            &format!("/v1/members/{ADMIN_SEGMENT}/groups"),
            None,
            None,
        )
        .await;
        assert_eq!(listed_ids(&http_ok(own)), [shared.id.as_str()]);

        // Without a certificate: 401. With client certificates as the only
        // mode there is no header scheme to name, and the server sends no
        // WWW-Authenticate (RFC 9110 wants one on every 401).
        let refused = https(
            server.http_addr,
            &pki.ca,
            None,
            http::Method::GET,
            "/v1/groups",
            None,
            None,
        )
        .await;
        assert_http_error(&refused, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
        assert_eq!(refused.header("www-authenticate"), None);

        // Nothing refused was written: three groups, all the admin's.
        let all = admin
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .groups;
        let mut names: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["private", "shared", "shared-http"]);
    })
    .await;
}

pub async fn with_jwt_and_mtls_a_token_decides_over_the_certificate(backend: Backend) {
    let pki = Pki::new();
    let files = AuthFiles::new();
    files.write_roles(&json!({ADMIN: ["groups.admin"]}));
    let flags = pki.flags(files.flags("jwt,mtls"));
    run_launched_scenario_on(backend, &flags, move |server| async move {
        let admin_cert = pki.admin();
        let mut admin = client(server.addr, &pki.ca, Some(&admin_cert)).await;
        let carol = bearer(&files.token("carol", &["groups.creator"]));

        // The certificate alone, then a token over the same connection:
        // the token's caller is the caller.
        let by_cert = admin
            .create_group(creation(named("by-cert")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_cert.created_by, ADMIN);
        let by_token = admin
            .create_group(authorized(&carol, creation(named("by-token"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_token.created_by, "carol");
        assert_eq!(ids(&by_token.admins), ["carol"]);
        // A token that fails is not made up for by the certificate.
        let expired = bearer(&expired_token_by(&files.key, "carol", &["groups.creator"]));
        let status = admin
            .create_group(authorized(&expired, creation(named("by-expired"))))
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "TOKEN_EXPIRED");

        // The same over HTTP.
        for (authorization, principal) in [(None, ADMIN), (Some(carol.as_str()), "carol")] {
            let reply = https(
                server.http_addr,
                &pki.ca,
                Some(&admin_cert),
                http::Method::POST,
                "/v1/groups",
                authorization,
                Some(&json!({"name": format!("over-http-{}", principal.len())})),
            )
            .await;
            assert_eq!(http_ok(reply)["createdBy"], principal);
        }
        let reply = https(
            server.http_addr,
            &pki.ca,
            Some(&admin_cert),
            http::Method::POST,
            "/v1/groups",
            Some(&expired),
            Some(&json!({"name": "by-expired-http"})),
        )
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "TOKEN_EXPIRED");
        // Neither credential: the 401 names the header scheme there is.
        let reply = https(
            server.http_addr,
            &pki.ca,
            None,
            http::Method::GET,
            "/v1/groups",
            None,
            None,
        )
        .await;
        assert_http_error(&reply, 401, Code::Unauthenticated, "CREDENTIALS_MISSING");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="groupd""#)
        );

        let all = admin
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .groups;
        assert_eq!(all.len(), 4, "{all:?}");
    })
    .await;
}
