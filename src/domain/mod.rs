//! The rules of money: ids, amounts, and what a charge or a payment does to a buyer's balance.
//! Nothing in here does I/O.

pub mod buyer;
mod error;
mod idempotency;
mod ids;
mod ledger;
mod money;
mod receipts;
mod rejection;

pub use error::DomainError;
pub use idempotency::{IdempotencyKey, InvalidIdempotencyKey};
pub use ids::{BuyerId, IdParseError, OrderId, PaymentId, RefundId};
pub use ledger::{BalanceState, EntryKind, Movement, OrderStatus};
pub use money::{AmountParseError, Points};
pub use receipts::{ChargeReceipt, OrderView, PaymentReceipt, RefundReceipt};
pub use rejection::RejectionReason;
