//! Cancellations and refunds of a batch as set-based statements: one per table whatever their
//! number, each fenced in its WHERE clause as the one-at-a-time statements of
//! `writer::lifecycle` are, so any shortfall refuses the batch and it is applied checked.

use std::collections::HashMap;

use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Datetime, Text};

use super::super::{WriteCommand, WriteOp};
use super::{Failure, Refused, expect_rows, placeholders};
use crate::domain::OrderStatus;

type Query<'a> = BoxedSqlQuery<'a, Mysql, SqlQuery>;

/// Every PENDING order of the batch's cancellations to CANCELLED, each only if the
/// canceller's; all of them or the batch is refused.
pub(super) fn cancel_orders(conn: &mut MysqlConnection, ops: &[WriteOp]) -> Result<(), Failure> {
    let cancels: Vec<_> = ops
        .iter()
        .filter_map(|op| match op.command {
            WriteCommand::Cancel {
                order_id,
                cancelled_at,
            } => Some((op.buyer_id, order_id, cancelled_at)),
            _ => None,
        })
        .collect();
    if cancels.is_empty() {
        return Ok(());
    }
    let n = cancels.len();
    let sql = format!(
        "UPDATE orders SET status = ?, cancelled_at = CASE id {} END \
         WHERE id IN ({}) AND status = ? AND (id, buyer_id) IN ({})",
        placeholders(n, "WHEN ? THEN ?"),
        placeholders(n, "?"),
        placeholders(n, "(?, ?)"),
    );
    let mut query: Query<'_> = diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(OrderStatus::Cancelled);
    for &(_, order_id, at) in &cancels {
        query = query.bind::<BigInt, _>(order_id).bind::<Datetime, _>(at);
    }
    for &(_, order_id, _) in &cancels {
        query = query.bind::<BigInt, _>(order_id);
    }
    query = query.bind::<Text, _>(OrderStatus::Pending);
    for &(buyer_id, order_id, _) in &cancels {
        query = query
            .bind::<BigInt, _>(order_id)
            .bind::<BigInt, _>(buyer_id);
    }
    expect_rows(query.execute(conn)?, n)?;
    Ok(())
}

/// One payment's refunds in the batch, taken together.
struct PaymentRefunds {
    payment_id: i64,
    buyer_id: i64,
    /// What the first refund expects the refunded total to be, and what the last leaves it.
    before: i64,
    after: i64,
    order_id: i64,
    order_status: OrderStatus,
}

/// The refunds of the batch: their payments' refunded totals in one UPDATE fenced on the totals
/// they were decided on (all of them or the batch is refused), and their orders' statuses in
/// another. Several refunds of one payment must each have been decided on the one before.
pub(super) fn refund_payments(conn: &mut MysqlConnection, ops: &[WriteOp]) -> Result<(), Failure> {
    let mut by_payment: Vec<PaymentRefunds> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for op in ops {
        let WriteCommand::Refund(refund) = &op.command else {
            continue;
        };
        let payment_id = refund.row.payment_id;
        match index.get(&payment_id) {
            Some(&i) => {
                let seen = &mut by_payment[i];
                if seen.buyer_id != op.buyer_id || seen.after != refund.refunded_before {
                    return Err(Refused.into());
                }
                seen.after = refund.refunded_after;
                seen.order_status = refund.order_status;
            }
            None => {
                index.insert(payment_id, by_payment.len());
                by_payment.push(PaymentRefunds {
                    payment_id,
                    buyer_id: op.buyer_id,
                    before: refund.refunded_before,
                    after: refund.refunded_after,
                    order_id: refund.row.order_id,
                    order_status: refund.order_status,
                });
            }
        }
    }
    if by_payment.is_empty() {
        return Ok(());
    }
    expect_rows(
        refunded_totals(&by_payment).execute(conn)?,
        by_payment.len(),
    )?;
    // The statuses follow from the payments just fenced; some may already be so (a second
    // partial refund), so the count of changed rows says nothing here.
    order_statuses(&by_payment).execute(conn)?;
    Ok(())
}

fn refunded_totals(refunds: &[PaymentRefunds]) -> Query<'_> {
    let n = refunds.len();
    let sql = format!(
        "UPDATE payments SET refunded_amount = CASE id {} END \
         WHERE id IN ({}) AND (id, buyer_id, refunded_amount) IN ({})",
        placeholders(n, "WHEN ? THEN ?"),
        placeholders(n, "?"),
        placeholders(n, "(?, ?, ?)"),
    );
    let mut query: Query<'_> = diesel::sql_query(sql).into_boxed();
    for refund in refunds {
        query = query
            .bind::<BigInt, _>(refund.payment_id)
            .bind::<BigInt, _>(refund.after);
    }
    for refund in refunds {
        query = query.bind::<BigInt, _>(refund.payment_id);
    }
    for refund in refunds {
        query = query
            .bind::<BigInt, _>(refund.payment_id)
            .bind::<BigInt, _>(refund.buyer_id)
            .bind::<BigInt, _>(refund.before);
    }
    query
}

fn order_statuses(refunds: &[PaymentRefunds]) -> Query<'_> {
    let n = refunds.len();
    let sql = format!(
        "UPDATE orders SET status = CASE id {} END WHERE id IN ({}) AND (id, buyer_id) IN ({})",
        placeholders(n, "WHEN ? THEN ?"),
        placeholders(n, "?"),
        placeholders(n, "(?, ?)"),
    );
    let mut query: Query<'_> = diesel::sql_query(sql).into_boxed();
    for refund in refunds {
        query = query
            .bind::<BigInt, _>(refund.order_id)
            .bind::<Text, _>(refund.order_status);
    }
    for refund in refunds {
        query = query.bind::<BigInt, _>(refund.order_id);
    }
    for refund in refunds {
        query = query
            .bind::<BigInt, _>(refund.order_id)
            .bind::<BigInt, _>(refund.buyer_id);
    }
    query
}
