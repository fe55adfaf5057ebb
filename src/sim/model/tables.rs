//! The seven tables the writer touches, as ordered maps, with the keys and CHECK constraints the
//! migrations declare, and an undo journal: a statement, a savepoint and the transaction are
//! all "roll back to a mark".
//!
//! Each method is one SQL statement of the writer and behaves as MariaDB executes it: rows in
//! the order given, CHECK constraints of a row before its unique keys, the primary key before
//! secondary unique keys, and the whole statement undone when one row fails.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;

use super::ModelError;
use crate::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, OutboxEventRow, PaymentRow,
    RefundRow,
};
use crate::db::outbox::OutboxStatus;
use crate::db::writer::Fence;
use crate::domain::{EntryKind, OrderStatus};

/// The status a new outbox row gets from its column default.
mod lifecycle;
use lifecycle::check_payment;

const OUTBOX_DEFAULT_STATUS: OutboxStatus = OutboxStatus::Pending;

/// What undoes one change.
#[derive(Debug, Clone)]
enum Undo {
    Balance(i64, Option<BalanceRow>),
    Ledger((i64, i64)),
    Order(i64, Option<OrderRow>),
    Payment(i64),
    /// A payment's row as it was before a refund changed its refunded total.
    Refunded(PaymentRow),
    Refund(i64),
    Idempotency(String, Option<IdempotencyRow>),
    Outbox(i64),
}

/// One buyer's row of a fenced multi-row `UPDATE balances`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BalanceUpdate {
    pub buyer_id: i64,
    pub fence: Fence,
    pub balance: i64,
    pub version: i64,
    pub fence_token: i64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Tables {
    pub balances: BTreeMap<i64, BalanceRow>,
    pub ledger: BTreeMap<(i64, i64), LedgerRow>,
    pub orders: BTreeMap<i64, OrderRow>,
    pub payments: BTreeMap<i64, PaymentRow>,
    pub refunds: BTreeMap<i64, RefundRow>,
    pub idempotency: BTreeMap<String, IdempotencyRow>,
    pub outbox: BTreeMap<i64, OutboxEventRow>,
    /// The unique key `payments_order`.
    paid_orders: BTreeSet<i64>,
    /// The unique key `outbox_events_event_id`.
    event_ids: BTreeSet<String>,
    /// The last `seq` handed out. Not journaled: InnoDB does not give auto-increment values
    /// back, neither when the insert fails nor when its transaction rolls back.
    last_seq: i64,
    journal: Vec<Undo>,
}

