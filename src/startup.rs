//! Building and running the application: connect and migrate the database,
//! load the TLS files, bind the listeners, serve until told to stop, then
//! drain.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{
    auth::Authenticator,
    config::Settings,
    feed::{Feed, FeedOptions},
    grpc::GrpcService,
    http::{self, GrpcHandler},
    index::MembershipIndex,
    metrics::Metrics,
    pb,
    serve::{
        self, PortOptions, Protocol,
        budget::Budget,
        exchange::{ExchangeLimits, RefusalRecorder},
        tls::ServerTls,
    },
    service::{GroupService, page_token::PageTokens},
    store::{Store, StoreOptions},
};

/// The service name health reports readiness under, besides `""`.
const SERVICE_NAME: &str = pb::group_service_server::SERVICE_NAME;

/// The health service name for liveness: SERVING for as long as the process
/// answers, whatever the database does, so that an outage never has
/// Kubernetes restart every replica.
pub const LIVENESS: &str = "liveness";

/// Most connections the probe port holds open at once: probes are few and
/// short, and the port must not cost what a client port may.
const PROBE_MAX_CONNECTIONS: u32 = 16;

/// Most bytes of memory the change feed's entries that a server keeps for
/// its streams may hold (as `feed::held_bytes` counts them): 8 MiB, inside
/// the pod's memory limit beside the in-flight budget.
const FEED_RING_BYTES: usize = 8 * 1024 * 1024;

/// How long stopping waits for the database pool to close.
const POOL_CLOSE_BOUND: Duration = Duration::from_secs(2);

/// A built application: database connected and migrated, listeners bound.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    grpc_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    /// The plaintext health-only port, when `--probe-addr` asks for one.
    probe: Option<(TcpListener, SocketAddr)>,
    /// Both ports' TLS, when `--tls-cert` and `--tls-key` are set.
    tls: Option<ServerTls>,
    /// Who calls, by the modes `--auth` enables.
    auth: Arc<Authenticator>,
    service: GroupService,
    metrics: Metrics,
}

/// Connects to the database the settings name.
pub async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    let options = StoreOptions {
        max_connections: settings.db_max_connections,
        connect_timeout: settings.db_connect_timeout,
        acquire_timeout: settings.db_acquire_timeout,
        statement_timeout: settings.db_statement_timeout,
        filter_budget: settings.filter_budget(),
        filtered_listings: settings.filtered_listings(),
        membership_walks: settings.membership_walks(),
    };
    Ok(Store::connect(&settings.database_url, &options).await?)
}

