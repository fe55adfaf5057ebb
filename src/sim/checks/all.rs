//! The whole database at the end of a run: every table's rows agree with each other, and the
//! outbox holds exactly one event of each payment, refund and cancellation.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use crate::db::models::OutboxEventRow;
use crate::domain::{EntryKind, OrderStatus};
use crate::events::{self, Envelope, OrderCancelled, PaymentCompleted, PaymentRefunded};
use crate::sim::model::{ModelDb, Rows};

/// The whole database at the end: every table's rows agree with each other.
pub fn check_all(db: &ModelDb) -> Result<(), String> {
    let rows = db.rows();
    check_payments_and_orders(&rows)?;
    check_refunds(&rows)?;
    let entries = |kind: EntryKind| {
        rows.ledger_entries
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    };
    let (payment_entries, refund_entries) =
        (entries(EntryKind::Payment), entries(EntryKind::Refund));
    if payment_entries != rows.payments.len() || refund_entries != rows.refunds.len() {
        return Err(format!(
            "{} payments with {payment_entries} payment entries, {} refunds with {refund_entries} refund entries",
            rows.payments.len(),
            rows.refunds.len()
        ));
    }
    check_outbox(&rows)
}

/// An order is paid at most once, and only a paid order (whatever was refunded of it since)
/// has a payment, of its price.
fn check_payments_and_orders(rows: &Rows) -> Result<(), String> {
    let mut paid: BTreeMap<i64, i64> = BTreeMap::new();
    for payment in &rows.payments {
        if paid.insert(payment.order_id, payment.amount).is_some() {
            return Err(format!("order {} has two payments", payment.order_id));
        }
    }
    for order in &rows.orders {
        let paid = paid.get(&order.id).copied();
        let expected = order.status.is_paid().then_some(order.total_price);
        if paid != expected {
            return Err(format!("order {order:?} has payment {paid:?}"));
        }
    }
    Ok(())
}

/// The refunds of a payment sum to its refunded total, at most its amount, and its order's
/// status says how much of it was refunded.
fn check_refunds(rows: &Rows) -> Result<(), String> {
    let mut refunded: BTreeMap<i64, i64> = BTreeMap::new();
    for refund in &rows.refunds {
        let payment = rows.payments.iter().find(|p| p.id == refund.payment_id);
        if !payment.is_some_and(|p| p.order_id == refund.order_id && p.buyer_id == refund.buyer_id)
        {
            return Err(format!("refund {refund:?} of payment {payment:?}"));
        }
        *refunded.entry(refund.payment_id).or_default() += refund.amount;
    }
    for payment in &rows.payments {
        let total = refunded.get(&payment.id).copied().unwrap_or(0);
        let order = rows.orders.iter().find(|o| o.id == payment.order_id);
        let status = match total {
            0 => OrderStatus::Paid,
            _ if total == payment.amount => OrderStatus::Refunded,
            _ => OrderStatus::PartiallyRefunded,
        };
        let within = total == payment.refunded_amount && total <= payment.amount;
        if !within || order.map(|o| o.status) != Some(status) {
            return Err(format!(
                "payment {payment:?} has refunds of {total}, its order is {order:?}"
            ));
        }
    }
    Ok(())
}

/// One event of each payment, refund and cancelled order, naming it, and nothing else (the
/// simulation emits no charge events).
fn check_outbox(rows: &Rows) -> Result<(), String> {
    let ids = |event_type: &str| -> Result<BTreeSet<i64>, String> {
        let of_type = rows
            .outbox_events
            .iter()
            .filter(|e| e.event_type == event_type);
        match event_type {
            events::PAYMENT_COMPLETED => of_type
                .map(|e| data::<PaymentCompleted>(e).map(|d| d.payment_id))
                .collect(),
            events::PAYMENT_REFUNDED => of_type
                .map(|e| data::<PaymentRefunded>(e).map(|d| d.refund_id))
                .collect(),
            _ => of_type
                .map(|e| data::<OrderCancelled>(e).map(|d| d.order_id))
                .collect(),
        }
    };
    let payments: BTreeSet<i64> = rows.payments.iter().map(|p| p.id).collect();
    let refunds: BTreeSet<i64> = rows.refunds.iter().map(|r| r.id).collect();
    let cancelled: BTreeSet<i64> = rows
        .orders
        .iter()
        .filter(|o| o.status == OrderStatus::Cancelled)
        .map(|o| o.id)
        .collect();
    let expected = payments.len() + refunds.len() + cancelled.len();
    if ids(events::PAYMENT_COMPLETED)? != payments
        || ids(events::PAYMENT_REFUNDED)? != refunds
        || ids(events::ORDER_CANCELLED)? != cancelled
        || rows.outbox_events.len() != expected
    {
        return Err(format!(
            "{} events for {} payments, {} refunds and {} cancelled orders, or not of them",
            rows.outbox_events.len(),
            payments.len(),
            refunds.len(),
            cancelled.len()
        ));
    }
    Ok(())
}

/// The data of an outbox event's envelope, as consumers read it.
fn data<T: DeserializeOwned>(event: &OutboxEventRow) -> Result<T, String> {
    serde_json::from_str::<Envelope<T>>(&event.payload)
        .map(|envelope| envelope.data)
        .map_err(|e| format!("event {} does not parse: {e}", event.event_id))
}
