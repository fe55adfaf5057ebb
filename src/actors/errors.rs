use crate::db::DbError;
use crate::domain::DomainError;
pub use crate::domain::buyer::{Receipt, StoredResponse};

/// Which queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadReason {
    BuyerMailbox,
    CommitQueue,
    /// `MAX_IN_FLIGHT_REQUESTS` requests were being served already.
    InFlight,
}

impl OverloadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OverloadReason::BuyerMailbox => "buyer_mailbox_full",
            OverloadReason::CommitQueue => "commit_queue_full",
            OverloadReason::InFlight => "in_flight_limit",
        }
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
    pub fn from_db(error: DbError) -> BuyerError {
        if error.is_transient() {
            tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "loading buyer state failed");
            BuyerError::DatabaseUnavailable
        } else {
            tracing::error!(error = ?error, "loading buyer state failed unexpectedly");
            BuyerError::Internal
        }
    }
}
