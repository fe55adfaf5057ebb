//! Integration events: what goes into the outbox and onto Kafka, and the Kafka plumbing
//! (client settings, topic creation, what the `events` commands do). The publisher actor lives
//! in `actors::publisher`.

pub mod admin;
pub mod kafka;
pub mod schema;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::models::NewOutboxEvent;
use crate::domain::buyer::{PlannedWrite, Receipt, WriteKind};
use crate::domain::{ChargeReceipt, OrderId, PaymentReceipt, Points, RefundReceipt};

pub const PAYMENT_COMPLETED: &str = "payment.completed";
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const POINTS_CHARGED: &str = "points.charged";
/// Version of the event contract: the envelope and data types below, published as
/// `contract/events/TYPE.vN.schema.json` (`payment-engine events schema`). Bumped on every change
/// of their schemas, each version backward compatible for consumers (README, Events); the
/// contract test fails on a changed schema whose version was not bumped.
pub const SCHEMA_VERSION: i32 = 1;

/// The JSON value of every Kafka message: an envelope around the event's `data`. Consumers
/// ignore fields they do not know: later schema versions may add some.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct Envelope<T> {
    /// The event's id (a UUID, version 7: time-ordered), the same on every redelivery of the
    /// event: consumers dedupe on it. Also the `event-id` header.
    pub event_id: Uuid,
    /// What happened; names the schema of `data`. Also the `event-type` header.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of this event type's schema the message follows. Also the `schema-version`
    /// header.
    pub schema_version: i32,
    /// When the movement committed (RFC 3339, UTC): the same instant as the data's own
    /// timestamp (`paidAt`, `chargedAt`, ...).
    pub occurred_at: DateTime<Utc>,
    /// The event's own fields, as `type` says.
    pub data: T,
}

/// An order was paid from the buyer's points: its total deducted, the payment recorded, the
/// order marked PAID, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct PaymentCompleted {
    /// The payment's id.
    #[schemars(range(min = 1))]
    pub payment_id: i64,
    /// The order paid.
    #[schemars(range(min = 1))]
    pub order_id: i64,
    /// The buyer who paid; also the message key.
    #[schemars(range(min = 1))]
    pub buyer_id: i64,
    /// Points deducted: the order's total price.
    #[schemars(range(min = 1))]
    pub amount: i64,
    /// The buyer's balance after the payment.
    #[schemars(range(min = 0))]
    pub balance_after: i64,
    /// The buyer's ledger version of this payment: one buyer's events, in any order and from
    /// any engine, sort by it (and repeat it when delivered again).
    #[schemars(range(min = 1))]
    pub version: i64,
    /// When the payment committed (RFC 3339, UTC).
    pub paid_at: DateTime<Utc>,
}

/// Points were charged to a buyer (published only when the engine runs with
/// `EMIT_CHARGE_EVENTS=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct PointsCharged {
    /// The buyer charged; also the message key.
    #[schemars(range(min = 1))]
    pub buyer_id: i64,
    /// Points added.
    #[schemars(range(min = 1))]
    pub amount: i64,
    /// The buyer's balance after the charge.
    #[schemars(range(min = 0))]
    pub balance_after: i64,
    /// The buyer's ledger version of this charge (as in `payment.completed`).
    #[schemars(range(min = 1))]
    pub version: i64,
    /// When the charge committed (RFC 3339, UTC).
    pub charged_at: DateTime<Utc>,
}

/// Points of a payment were given back to the buyer (all of them or a part; a payment may be
/// refunded in several parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct PaymentRefunded {
    /// The refund's id.
    #[schemars(range(min = 1))]
    pub refund_id: i64,
    /// The payment refunded.
    #[schemars(range(min = 1))]
    pub payment_id: i64,
    /// The payment's order.
    #[schemars(range(min = 1))]
    pub order_id: i64,
    /// The buyer refunded; also the message key.
    #[schemars(range(min = 1))]
    pub buyer_id: i64,
    /// Points given back by this refund.
    #[schemars(range(min = 1))]
    pub amount: i64,
    /// All refunds of the payment so far, this one included (at most the payment's amount).
    #[schemars(range(min = 1))]
    pub refunded_total: i64,
    /// The payment's amount: `refunded_total == payment_amount` once fully refunded.
    #[schemars(range(min = 1))]
    pub payment_amount: i64,
    /// The buyer's balance after the refund.
    #[schemars(range(min = 0))]
    pub balance_after: i64,
    /// The buyer's ledger version of this refund (as in `payment.completed`).
    #[schemars(range(min = 1))]
    pub version: i64,
    /// Why, as the caller said; null when no reason was given.
    pub reason: Option<String>,
    /// When the refund committed (RFC 3339, UTC).
    pub refunded_at: DateTime<Utc>,
}

