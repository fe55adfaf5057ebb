use super::Points;

/// A money rule that a request would break. Nothing has moved when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("balance {balance} is less than the {required} points required")]
    InsufficientBalance { balance: Points, required: Points },
    #[error("the balance would exceed the maximum of {max} points")]
    BalanceLimitExceeded { max: Points },
}
