//! An in-memory model of what the group-commit writer (`db::writer::commit_batch`) does to the
//! seven tables it touches, for the simulation to run the protocol against without a database.
//!
//! The contract it implements, as the real writer on MariaDB keeps it:
//! - A balance write commits only if the row is at the `expected` fence (version, token), or
//!   absent when `expected` is `None`; otherwise it is refused [`StaleFence`](crate::db::writer::Rejection::StaleFence), and
//!   so are the buyer's later writes in the batch that were fenced on it.
//! - A payment moves its order from PENDING to PAID once: another buyer's or an unknown order
//!   is [`OrderNotFound`](crate::db::writer::Rejection::OrderNotFound), a paid one [`OrderAlreadyPaid`](crate::db::writer::Rejection::OrderAlreadyPaid).
//!   A payment of a CANCELLED order is [`OrderCancelled`](crate::db::writer::Rejection::OrderCancelled).
//! - A cancellation moves a PENDING order of its buyer to CANCELLED; a paid (or refunded) one
//!   is `OrderAlreadyPaid`, a cancelled one `StaleFence` (decided again), another buyer's or an
//!   unknown one `OrderNotFound`. A refund moves its payment's refunded total from
//!   `refunded_before` (which the payment must still show, or `StaleFence`; another buyer's or
//!   an unknown payment is `PaymentNotFound`) to `refunded_after`, within the payment's amount
//!   (a CHECK), and sets its order's status; its refunds row is stored with its ledger entry.
//! - An Idempotency-Key is unique unless its record has expired (then it is replaced); a live
//!   record refuses the write with [`IdempotencyKeyUsed`](crate::db::writer::Rejection::IdempotencyKeyUsed), whatever the fingerprint
//!   and whichever buyer holds it. Checks run in that order: key, order, fence.
//! - Ledger entries, payments and outbox events are stored for committed writes only, events
//!   in submission order with increasing `seq`.
//! - A refused write is undone alone; anything else that goes wrong fails the whole batch
//!   ([`ModelError`]) and nothing is applied: a duplicate order id, payment id, event id or
//!   ledger (buyer, version), and any CHECK constraint (a negative balance).
//!
//! It is the real writer's algorithm, statement for statement (`writer`, `bulk`), over
//! ordered maps that enforce the migrations' keys and constraints (`tables`); the
//! differential test `tests/api/writer_model.rs` holds it to the real one.

use chrono::NaiveDateTime;

use crate::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, OrderRow, OutboxEventRow, PaymentRow, RefundRow,
};
use crate::db::writer::{BalanceChange, Fence, WriteCommand, WriteOp, WriteResult};

mod bulk;
mod tables;
#[cfg(test)]
mod tests;
mod writer;

/// Why a whole batch failed: the error of the statement that failed, as MariaDB reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A row repeats a unique key (MariaDB's ER_DUP_ENTRY, 1062).
    #[error("duplicate entry in {table} for key '{key}'")]
    Duplicate {
        table: &'static str,
        key: &'static str,
    },
    /// A row fails a CHECK constraint (MariaDB's ER_CONSTRAINT_FAILED, 4025).
    #[error("CONSTRAINT `{constraint}` failed")]
    ConstraintFailed { constraint: &'static str },
}

impl ModelError {
    fn duplicate(table: &'static str, key: &'static str) -> Self {
        ModelError::Duplicate { table, key }
    }
}

/// Every row of the seven tables, each table in primary key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    pub balances: Vec<BalanceRow>,
    pub ledger_entries: Vec<LedgerRow>,
    pub orders: Vec<OrderRow>,
    pub payments: Vec<PaymentRow>,
    pub refunds: Vec<RefundRow>,
    pub idempotency_keys: Vec<IdempotencyRow>,
    pub outbox_events: Vec<OutboxEventRow>,
}

/// The tables the writer touches, starting empty as after the migrations.
#[derive(Debug, Clone, Default)]
pub struct ModelDb {
    tables: tables::Tables,
}

impl ModelDb {
    pub fn new() -> Self {
        ModelDb::default()
    }

    /// What `db::writer::commit_batch(conn, ops, now)` does: one result per op, in order; or
    /// the error that failed the batch, with nothing applied.
    pub fn commit_batch(
        &mut self,
        ops: &[WriteOp],
        now: NaiveDateTime,
    ) -> Result<Vec<WriteResult>, ModelError> {
        writer::commit_batch(&mut self.tables, ops, now)
    }

