//! The KafkaPublisher: delivers committed outbox events to Kafka and marks them published.
//!
//! Live path: right after each commit the coordinator hands over that batch's events; the
//! publisher's pump produces everything handed over so far (idempotent producer, key = buyer
//! id, event id and type as headers), waits for the broker's acks and marks them published
//! with one UPDATE, then takes what arrived meanwhile: one pump at a time, in commit order, so
//! under load hand-offs coalesce into larger batches.
//!
//! Relay: every `OUTBOX_RELAY_INTERVAL_MS` it publishes, oldest first, the PENDING events older
//! than the grace period (committed just before a crash, or dropped hand-offs). After a
//! delivery failure, or a hand-off that did not fit in the mailbox, the publisher switches to
//! backlog mode: hand-offs are ignored and the relay drains the outbox in commit order (with
//! backoff while the broker is unreachable) until it is empty, then live publishing resumes. An
//! event refused for reasons of its own is retried up to `OUTBOX_MAX_ATTEMPTS` times, then
//! parked as DEAD with its last error (`payment-engine events dead|redrive`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::oneshot;

use super::mailbox::{Mailbox, Permit};
use crate::db::models::{NewOutboxEvent, OutboxEventRow};
use crate::db::{Db, outbox};
use crate::events::kafka::KafkaSettings;
use crate::metrics::{Metrics, Outcome};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
const PRUNE_BATCH: i64 = 10_000;
/// Most events the pump produces before waiting for their acknowledgements.
const PUMP_MAX_EVENTS: usize = 5_000;

/// An event ready to produce.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub event_id: String,
    pub event_type: String,
    pub buyer_id: i64,
    pub payload: String,
    /// When its transaction committed (about: for events read back from the outbox, when it
    /// occurred), for the delivery-latency histogram.
    pub committed_at: Instant,
}

/// A just-committed event (the coordinator converts right after the commit).
impl From<NewOutboxEvent> for OutboundEvent {
    fn from(row: NewOutboxEvent) -> Self {
        OutboundEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            buyer_id: row.buyer_id,
            payload: row.payload,
            committed_at: Instant::now(),
        }
    }
}

/// An event read back from the outbox by the relay.
impl From<OutboxEventRow> for OutboundEvent {
    fn from(row: OutboxEventRow) -> Self {
        let age = (Utc::now().naive_utc() - row.occurred_at)
            .to_std()
            .unwrap_or_default();
        let now = Instant::now();
        OutboundEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            buyer_id: row.buyer_id,
            payload: row.payload,
            committed_at: now.checked_sub(age).unwrap_or(now),
        }
    }
}

/// What `/health/ready` reports about the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// No broker configured: events stay in the outbox.
    Disabled,
    Unknown,
    Up,
    Down,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Disabled => "disabled",
            BrokerState::Unknown => "unknown",
            BrokerState::Up => "up",
            BrokerState::Down => "down",
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// Set when a hand-off could not be queued: the relay must drain before live resumes.
    backlog: AtomicBool,
    broker: AtomicU8,
}

impl Shared {
    fn set_broker(&self, state: BrokerState) {
        self.broker.store(state as u8, Ordering::Relaxed);
    }
}

/// Hands events to the publisher; cheap to clone.
#[derive(Clone)]
pub struct PublisherHandle {
    addr: Option<Addr<KafkaPublisher>>,
    mailbox: Arc<Mailbox>,
    shared: Arc<Shared>,
}

impl PublisherHandle {
    /// Queues a committed batch's events. Never blocks: if the mailbox is full the events stay
    /// in the outbox and the relay delivers them.
    pub fn hand_off(&self, events: Vec<OutboundEvent>) {
        let Some(addr) = &self.addr else { return };
        if events.is_empty() {
            return;
        }
        let sent = self
            .mailbox
            .try_reserve()
            .map(|permit| addr.try_send(HandOff { events, permit }).is_ok())
            .unwrap_or(false);
        if !sent {
            self.shared.backlog.store(true, Ordering::Release);
        }
    }

    pub fn broker_state(&self) -> BrokerState {
        match self.shared.broker.load(Ordering::Relaxed) {
            x if x == BrokerState::Disabled as u8 => BrokerState::Disabled,
            x if x == BrokerState::Up as u8 => BrokerState::Up,
            x if x == BrokerState::Down as u8 => BrokerState::Down,
            _ => BrokerState::Unknown,
        }
    }

    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// Waits for queued hand-offs, then flushes the producer (at shutdown).
    pub async fn shutdown(&self) {
        if let Some(addr) = &self.addr {
            let _ = addr.send(Flush).await;
        }
    }
}

struct HandOff {
    events: Vec<OutboundEvent>,
    permit: Permit,
}

impl Message for HandOff {
    type Result = ();
}

struct Flush;

impl Message for Flush {
    type Result = ();
}

