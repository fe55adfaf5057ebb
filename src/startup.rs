//! Builds the whole application, so `main` and the tests run the very same thing.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use chrono::Utc;
use tokio::task::JoinHandle;

use crate::actors::publisher::{KafkaPublisher, PublisherHandle};
use crate::actors::{
    BuyerDeps, BuyerRegistry, CoordinatorHandle, CoordinatorOptions, PaymentCoordinator,
};
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::db::ids::IdAllocator;
use crate::db::outbox::RelayScope;
use crate::db::{DatabaseUrl, Db, build_pool, ensure_database, queries, run_migrations};
use crate::http::{self, AppState};
use crate::metrics::Metrics;

/// Ids reserved per database round trip.
const ID_BLOCK_SIZE: i64 = 1000;
/// After the drain's release, how long the engine goes on listening so that requests forwarded
/// to it meanwhile hear `not_owner` rather than find the listener closed.
const RELEASE_GRACE: Duration = Duration::from_millis(250);
/// At shutdown, longest wait for writes still in the commit queue before the leases go.
const SETTLE_WRITES_WITHIN: Duration = Duration::from_secs(5);
/// How often expired Idempotency-Key records are deleted, and at most how many per round.
const IDEMPOTENCY_PRUNE_EVERY: Duration = Duration::from_secs(60);
const IDEMPOTENCY_PRUNE_BATCH: i64 = 10_000;
/// After answering a client that is being disconnected (e.g. a 408), how long it gets to read
/// the answer before the socket is dropped.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Application {
    port: u16,
    server: Server,
    registry: Arc<BuyerRegistry>,
    publisher: PublisherHandle,
    cluster: Arc<Cluster>,
    coordinator: CoordinatorHandle,
    pruner: JoinHandle<()>,
    renewals: JoinHandle<()>,
    draining: http::admission::Draining,
    drain: Duration,
}

impl Application {
    /// Creates and migrates the database, starts the actors and binds the HTTP listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings
            .http
            .api_tokens
            .check()
            .map_err(anyhow::Error::msg)?;
        settings.cluster.check().map_err(anyhow::Error::msg)?;
        settings
            .coordinator
            .check(settings.database.pool_size)
            .map_err(anyhow::Error::msg)?;
        migrate(&settings.database.url).await?;
        let db = Db::new(build_pool(
            &settings.database.url,
            &settings.database.pool(),
        ));
        let metrics = Arc::new(Metrics::new());
        let listener = TcpListener::bind(settings.http.bind_addr)
            .with_context(|| format!("cannot listen on {}", settings.http.bind_addr))?;
        let bound = listener.local_addr()?;
        let options = settings.cluster.options(bound);
        let cluster = Arc::new(Cluster::join(db.clone(), options, Arc::clone(&metrics)).await?);
        let scope = RelayScope {
            owner_token: cluster.token(),
            shards: cluster.shards() as i32,
        };
        let publisher = KafkaPublisher::start(
            db.clone(),
            settings.kafka.clone(),
            Some(scope),
            Arc::clone(&metrics),
        );
        let backlog = publisher.clone();
        cluster.on_claim(Box::new(move || backlog.drain_backlog()));
        let (registry, coordinator) = start_buyers(&settings, &db, &publisher, &cluster, &metrics);
        let state = app_state(&settings, &db, &publisher, &registry, &cluster, metrics);
        let draining = state.draining.clone();
        let server = http_server(&settings, state, listener)?;
        let pruner = tokio::spawn(prune_idempotency_records(db));
        let renewals = cluster.spawn_renewals();
        Ok(Application {
            publisher,
            port: bound.port(),
            server,
            registry,
            cluster,
            coordinator,
            pruner,
            renewals,
            draining,
            drain: settings.http.shutdown_drain,
        })
    }

    /// On SIGTERM or SIGINT: drain (see `http::admission`) for the configured time, or until a
    /// second signal, then stop gracefully (`run_until_stopped` returns).
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (handle, draining, drain) = (self.handle(), self.draining.clone(), self.drain);
        let (cluster, coordinator, publisher) = (
            Arc::clone(&self.cluster),
            self.coordinator.clone(),
            self.publisher.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "stop requested: draining (not ready; each answer closes its connection)"
            );
            draining.start();
            cluster.start_draining();
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            // Give the shards up while still listening: engines forwarding here are told
            // `not_owner` and claim them, rather than find the listener gone.
            cluster
                .release_all(settle(&coordinator, &publisher), false)
                .await;
            tokio::time::sleep(RELEASE_GRACE).await;
            tracing::info!("stopping: no new connections; finishing accepted requests");
            handle.stop(true).await;
        });
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (see `stop_on_signals`, or the handle): stops accepting, lets accepted
    /// requests finish (each is answered after its commit), flushes the Kafka producer, then
    /// stops the actors.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.pruner.abort();
        // Every accepted request was answered: what is left in flight is only writes whose
        // requests timed out. Once they and the committed events are out, the shards are given
        // up at once, so other engines claim them on their next request.
        self.cluster
            .release_all(settle(&self.coordinator, &self.publisher), true)
            .await;
        self.renewals.abort();
        self.registry.stop();
        result
    }
}

