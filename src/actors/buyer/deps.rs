//! What every buyer actor shares, and how the buyer's rules' answers become its errors.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use super::BuyerActor;
use crate::actors::coordinator::CoordinatorHandle;
use crate::actors::errors::{BuyerError, OverloadReason};
use crate::cluster::Cluster;
use crate::db::Db;
use crate::domain::buyer::{BatchFailure, BuyerRules, Refusal};
use crate::domain::{BuyerId, Points};
use crate::metrics::{Metrics, Outcome};

/// What every buyer actor shares.
pub struct BuyerDeps {
    pub db: Db,
    /// Which shards this engine holds: a buyer's money moves here only under its shard's lease.
    pub cluster: Arc<Cluster>,
    pub coordinator: CoordinatorHandle,
    pub max_balance: Points,
    pub idempotency_ttl: Duration,
    pub idle_timeout: Duration,
    /// Whether charges also write a `points.charged` outbox event.
    pub emit_charge_events: bool,
    pub metrics: Arc<Metrics>,
}

impl BuyerDeps {
    pub fn rules(&self) -> BuyerRules {
        BuyerRules {
            max_balance: self.max_balance,
            idempotency_ttl: chrono::Duration::from_std(self.idempotency_ttl)
                .unwrap_or(chrono::Duration::days(1)),
        }
    }
}

/// Told when an actor stops for good (passivation), so whoever keeps its address lets it go.
pub type OnStop = Arc<dyn Fn(BuyerId, &Addr<BuyerActor>) + Send + Sync>;

impl From<BatchFailure> for BuyerError {
    fn from(failure: BatchFailure) -> Self {
        match failure {
            BatchFailure::Unavailable => BuyerError::DatabaseUnavailable,
            BatchFailure::Internal => BuyerError::Internal,
        }
    }
}

impl From<OverloadReason> for BuyerError {
    fn from(reason: OverloadReason) -> Self {
        BuyerError::Overloaded(reason)
    }
}

/// How a command's handling ended, for the actor metrics: refused by a rule of the buyer's own
/// making, or failed.
pub(super) fn outcome_of(error: &BuyerError) -> Outcome {
    match error {
        BuyerError::Refused(Refusal::StaleState | Refusal::NotOwner) => Outcome::Failed,
        BuyerError::Refused(_) => Outcome::Refused,
        _ => Outcome::Failed,
    }
}