pub struct KafkaPublisher {
    db: Db,
    settings: KafkaSettings,
    metrics: Arc<Metrics>,
    producer: Option<FutureProducer>,
    shared: Arc<Shared>,
    /// False in backlog mode: hand-offs are ignored and the relay drains the outbox.
    live: bool,
    relaying: bool,
    /// Hand-offs waiting for the pump, in commit order (each holds its mailbox slot).
    queued: VecDeque<HandOff>,
    pumping: bool,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// False until topics were created, and again after a failure.
    topics_ready: bool,
    backoff: Duration,
    next_relay_at: Instant,
}

/// The outcome of producing a list of events.
#[derive(Default)]
struct Produced {
    delivered: Vec<String>,
    /// Refused for reasons of the event itself: (event id, error).
    refused: Vec<(String, String)>,
    /// The broker could not be reached (or the producer is broken).
    unreachable: bool,
}

impl KafkaPublisher {
    /// Starts the publisher on its own thread; with no broker configured, returns a handle that
    /// drops hand-offs (events stay in the outbox) and logs so.
    pub fn start(db: Db, settings: KafkaSettings, metrics: Arc<Metrics>) -> PublisherHandle {
        let shared = Arc::new(Shared {
            backlog: AtomicBool::new(false),
            broker: AtomicU8::new(BrokerState::Unknown as u8),
        });
        let mailbox = Mailbox::new(
            settings.publisher_mailbox_capacity,
            Arc::clone(&metrics.publisher),
        );
        if !settings.enabled() {
            tracing::warn!(
                "KAFKA_BROKERS is empty: events are written to the outbox but not published"
            );
            shared.set_broker(BrokerState::Disabled);
            return PublisherHandle {
                addr: None,
                mailbox,
                shared,
            };
        }
        let capacity = settings.publisher_mailbox_capacity;
        let actor_shared = Arc::clone(&shared);
        let addr = KafkaPublisher::start_in_arbiter(&Arbiter::new().handle(), move |ctx| {
            ctx.set_mailbox_capacity(capacity + 1);
            KafkaPublisher {
                db,
                settings,
                metrics,
                producer: None,
                shared: actor_shared,
                // Start in backlog mode: whatever a previous run left undelivered goes first.
                live: false,
                relaying: false,
                queued: VecDeque::new(),
                pumping: false,
                idle_waiters: Vec::new(),
                topics_ready: false,
                backoff: BACKOFF_MIN,
                next_relay_at: Instant::now(),
            }
        });
        PublisherHandle {
            addr: Some(addr),
            mailbox,
            shared,
        }
    }

    fn producer(&mut self) -> Option<FutureProducer> {
        if let Some(producer) = &self.producer {
            if let Some((code, reason)) = producer.client().fatal_error() {
                // E.g. the broker lost its state and the idempotent producer's sequence no
                // longer matches: a new producer starts a new sequence.
                tracing::warn!(%code, %reason, "Kafka producer hit a fatal error; recreating it");
                self.producer = None;
            }
        }
        if self.producer.is_none() {
            match self
                .settings
                .producer_config()
                .and_then(|c| Ok(c.create::<FutureProducer>()?))
            {
                Ok(producer) => self.producer = Some(producer),
                Err(error) => tracing::error!(error = ?error, "cannot create the Kafka producer"),
            }
        }
        self.producer.clone()
    }

