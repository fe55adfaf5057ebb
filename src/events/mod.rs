//! Integration events: what goes into the outbox and onto Kafka, and the Kafka plumbing
//! (client settings, topic creation, what the `events` commands do). The publisher actor lives
//! in `actors::publisher`.

pub mod admin;
pub mod kafka;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::models::NewOutboxEvent;
use crate::domain::buyer::{PlannedWrite, Receipt, WriteKind};
use crate::domain::{ChargeReceipt, OrderId, PaymentReceipt, Points, RefundReceipt};

pub const PAYMENT_COMPLETED: &str = "payment.completed";
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const POINTS_CHARGED: &str = "points.charged";
/// Version of the payload schemas below; bumped on any incompatible change.
pub const SCHEMA_VERSION: i32 = 1;

/// The JSON value of every Kafka message. `eventId` is stable across redeliveries: consumers
/// dedupe on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub data: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCompleted {
    pub payment_id: i64,
    pub order_id: i64,
    pub buyer_id: i64,
    pub amount: i64,
    pub balance_after: i64,
    /// The buyer's ledger version of this payment: one buyer's events, in any order and from
    /// any engine, sort by it (and repeat it when delivered again).
    pub version: i64,
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointsCharged {
    pub buyer_id: i64,
    pub amount: i64,
    pub balance_after: i64,
    pub version: i64,
    pub charged_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub refund_id: i64,
    pub payment_id: i64,
    pub order_id: i64,
    pub buyer_id: i64,
    /// Points given back by this refund.
    pub amount: i64,
    /// All refunds of the payment so far, this one included (at most the payment's amount).
    pub refunded_total: i64,
    /// The payment's amount: `refunded_total == payment_amount` once fully refunded.
    pub payment_amount: i64,
    pub balance_after: i64,
    /// The buyer's ledger version of this refund (as in `payment.completed`).
    pub version: i64,
    pub reason: Option<String>,
    pub refunded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    pub order_id: i64,
    pub buyer_id: i64,
    pub total_price: i64,
    pub cancelled_at: DateTime<Utc>,
}

/// The event `write` emits, committed with it: payments, refunds and cancellations always,
/// charges when `charge_events` is on.
pub fn of_write(write: &PlannedWrite, charge_events: bool) -> Option<NewOutboxEvent> {
    match (&write.kind, &write.receipt) {
        (_, Receipt::Paid(receipt)) => Some(payment_completed(receipt)),
        (WriteKind::Refund { refund, .. }, Receipt::Refunded(receipt)) => Some(payment_refunded(
            receipt,
            refund.refunded_after,
            refund.payment_amount,
        )),
        (
            WriteKind::Cancel {
                order_id,
                total_price,
            },
            _,
        ) => Some(order_cancelled(
            *order_id,
            write.buyer.get(),
            *total_price,
            write.at,
        )),
        (_, Receipt::Charged(receipt)) if charge_events => Some(points_charged(receipt, write.at)),
        _ => None,
    }
}

/// The outbox row of a payment.
pub fn payment_completed(receipt: &PaymentReceipt) -> NewOutboxEvent {
    let data = PaymentCompleted {
        payment_id: receipt.payment_id.get(),
        order_id: receipt.order_id.get(),
        buyer_id: receipt.buyer_id.get(),
        amount: receipt.amount.get(),
        balance_after: receipt.balance.get(),
        version: receipt.version,
        paid_at: receipt.paid_at,
    };
    outbox_row(
        PAYMENT_COMPLETED,
        receipt.buyer_id.get(),
        receipt.paid_at,
        data,
    )
}

/// The outbox row of a refund; `refunded_total` and `payment_amount` as after it.
pub fn payment_refunded(
    receipt: &RefundReceipt,
    refunded_total: Points,
    payment_amount: Points,
) -> NewOutboxEvent {
    let data = PaymentRefunded {
        refund_id: receipt.refund_id.get(),
        payment_id: receipt.payment_id.get(),
        order_id: receipt.order_id.get(),
        buyer_id: receipt.buyer_id.get(),
        amount: receipt.amount.get(),
        refunded_total: refunded_total.get(),
        payment_amount: payment_amount.get(),
        balance_after: receipt.balance.get(),
        version: receipt.version,
        reason: receipt.reason.clone(),
        refunded_at: receipt.refunded_at,
    };
    let buyer = receipt.buyer_id.get();
    outbox_row(PAYMENT_REFUNDED, buyer, receipt.refunded_at, data)
}

/// The outbox row of a cancelled order.
pub fn order_cancelled(
    order_id: OrderId,
    buyer_id: i64,
    total_price: Points,
    at: DateTime<Utc>,
) -> NewOutboxEvent {
    let data = OrderCancelled {
        order_id: order_id.get(),
        buyer_id,
        total_price: total_price.get(),
        cancelled_at: at,
    };
    outbox_row(ORDER_CANCELLED, buyer_id, at, data)
}

/// The outbox row of a charge (emitted only when enabled).
pub fn points_charged(receipt: &ChargeReceipt, at: DateTime<Utc>) -> NewOutboxEvent {
    let data = PointsCharged {
        buyer_id: receipt.buyer_id.get(),
        amount: receipt.amount.get(),
        balance_after: receipt.balance.get(),
        version: receipt.version,
        charged_at: at,
    };
    outbox_row(POINTS_CHARGED, receipt.buyer_id.get(), at, data)
}

fn outbox_row<T: Serialize>(
    event_type: &str,
    buyer_id: i64,
    at: DateTime<Utc>,
    data: T,
) -> NewOutboxEvent {
    let envelope = Envelope {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: SCHEMA_VERSION,
        occurred_at: at,
        data,
    };
    NewOutboxEvent {
        event_id: envelope.event_id.to_string(),
        event_type: event_type.to_owned(),
        schema_version: SCHEMA_VERSION,
        buyer_id,
        // Plain data with string keys cannot fail to serialize; if it ever did, an empty payload
        // would commit with the payment and reach consumers as an event nobody can read.
        payload: serde_json::to_string(&envelope).expect("an event envelope serializes to JSON"),
        occurred_at: at.naive_utc(),
    }
}