/// An order was cancelled before it was paid; no points moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("additionalProperties" = true))]
pub struct OrderCancelled {
    /// The order cancelled.
    #[schemars(range(min = 1))]
    pub order_id: i64,
    /// The order's buyer; also the message key.
    #[schemars(range(min = 1))]
    pub buyer_id: i64,
    /// The order's total price.
    #[schemars(range(min = 1))]
    pub total_price: i64,
    /// When the cancellation committed (RFC 3339, UTC).
    pub cancelled_at: DateTime<Utc>,
}

/// The event `write` emits, committed with it: payments, refunds and cancellations always,
/// charges when `charge_events` is on.
pub fn of_write(write: &PlannedWrite, charge_events: bool) -> Option<NewOutboxEvent> {
    of_write_as(write, charge_events, Uuid::now_v7())
}

/// [`of_write`] with the event's id given: the deterministic simulation (`crate::sim`) builds
/// the very same events with ids drawn from its seed, so a seed replays exactly.
pub fn of_write_as(
    write: &PlannedWrite,
    charge_events: bool,
    event_id: Uuid,
) -> Option<NewOutboxEvent> {
    match (&write.kind, &write.receipt) {
        (_, Receipt::Paid(receipt)) => Some(payment_completed(receipt, event_id)),
        (WriteKind::Refund { refund, .. }, Receipt::Refunded(receipt)) => Some(payment_refunded(
            receipt,
            refund.refunded_after,
            refund.payment_amount,
            event_id,
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
            event_id,
        )),
        (_, Receipt::Charged(receipt)) if charge_events => {
            Some(points_charged(receipt, write.at, event_id))
        }
        _ => None,
    }
}

/// The outbox row of a payment, as event `event_id`.
pub fn payment_completed(receipt: &PaymentReceipt, event_id: Uuid) -> NewOutboxEvent {
    let data = PaymentCompleted {
        payment_id: receipt.payment_id.get(),
        order_id: receipt.order_id.get(),
        buyer_id: receipt.buyer_id.get(),
        amount: receipt.amount.get(),
        balance_after: receipt.balance.get(),
        version: receipt.version,
        paid_at: receipt.paid_at,
    };
    let buyer = receipt.buyer_id.get();
    outbox_row(event_id, PAYMENT_COMPLETED, buyer, receipt.paid_at, data)
}

/// The outbox row of a refund; `refunded_total` and `payment_amount` as after it.
pub fn payment_refunded(
    receipt: &RefundReceipt,
    refunded_total: Points,
    payment_amount: Points,
    event_id: Uuid,
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
    outbox_row(event_id, PAYMENT_REFUNDED, buyer, receipt.refunded_at, data)
}

/// The outbox row of a cancelled order.
pub fn order_cancelled(
    order_id: OrderId,
    buyer_id: i64,
    total_price: Points,
    at: DateTime<Utc>,
    event_id: Uuid,
) -> NewOutboxEvent {
    let data = OrderCancelled {
        order_id: order_id.get(),
        buyer_id,
        total_price: total_price.get(),
        cancelled_at: at,
    };
    outbox_row(event_id, ORDER_CANCELLED, buyer_id, at, data)
}

/// The outbox row of a charge (emitted only when enabled).
pub fn points_charged(
    receipt: &ChargeReceipt,
    at: DateTime<Utc>,
    event_id: Uuid,
) -> NewOutboxEvent {
    let data = PointsCharged {
        buyer_id: receipt.buyer_id.get(),
        amount: receipt.amount.get(),
        balance_after: receipt.balance.get(),
        version: receipt.version,
        charged_at: at,
    };
    outbox_row(event_id, POINTS_CHARGED, receipt.buyer_id.get(), at, data)
}

fn outbox_row<T: Serialize>(
    event_id: Uuid,
    event_type: &str,
    buyer_id: i64,
    at: DateTime<Utc>,
    data: T,
) -> NewOutboxEvent {
    let envelope = Envelope {
        event_id,
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