    fn relay(&mut self, ctx: &mut Context<Self>) {
        if self.relaying || self.pumping || Instant::now() < self.next_relay_at {
            return;
        }
        let Some(producer) = self.producer() else {
            self.after_failure();
            return;
        };
        self.relaying = true;
        let backlog = !self.live | self.shared.backlog.swap(false, Ordering::AcqRel);
        let grace = if backlog {
            Duration::ZERO
        } else {
            Duration::from_millis(self.settings.outbox_relay_grace_ms)
        };
        let (db, settings) = (self.db.clone(), self.settings.clone());
        // After a failure the broker may have come back empty (topics gone): create them again.
        let ensure_topics = !self.topics_ready;
        let shared = Arc::clone(&self.shared);
        let metrics = Arc::clone(&self.metrics);
        let pass = async move {
            if ensure_topics {
                if let Err(error) = settings.ensure_topics().await {
                    // Not fatal (the topics may exist and creation be forbidden), but the
                    // broker did not answer as it should: say so until a delivery succeeds.
                    tracing::debug!(error = ?error, "creating topics failed");
                    shared.set_broker(BrokerState::Down);
                }
            }
            let cutoff =
                Utc::now().naive_utc() - chrono::Duration::from_std(grace).unwrap_or_default();
            let limit = settings.outbox_relay_batch;
            let rows = db
                .run(move |conn| outbox::pending(conn, cutoff, limit))
                .await?;
            if rows.is_empty() {
                prune_published(&db, &settings).await;
                return Ok::<_, crate::db::DbError>(None);
            }
            let events: Vec<OutboundEvent> = rows.into_iter().map(OutboundEvent::from).collect();
            let produced = produce(&producer, &settings, &events, &metrics).await;
            record(&db, &settings, &produced, &metrics).await?;
            Ok(Some(produced))
        };
        ctx.wait(pass.into_actor(self).map(move |outcome, act, ctx| {
            act.relaying = false;
            act.topics_ready = true; // unless after_failure says otherwise below
            ctx.run_later(Duration::ZERO, Self::pump);
            match outcome {
                Ok(None) => {
                    // Drained: resume live publishing unless a hand-off was dropped meanwhile.
                    if !act.shared.backlog.load(Ordering::Acquire) {
                        if !act.live {
                            tracing::info!("outbox drained; publishing live");
                        }
                        act.live = true;
                    }
                    act.backoff = BACKOFF_MIN;
                }
                Ok(Some(produced)) if produced.unreachable => {
                    tracing::warn!(
                        delivered = produced.delivered.len(),
                        retry_in_ms = act.backoff.as_millis() as u64,
                        "Kafka unreachable; outbox relay backing off"
                    );
                    act.live = false;
                    act.after_failure();
                }
                Ok(Some(produced)) => {
                    // More may be waiting: stay in backlog mode until a pass finds nothing,
                    // and look again right away rather than at the next tick.
                    act.live = act.live && !backlog;
                    act.backoff = BACKOFF_MIN;
                    if !produced.delivered.is_empty() {
                        act.shared.set_broker(BrokerState::Up);
                    }
                    act.next_relay_at = Instant::now();
                    ctx.run_later(Duration::ZERO, Self::relay);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "outbox relay could not read the outbox");
                    act.after_failure();
                }
            }
        }));
    }

    /// After failed deliveries: back off, and start over with new topics and a new producer.
    /// A broker that lost its state (restarted with in-memory storage) no longer knows this
    /// idempotent producer's id and refuses it forever; a new producer gets a new id.
    fn after_failure(&mut self) {
        self.topics_ready = false;
        self.producer = None;
        self.shared.set_broker(BrokerState::Down);
        self.next_relay_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// Produces `events` in order and waits for every acknowledgement.
async fn produce(
    producer: &FutureProducer,
    settings: &KafkaSettings,
    events: &[OutboundEvent],
    metrics: &Metrics,
) -> Produced {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let key = event.buyer_id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event-id",
                value: Some(event.event_id.as_str()),
            })
            .insert(Header {
                key: "event-type",
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: "schema-version",
                value: Some("1"),
            });
        let record = FutureRecord::to(settings.topic_for(&event.event_type))
            .key(&key)
            .payload(&event.payload)
            .headers(headers);
        let delivery = producer.send_result(record).map_err(|(error, _)| error);
        if delivery.is_ok() {
            metrics.events.produced.inc();
        }
        deliveries.push(delivery);
    }
    let mut produced = Produced::default();
    let waits = deliveries.into_iter().map(|delivery| async move {
        match delivery {
            Ok(future) => match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_canceled) => Err(KafkaError::Canceled),
            },
            Err(error) => Err(error),
        }
    });
    for (event, outcome) in events.iter().zip(join_all(waits).await) {
        match outcome {
            Ok(()) => {
                metrics.events.delivered.inc();
                metrics
                    .events
                    .delivery_latency
                    .observe(event.committed_at.elapsed().as_secs_f64());
                produced.delivered.push(event.event_id.clone());
            }
            Err(error) if is_unreachable(&error) => {
                metrics.events.failed.inc();
                produced.unreachable = true;
            }
            Err(error) => {
                metrics.events.failed.inc();
                produced
                    .refused
                    .push((event.event_id.clone(), error.to_string()));
            }
        }
    }
    produced
}

/// Errors that say nothing about the event itself: the broker is away or overloaded.
fn is_unreachable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(
            C::MessageTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::BrokerNotAvailable
            | C::QueueFull
            | C::RequestTimedOut
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownTopicOrPartition
            | C::Fatal
            | C::OutOfOrderSequenceNumber
            | C::UnknownProducerId
            | C::InvalidProducerEpoch
            | C::BrokerDestroy,
        ) => true,
        Some(_) => false,
        None => true,
    }
}

