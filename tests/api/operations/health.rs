//! Health through a network cut: with a TCP proxy between groupd and
//! PostgreSQL, the health service reports NOT_SERVING while the link
//! refuses connections or silently drops traffic, and SERVING again once
//! it is back; liveness stays SERVING throughout; and calls fail fast with
//! a retryable code rather than hang, and are served again after the cut.

use std::sync::{Arc, Mutex};

use groupd::pb;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::HANG_GUARD;
use crate::helpers::*;

// A network cut can only be staged on PostgreSQL: SQLite is a local file.
postgres_only!(health_follows_the_database_through_a_network_cut);

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwards both ways.
    Up,
    /// Closes every connection, and each new one at once (a refused or
    /// reset path).
    Refused,
    /// Keeps connections open but forwards nothing (a black hole, as a
    /// network partition looks); they are closed when the link changes.
    Silent,
}

/// A TCP proxy in front of PostgreSQL that the test can cut.
struct Proxy {
    addr: std::net::SocketAddr,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watching) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, upstream.clone(), watching.clone()));
            }
        });
        Self { addr, link, task }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one proxied connection while the link stays as it was when the
/// connection came in.
async fn pipe(mut client: TcpStream, upstream: String, mut link: watch::Receiver<Link>) {
    let at_accept = *link.borrow_and_update();
    match at_accept {
        Link::Refused => {}
        Link::Silent => {
            let _ = link.changed().await;
        }
        Link::Up => {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                _ = link.changed() => {}
            }
            // Gone silent: both sockets stay open, and nothing passes, until
            // the link changes again.
            if *link.borrow_and_update() == Link::Silent {
                let _ = link.changed().await;
            }
        }
    }
}

/// Waits until the health Watch of `service` reports `wanted`.
async fn wait_for(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
) {
    let mut watch = health
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health Watch")
        .into_inner();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let waited = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match watch.message().await {
                Ok(Some(update)) if update.status() == wanted => return,
                Ok(Some(update)) => seen.lock().unwrap().push(update.status()),
                other => panic!("the health Watch ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{service:?} never reported {wanted:?}; saw {:?}",
        seen.lock().unwrap()
    );
}

async fn status_of(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health Check")
        .into_inner()
        .status()
}

async fn health_follows_the_database_through_a_network_cut(app: TestApp) {
    let group = create_named(&app, "behind-a-proxy").await;
    let rest = app
        .database_url()
        .strip_prefix("postgres://")
        .expect("a PostgreSQL URL");
    let (user, rest) = rest.split_once('@').expect("user@host");
    let (upstream, database) = rest.split_once('/').expect("host/database");
    let proxy = Proxy::start(upstream.to_owned()).await;
    let child = Child::serve(
        &format!("postgres://{user}@{}/{database}", proxy.addr),
        &[
            "--db-health-interval",
            "200ms",
            "--db-connect-timeout",
            "1s",
            "--db-acquire-timeout",
            "1s",
            "--request-timeout",
            "2s",
        ],
        ChildLog::Keep,
    )
    .await;
    let mut client = child.client().await;
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", child.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    for service in ["", "groups.v1.GroupService", "liveness"] {
        assert_eq!(
            status_of(&mut health, service).await,
            ServingStatus::Serving
        );
    }

    for cut in [Link::Refused, Link::Silent] {
        proxy.set(cut);
        // The server's status and the GroupService's are set one after the
        // other: wait for each rather than check the second at once.
        wait_for(&mut health, "", ServingStatus::NotServing).await;
        wait_for(
            &mut health,
            "groups.v1.GroupService",
            ServingStatus::NotServing,
        )
        .await;
        // Liveness does not follow the database: no restarts in an outage.
        assert_eq!(
            status_of(&mut health, "liveness").await,
            ServingStatus::Serving,
            "{cut:?}"
        );
        // Calls fail fast with a retryable code rather than hang.
        let status = tokio::time::timeout(
            HANG_GUARD,
            client.get_group(pb::GetGroupRequest {
                id: group.id.clone(),
                view: 0,
            }),
        )
        .await
        .expect("the call ended")
        .unwrap_err();
        assert!(
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{cut:?}: {status:?}"
        );

        proxy.set(Link::Up);
        wait_for(&mut health, "", ServingStatus::Serving).await;
        let answer = tokio::time::timeout(HANG_GUARD, async {
            // The first call may meet a pooled connection the cut closed,
            // and on a loaded machine a new connection may take longer than
            // the short bounds this server runs with: those are retried (the
            // guard ends a server that never recovers).
            loop {
                match client
                    .get_group(pb::GetGroupRequest {
                        id: group.id.clone(),
                        view: 0,
                    })
                    .await
                {
                    Ok(answer) => return answer.into_inner(),
                    Err(status)
                        if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {}
                    Err(status) => panic!("{cut:?}: after the cut: {status:?}"),
                }
            }
        })
        .await
        .expect("served again after the cut");
        assert_eq!(answer, group);
    }
}