impl Application {
    /// Loads the TLS files (when set), connects to the database, applies
    /// migrations (unless `--skip-migrations`, which instead refuses to
    /// start while any is pending), and binds the gRPC, HTTP and probe
    /// listeners (port 0 picks one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tls = settings.tls_files().map(ServerTls::load).transpose()?;
        let auth = Arc::new(Authenticator::from_settings(&settings).await?);
        let store = connect(&settings).await?;
        if settings.skip_migrations {
            let pending = store.pending_migrations().await?;
            anyhow::ensure!(
                pending.is_empty(),
                "the database schema is not up to date ({} pending: {}) and \
                 --skip-migrations is set: run `groupd migrate` first",
                pending.len(),
                pending.join(", ")
            );
            tracing::info!("skipping migrations as configured; the schema is up to date");
        } else {
            store.migrate().await?;
        }
        let tokens = PageTokens::new(store.secret("page_token_key").await?);
        let metrics = Metrics::with_group_commits(store.group_commit_metrics());
        let feed = Feed::new(
            store.clone(),
            FeedOptions {
                retention: settings.change_retention,
                poll: settings.change_poll_interval,
                ring_entries: settings.watch_buffer,
                ring_bytes: FEED_RING_BYTES,
                max_streams: settings.max_watch_streams,
            },
            metrics.watch_streams(),
            metrics.feed_head(),
            metrics.watch_buffer(),
            settings.membership_index.then(|| {
                // Two poll intervals without a refresh: the reader is
                // failing, and calls read the database.
                MembershipIndex::new(
                    settings.change_poll_interval.saturating_mul(2),
                    metrics.membership_index(),
                )
            }),
        );
        let service = GroupService::new(store, settings.limits(), tokens, feed);
        let listener = TcpListener::bind(settings.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(settings.http_addr).await?;
        let http_addr = http_listener.local_addr()?;
        let probe = match settings.probe_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let addr = listener.local_addr()?;
                Some((listener, addr))
            }
            None => None,
        };
        Ok(Self {
            settings,
            listener,
            grpc_addr,
            http_listener,
            http_addr,
            probe,
            tls,
            auth,
            service,
            metrics,
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

    /// The address the probe port is bound to, when there is one.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe.as_ref().map(|(_, addr)| *addr)
    }

    /// The metrics every call is recorded in (shared: clones see the same
    /// registry).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves until `shutdown` is cancelled. Then health turns NOT_SERVING,
    /// the servers keep answering for `--shutdown-delay` so that load
    /// balancers notice, stop accepting connections, and give in-flight
    /// calls up to `--drain-timeout` to finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        health
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let monitor = tokio::spawn(watch_database(
            self.service.clone(),
            health.clone(),
            self.settings.db_health_interval,
            self.settings.db_connect_timeout,
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
        let drain = tokio::spawn(drain);

        let store = self.service.store().clone();
        let auth = self.auth;
        let challenge = auth.challenge();
        // Rereads the roles, users and key files, and refreshes a remote
        // key set, until the drain.
        let refresh = auth.spawn_refresh(draining.clone());
        // Follows the change feed until the drain, which ends every stream.
        let feed = self.service.feed().spawn(draining.clone());
        let groups = GrpcService::new(
            self.service,
            auth,
            self.metrics.clone(),
            self.settings.request_timeout,
            self.settings.max_message_bytes,
        )
        .into_server();
        let gateway = http::contract_gateway(
            GrpcHandler::new(groups.clone()),
            self.settings.max_message_bytes,
            challenge.as_deref(),
        )?;
        // The probe port answers health alone: the same reporter, so it is
        // NOT_SERVING exactly when the gRPC port's health is.
        let probe = Routes::new(health_service.clone()).prepare();
        let grpc = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(groups)
            .prepare();
        let refusals = RefusalRecorder {
            metrics: self.metrics.clone(),
            service_prefix: format!("/{SERVICE_NAME}/"),
            methods: http::contract_service(gateway.pool())?
                .methods()
                .map(|method| method.name().to_owned())
                .collect(),
        };
        let http = http::router(gateway, self.metrics.clone())?;

        let scheme = if self.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        };
        tracing::info!(addr = %self.grpc_addr, scheme, "serving gRPC");
        tracing::info!(addr = %self.http_addr, scheme, "serving HTTP");
        // One budget for both ports: it bounds the process's memory.
        let exchange = ExchangeLimits {
            budget: Budget::with_gauge(
                self.settings.max_inflight_bytes,
                self.metrics.inflight_bytes(),
            ),
            body_read_timeout: self.settings.body_read_timeout,
            request_timeout: self.settings.request_timeout,
            streaming_paths: crate::grpc::STREAMING_PATHS
                .iter()
                .map(|path| (*path).to_owned())
                .collect(),
            refusals: None,
        };
        let tls_of = |protocol| self.tls.as_ref().map(|tls| tls.port(protocol));
        let port = |protocol, exchange, tls| PortOptions {
            protocol,
            header_timeout: self.settings.http_header_timeout,
            idle_timeout: self.settings.idle_timeout,
            max_connections: self.settings.max_connections,
            drain_timeout: self.settings.drain_timeout,
            exchange: Arc::new(exchange),
            tls,
        };
        let grpc_port = port(
            Protocol::Grpc,
            ExchangeLimits {
                refusals: Some(refusals),
                ..exchange.clone()
            },
            tls_of(Protocol::Grpc),
        );
        let probe_port = PortOptions {
            max_connections: PROBE_MAX_CONNECTIONS,
            ..port(Protocol::Grpc, exchange.clone(), None)
        };
        let http_port = port(Protocol::Http, exchange, tls_of(Protocol::Http));
        let reload = self.tls.map(|tls| {
            tokio::spawn(tls.watch(self.settings.tls_reload_interval, draining.clone()))
        });
        let probing = async {
            if let Some((listener, addr)) = self.probe {
                tracing::info!(%addr, "serving gRPC health in plaintext (probe port)");
                serve::serve(
                    "probe",
                    listener,
                    with_request_id(probe),
                    probe_port,
                    draining.clone(),
                )
                .await;
            }
        };
        tokio::join!(
            serve::serve(
                "grpc",
                self.listener,
                with_request_id(grpc),
                grpc_port,
                draining.clone(),
            ),
            serve::serve(
                "http",
                self.http_listener,
                with_request_id(http),
                http_port,
                draining.clone(),
            ),
            probing,
        );
        if let Some(reload) = reload {
            reload.abort();
        }
        refresh.abort();
        feed.abort();
        drain.abort();
        // Closing the pool waits for every connection to come back; one
        // held by a call the drain cut may still be waiting in the database
        // (for a lock, say), so the wait is bounded. Exiting drops such a
        // connection, and the database rolls its transaction back.
        match tokio::time::timeout(POOL_CLOSE_BOUND, store.close()).await {
            Ok(closed) => closed?,
            Err(_) => tracing::warn!(
                bound = ?POOL_CLOSE_BOUND,
                "database connections still busy at exit are dropped"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Gives every request an `x-request-id` (the caller's, or a generated
/// UUID) and echoes it in the response headers (gRPC: initial metadata).
fn with_request_id<S>(
    service: S,
) -> tower_http::request_id::SetRequestId<
    tower_http::request_id::PropagateRequestId<S>,
    MakeRequestUuid,
> {
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(service)
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

/// Keeps health NOT_SERVING while the database does not answer within
/// `patience`.
async fn watch_database(
    service: GroupService,
    health: HealthReporter,
    every: Duration,
    patience: Duration,
) {
    let mut healthy = true;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let answered = tokio::time::timeout(patience, service.store().ping())
            .await
            .unwrap_or_else(|_| {
                Err(crate::error::Error::Unavailable(
                    format!("no answer to a ping within {patience:?}").into(),
                ))
            });
        match answered {
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
