//! What the writer answered for a write, and what the buyer's rules make of it.

use super::super::OrderId;
use super::orders::KnownOrder;
use super::request::{Fingerprint, PendingWrite, Refusal, StoredResponse};

/// Why the writer refused one write while its batch committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRefusal {
    /// The balance row was not at the version and token the write expected.
    StaleFence,
    OrderNotFound,
    OrderAlreadyPaid,
    /// The order was cancelled (the payment found it so in the database).
    OrderCancelled,
    /// The refunded payment is missing, or another buyer's.
    PaymentNotFound,
    /// The key already has a live record: the request it was recorded for, and its answer.
    KeyUsed {
        fingerprint: Fingerprint,
        answer: StoredResponse,
    },
    /// The engine no longer holds the buyer's shard at the epoch the write was decided under.
    NotOwner,
}

/// Why a whole batch failed: nothing of it committed, or (COMMIT itself failed) the outcome is
/// unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFailure {
    Unavailable,
    Internal,
}

/// The result of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    Refused(WriteRefusal),
    Failed(BatchFailure),
}

/// What a settled write answers its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It committed: the request gets the write's own receipt.
    Committed,
    /// The key had committed before (another actor, or before a restart): its stored answer.
    Replay(StoredResponse),
    /// Refused by the writer (a stale fence answers [`Refusal::StaleState`]).
    Refused(Refusal),
    Failed(BatchFailure),
}

/// What a committed payment or cancellation made of its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFate {
    Paid,
    Cancelled,
}

impl OrderFate {
    pub(super) fn known(self) -> KnownOrder {
        match self {
            OrderFate::Paid => KnownOrder::Paid,
            OrderFate::Cancelled => KnownOrder::Cancelled,
        }
    }
}

/// A settled write: its answer, and for a payment or cancellation what became of the order
/// (`None`: it did not commit); requests waiting on the order are answered from that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub answer: Answer,
    pub order: Option<(OrderId, Option<OrderFate>)>,
}

/// What a settled write answers its request.
pub(super) fn answer_of(pending: &PendingWrite, outcome: &WriteOutcome) -> Answer {
    match outcome {
        WriteOutcome::Committed => Answer::Committed,
        WriteOutcome::Refused(WriteRefusal::StaleFence) => Answer::Refused(Refusal::StaleState),
        WriteOutcome::Refused(WriteRefusal::NotOwner) => Answer::Refused(Refusal::NotOwner),
        WriteOutcome::Refused(WriteRefusal::OrderNotFound) => {
            Answer::Refused(Refusal::OrderNotFound)
        }
        WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid) => {
            Answer::Refused(Refusal::OrderAlreadyPaid)
        }
        WriteOutcome::Refused(WriteRefusal::OrderCancelled) => {
            Answer::Refused(Refusal::OrderCancelled)
        }
        WriteOutcome::Refused(WriteRefusal::PaymentNotFound) => {
            Answer::Refused(Refusal::PaymentNotFound)
        }
        WriteOutcome::Refused(WriteRefusal::KeyUsed {
            fingerprint,
            answer,
        }) => match &pending.key {
            Some(record) if record.claim.fingerprint == *fingerprint => {
                Answer::Replay(answer.clone())
            }
            _ => Answer::Refused(Refusal::IdempotencyKeyMismatch),
        },
        WriteOutcome::Failed(failure) => Answer::Failed(*failure),
    }
}
