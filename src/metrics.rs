//! Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! One [`Metrics`] per engine, built at start-up and handed to the actors and the HTTP layer.
//! Every actor kind gets one [`ActorMetrics`]: its [`Mailbox`](crate::actors::mailbox::Mailbox)
//! counts the queue and stamps each message, and the handler reports when handling starts and
//! how it ended, so the same few lines instrument buyers, the coordinator and the publisher.
//!
//! Naming follows Prometheus: one `payment_engine_` prefix, base units as suffixes, `_total`
//! only on counters, bounded label values (never a buyer id), explicit histogram buckets. Every
//! label set a dashboard charts is created at start-up, so panels show zero rather than "no
//! data" before the first event.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::RejectionReason;

/// The kinds of actor, the `actor` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ActorKind {
    Buyer,
    Coordinator,
    Publisher,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Buyer => "buyer",
            ActorKind::Coordinator => "coordinator",
            ActorKind::Publisher => "publisher",
        }
    }
}

/// How handling a message ended, the `outcome` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a command accepted, a write committed, events delivered).
    Ok,
    /// Answered with a refusal the caller caused (a money rule, an unknown order).
    Refused,
    /// Failed for reasons of the engine or its dependencies.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for ActorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabels {
    actor: ActorKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorOutcomeLabels {
    actor: ActorKind,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRouteLabels {
    pub route: String,
    pub method: &'static str,
}

impl EncodeLabelValue for RejectionReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: RejectionReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metric of one label set, kept as a handle so hot paths skip the family's lookup. The
/// family's lock guard must not outlive this call: a second `get_or_create` on the same family
/// in the same expression would wait for it forever.
fn child<L, M, C>(family: &Family<L, M, C>, labels: &L) -> M
where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    // Edition 2024: the guard, a temporary of the tail expression, is dropped on return.
    family.get_or_create(labels).clone()
}

/// Seconds, from 50 µs to ~6.5 s: queue waits and handling of in-memory work.
fn short_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// Seconds, from 0.5 ms to ~16 s: requests, commits and deliveries.
fn request_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

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

/// Buyer actors as a population.
#[derive(Debug, Clone, Default)]
pub struct BuyerMetrics {
    pub started: Counter,
    pub passivated: Counter,
    pub(crate) live: Gauge,
    pub(crate) deepest_mailbox: Gauge,
}

#[derive(Debug, Clone)]
pub struct CoordinatorMetrics {
    batch_writes: Histogram,
    commit_duration: Histogram,
    committed: Counter,
    pub(crate) failed: Counter,
}

