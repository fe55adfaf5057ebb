//! The statements of an order's life after its creation (`db::writer::lifecycle`): a
//! cancellation, a refund's fenced update of its payment and its order, and the refunds rows.

use chrono::NaiveDateTime;

use super::{ModelError, Tables, Undo, check, has_status, set_status};
use crate::db::models::{PaymentRow, RefundRow};
use crate::domain::OrderStatus;

impl Tables {
    /// `UPDATE orders SET status = 'CANCELLED', cancelled_at = ? WHERE id = ? AND buyer_id = ?
    /// AND status = 'PENDING'`; whether it matched.
    pub fn cancel_order(&mut self, buyer_id: i64, order_id: i64, at: NaiveDateTime) -> bool {
        let Some(order) = self.orders.get(&order_id) else {
            return false;
        };
        if order.buyer_id != buyer_id || !has_status(order, OrderStatus::Pending) {
            return false;
        }
        let mut cancelled = order.clone();
        set_status(&mut cancelled, OrderStatus::Cancelled);
        cancelled.cancelled_at = Some(at);
        self.put_order(cancelled);
        true
    }

    /// `UPDATE payments SET refunded_amount = after WHERE id = ? AND buyer_id = ? AND
    /// refunded_amount = before`; whether it matched. The new total meets the table's CHECK.
    pub fn refund_payment(
        &mut self,
        buyer_id: i64,
        payment_id: i64,
        before: i64,
        after: i64,
    ) -> Result<bool, ModelError> {
        let Some(payment) = self.payments.get(&payment_id) else {
            return Ok(false);
        };
        if payment.buyer_id != buyer_id || payment.refunded_amount != before {
            return Ok(false);
        }
        let old = payment.clone();
        let new = PaymentRow {
            refunded_amount: after,
            ..old.clone()
        };
        check_payment(&new)?;
        self.payments.insert(payment_id, new);
        self.journal.push(Undo::Refunded(old));
        Ok(true)
    }

    /// `UPDATE orders SET status = ? WHERE id = ? AND buyer_id = ?` (whatever its status).
    pub fn set_order_status(&mut self, buyer_id: i64, order_id: i64, status: OrderStatus) {
        let Some(order) = self.orders.get(&order_id) else {
            return;
        };
        if order.buyer_id != buyer_id {
            return;
        }
        let mut changed = order.clone();
        set_status(&mut changed, status);
        self.put_order(changed);
    }

    /// `INSERT INTO refunds VALUES ...`
    pub fn insert_refunds(&mut self, rows: &[&RefundRow]) -> Result<(), ModelError> {
        self.atomically(|t| {
            for row in rows {
                check(row.amount > 0, "refunds_amount_positive")?;
                if t.refunds.contains_key(&row.id) {
                    return Err(ModelError::duplicate("refunds", "PRIMARY"));
                }
                t.refunds.insert(row.id, (*row).clone());
                t.journal.push(Undo::Refund(row.id));
            }
            Ok(())
        })
    }
}

/// The CHECK constraint `payments_refunded_within_amount`.
pub(super) fn check_payment(row: &PaymentRow) -> Result<(), ModelError> {
    check(
        row.refunded_amount >= 0 && row.refunded_amount <= row.amount,
        "payments_refunded_within_amount",
    )
}
