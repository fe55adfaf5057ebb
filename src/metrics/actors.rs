//! The metrics of the actors: one [`ActorMetrics`] per actor kind (its mailbox and its
//! handling), and what each kind counts of its own (buyers as a population, the coordinator's
//! commits, the publisher's events).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::labels::{
    ActorKind, ActorLabels, ActorOutcomeLabels, CommitLabels, LaneLabels, Outcome, StageLabels,
};
use super::{HistogramFamily, child, request_seconds, short_seconds};

/// The metrics of one actor kind. Cheap to clone (every field is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct ActorMetrics {
    pub(crate) depth: Gauge,
    pub(crate) queue_wait: Histogram,
    pub(crate) handling: Histogram,
    pub(crate) ok: Counter,
    pub(crate) refused: Counter,
    pub(crate) failed: Counter,
    pub restarts: Counter,
}

impl ActorMetrics {
    /// Counts one handled message.
    pub fn handled(&self, outcome: Outcome, took: Duration) {
        self.handling.observe(took.as_secs_f64());
        match outcome {
            Outcome::Ok => self.ok.inc(),
            Outcome::Refused => self.refused.inc(),
            Outcome::Failed => self.failed.inc(),
        };
    }

    /// Metrics that belong to no registry (unit tests of actors).
    pub fn detached() -> Arc<ActorMetrics> {
        Arc::new(ActorMetrics {
            depth: Gauge::default(),
            queue_wait: short_seconds(),
            handling: short_seconds(),
            ok: Counter::default(),
            refused: Counter::default(),
            failed: Counter::default(),
            restarts: Counter::default(),
        })
    }
}

/// The families every actor kind reports into, by the `actor` label.
pub(super) struct ActorFamilies {
    depth: Family<ActorLabels, Gauge>,
    queue_wait: HistogramFamily<ActorLabels>,
    handling: HistogramFamily<ActorLabels>,
    messages: Family<ActorOutcomeLabels, Counter>,
    restarts: Family<ActorLabels, Counter>,
}

impl ActorFamilies {
    pub(super) fn register(registry: &mut Registry) -> ActorFamilies {
        let families = ActorFamilies {
            depth: Family::default(),
            queue_wait: Family::new_with_constructor(short_seconds),
            handling: Family::new_with_constructor(request_seconds),
            messages: Family::default(),
            restarts: Family::default(),
        };
        registry.register(
            "actor_mailbox_depth",
            "Messages queued in actors' mailboxes now (for buyers: all buyer actors together)",
            families.depth.clone(),
        );
        registry.register_with_unit(
            "actor_queue_wait",
            "Time a message waited in a mailbox, from enqueue to the start of its handling",
            Unit::Seconds,
            families.queue_wait.clone(),
        );
        registry.register_with_unit(
            "actor_handling",
            "Time an actor spent handling a message (for the coordinator: until the commit \
             returned; for the publisher: until the broker acknowledged and rows were marked)",
            Unit::Seconds,
            families.handling.clone(),
        );
        registry.register(
            "actor_messages",
            "Messages handled, by actor kind and outcome",
            families.messages.clone(),
        );
        registry.register(
            "actor_restarts",
            "Actors found dead and started again",
            families.restarts.clone(),
        );
        families
    }

    /// The metrics of `kind`, every label set created (so charts show zero, not "no data").
    pub(super) fn actor(&self, kind: ActorKind) -> Arc<ActorMetrics> {
        let labels = ActorLabels { actor: kind };
        let outcome = |outcome| {
            child(
                &self.messages,
                &ActorOutcomeLabels {
                    actor: kind,
                    outcome,
                },
            )
        };
        Arc::new(ActorMetrics {
            depth: child(&self.depth, &labels),
            queue_wait: child(&self.queue_wait, &labels),
            handling: child(&self.handling, &labels),
            ok: outcome(Outcome::Ok),
            refused: outcome(Outcome::Refused),
            failed: outcome(Outcome::Failed),
            restarts: child(&self.restarts, &labels),
        })
    }
}

/// Buyer actors as a population.
#[derive(Debug, Clone, Default)]
pub struct BuyerMetrics {
    pub started: Counter,
    pub passivated: Counter,
    pub evicted: Counter,
    pub limit: Gauge,
    pub(crate) live: Gauge,
    pub(crate) deepest_mailbox: Gauge,
}

impl BuyerMetrics {
    pub(super) fn register(registry: &mut Registry) -> BuyerMetrics {
        let buyers = BuyerMetrics::default();
        registry.register(
            "buyer_actors",
            "Buyer actors alive now",
            buyers.live.clone(),
        );
        registry.register(
            "buyer_actors_started",
            "Buyer actors started (first request, after passivation, or after a crash)",
            buyers.started.clone(),
        );
        registry.register(
            "buyer_actors_passivated",
            "Buyer actors stopped after being idle for BUYER_IDLE_TIMEOUT_S",
            buyers.passivated.clone(),
        );
        registry.register(
            "buyer_actors_evicted",
            "Idle buyer actors passivated to make room for a new one past MAX_LIVE_BUYERS",
            buyers.evicted.clone(),
        );
        registry.register(
            "buyer_actors_limit",
            "MAX_LIVE_BUYERS: buyer actors kept in memory before the least recently used idle \
             one is evicted (0: no limit)",
            buyers.limit.clone(),
        );
        registry.register(
            "buyer_mailbox_depth_max",
            "The deepest buyer mailbox now: a hot buyer's queue",
            buyers.deepest_mailbox.clone(),
        );
        buyers
    }
}