    pub fn balance(&self, buyer_id: i64) -> Option<&BalanceRow> {
        self.tables.balances.get(&buyer_id)
    }

    /// The fence a write of `buyer_id` must expect to commit now.
    pub fn fence(&self, buyer_id: i64) -> Option<Fence> {
        self.balance(buyer_id).map(|row| Fence {
            version: row.version,
            token: row.fence_token,
        })
    }

    pub fn find_order(&self, order_id: i64) -> Option<&OrderRow> {
        self.tables.orders.get(&order_id)
    }

    /// Every order, by id.
    pub fn orders(&self) -> impl Iterator<Item = &OrderRow> {
        self.tables.orders.values()
    }

    /// The buyer's orders, by id.
    pub fn orders_of(&self, buyer_id: i64) -> impl Iterator<Item = &OrderRow> {
        self.orders()
            .filter(move |order| order.buyer_id == buyer_id)
    }

    /// Every payment, by id.
    pub fn payments(&self) -> impl Iterator<Item = &PaymentRow> {
        self.tables.payments.values()
    }

    pub fn find_payment(&self, payment_id: i64) -> Option<&PaymentRow> {
        self.tables.payments.get(&payment_id)
    }

    pub fn find_refund(&self, refund_id: i64) -> Option<&RefundRow> {
        self.tables.refunds.get(&refund_id)
    }

    /// Every refund, by id.
    pub fn refunds(&self) -> impl Iterator<Item = &RefundRow> {
        self.tables.refunds.values()
    }

    /// The buyer's ledger entries, oldest first.
    pub fn ledger(&self, buyer_id: i64) -> impl Iterator<Item = &LedgerRow> {
        self.tables
            .ledger
            .range((buyer_id, i64::MIN)..=(buyer_id, i64::MAX))
            .map(|(_, entry)| entry)
    }

    /// The record holding `key` at `now`, as `queries::find_idempotency_record` finds it.
    pub fn idempotency_record(&self, key: &str, now: NaiveDateTime) -> Option<&IdempotencyRow> {
        self.tables.live_key(key, now)
    }

    /// The outbox, in commit (`seq`) order.
    pub fn outbox_events(&self) -> impl Iterator<Item = &OutboxEventRow> {
        self.tables.outbox.values()
    }

    /// The write a second writer (another engine, holding `token`) makes to charge `amount`
    /// (negative: to debit it) to `buyer_id` now: fenced on the row as it is, with its own
    /// ledger entry, no key and no event. Any write fenced on the row before it is then stale.
    pub fn bump_op(&self, buyer_id: i64, amount: i64, token: i64, now: NaiveDateTime) -> WriteOp {
        let (balance, version) = self
            .balance(buyer_id)
            .map_or((0, 0), |row| (row.balance, row.version));
        let balance_after = balance
            .checked_add(amount)
            .expect("a bump keeps the balance within i64");
        WriteOp {
            buyer_id,
            command: WriteCommand::Charge(BalanceChange {
                expected: self.fence(buyer_id),
                balance: balance_after,
                fence_token: token,
                entry: LedgerRow {
                    buyer_id,
                    version: version + 1,
                    kind: tables::charge_kind(),
                    amount,
                    balance_after,
                    order_id: None,
                    payment_id: None,
                    refund_id: None,
                    created_at: now,
                },
            }),
            idempotency: None,
            event: None,
            lease: None,
        }
    }

    /// Commits [`ModelDb::bump_op`] as a batch of its own; returns the op.
    pub fn bump(
        &mut self,
        buyer_id: i64,
        amount: i64,
        token: i64,
        now: NaiveDateTime,
    ) -> Result<WriteOp, ModelError> {
        let op = self.bump_op(buyer_id, amount, token, now);
        let results = self.commit_batch(std::slice::from_ref(&op), now)?;
        // Fenced on the row as it is, with no key and no order: nothing can refuse it.
        debug_assert_eq!(results, [WriteResult::Committed]);
        Ok(op)
    }

    /// Every row, each table in primary key order, for comparison with the database.
    pub fn rows(&self) -> Rows {
        let t = &self.tables;
        Rows {
            balances: t.balances.values().cloned().collect(),
            ledger_entries: t.ledger.values().cloned().collect(),
            orders: t.orders.values().cloned().collect(),
            payments: t.payments.values().cloned().collect(),
            refunds: t.refunds.values().cloned().collect(),
            idempotency_keys: t.idempotency.values().cloned().collect(),
            outbox_events: t.outbox.values().cloned().collect(),
        }
    }
}
