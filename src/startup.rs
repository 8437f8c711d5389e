//! Building and running the application: connect and migrate the database,
//! bind the listener, serve until told to stop, then drain.

use std::{net::SocketAddr, time::Duration};

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    config::Settings,
    grpc::GrpcService,
    http::{self, GrpcHandler},
    metrics::Metrics,
    pb,
    service::{GroupService, page_token::PageTokens},
    store::{Store, StoreOptions},
};

/// The service name health reports under, besides `""`.
const SERVICE_NAME: &str = pb::group_service_server::SERVICE_NAME;

/// A built application: database connected and migrated, listeners bound.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    grpc_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    service: GroupService,
    metrics: Metrics,
}

/// Connects to the database the settings name.
pub async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions {
        max_connections: settings.db_max_connections,
        connect_timeout: settings.db_connect_timeout,
    };
    Ok(Store::connect(&settings.database_url, &options).await?)
}

impl Application {
    /// Connects to the database, applies migrations (unless
    /// `--skip-migrations`), and binds the gRPC and HTTP listeners (port 0
    /// picks one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = connect(&settings).await?;
        if settings.skip_migrations {
            tracing::info!("skipping migrations as configured");
        } else {
            store.migrate().await?;
        }
        let tokens = PageTokens::new(store.secret("page_token_key").await?);
        let service = GroupService::new(store, settings.limits(), tokens);
        let listener = TcpListener::bind(settings.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(settings.http_addr).await?;
        let http_addr = http_listener.local_addr()?;
        Ok(Self {
            settings,
            listener,
            grpc_addr,
            http_listener,
            http_addr,
            service,
            metrics: Metrics::new(),
        })
    }

    /// The address the gRPC server is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address the HTTP server is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The metrics every call is recorded in (shared: clones see the same
    /// registry).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves until `shutdown` is cancelled. Then health turns NOT_SERVING,
    /// the server keeps answering for `--shutdown-delay` so load balancers
    /// notice, stops accepting connections, and waits for in-flight calls.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let monitor = tokio::spawn(watch_database(
            self.service.clone(),
            health.clone(),
            self.settings.db_health_interval,
        ));
        let delay = self.settings.shutdown_delay;
        // Cancelled once the shutdown delay is over: both servers then stop
        // accepting and drain.
        let draining = CancellationToken::new();
        let drain = {
            let health = health.clone();
            let draining = draining.clone();
            async move {
                shutdown.cancelled().await;
                monitor.abort();
                set_health(&health, ServingStatus::NotServing).await;
                tracing::info!(?delay, "shutting down: health is NOT_SERVING");
                tokio::time::sleep(delay).await;
                tracing::info!("draining in-flight calls");
                draining.cancel();
            }
        };

        let store = self.service.store().clone();
        let groups = GrpcService::new(self.service, self.metrics.clone())
            .into_server(self.settings.max_message_bytes);
        let gateway = http::gateway(
            GrpcHandler::new(groups.clone()),
            self.settings.max_message_bytes,
        )?;
        tracing::info!(addr = %self.grpc_addr, "serving gRPC");
        tracing::info!(addr = %self.http_addr, "serving HTTP");
        let grpc = Server::builder()
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(groups)
            // TCP_NODELAY on every accepted connection: tonic sets it only
            // for listeners it binds itself, and without it a reply sent in
            // several writes waits for the client's delayed ACK (~40 ms).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                drain,
            );
        let http_listener = self.http_listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY on an HTTP connection");
            }
        });
        let http = axum::serve(http_listener, http::router(gateway, self.metrics)?)
            .with_graceful_shutdown(draining.cancelled_owned());
        tokio::try_join!(async { grpc.await.map_err(anyhow::Error::from) }, async {
            http.await.map_err(anyhow::Error::from)
        },)?;
        store.close().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Reflection over groupd's contract, health, and the `google.rpc` error
/// details, so that grpcurl can decode `ErrorInfo` and `BadRequest`.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

/// Keeps health NOT_SERVING while the database does not answer.
async fn watch_database(service: GroupService, health: HealthReporter, every: Duration) {
    let mut healthy = true;
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match service.store().ping().await {
            Ok(()) if !healthy => {
                tracing::info!("database reachable again: health is SERVING");
                set_health(&health, ServingStatus::Serving).await;
                healthy = true;
            }
            Err(error) if healthy => {
                tracing::warn!(%error, "database unreachable: health is NOT_SERVING");
                set_health(&health, ServingStatus::NotServing).await;
                healthy = false;
            }
            _ => {}
        }
    }
}
