//! A buyer's decided write as the rows the writer applies.

use chrono::{DateTime, Utc};

use super::{BalanceChange, Rejection, WriteCommand, WriteOp};
use crate::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow,
};
use crate::domain::buyer::{
    FencedMovement, Fingerprint, KeyRecord, KnownOrder, PlannedWrite, StoredBalance,
    StoredResponse, WriteKind, WriteOutcome, WriteRefusal,
};
use crate::domain::{BuyerId, OrderId, OrderStatus, PaymentId, Points};

impl WriteOp {
    /// The rows of `write`, with the outbox event it emits (if any).
    pub fn from_plan(write: &PlannedWrite, event: Option<NewOutboxEvent>) -> WriteOp {
        let buyer = write.buyer;
        let command = match write.kind {
            WriteKind::Charge(change) => {
                WriteCommand::Charge(balance_change(buyer, &change, None, write.at))
            }
            WriteKind::Pay {
                change,
                order_id,
                payment_id,
            } => WriteCommand::Pay {
                change: balance_change(buyer, &change, Some((order_id, payment_id)), write.at),
                payment: payment_row(buyer, &change, order_id, payment_id, write.at),
            },
            WriteKind::CreateOrder {
                order_id,
                total_price,
            } => WriteCommand::CreateOrder(OrderRow {
                id: order_id.get(),
                buyer_id: buyer.get(),
                total_price: total_price.get(),
                status: OrderStatus::Pending,
                created_at: write.at.naive_utc(),
                paid_at: None,
                cancelled_at: None,
            }),
        };
        WriteOp {
            buyer_id: buyer.get(),
            command,
            idempotency: write
                .key
                .as_ref()
                .map(|record| idempotency_row(buyer, record, write.at)),
            event,
            lease: None,
        }
    }
}

fn balance_change(
    buyer: BuyerId,
    change: &FencedMovement,
    payment: Option<(OrderId, PaymentId)>,
    at: DateTime<Utc>,
) -> BalanceChange {
    let movement = &change.movement;
    BalanceChange {
        expected: change.expected,
        balance: movement.balance_after.get(),
        fence_token: change.token,
        entry: LedgerRow {
            buyer_id: buyer.get(),
            version: movement.version,
            kind: movement.kind,
            amount: movement.amount.get(),
            balance_after: movement.balance_after.get(),
            order_id: payment.map(|(order, _)| order.get()),
            payment_id: payment.map(|(_, id)| id.get()),
            refund_id: None,
            created_at: at.naive_utc(),
        },
    }
}

fn payment_row(
    buyer: BuyerId,
    change: &FencedMovement,
    order_id: OrderId,
    payment_id: PaymentId,
    at: DateTime<Utc>,
) -> PaymentRow {
    PaymentRow {
        id: payment_id.get(),
        order_id: order_id.get(),
        buyer_id: buyer.get(),
        amount: change
            .movement
            .amount
            .get()
            .checked_neg()
            .expect("a payment moves a negative amount, never i64::MIN"),
        refunded_amount: 0,
        balance_after: change.movement.balance_after.get(),
        ledger_version: change.movement.version,
        paid_at: at.naive_utc(),
    }
}

fn idempotency_row(buyer: BuyerId, record: &KeyRecord, at: DateTime<Utc>) -> IdempotencyRow {
    IdempotencyRow {
        idempotency_key: record.claim.key.as_str().to_owned(),
        buyer_id: buyer.get(),
        fingerprint: record.claim.fingerprint.as_str().to_owned(),
        response_status: i16::try_from(record.answer.status).expect("HTTP statuses fit in i16"),
        response_body: record.answer.body.clone(),
        created_at: at.naive_utc(),
        expires_at: record.expires_at.naive_utc(),
    }
}

impl StoredResponse {
    /// The answer an Idempotency-Key record keeps.
    pub fn from_row(row: &IdempotencyRow) -> Self {
        Self {
            status: u16::try_from(row.response_status).unwrap_or(200),
            body: row.response_body.clone(),
        }
    }
}

impl super::WriteResult {
    /// The result as the buyer's rules take it.
    pub fn outcome(&self) -> WriteOutcome {
        match self {
            super::WriteResult::Committed => WriteOutcome::Committed,
            super::WriteResult::Rejected(rejection) => WriteOutcome::Refused(match rejection {
                Rejection::StaleFence => WriteRefusal::StaleFence,
                Rejection::OrderNotFound => WriteRefusal::OrderNotFound,
                Rejection::OrderAlreadyPaid => WriteRefusal::OrderAlreadyPaid,
                Rejection::NotOwner => WriteRefusal::NotOwner,
                Rejection::IdempotencyKeyUsed(record) => WriteRefusal::KeyUsed {
                    fingerprint: Fingerprint(record.fingerprint.clone()),
                    answer: StoredResponse::from_row(record),
                },
            }),
        }
    }
}

/// A balance row as the buyer's rules take it.
pub fn stored_balance(row: &BalanceRow) -> StoredBalance {
    StoredBalance {
        balance: Points::new(row.balance),
        version: row.version,
        fence_token: row.fence_token,
    }
}

/// An order row (or its absence) as `buyer`'s rules take it.
pub fn known_order(buyer: BuyerId, row: Option<&OrderRow>) -> KnownOrder {
    match row {
        Some(row) if row.buyer_id == buyer.get() => match row.status {
            OrderStatus::Pending => KnownOrder::Payable(Points::new(row.total_price)),
            _ => KnownOrder::Paid,
        },
        _ => KnownOrder::NotOurs,
    }
}
