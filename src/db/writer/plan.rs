//! A buyer's decided write as the rows the writer applies.

use chrono::{DateTime, Utc};

use super::RefundWrite;
use super::{BalanceChange, Rejection, WriteCommand, WriteOp};
use crate::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow, RefundRow,
};
use crate::domain::buyer::{
    FencedMovement, Fingerprint, KeyRecord, KnownOrder, KnownPayment, PlannedWrite, RefundPlan,
    StoredBalance, StoredResponse, WriteKind, WriteOutcome, WriteRefusal,
};
use crate::domain::{BuyerId, OrderId, OrderStatus, PaymentId, Points};

/// What a ledger entry points at besides its buyer.
#[derive(Default)]
struct EntryLinks {
    order_id: Option<i64>,
    payment_id: Option<i64>,
    refund_id: Option<i64>,
}

impl WriteOp {
    /// The rows of `write`, with the outbox event it emits (if any).
    pub fn from_plan(write: &PlannedWrite, event: Option<NewOutboxEvent>) -> WriteOp {
        let buyer = write.buyer;
        let command = match &write.kind {
            WriteKind::Charge(change) => WriteCommand::Charge(balance_change(
                buyer,
                change,
                EntryLinks::default(),
                write.at,
            )),
            &WriteKind::Pay {
                change,
                order_id,
                payment_id,
            } => {
                let links = EntryLinks {
                    order_id: Some(order_id.get()),
                    payment_id: Some(payment_id.get()),
                    refund_id: None,
                };
                WriteCommand::Pay {
                    change: balance_change(buyer, &change, links, write.at),
                    payment: payment_row(buyer, &change, order_id, payment_id, write.at),
                }
            }
            WriteKind::Refund { change, refund } => {
                WriteCommand::Refund(refund_write(buyer, change, refund, write.at))
            }
            &WriteKind::Cancel { order_id, .. } => WriteCommand::Cancel {
                order_id: order_id.get(),
                cancelled_at: write.at.naive_utc(),
            },
            &WriteKind::CreateOrder {
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

fn refund_write(
    buyer: BuyerId,
    change: &FencedMovement,
    refund: &RefundPlan,
    at: DateTime<Utc>,
) -> RefundWrite {
    let links = EntryLinks {
        order_id: Some(refund.order_id.get()),
        payment_id: Some(refund.payment_id.get()),
        refund_id: Some(refund.refund_id.get()),
    };
    let status = if refund.refunded_after == refund.payment_amount {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    RefundWrite {
        change: balance_change(buyer, change, links, at),
        row: RefundRow {
            id: refund.refund_id.get(),
            payment_id: refund.payment_id.get(),
            order_id: refund.order_id.get(),
            buyer_id: buyer.get(),
            amount: refund.amount.get(),
            reason: refund.reason.clone(),
            balance_after: change.movement.balance_after.get(),
            ledger_version: change.movement.version,
            refunded_at: at.naive_utc(),
        },
        refunded_before: refund.refunded_before.get(),
        refunded_after: refund.refunded_after.get(),
        order_status: status,
    }
}

fn balance_change(
    buyer: BuyerId,
    change: &FencedMovement,
    links: EntryLinks,
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
            order_id: links.order_id,
            payment_id: links.payment_id,
            refund_id: links.refund_id,
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
                Rejection::OrderCancelled => WriteRefusal::OrderCancelled,
                Rejection::PaymentNotFound => WriteRefusal::PaymentNotFound,
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
            OrderStatus::Cancelled => KnownOrder::Cancelled,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
                KnownOrder::Paid
            }
        },
        _ => KnownOrder::NotOurs,
    }
}

/// A payment row (or its absence) as `buyer`'s rules take it.
pub fn known_payment(buyer: BuyerId, row: Option<&PaymentRow>) -> KnownPayment {
    match row {
        Some(row) if row.buyer_id == buyer.get() => match OrderId::try_from(row.order_id) {
            Ok(order_id) => KnownPayment::Refundable {
                order_id,
                amount: Points::new(row.amount),
                refunded: Points::new(row.refunded_amount),
            },
            Err(_) => KnownPayment::NotOurs,
        },
        _ => KnownPayment::NotOurs,
    }
}
