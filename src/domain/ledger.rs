use serde::{Deserialize, Serialize};

use super::{DomainError, Points};

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    Charge,
    Payment,
    /// Part or all of a payment given back (positive amount).
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "CHARGE",
            EntryKind::Payment => "PAYMENT",
            EntryKind::Refund => "REFUND",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CHARGE" => Some(EntryKind::Charge),
            "PAYMENT" => Some(EntryKind::Payment),
            "REFUND" => Some(EntryKind::Refund),
            _ => None,
        }
    }
}

/// The life of an order: created PENDING; then either CANCELLED (never paid) or PAID (at most
/// once), and a paid order PARTIALLY_REFUNDED and REFUNDED as refunds give its points back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Paid,
    Cancelled,
    PartiallyRefunded,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }

    /// Every status, in the order of an order's life.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
    ];

    /// Whether the order has been paid (whatever has been refunded of it since).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OrderStatus::Pending),
            "PAID" => Some(OrderStatus::Paid),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            "PARTIALLY_REFUNDED" => Some(OrderStatus::PartiallyRefunded),
            "REFUNDED" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }
}

/// A buyer's balance and the number of ledger entries behind it.
///
/// Invariant: `balance` equals the sum of the signed amounts of ledger entries `1..=version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceState {
    pub balance: Points,
    pub version: i64,
}

/// One change of a balance: the ledger entry it writes and the state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub kind: EntryKind,
    /// Signed: positive for a charge, negative for a payment.
    pub amount: Points,
    pub balance_after: Points,
    pub version: i64,
}

impl BalanceState {
    pub const EMPTY: BalanceState = BalanceState {
        balance: Points::ZERO,
        version: 0,
    };

    /// Adds `amount` (positive) without letting the balance pass `max_balance`.
    pub fn charge(self, amount: Points, max_balance: Points) -> Result<Movement, DomainError> {
        self.credit(EntryKind::Charge, amount, max_balance)
    }

    /// Gives `amount` (positive) of a payment back, within `max_balance` as a charge is.
    pub fn refund(self, amount: Points, max_balance: Points) -> Result<Movement, DomainError> {
        self.credit(EntryKind::Refund, amount, max_balance)
    }

    fn credit(
        self,
        kind: EntryKind,
        amount: Points,
        max_balance: Points,
    ) -> Result<Movement, DomainError> {
        let exceeded = DomainError::BalanceLimitExceeded { max: max_balance };
        let balance_after = self.balance.checked_add(amount).ok_or(exceeded.clone())?;
        if balance_after > max_balance {
            return Err(exceeded);
        }
        self.movement(kind, amount, balance_after).ok_or(exceeded)
    }

    /// Deducts `price` (positive); the balance never goes below zero.
    pub fn pay(self, price: Points) -> Result<Movement, DomainError> {
        let insufficient = DomainError::InsufficientBalance {
            balance: self.balance,
            required: price,
        };
        let balance_after = match self.balance.checked_sub(price) {
            Some(after) if after >= Points::ZERO => after,
            _ => return Err(insufficient),
        };
        let amount = Points::ZERO
            .checked_sub(price)
            .ok_or(insufficient.clone())?;
        self.movement(EntryKind::Payment, amount, balance_after)
            .ok_or(insufficient)
    }

    fn movement(self, kind: EntryKind, amount: Points, balance_after: Points) -> Option<Movement> {
        let version = self.version.checked_add(1)?;
        Some(Movement {
            kind,
            amount,
            balance_after,
            version,
        })
    }

    /// The state after `movement` is applied.
    pub fn after(movement: &Movement) -> BalanceState {
        BalanceState {
            balance: movement.balance_after,
            version: movement.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Points = Points::new(1_000_000_000);

    #[test]
    fn paying_more_than_the_balance_is_refused() {
        let state = BalanceState {
            balance: Points::new(100),
            version: 3,
        };
        assert_eq!(
            state.pay(Points::new(101)),
            Err(DomainError::InsufficientBalance {
                balance: Points::new(100),
                required: Points::new(101)
            })
        );
        let paid = state.pay(Points::new(100)).unwrap();
        assert_eq!(paid.balance_after, Points::ZERO);
        assert_eq!(paid.amount, Points::new(-100));
        assert_eq!(paid.version, 4);
    }

    #[test]
    fn charging_past_the_maximum_balance_is_refused() {
        let state = BalanceState {
            balance: Points::new(i64::MAX - 1),
            version: 1,
        };
        assert!(matches!(
            state.charge(Points::new(2), Points::new(i64::MAX)),
            Err(DomainError::BalanceLimitExceeded { .. })
        ));
        let state = BalanceState {
            balance: Points::new(10),
            version: 1,
        };
        assert!(state.charge(Points::new(11), Points::new(20)).is_err());
        assert_eq!(
            state
                .charge(Points::new(10), Points::new(20))
                .unwrap()
                .balance_after,
            Points::new(20)
        );
    }

    proptest! {
        /// Any sequence of charges and payments keeps balance == sum of entries, balance >= 0,
        /// and versions 1..n without gaps.
        #[test]
        fn balance_always_equals_the_ledger_sum(ops in prop::collection::vec((any::<bool>(), 1i64..=1_000_000), 0..200)) {
            let mut state = BalanceState::EMPTY;
            let mut sum: i64 = 0;
            let mut versions = Vec::new();
            for (is_charge, amount) in ops {
                let result = if is_charge {
                    state.charge(Points::new(amount), MAX)
                } else {
                    state.pay(Points::new(amount))
                };
                if let Ok(movement) = result {
                    sum += movement.amount.get();
                    versions.push(movement.version);
                    state = BalanceState::after(&movement);
                }
                prop_assert!(state.balance.get() >= 0);
                prop_assert!(state.balance <= MAX);
                prop_assert_eq!(state.balance.get(), sum);
            }
            prop_assert_eq!(versions, (1..=state.version).collect::<Vec<_>>());
        }
    }
}
