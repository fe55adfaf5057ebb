//! What the shard leases count: shards owned, claims, losses, releases, hand-backs, forwarded
//! requests, `not_owner` refusals and how long a renewal takes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{child, request_seconds};

/// How a forwarded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardOutcome {
    /// The owner answered (whatever its status).
    Answered,
    /// The owner said it does not own the shard (it moved meanwhile).
    NotOwner,
    /// The owner could not be reached or did not answer in time.
    Failed,
}

impl ForwardOutcome {
    const ALL: [ForwardOutcome; 3] = [
        ForwardOutcome::Answered,
        ForwardOutcome::NotOwner,
        ForwardOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ForwardOutcome::Answered => "answered",
            ForwardOutcome::NotOwner => "not_owner",
            ForwardOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

pub struct ClusterMetrics {
    /// Shards this engine holds (set by every renewal round).
    pub shards_owned: Gauge,
    /// Leases claimed (free or expired ones, and hand-backs received).
    pub claims: Counter,
    /// Leases found taken by another engine or gone (expired and claimed elsewhere).
    pub lost: Counter,
    /// Leases given up: at drain, or handed back.
    pub releases: Counter,
    /// Of the releases, those handed back to the engine the router sends the shard to.
    pub handbacks: Counter,
    /// Writes the commit refused because the lease had moved (`not_owner`).
    pub not_owner: Counter,
    /// Renewal rounds that failed (the database did not answer).
    pub renew_failures: Counter,
    pub renew_duration: Histogram,
    forwards: Family<OutcomeLabels, Counter>,
}

impl ClusterMetrics {
    pub(super) fn register(registry: &mut Registry) -> ClusterMetrics {
        let metrics = ClusterMetrics {
            shards_owned: Gauge::default(),
            claims: Counter::default(),
            lost: Counter::default(),
            releases: Counter::default(),
            handbacks: Counter::default(),
            not_owner: Counter::default(),
            renew_failures: Counter::default(),
            renew_duration: request_seconds(),
            forwards: Family::default(),
        };
        for outcome in ForwardOutcome::ALL {
            let _ = child(
                &metrics.forwards,
                &OutcomeLabels {
                    outcome: outcome.as_str(),
                },
            );
        }
        let cluster = registry.sub_registry_with_prefix("cluster");
        cluster.register(
            "shards_owned",
            "Shards whose lease this engine holds",
            metrics.shards_owned.clone(),
        );
        cluster.register(
            "lease_claims",
            "Shard leases claimed",
            metrics.claims.clone(),
        );
        cluster.register(
            "lease_lost",
            "Shard leases found held by another engine (expired and claimed elsewhere)",
            metrics.lost.clone(),
        );
        cluster.register(
            "lease_releases",
            "Shard leases given up (drain or hand-back)",
            metrics.releases.clone(),
        );
        cluster.register(
            "lease_handbacks",
            "Shard leases handed back to the engine the router sends the shard to",
            metrics.handbacks.clone(),
        );
        cluster.register(
            "not_owner_refusals",
            "Writes the commit refused because this engine no longer held the shard",
            metrics.not_owner.clone(),
        );
        cluster.register(
            "lease_renew_failures",
            "Lease renewal rounds that failed",
            metrics.renew_failures.clone(),
        );
        cluster.register_with_unit(
            "lease_renew_duration",
            "Time a lease renewal round took",
            Unit::Seconds,
            metrics.renew_duration.clone(),
        );
        cluster.register(
            "forwarded_requests",
            "Requests forwarded to the engine owning the buyer's shard, by outcome",
            metrics.forwards.clone(),
        );
        metrics
    }

    pub fn forwarded(&self, outcome: ForwardOutcome) {
        child(
            &self.forwards,
            &OutcomeLabels {
                outcome: outcome.as_str(),
            },
        )
        .inc();
    }
}
