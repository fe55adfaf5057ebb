//! Requests for the list routes, paging to the end, and the data the lists show: charges, orders
//! and payments through the API; cancellations and refunds with SQL for now.
//!
//! TODO(lead): POST /orders/{orderId}/cancel and POST /payments/{paymentId}/refunds are not on
//! main yet; once they are, `cancel_with_sql` and `refund_with_sql` become calls to them.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde_json::{Value, json};

use crate::helpers::{ApiResponse, TestApp, int, scalar};

/// GET `path` with the query parameters given (`None` values left out).
pub async fn get_with(app: &TestApp, path: &str, query: &[(&str, Option<&str>)]) -> ApiResponse {
    let query: Vec<(&str, &str)> = query
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect();
    let request = app.client.get(app.url(path)).query(&query);
    ApiResponse::read(request.send().await.expect("sending the request")).await
}

/// One page of a buyer's orders.
pub async fn orders_page(
    app: &TestApp,
    buyer: i64,
    status: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> ApiResponse {
    let limit = limit.map(|l| l.to_string());
    let query = [
        ("status", status),
        ("limit", limit.as_deref()),
        ("cursor", cursor),
    ];
    get_with(app, &format!("/buyers/{buyer}/orders"), &query).await
}

/// One page of a buyer's payments.
pub async fn payments_page(
    app: &TestApp,
    buyer: i64,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> ApiResponse {
    let limit = limit.map(|l| l.to_string());
    let query = [("limit", limit.as_deref()), ("cursor", cursor)];
    get_with(app, &format!("/buyers/{buyer}/payments"), &query).await
}

/// A page's items (under `field`) and its `nextCursor`, checking the page's buyer and length.
#[track_caller]
pub fn items(body: &Value, field: &str, buyer: i64, limit: i64) -> (Vec<Value>, Option<String>) {
    assert_eq!(
        body["buyerId"],
        json!(buyer),
        "page of buyer {buyer}: {body}"
    );
    let items = body[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} must be an array: {body}"))
        .clone();
    assert!(
        items.len() as i64 <= limit,
        "page longer than {limit}: {body}"
    );
    let next = match &body["nextCursor"] {
        Value::Null => None,
        Value::String(next) => Some(next.clone()),
        other => panic!("nextCursor must be a string or null, got {other}"),
    };
    (items, next)
}

/// The `field` ids of `items`, in order.
pub fn ids(items: &[Value], field: &str) -> Vec<i64> {
    items.iter().map(|item| int(item, field)).collect()
}

/// Every order of the buyer (of `status`, if given), following nextCursor with pages of `limit`.
pub async fn all_orders(app: &TestApp, buyer: i64, status: Option<&str>, limit: i64) -> Vec<i64> {
    let (mut all, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..1_000 {
        let body = orders_page(app, buyer, status, Some(limit), cursor.as_deref())
            .await
            .ok();
        let (page, next) = items(&body, "orders", buyer, limit);
        all.extend(ids(&page, "orderId"));
        match next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("the orders of buyer {buyer} did not end after 1000 pages")
}

/// Charges `total` to the buyer, creates an order of that total and pays it; returns the order
/// and the payment's receipt.
pub async fn paid_order(app: &TestApp, buyer: i64, total: i64) -> (i64, Value) {
    app.charge_ok(buyer, total).await;
    let order = app.new_order(buyer, total).await;
    (order, app.pay(buyer, order).await.ok())
}

/// Cancels a PENDING order as POST /orders/{orderId}/cancel will.
pub fn cancel_with_sql(app: &TestApp, order: i64) {
    let cancelled = diesel::sql_query(
        "UPDATE orders SET status = 'CANCELLED', cancelled_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND status = 'PENDING'",
    )
    .bind::<BigInt, _>(order)
    .execute(&mut app.db_conn())
    .expect("cancelling the order");
    assert_eq!(cancelled, 1, "order {order} must be PENDING to cancel");
}

/// Refunds `amount` of a payment as POST /payments/{paymentId}/refunds will, in one
/// transaction: a REFUND ledger entry and the balance it moves, the refunds row, the payment's
/// refunded amount and the order's status. The buyer's actor has not seen it: make no payment
/// or charge for this buyer through the API afterwards.
pub fn refund_with_sql(
    app: &TestApp,
    refund: i64,
    payment: i64,
    amount: i64,
    reason: Option<&str>,
) {
    let mut conn = app.db_conn();
    conn.batch_execute("START TRANSACTION").unwrap();
    let of_payment = |column: &str, conn: &mut MysqlConnection| {
        let sql = format!("SELECT {column} AS n FROM payments WHERE id = {payment} FOR UPDATE");
        scalar(conn, &sql)
    };
    let (buyer, order) = (
        of_payment("buyer_id", &mut conn),
        of_payment("order_id", &mut conn),
    );
    let balance_of = |column: &str, conn: &mut MysqlConnection| {
        let sql = format!("SELECT {column} AS n FROM balances WHERE buyer_id = {buyer} FOR UPDATE");
        scalar(conn, &sql)
    };
    let balance_after = balance_of("balance", &mut conn) + amount;
    let version = balance_of("version", &mut conn) + 1;
    conn.batch_execute(&format!(
        "INSERT INTO ledger_entries (buyer_id, version, kind, amount, balance_after, order_id, \
           payment_id, refund_id, created_at) \
         VALUES ({buyer}, {version}, 'REFUND', {amount}, {balance_after}, {order}, {payment}, \
           {refund}, UTC_TIMESTAMP(6));
         UPDATE balances SET balance = {balance_after}, version = {version}, \
           updated_at = UTC_TIMESTAMP(6) WHERE buyer_id = {buyer};
         UPDATE payments SET refunded_amount = refunded_amount + {amount} WHERE id = {payment};
         UPDATE orders o JOIN payments p ON p.order_id = o.id \
           SET o.status = IF(p.refunded_amount = p.amount, 'REFUNDED', 'PARTIALLY_REFUNDED') \
           WHERE p.id = {payment};"
    ))
    .expect("writing the refund's movement");
    diesel::sql_query(
        "INSERT INTO refunds (id, payment_id, order_id, buyer_id, amount, reason, balance_after, \
           ledger_version, refunded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind::<BigInt, _>(refund)
    .bind::<BigInt, _>(payment)
    .bind::<BigInt, _>(order)
    .bind::<BigInt, _>(buyer)
    .bind::<BigInt, _>(amount)
    .bind::<Nullable<Text>, _>(reason)
    .bind::<BigInt, _>(balance_after)
    .bind::<BigInt, _>(version)
    .execute(&mut conn)
    .expect("inserting the refund");
    conn.batch_execute("COMMIT").unwrap();
}
