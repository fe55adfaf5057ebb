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

mod delivery;
mod event;
mod pump;
mod relay;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::oneshot;

use super::mailbox::{Mailbox, Permit};
use crate::db::Db;
use crate::db::outbox::RelayScope;
use crate::events::kafka::KafkaSettings;
use crate::metrics::Metrics;

pub use event::OutboundEvent;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
const PRUNE_BATCH: i64 = 10_000;
/// Most events the pump produces before waiting for their acknowledgements.
const PUMP_MAX_EVENTS: usize = 5_000;

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

    /// Waits for queued hand-offs, then flushes the producer (at shutdown, and before an
    /// engine gives up its shards).
    pub async fn shutdown(&self) {
        if let Some(addr) = &self.addr {
            let _ = addr.send(Flush).await;
        }
    }

    /// The relay drains the outbox before live publishing goes on: called when this engine
    /// claims a shard, whose earlier events (another engine's) may still be pending.
    pub fn drain_backlog(&self) {
        if self.addr.is_some() {
            self.shared.backlog.store(true, Ordering::Release);
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

/// The actor behind [`PublisherHandle`]: the live pump (`pump`) and the outbox relay (`relay`)
/// share one producer and run one at a time.
pub struct KafkaPublisher {
    db: Db,
    settings: KafkaSettings,
    scope: Option<RelayScope>,
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

impl KafkaPublisher {
    /// Starts the publisher on its own thread; with no broker configured, returns a handle that
    /// drops hand-offs (events stay in the outbox) and logs so.
    /// `scope`: whose events the relay publishes (the shards this engine holds); `None`: all.
    pub fn start(
        db: Db,
        settings: KafkaSettings,
        scope: Option<RelayScope>,
        metrics: Arc<Metrics>,
    ) -> PublisherHandle {
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
                scope,
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
