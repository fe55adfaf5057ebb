//! The statements of an order's life after its creation: paid, cancelled, refunded. Each
//! states what it expects in its WHERE clause (the order still PENDING, the payment still at
//! the refunded total the refund was decided on), so a write decided on a stale view changes
//! nothing and is refused.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    GroupError, RefundWrite, Rejection, WriteCommand, WriteOp, WriteResult,
    insert_idempotency_record, queries,
};
use crate::db::models::PaymentRow;
use crate::db::schema::{orders, payments};
use crate::domain::OrderStatus;

/// The order writes of the batch that change no balance (creations and cancellations), each
/// in a savepoint with its Idempotency-Key record, so a refused one fails alone.
pub(super) fn apply_order_writes(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    now: NaiveDateTime,
    results: &mut [WriteResult],
) -> QueryResult<()> {
    for (index, op) in ops.iter().enumerate() {
        if results[index] != WriteResult::Committed || op.balance_change().is_some() {
            continue;
        }
        let applied = conn.transaction(|conn| {
            if let Some(record) = &op.idempotency {
                insert_idempotency_record(conn, record, now)?;
            }
            match &op.command {
                WriteCommand::CreateOrder(order) => {
                    diesel::insert_into(orders::table)
                        .values(order)
                        .execute(conn)?;
                    Ok(())
                }
                &WriteCommand::Cancel {
                    order_id,
                    cancelled_at,
                } => cancel_order(conn, op.buyer_id, order_id, cancelled_at),
                _ => Ok(()),
            }
        });
        results[index] = match applied {
            Ok(()) => WriteResult::Committed,
            Err(GroupError::Rejected(rejection)) => WriteResult::Rejected(rejection),
            // A duplicate order id is the engine's bug, not a request's: the batch fails.
            Err(GroupError::Db(error)) => return Err(error),
        };
    }
    Ok(())
}

/// Marks a payment's order PAID if it is still PENDING and the payer's.
pub(super) fn mark_order_paid(
    conn: &mut MysqlConnection,
    payment: &PaymentRow,
) -> Result<(), GroupError> {
    let updated = diesel::update(
        orders::table
            .find(payment.order_id)
            .filter(orders::buyer_id.eq(payment.buyer_id))
            .filter(orders::status.eq(OrderStatus::Pending)),
    )
    .set((
        orders::status.eq(OrderStatus::Paid),
        orders::paid_at.eq(payment.paid_at),
    ))
    .execute(conn)?;
    if updated == 1 {
        return Ok(());
    }
    Err(GroupError::Rejected(
        match queries::find_order(conn, payment.order_id)? {
            Some(order) if order.buyer_id == payment.buyer_id && order.status.is_paid() => {
                Rejection::OrderAlreadyPaid
            }
            Some(order)
                if order.buyer_id == payment.buyer_id && order.status == OrderStatus::Cancelled =>
            {
                Rejection::OrderCancelled
            }
            _ => Rejection::OrderNotFound,
        },
    ))
}

/// `UPDATE` a PENDING order of `buyer_id` to CANCELLED; whether it was.
pub(super) fn try_cancel(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    order_id: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        orders::table
            .find(order_id)
            .filter(orders::buyer_id.eq(buyer_id))
            .filter(orders::status.eq(OrderStatus::Pending)),
    )
    .set((
        orders::status.eq(OrderStatus::Cancelled),
        orders::cancelled_at.eq(Some(at)),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

fn cancel_order(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    order_id: i64,
    at: NaiveDateTime,
) -> Result<(), GroupError> {
    if try_cancel(conn, buyer_id, order_id, at)? {
        return Ok(());
    }
    Err(GroupError::Rejected(
        match queries::find_order(conn, order_id)? {
            Some(order) if order.buyer_id == buyer_id && order.status.is_paid() => {
                Rejection::OrderAlreadyPaid
            }
            // Cancelled meanwhile (or, for a view this stale, still pending): decided again on
            // the order as it is.
            Some(order) if order.buyer_id == buyer_id => Rejection::StaleFence,
            _ => Rejection::OrderNotFound,
        },
    ))
}

/// Moves the payment's refunded total from what the refund expects to its new total, and the
/// order to the status that leaves it in; whether the payment was as expected.
pub(super) fn try_refund(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    refund: &RefundWrite,
) -> QueryResult<bool> {
    let updated = diesel::update(
        payments::table
            .find(refund.row.payment_id)
            .filter(payments::buyer_id.eq(buyer_id))
            .filter(payments::refunded_amount.eq(refund.refunded_before)),
    )
    .set(payments::refunded_amount.eq(refund.refunded_after))
    .execute(conn)?;
    if updated != 1 {
        return Ok(false);
    }
    // The status follows from the payment just fenced; it may already be the same (a second
    // partial refund), so the count of changed rows says nothing here.
    diesel::update(
        orders::table
            .find(refund.row.order_id)
            .filter(orders::buyer_id.eq(buyer_id)),
    )
    .set(orders::status.eq(refund.order_status))
    .execute(conn)?;
    Ok(true)
}

pub(super) fn refund_payment(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    refund: &RefundWrite,
) -> Result<(), GroupError> {
    if try_refund(conn, buyer_id, refund)? {
        return Ok(());
    }
    let payment = payments::table
        .find(refund.row.payment_id)
        .select(PaymentRow::as_select())
        .first(conn)
        .optional()?;
    Err(GroupError::Rejected(match payment {
        Some(payment) if payment.buyer_id == buyer_id => Rejection::StaleFence,
        _ => Rejection::PaymentNotFound,
    }))
}
