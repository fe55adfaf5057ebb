use crate::db::{DbError, ErrorClass};
pub use crate::domain::buyer::{Receipt, StoredResponse};
use crate::domain::{DomainError, RejectionReason};

/// Which queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadReason {
    BuyerMailbox,
    CommitQueue,
    /// `MAX_IN_FLIGHT_REQUESTS` requests were being served already.
    InFlight,
}

impl OverloadReason {
    /// The 503's reason, as counted and documented.
    pub fn rejection(self) -> RejectionReason {
        match self {
            OverloadReason::BuyerMailbox => RejectionReason::BuyerMailboxFull,
            OverloadReason::CommitQueue => RejectionReason::CommitQueueFull,
            OverloadReason::InFlight => RejectionReason::InFlightLimit,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.rejection().as_str()
    }
}

/// Why a buyer's command did not move money. Every variant is final for that request: nothing
/// of it committed (for `DatabaseUnavailable` after a failed COMMIT: probably nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuyerError {
    #[error(transparent)]
    Rule(#[from] DomainError),
    #[error("order not found")]
    OrderNotFound,
    #[error("order already paid")]
    OrderAlreadyPaid,
    #[error("a request with this Idempotency-Key is still in flight")]
    IdempotencyKeyInFlight,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyMismatch,
    #[error("overloaded ({})", .0.as_str())]
    Overloaded(OverloadReason),
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// The buyer changed under this engine (another writer, or an earlier write failed): the
    /// state is reloaded and the request may be retried.
    #[error("the buyer's balance changed concurrently")]
    WriteConflict,
    #[error("internal error")]
    Internal,
}

impl BuyerError {
    /// A failure loading the buyer's state; classified and logged by `DbError::classify`.
    pub fn from_db(error: DbError) -> BuyerError {
        match error.classify("loading buyer state") {
            ErrorClass::Transient => BuyerError::DatabaseUnavailable,
            ErrorClass::Bug => BuyerError::Internal,
        }
    }
}