/// Creates the database if missing and applies the pending migrations.
async fn migrate(url: &DatabaseUrl) -> anyhow::Result<()> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        ensure_database(&url)?;
        run_migrations(&url)
    })
    .await
    .context("migration task failed")?
}

/// Before the leases are given up: the writes in flight commit (or fail) and the events
/// committed so far are published (the publisher's flush is bounded), so the next owner's events
/// follow them.
async fn settle(coordinator: &CoordinatorHandle, publisher: &PublisherHandle) {
    let deadline = tokio::time::Instant::now() + SETTLE_WRITES_WITHIN;
    while coordinator.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.shutdown().await;
}

/// The payment coordinator, and the registry of buyer actors that hands it their writes.
fn start_buyers(
    settings: &Settings,
    db: &Db,
    publisher: &PublisherHandle,
    cluster: &Arc<Cluster>,
    metrics: &Arc<Metrics>,
) -> (Arc<BuyerRegistry>, CoordinatorHandle) {
    let coordinator = PaymentCoordinator::start(
        db.clone(),
        Arc::clone(cluster),
        publisher.clone(),
        CoordinatorOptions {
            lanes: settings.coordinator.commit_lanes,
            batch_max_ops: settings.coordinator.batch_max_ops,
            capacity: settings.coordinator.queue_capacity,
            shards: cluster.shards(),
        },
        Arc::clone(metrics),
    );
    let buyers = &settings.buyers;
    let registry = Arc::new(BuyerRegistry::new(
        BuyerDeps {
            db: db.clone(),
            cluster: Arc::clone(cluster),
            coordinator: coordinator.clone(),
            max_balance: buyers.max_balance,
            idempotency_ttl: buyers.idempotency_ttl,
            idle_timeout: buyers.idle_timeout,
            emit_charge_events: settings.kafka.emit_charge_events,
            metrics: Arc::clone(metrics),
        },
        buyers.actor_threads,
        buyers.mailbox_capacity,
        buyers.max_live_buyers,
    ));
    (registry, coordinator)
}

/// What every handler shares.
fn app_state(
    settings: &Settings,
    db: &Db,
    publisher: &PublisherHandle,
    registry: &Arc<BuyerRegistry>,
    cluster: &Arc<Cluster>,
    metrics: Arc<Metrics>,
) -> web::Data<AppState> {
    web::Data::new(AppState {
        registry: Arc::clone(registry),
        cluster: Arc::clone(cluster),
        publisher: publisher.clone(),
        db: db.clone(),
        order_ids: IdAllocator::new(db.clone(), "orders", ID_BLOCK_SIZE),
        payment_ids: IdAllocator::new(db.clone(), "payments", ID_BLOCK_SIZE),
        refund_ids: IdAllocator::new(db.clone(), "refunds", ID_BLOCK_SIZE),
        max_charge: settings.buyers.max_charge,
        max_order: settings.buyers.max_order,
        request_timeout: settings.http.request_timeout,
        metrics,
        api_tokens: settings.http.api_tokens.clone(),
        in_flight: http::admission::InFlight::new(settings.http.in_flight_limit()),
        draining: http::admission::Draining::default(),
    })
}

/// The HTTP server on `listener`, started (it serves once the actix system runs).
fn http_server(
    settings: &Settings,
    state: web::Data<AppState>,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let forward_timeout = settings.cluster.forward_timeout;
    let settings = &settings.http;
    let max_body_bytes = settings.max_body_bytes;
    let tokens_required = settings.api_tokens.is_enabled();
    let client_request_timeout = settings.client_request_timeout;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(
                http::deadline::body_deadline,
            ))
            .wrap(actix_web::middleware::from_fn(http::admission::admit))
            .wrap(actix_web::middleware::from_fn(http::auth::require_token))
            .wrap(actix_web::middleware::from_fn(http::metrics::track))
            .wrap(tracing_actix_web::TracingLogger::default())
            .app_data(state.clone())
            .app_data(http::Forwarder::new(forward_timeout))
            .app_data(http::deadline::BodyDeadline(client_request_timeout))
            .configure(http::configure(max_body_bytes, tokens_required))
            .default_service(web::to(http::not_found))
    })
    .workers(settings.worker_threads())
    // Idle connections outlive the balancer's, so the client side closes them first.
    .keep_alive(settings.keep_alive_policy())
    // Slow clients (slowloris) are cut off; actix's defaults, stated where they are decided.
    .client_request_timeout(client_request_timeout)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    // Signals are handled by `stop_on_signals`, which drains first.
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

async fn prune_idempotency_records(db: Db) {
    let mut every = tokio::time::interval(IDEMPOTENCY_PRUNE_EVERY);
    loop {
        every.tick().await;
        let pruned = db
            .run(|conn| {
                queries::prune_idempotency_records(
                    conn,
                    Utc::now().naive_utc(),
                    IDEMPOTENCY_PRUNE_BATCH,
                )
            })
            .await;
        match pruned {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(error = %error, "pruning idempotency keys failed"),
        }
    }
}