/// Marks delivered events published and counts the refused ones' attempts.
async fn record(
    db: &Db,
    settings: &KafkaSettings,
    produced: &Produced,
    metrics: &Metrics,
) -> Result<(), crate::db::DbError> {
    let delivered = produced.delivered.clone();
    let refused = produced.refused.clone();
    let max_attempts = settings.outbox_max_attempts;
    for (event_id, error) in &refused {
        tracing::warn!(event_id = %event_id, error = %error, "event refused by the broker");
    }
    let dead = db
        .run(move |conn| {
            outbox::mark_published(conn, &delivered, Utc::now().naive_utc())?;
            let mut dead = 0;
            for (event_id, error) in &refused {
                if outbox::record_failure(conn, event_id, error, max_attempts)? {
                    tracing::error!(event_id = %event_id, error = %error, "event parked as DEAD");
                    dead += 1;
                }
            }
            Ok(dead)
        })
        .await?;
    metrics.events.dead.inc_by(dead);
    Ok(())
}

async fn prune_published(db: &Db, settings: &KafkaSettings) {
    let cutoff = Utc::now().naive_utc()
        - chrono::Duration::from_std(Duration::from_secs(settings.outbox_retention_s))
            .unwrap_or_default();
    if let Err(error) = db
        .run(move |conn| outbox::prune_published(conn, cutoff, PRUNE_BATCH))
        .await
    {
        tracing::warn!(error = %error, "pruning published outbox events failed");
    }
}

impl Actor for KafkaPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first relay pass creates the topics and delivers what a previous run left behind,
        // before any hand-off (it blocks the mailbox).
        let every = Duration::from_millis(self.settings.outbox_relay_interval_ms.max(10));
        ctx.run_interval(every, Self::relay);
        self.relay(ctx);
    }
}

impl Handler<HandOff> for KafkaPublisher {
    type Result = ();

    fn handle(&mut self, message: HandOff, ctx: &mut Context<Self>) {
        if !self.live || self.shared.backlog.load(Ordering::Acquire) {
            // The relay delivers these from the outbox, in order: not delivered live.
            message.permit.start().finish(Outcome::Failed);
            return;
        }
        self.queued.push_back(message);
        self.pump(ctx);
    }
}

impl KafkaPublisher {
    /// Publishes everything handed off so far in one go (in commit order), then again while
    /// more arrived meanwhile: under load, hand-offs coalesce into larger producer batches.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.pumping || self.relaying || self.queued.is_empty() {
            self.wake_idle_waiters();
            return;
        }
        let Some(producer) = self.producer() else {
            self.fall_back_to_relay();
            return;
        };
        let mut taken = Vec::new();
        let mut events = Vec::new();
        while let Some(hand_off) = self.queued.pop_front() {
            events.extend(hand_off.events.iter().cloned());
            let handling = hand_off.permit.start();
            taken.push((hand_off, handling));
            if events.len() >= PUMP_MAX_EVENTS {
                break;
            }
        }
        self.pumping = true;
        let (db, settings) = (self.db.clone(), self.settings.clone());
        let metrics = Arc::clone(&self.metrics);
        let publish = async move {
            let produced = produce(&producer, &settings, &events, &metrics).await;
            let recorded = record(&db, &settings, &produced, &metrics).await;
            (produced, recorded)
        };
        ctx.spawn(publish.into_actor(self).map(move |(produced, recorded), act, ctx| {
            let outcome = if produced.unreachable || !produced.refused.is_empty() {
                Outcome::Failed
            } else {
                Outcome::Ok
            };
            for (hand_off, handling) in taken {
                handling.finish(outcome);
                drop(hand_off); // frees the mailbox slot
            }
            act.pumping = false;
            if let Err(error) = recorded {
                tracing::warn!(error = %error, "marking events published failed; they will be published again");
            }
            if produced.unreachable || !produced.refused.is_empty() {
                if produced.unreachable {
                    tracing::warn!("Kafka unreachable; events wait in the outbox");
                    act.after_failure();
                }
                act.fall_back_to_relay();
            } else {
                if !produced.delivered.is_empty() {
                    act.shared.set_broker(BrokerState::Up);
                }
                act.pump(ctx);
            }
        }));
    }

    /// Stops live publishing: queued hand-offs are dropped (their events are in the outbox)
    /// and the relay drains the outbox in order.
    fn fall_back_to_relay(&mut self) {
        self.live = false;
        for hand_off in self.queued.drain(..) {
            hand_off.permit.start().finish(Outcome::Failed);
        }
        self.wake_idle_waiters();
    }

    fn wake_idle_waiters(&mut self) {
        if !self.pumping && self.queued.is_empty() {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Handler<Flush> for KafkaPublisher {
    type Result = ResponseActFuture<Self, ()>;

    /// Waits until the hand-offs queued so far are published and marked, then flushes the
    /// producer. Not atomic: the pump must keep running meanwhile.
    fn handle(&mut self, _: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let (idle, idle_rx) = oneshot::channel();
        self.idle_waiters.push(idle);
        self.wake_idle_waiters();
        let producer = self.producer.clone();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(FLUSH_TIMEOUT, idle_rx).await;
                if let Some(producer) = producer {
                    let _ =
                        tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
                }
            }
            .into_actor(self),
        )
    }
}
