//! The read side of the money lifecycle: a buyer's orders and payments, newest first, and one
//! payment with its refunds. Pages are keyset on the id (`id < before`), so rows committed while
//! a client pages never shift the pages it has not read yet; each read is one statement, so what
//! it answers is one committed state (the pool's sessions are READ COMMITTED).

use diesel::prelude::*;

use super::models::{OrderRow, PaymentRow, RefundRow};
use super::schema::{orders, payments, refunds};
use crate::domain::{BuyerId, OrderId, OrderStatus, OrderView, Points};

/// A payment and the status of its order. The status is `None` only if the order row is
/// missing, which the database's writes never leave behind: callers treat it as a bug.
pub type PaymentWithStatus = (PaymentRow, Option<OrderStatus>);

/// A buyer's orders, newest first, with ids below `before` if given, of one status if given.
pub fn orders_of_buyer(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    status: Option<OrderStatus>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    // Served by orders_buyer (buyer_id, id), or orders_buyer_status (buyer_id, status, id) with a
    // status: either way an index range read in id order, no sort.
    let mut query = orders::table
        .filter(orders::buyer_id.eq(buyer_id))
        .select(OrderRow::as_select())
        .order(orders::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(orders::status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(orders::id.lt(before));
    }
    query.load(conn)
}

/// A buyer's payments, newest first, with ids below `before` if given, each with its order's
/// status.
pub fn payments_of_buyer(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<PaymentWithStatus>> {
    // payments_buyer (buyer_id) holds the primary key too, so this is a range read in id order.
    let mut query = payments::table
        .left_join(orders::table.on(orders::id.eq(payments::order_id)))
        .filter(payments::buyer_id.eq(buyer_id))
        .select((PaymentRow::as_select(), orders::status.nullable()))
        .order(payments::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(payments::id.lt(before));
    }
    query.load(conn)
}

/// A payment, its order's status, and its first `refund_limit` (at least 1) refunds, oldest
/// first; `None` for an unknown payment.
///
/// Refunds are ordered by their ledger version, which increases with every movement of the
/// buyer, rather than by id: ids come from per-engine blocks, so a refund decided after the
/// buyer moved to another engine can have a lower id than an earlier one.
pub fn payment_with_refunds(
    conn: &mut MysqlConnection,
    payment_id: i64,
    refund_limit: i64,
) -> QueryResult<Option<(PaymentWithStatus, Vec<RefundRow>)>> {
    // One statement (the payment's columns repeat on each refund's row), so the refunds listed
    // and the payment's refunded amount come from the same committed state.
    let rows: Vec<(PaymentRow, Option<OrderStatus>, Option<RefundRow>)> = payments::table
        .left_join(orders::table.on(orders::id.eq(payments::order_id)))
        .left_join(refunds::table.on(refunds::payment_id.eq(payments::id)))
        .filter(payments::id.eq(payment_id))
        .select((
            PaymentRow::as_select(),
            orders::status.nullable(),
            // (`RefundRow::as_select().nullable()` does not compile on this join; RefundRow's
            // fields are in the table's column order, which its `Queryable` reads by.)
            refunds::all_columns.nullable(),
        ))
        .order((refunds::ledger_version.asc(), refunds::id.asc()))
        .limit(refund_limit)
        .load(conn)?;
    let mut rows = rows.into_iter();
    let Some((payment, status, first)) = rows.next() else {
        return Ok(None);
    };
    let refunds = first
        .into_iter()
        .chain(rows.filter_map(|(_, _, refund)| refund))
        .collect();
    Ok(Some(((payment, status), refunds)))
}

/// The API's view of an order row; `None` if the row holds an id no API id can be (a bug).
pub fn order_view(row: OrderRow) -> Option<OrderView> {
    Some(OrderView {
        order_id: OrderId::try_from(row.id).ok()?,
        buyer_id: BuyerId::try_from(row.buyer_id).ok()?,
        total_price: Points::new(row.total_price),
        status: row.status,
        created_at: row.created_at.and_utc(),
        paid_at: row.paid_at.map(|at| at.and_utc()),
        cancelled_at: row.cancelled_at.map(|at| at.and_utc()),
    })
}