impl Tables {
    /// Runs `body` atomically: if it fails, every change it made is undone (a statement, a
    /// savepoint or a transaction alike).
    pub fn atomically<T, E>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let mark = self.journal.len();
        let outcome = body(self);
        if outcome.is_err() {
            self.roll_back_to(mark);
        }
        outcome
    }

    /// Makes every change so far permanent.
    pub fn commit(&mut self) {
        self.journal.clear();
    }

    fn roll_back_to(&mut self, mark: usize) {
        while self.journal.len() > mark {
            match self
                .journal
                .pop()
                .expect("the journal is longer than the mark")
            {
                Undo::Balance(buyer_id, row) => restore(&mut self.balances, buyer_id, row),
                Undo::Ledger(key) => {
                    self.ledger.remove(&key);
                }
                Undo::Order(id, row) => restore(&mut self.orders, id, row),
                Undo::Payment(id) => {
                    if let Some(payment) = self.payments.remove(&id) {
                        self.paid_orders.remove(&payment.order_id);
                    }
                }
                Undo::Refunded(row) => {
                    self.payments.insert(row.id, row);
                }
                Undo::Refund(id) => {
                    self.refunds.remove(&id);
                }
                Undo::Idempotency(key, row) => restore(&mut self.idempotency, key, row),
                Undo::Outbox(seq) => {
                    if let Some(event) = self.outbox.remove(&seq) {
                        self.event_ids.remove(&event.event_id);
                    }
                }
            }
        }
    }

    /// `INSERT INTO orders VALUES ...`
    pub fn insert_orders(&mut self, rows: &[&OrderRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                check_order(row)?;
                if t.orders.contains_key(&row.id) {
                    return Err(ModelError::duplicate("orders", "PRIMARY"));
                }
                t.put_order((*row).clone());
            }
            Ok(())
        })
    }

    /// `UPDATE orders SET status = 'PAID', paid_at = CASE id ... END WHERE id IN (..) AND
    /// status = 'PENDING' AND (id, buyer_id) IN (..)`; the number of rows it matched.
    pub fn mark_orders_paid(&mut self, payments: &[&PaymentRow]) -> usize {
        let ids: BTreeSet<i64> = payments.iter().map(|p| p.order_id).collect();
        let mut matched = 0;
        for id in ids {
            let Some(order) = self.orders.get(&id) else {
                continue;
            };
            let payer = payments
                .iter()
                .any(|p| p.order_id == id && p.buyer_id == order.buyer_id);
            if !payer || !has_status(order, OrderStatus::Pending) {
                continue;
            }
            // CASE takes the first arm that matches.
            let paid_at = payments
                .iter()
                .find(|p| p.order_id == id)
                .map(|p| p.paid_at);
            let mut paid = order.clone();
            set_status(&mut paid, OrderStatus::Paid);
            paid.paid_at = paid_at;
            self.put_order(paid);
            matched += 1;
        }
        matched
    }

    /// `DELETE FROM idempotency_keys WHERE idempotency_key IN (..) AND expires_at <= now`
    pub fn delete_expired_keys(&mut self, keys: &[&str], now: NaiveDateTime) {
        for key in keys {
            if self
                .idempotency
                .get(*key)
                .is_some_and(|row| row.expires_at <= now)
            {
                let old = self.idempotency.remove(*key);
                self.journal.push(Undo::Idempotency((*key).to_owned(), old));
            }
        }
    }

    /// `INSERT INTO idempotency_keys VALUES ...`
    pub fn insert_keys(&mut self, rows: &[&IdempotencyRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                if t.idempotency.contains_key(&row.idempotency_key) {
                    return Err(ModelError::duplicate("idempotency_keys", "PRIMARY"));
                }
                let key = row.idempotency_key.clone();
                t.idempotency.insert(key.clone(), (*row).clone());
                t.journal.push(Undo::Idempotency(key, None));
            }
            Ok(())
        })
    }

    /// `queries::find_idempotency_record`: the record of `key` unless it has expired.
    pub fn live_key(&self, key: &str, now: NaiveDateTime) -> Option<&IdempotencyRow> {
        self.idempotency.get(key).filter(|row| row.expires_at > now)
    }

    /// `INSERT INTO balances VALUES ...`
    pub fn insert_balances(&mut self, rows: &[BalanceRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                check_balance(row)?;
                if t.balances.contains_key(&row.buyer_id) {
                    return Err(ModelError::duplicate("balances", "PRIMARY"));
                }
                t.put_balance(row.clone());
            }
            Ok(())
        })
    }

    /// `UPDATE balances SET balance = CASE .., version = CASE .., fence_token = CASE ..,
    /// updated_at = now WHERE buyer_id IN (..) AND (buyer_id, version, fence_token) IN (..)`;
    /// the number of rows it matched (Diesel connects with `CLIENT_FOUND_ROWS`), in primary key
    /// order as InnoDB scans them.
    pub fn update_balances(
        &mut self,
        updates: &[BalanceUpdate],
        now: NaiveDateTime,
    ) -> Result<usize, ModelError> {
        let mut sorted = updates.to_vec();
        sorted.sort_by_key(|update| update.buyer_id);
        self.atomically(|t| {
            let mut matched = 0;
            for update in &sorted {
                let Some(row) = t.balances.get(&update.buyer_id) else {
                    continue;
                };
                if (row.version, row.fence_token) != (update.fence.version, update.fence.token) {
                    continue;
                }
                let new = BalanceRow {
                    buyer_id: update.buyer_id,
                    balance: update.balance,
                    version: update.version,
                    fence_token: update.fence_token,
                    updated_at: now,
                };
                check_balance(&new)?;
                t.put_balance(new);
                matched += 1;
            }
            Ok(matched)
        })
    }

    /// `INSERT INTO ledger_entries VALUES ...`
    pub fn insert_ledger(&mut self, rows: &[&LedgerRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                check_ledger(row)?;
                let key = (row.buyer_id, row.version);
                if t.ledger.contains_key(&key) {
                    return Err(ModelError::duplicate("ledger_entries", "PRIMARY"));
                }
                t.ledger.insert(key, (*row).clone());
                t.journal.push(Undo::Ledger(key));
            }
            Ok(())
        })
    }

    /// `INSERT INTO payments VALUES ...`
    pub fn insert_payments(&mut self, rows: &[&PaymentRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                check_payment(row)?;
                if t.payments.contains_key(&row.id) {
                    return Err(ModelError::duplicate("payments", "PRIMARY"));
                }
                if t.paid_orders.contains(&row.order_id) {
                    return Err(ModelError::duplicate("payments", "payments_order"));
                }
                t.payments.insert(row.id, (*row).clone());
                t.paid_orders.insert(row.order_id);
                t.journal.push(Undo::Payment(row.id));
            }
            Ok(())
        })
    }

    /// `INSERT INTO outbox_events (..)`: the statement takes its `seq` values up front and
    /// keeps them taken even if it fails. (InnoDB may take more, in chunks, for the writer's
    /// `INSERT … SELECT`; only the order of `seq` is the engine's to rely on, and compared.)
    pub fn insert_events(&mut self, rows: &[&NewOutboxEvent]) -> Result<(), ModelError> {
        let first_seq = self.last_seq + 1;
        self.last_seq += i64::try_from(rows.len()).expect("a batch has fewer than 2^63 events");
        self.atomically(|t| {
            for (seq, row) in (first_seq..).zip(rows) {
                if t.event_ids.contains(&row.event_id) {
                    return Err(ModelError::duplicate(
                        "outbox_events",
                        "outbox_events_event_id",
                    ));
                }
                t.event_ids.insert(row.event_id.clone());
                t.outbox.insert(seq, outbox_row(seq, row));
                t.journal.push(Undo::Outbox(seq));
            }
            Ok(())
        })
    }

    fn put_balance(&mut self, row: BalanceRow) {
        let old = self.balances.insert(row.buyer_id, row.clone());
        self.journal.push(Undo::Balance(row.buyer_id, old));
    }

    fn put_order(&mut self, row: OrderRow) {
        let id = row.id;
        let old = self.orders.insert(id, row);
        self.journal.push(Undo::Order(id, old));
    }
}