impl CoordinatorMetrics {
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

/// Everything `/metrics` exposes.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpRouteLabels>,
    rejections: Family<ReasonLabels, Counter>,
    pub buyer: Arc<ActorMetrics>,
    pub coordinator: Arc<ActorMetrics>,
    pub publisher: Arc<ActorMetrics>,
    pub buyers: BuyerMetrics,
    pub commits: CoordinatorMetrics,
    pub events: PublisherMetrics,
    resident_memory: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("payment_engine");

        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<HttpRouteLabels> =
            Family::new_with_constructor(request_seconds);
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to answering it",
            Unit::Seconds,
            http_duration.clone(),
        );

        let depth = Family::<ActorLabels, Gauge>::default();
        registry.register(
            "actor_mailbox_depth",
            "Messages queued in actors' mailboxes now (for buyers: all buyer actors together)",
            depth.clone(),
        );
        let queue_wait: HistogramFamily<ActorLabels> = Family::new_with_constructor(short_seconds);
        registry.register_with_unit(
            "actor_queue_wait",
            "Time a message waited in a mailbox, from enqueue to the start of its handling",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let handling: HistogramFamily<ActorLabels> = Family::new_with_constructor(request_seconds);
        registry.register_with_unit(
            "actor_handling",
            "Time an actor spent handling a message (for the coordinator: until the commit \
             returned; for the publisher: until the broker acknowledged and rows were marked)",
            Unit::Seconds,
            handling.clone(),
        );
        let messages = Family::<ActorOutcomeLabels, Counter>::default();
        registry.register(
            "actor_messages",
            "Messages handled, by actor kind and outcome",
            messages.clone(),
        );
        let restarts = Family::<ActorLabels, Counter>::default();
        registry.register(
            "actor_restarts",
            "Actors found dead and started again",
            restarts.clone(),
        );
        let actor = |kind: ActorKind| {
            let labels = ActorLabels { actor: kind };
            let outcome = |outcome| {
                child(
                    &messages,
                    &ActorOutcomeLabels {
                        actor: kind,
                        outcome,
                    },
                )
            };
            Arc::new(ActorMetrics {
                depth: child(&depth, &labels),
                queue_wait: child(&queue_wait, &labels),
                handling: child(&handling, &labels),
                ok: outcome(Outcome::Ok),
                refused: outcome(Outcome::Refused),
                failed: outcome(Outcome::Failed),
                restarts: child(&restarts, &labels),
            })
        };
        let (buyer, coordinator, publisher) = (
            actor(ActorKind::Buyer),
            actor(ActorKind::Coordinator),
            actor(ActorKind::Publisher),
        );

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
            "Buyer actors stopped after being idle",
            buyers.passivated.clone(),
        );
        registry.register(
            "buyer_mailbox_depth_max",
            "The deepest buyer mailbox now: a hot buyer's queue",
            buyers.deepest_mailbox.clone(),
        );

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
        let commit_outcomes = Family::<CommitLabels, Counter>::default();
        registry.register(
            "coordinator_commits",
            "Group-commit transactions, by outcome (committed, failed)",
            commit_outcomes.clone(),
        );
        let commits = CoordinatorMetrics {
            batch_writes,
            commit_duration,
            committed: child(
                &commit_outcomes,
                &CommitLabels {
                    outcome: "committed",
                },
            ),
            failed: child(&commit_outcomes, &CommitLabels { outcome: "failed" }),
        };

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
        let events = PublisherMetrics {
            produced: stage("produced"),
            delivered: stage("delivered"),
            failed: stage("failed"),
            dead: stage("dead"),
            backlog,
            delivery_latency,
        };

        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejections",
            "Requests refused with 503 (retry later), by reason",
            rejections.clone(),
        );
        for reason in RejectionReason::ALL {
            child(&rejections, &ReasonLabels { reason });
        }

        let resident_memory = Gauge::default();
        root.register_with_unit(
            "process_resident_memory",
            "Resident memory of the engine process",
            Unit::Bytes,
            resident_memory.clone(),
        );

        Metrics {
            registry: root,
            http_requests,
            http_duration,
            rejections,
            buyer,
            coordinator,
            publisher,
            buyers,
            commits,
            events,
            resident_memory,
        }
    }

    /// Counts one answered request.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&HttpRouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a 503.
    pub fn rejection(&self, reason: RejectionReason) {
        self.rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Values read at scrape time rather than counted as they happen.
    pub fn set_buyer_population(&self, live: usize, deepest_mailbox: usize) {
        self.buyers
            .live
            .set(i64::try_from(live).unwrap_or(i64::MAX));
        self.buyers
            .deepest_mailbox
            .set(i64::try_from(deepest_mailbox).unwrap_or(i64::MAX));
    }

    pub fn set_outbox_backlog(&self, events: i64) {
        self.events.backlog.set(events);
    }

    /// The exposition, in OpenMetrics text format.
    pub fn encode(&self) -> String {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The HTTP method as a bounded label value.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The resident set size, from `/proc/self/status` (Linux).
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_initialises_charted_label_sets() {
        let metrics = Metrics::new();
        metrics.http_request("/points/{buyer_id}", "POST", 200, Duration::from_millis(3));
        let text = metrics.encode();
        for expected in [
            "payment_engine_http_requests_total{route=\"/points/{buyer_id}\",method=\"POST\",status=\"200\"} 1",
            "payment_engine_http_request_duration_seconds_bucket{",
            "payment_engine_actor_mailbox_depth{actor=\"buyer\"} 0",
            "payment_engine_actor_queue_wait_seconds_count{actor=\"coordinator\"} 0",
            "payment_engine_actor_messages_total{actor=\"publisher\",outcome=\"failed\"} 0",
            "payment_engine_actor_restarts_total{actor=\"buyer\"} 0",
            "payment_engine_coordinator_commits_total{outcome=\"failed\"} 0",
            "payment_engine_publisher_events_total{stage=\"dead\"} 0",
            "payment_engine_rejections_total{reason=\"buyer_mailbox_full\"} 0",
            "payment_engine_buyer_mailbox_depth_max 0",
            "payment_engine_outbox_backlog_events 0",
            "process_resident_memory_bytes ",
            "# EOF",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            !text.contains("payment_engine_process"),
            "process metrics keep their standard name"
        );
    }

    #[test]
    fn every_rejection_reason_is_exposed_from_the_start_and_counted_under_its_name() {
        let metrics = Metrics::new();
        metrics.rejection(RejectionReason::WriteConflict);
        let text = metrics.encode();
        for reason in RejectionReason::ALL {
            let count = if reason == RejectionReason::WriteConflict {
                1
            } else {
                0
            };
            let line = format!(
                "payment_engine_rejections_total{{reason=\"{}\"}} {count}\n",
                reason.as_str()
            );
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
    }

    /// The README's metrics table lists the reasons a dashboard can chart: exactly these, in
    /// this order.
    #[test]
    fn the_readme_lists_every_rejection_reason() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let row = readme
            .lines()
            .find(|line| line.starts_with("| `payment_engine_rejections_total` |"))
            .expect("the README documents payment_engine_rejections_total");
        let labels = row.split('|').nth(3).expect("a labels column");
        let documented: Vec<&str> = labels
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| *name != "reason")
            .collect();
        let expected: Vec<&str> = RejectionReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(documented, expected, "README row: {row}");
    }

    #[test]
    fn unknown_methods_share_one_label_value() {
        let method = actix_web::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&method), "other");
    }
}
