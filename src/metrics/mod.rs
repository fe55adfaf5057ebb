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

mod actors;
mod cluster;
mod http;
mod labels;
mod process;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use actors::{ActorMetrics, BuyerMetrics, CoordinatorMetrics, LaneMetrics, PublisherMetrics};
pub use cluster::{ClusterMetrics, ForwardOutcome};
pub use http::method_label;
pub use labels::{ActorKind, HttpLabels, HttpRouteLabels, Outcome};

use crate::domain::RejectionReason;
use actors::ActorFamilies;
use http::{HttpMetrics, RejectionMetrics};
use process::ProcessMetrics;

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

/// Everything `/metrics` exposes.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    rejections: RejectionMetrics,
    pub buyer: Arc<ActorMetrics>,
    pub coordinator: Arc<ActorMetrics>,
    pub publisher: Arc<ActorMetrics>,
    pub buyers: BuyerMetrics,
    pub commits: CoordinatorMetrics,
    pub events: PublisherMetrics,
    pub cluster: ClusterMetrics,
    process: ProcessMetrics,
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
        let http = HttpMetrics::register(registry);
        let actor_families = ActorFamilies::register(registry);
        let buyers = BuyerMetrics::register(registry);
        let commits = CoordinatorMetrics::register(registry);
        let events = PublisherMetrics::register(registry);
        let rejections = RejectionMetrics::register(registry);
        let cluster = ClusterMetrics::register(registry);
        let process = ProcessMetrics::register(&mut root);
        Metrics {
            registry: root,
            http,
            rejections,
            buyer: actor_families.actor(ActorKind::Buyer),
            coordinator: actor_families.actor(ActorKind::Coordinator),
            publisher: actor_families.actor(ActorKind::Publisher),
            buyers,
            commits,
            events,
            cluster,
            process,
        }
    }

    /// Counts one answered request.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.http.request(route, method, status, took);
    }

    /// Counts a 503.
    pub fn rejection(&self, reason: RejectionReason) {
        self.rejections.count(reason);
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

    pub fn set_in_flight(&self, current: usize, limit: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.http.in_flight.set(gauge(current));
        self.http.in_flight_limit.set(gauge(limit));
    }

    pub fn set_outbox_backlog(&self, events: i64) {
        self.events.backlog.set(events);
    }

    /// The exposition, in OpenMetrics text format.
    pub fn encode(&self) -> String {
        self.process.refresh();
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
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