fn restore<K: Ord, V>(table: &mut BTreeMap<K, V>, key: K, row: Option<V>) {
    match row {
        Some(row) => table.insert(key, row),
        None => table.remove(&key),
    };
}

fn outbox_row(seq: i64, row: &NewOutboxEvent) -> OutboxEventRow {
    OutboxEventRow {
        seq,
        event_id: row.event_id.clone(),
        event_type: row.event_type.clone(),
        schema_version: row.schema_version,
        buyer_id: row.buyer_id,
        payload: row.payload.clone(),
        occurred_at: row.occurred_at,
        status: OUTBOX_DEFAULT_STATUS,
        attempts: 0,
        last_error: None,
        published_at: None,
    }
}

// Statuses and kinds as the rows store them.

pub(super) fn has_status(order: &OrderRow, status: OrderStatus) -> bool {
    order.status == status
}

fn set_status(order: &mut OrderRow, status: OrderStatus) {
    order.status = status;
}

pub(super) fn charge_kind() -> EntryKind {
    EntryKind::Charge
}

// The CHECK constraints of the migrations, in the order they are declared.

fn check_balance(row: &BalanceRow) -> Result<(), ModelError> {
    check(row.balance >= 0, "balances_balance_not_negative")?;
    check(row.version > 0, "balances_version_positive")
}

fn check_ledger(row: &LedgerRow) -> Result<(), ModelError> {
    check(row.balance_after >= 0, "ledger_balance_after_not_negative")
}

fn check_order(row: &OrderRow) -> Result<(), ModelError> {
    check(row.total_price > 0, "orders_total_positive")
}

fn check(holds: bool, constraint: &'static str) -> Result<(), ModelError> {
    if holds {
        Ok(())
    } else {
        Err(ModelError::ConstraintFailed { constraint })
    }
}