#[derive(Debug, Clone)]
pub struct CoordinatorMetrics {
    batch_writes: Histogram,
    commit_duration: Histogram,
    committed: Counter,
    pub(crate) failed: Counter,
    /// Batches whose transaction met a conflict and was run once more.
    pub conflicts: Counter,
    lane_batches: Family<LaneLabels, Counter>,
    lane_writes: Family<LaneLabels, Counter>,
}

/// What one commit lane counts of its own: its batches and their writes (how evenly the lanes
/// share the load).
#[derive(Debug, Clone)]
pub struct LaneMetrics {
    batches: Counter,
    writes: Counter,
}

impl LaneMetrics {
    pub fn batch(&self, writes: usize) {
        self.batches.inc();
        self.writes.inc_by(writes as u64);
    }
}

impl CoordinatorMetrics {
    pub(super) fn register(registry: &mut Registry) -> CoordinatorMetrics {
        let batch_writes = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "coordinator_batch_writes",
            "Writes per group-commit batch",
            batch_writes.clone(),
        );
        let commit_duration = request_seconds();
        registry.register_with_unit(
            "coordinator_commit_duration",
            "Time one group-commit transaction took, COMMIT included",
            Unit::Seconds,
            commit_duration.clone(),
        );
        let outcomes = Family::<CommitLabels, Counter>::default();
        registry.register(
            "coordinator_commits",
            "Group-commit transactions, by outcome (committed, failed)",
            outcomes.clone(),
        );
        let conflicts = Counter::default();
        registry.register(
            "coordinator_conflicts",
            "Group-commit transactions rolled back whole by a conflict (deadlock, lock wait \
             timeout, Galera certification failure) and run once more",
            conflicts.clone(),
        );
        let lane_batches = Family::<LaneLabels, Counter>::default();
        registry.register(
            "coordinator_lane_batches",
            "Group-commit transactions run by each commit lane",
            lane_batches.clone(),
        );
        let lane_writes = Family::<LaneLabels, Counter>::default();
        registry.register(
            "coordinator_lane_writes",
            "Writes in the group-commit transactions of each commit lane",
            lane_writes.clone(),
        );
        let outcome = |outcome| child(&outcomes, &CommitLabels { outcome });
        CoordinatorMetrics {
            batch_writes,
            commit_duration,
            committed: outcome("committed"),
            failed: outcome("failed"),
            conflicts,
            lane_batches,
            lane_writes,
        }
    }

    /// The counters of commit lane `lane`.
    pub fn lane(&self, lane: usize) -> LaneMetrics {
        let labels = LaneLabels {
            lane: u32::try_from(lane).unwrap_or(u32::MAX),
        };
        LaneMetrics {
            batches: child(&self.lane_batches, &labels),
            writes: child(&self.lane_writes, &labels),
        }
    }

    /// One batch's commit: its size, how long it took and whether it committed.
    pub fn commit(&self, writes: usize, took: Duration, committed: bool) {
        self.batch_writes.observe(writes as f64);
        self.commit_duration.observe(took.as_secs_f64());
        if committed {
            self.committed.inc();
        } else {
            self.failed.inc();
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublisherMetrics {
    pub produced: Counter,
    pub delivered: Counter,
    pub failed: Counter,
    pub dead: Counter,
    pub(crate) backlog: Gauge,
    pub delivery_latency: Histogram,
}

impl PublisherMetrics {
    pub(super) fn register(registry: &mut Registry) -> PublisherMetrics {
        let stages = Family::<StageLabels, Counter>::default();
        registry.register(
            "publisher_events",
            "Outbox events by stage: produced (sent to the broker), delivered (acknowledged), \
             failed (a delivery attempt failed), dead (parked after too many attempts)",
            stages.clone(),
        );
        let stage = |stage| child(&stages, &StageLabels { stage });
        let backlog = Gauge::default();
        registry.register(
            "outbox_backlog_events",
            "Outbox events not yet published (pending, dead excluded)",
            backlog.clone(),
        );
        let delivery_latency = request_seconds();
        registry.register_with_unit(
            "publisher_delivery_latency",
            "Time from an event's commit to the broker's acknowledgement",
            Unit::Seconds,
            delivery_latency.clone(),
        );
        PublisherMetrics {
            produced: stage("produced"),
            delivered: stage("delivered"),
            failed: stage("failed"),
            dead: stage("dead"),
            backlog,
            delivery_latency,
        }
    }
}
