use crate::db::{DbError, ErrorClass};
use crate::domain::RejectionReason;
use crate::domain::buyer::Refusal;
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
    /// The buyer's rules (or the writer, on their behalf) refused it;
    /// [`Refusal::StaleState`] means the buyer changed under this engine (another writer, or an
    /// earlier write failed): the state is reloaded and the request may be retried.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("overloaded ({})", .0.as_str())]
    Overloaded(OverloadReason),
    #[error("the database is unavailable")]
    DatabaseUnavailable,
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
