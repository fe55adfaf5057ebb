//! The rest of an order's life: cancel (POST /orders/{id}/cancel), refund
//! (POST /payments/{id}/refunds) and idempotent order creation.

mod races;
mod writer;

use diesel::MysqlConnection;
use serde_json::{Value, json};

use crate::helpers::{int, new_key, scalar, spawn_app};

/// The books of every buyer, as the lifecycle adds to them: balances are their ledgers' sums,
/// a payment's refunds sum to its refunded amount and stay within it, each refund has its
/// REFUND entry, and an order's status follows its payment's refunds. Zero rows each.
pub fn assert_lifecycle_books(conn: &mut MysqlConnection) {
    let checks = [
        (
            "balances that are not their ledger's sum",
            "SELECT COUNT(*) AS n FROM balances b WHERE b.balance <> \
             (SELECT COALESCE(SUM(l.amount), 0) FROM ledger_entries l WHERE l.buyer_id = b.buyer_id)",
        ),
        (
            "payments whose refunds do not sum to their refunded amount",
            "SELECT COUNT(*) AS n FROM payments p WHERE p.refunded_amount <> \
             (SELECT COALESCE(SUM(r.amount), 0) FROM refunds r WHERE r.payment_id = p.id) \
             OR p.refunded_amount > p.amount",
        ),
        (
            "refunds without their REFUND entry",
            "SELECT COUNT(*) AS n FROM refunds r LEFT JOIN ledger_entries l \
             ON l.buyer_id = r.buyer_id AND l.version = r.ledger_version AND l.kind = 'REFUND' \
             AND l.refund_id = r.id AND l.amount = r.amount WHERE l.buyer_id IS NULL",
        ),
        (
            "orders whose status does not follow their payment",
            "SELECT COUNT(*) AS n FROM orders o LEFT JOIN payments p ON p.order_id = o.id WHERE \
             (o.status IN ('PENDING', 'CANCELLED') AND p.id IS NOT NULL) \
             OR (o.status = 'PAID' AND (p.id IS NULL OR p.refunded_amount <> 0)) \
             OR (o.status = 'PARTIALLY_REFUNDED' AND NOT (p.refunded_amount BETWEEN 1 AND p.amount - 1)) \
             OR (o.status = 'REFUNDED' AND p.refunded_amount <> p.amount)",
        ),
        (
            "cancelled orders with money moved",
            "SELECT COUNT(*) AS n FROM orders o JOIN ledger_entries l ON l.order_id = o.id \
             WHERE o.status = 'CANCELLED'",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(scalar(conn, sql), 0, "{what}");
    }
}

/// A buyer with `balance` points and a paid order of `price`: (order id, payment id).
async fn paid_order(
    app: &crate::helpers::TestApp,
    buyer: i64,
    balance: i64,
    price: i64,
) -> (i64, i64) {
    app.charge_ok(buyer, balance).await;
    let order = app.new_order(buyer, price).await;
    let payment = int(&app.pay(buyer, order).await.ok(), "paymentId");
    (order, payment)
}

fn events_of(conn: &mut MysqlConnection, event_type: &str) -> Vec<Value> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Payload {
        #[diesel(sql_type = diesel::sql_types::Text)]
        payload: String,
    }
    diesel::sql_query("SELECT payload FROM outbox_events WHERE event_type = ? ORDER BY seq")
        .bind::<diesel::sql_types::Text, _>(event_type)
        .load::<Payload>(conn)
        .unwrap()
        .into_iter()
        .map(|row| serde_json::from_str(&row.payload).unwrap())
        .collect()
}

#[actix_web::test]
async fn a_pending_order_is_cancelled_once_and_can_never_be_paid() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;
    let order = app.new_order(1, 300).await;

    let cancelled = app.cancel(1, order).await.ok();
    assert_eq!(cancelled["status"], json!("CANCELLED"), "{cancelled}");
    assert_eq!(int(&cancelled, "orderId"), order);
    assert!(cancelled["cancelledAt"].is_string(), "{cancelled}");
    // Idempotent by nature: the same answer again, nothing more written.
    let again = app.cancel(1, order).await.ok();
    assert_eq!(again, cancelled);
    app.pay(1, order)
        .await
        .expect_problem(409, "order_cancelled");
    assert_eq!(app.balance_of(1).await, (1_000, 1), "no money moved");
    assert_eq!(
        app.get_order(order).await.ok()["status"],
        json!("CANCELLED")
    );

    let mut conn = app.db_conn();
    let events = events_of(&mut conn, "order.cancelled");
    assert_eq!(events.len(), 1, "one event per cancellation: {events:?}");
    assert_eq!(
        events[0]["data"],
        json!({ "orderId": order, "buyerId": 1, "totalPrice": 300,
                "cancelledAt": cancelled["cancelledAt"] })
    );
    assert_lifecycle_books(&mut conn);
}

#[actix_web::test]
async fn only_the_buyers_own_pending_orders_can_be_cancelled() {
    let app = spawn_app().await;
    let (paid, _) = paid_order(&app, 1, 1_000, 100).await;
    app.cancel(1, paid)
        .await
        .expect_problem(409, "order_already_paid");
    let theirs = app.new_order(2, 50).await;
    app.cancel(1, theirs)
        .await
        .expect_problem(404, "order_not_found");
    app.cancel(1, 999_999)
        .await
        .expect_problem(404, "order_not_found");
    app.post_json("/orders/0/cancel", &json!({ "buyerId": 1 }), None)
        .await
        .expect_problem(400, "invalid_order_id");
    app.post_json(&format!("/orders/{theirs}/cancel"), &json!({}), None)
        .await
        .expect_problem(400, "invalid_body");
    assert_eq!(app.get_order(theirs).await.ok()["status"], json!("PENDING"));
}

#[actix_web::test]
async fn partial_then_full_refunds_give_the_points_back_and_the_order_follows() {
    let app = spawn_app().await;
    let (order, payment) = paid_order(&app, 1, 1_000, 400).await;
    let first = app
        .refund(
            payment,
            json!({ "buyerId": 1, "amount": 150, "reason": "damaged" }),
            None,
        )
        .await;
    assert_eq!(
        first.header("location"),
        Some(format!("/payments/{payment}").as_str())
    );
    let first = first.expect(201);
    assert_eq!(
        (
            int(&first, "paymentId"),
            int(&first, "orderId"),
            int(&first, "amount")
        ),
        (payment, order, 150)
    );
    assert_eq!((int(&first, "balance"), int(&first, "version")), (750, 3));
    assert_eq!(first["reason"], json!("damaged"));
    assert_eq!(
        app.get_order(order).await.ok()["status"],
        json!("PARTIALLY_REFUNDED")
    );

    // No amount: all that is left.
    let rest = app
        .refund(payment, json!({ "buyerId": 1 }), None)
        .await
        .expect(201);
    assert_eq!((int(&rest, "amount"), int(&rest, "balance")), (250, 1_000));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("REFUNDED"));
    let nothing_left = app.refund(payment, json!({ "buyerId": 1 }), None).await;
    nothing_left.expect_problem(422, "refund_exceeds_payment");

    let history = app.history(1, None, None).await.ok();
    let newest = &history["entries"][0];
    assert_eq!(
        (
            newest["kind"].as_str(),
            int(newest, "amount"),
            int(newest, "version")
        ),
        (Some("REFUND"), 250, 4),
        "{history}"
    );
    let mut conn = app.db_conn();
    let events = events_of(&mut conn, "payment.refunded");
    let totals: Vec<(i64, i64, i64)> = events
        .iter()
        .map(|e| {
            (
                int(&e["data"], "amount"),
                int(&e["data"], "refundedTotal"),
                int(&e["data"], "version"),
            )
        })
        .collect();
    assert_eq!(totals, vec![(150, 150, 3), (250, 400, 4)]);
    assert_lifecycle_books(&mut conn);
}

#[actix_web::test]
async fn refunds_past_the_payment_the_balance_limit_or_of_another_buyer_are_refused() {
    let app = spawn_app().await;
    let (_, payment) = paid_order(&app, 1, 1_000, 400).await;
    app.refund(payment, json!({ "buyerId": 1, "amount": 401 }), None)
        .await
        .expect_problem(422, "refund_exceeds_payment");
    app.refund(payment, json!({ "buyerId": 2, "amount": 1 }), None)
        .await
        .expect_problem(404, "payment_not_found");
    app.refund(999_999, json!({ "buyerId": 1 }), None)
        .await
        .expect_problem(404, "payment_not_found");
    for (body, code) in [
        (json!({ "buyerId": 1, "amount": 0 }), "invalid_amount"),
        (json!({ "buyerId": 1, "amount": -5 }), "invalid_amount"),
        (
            json!({ "buyerId": 1, "reason": "x".repeat(256) }),
            "invalid_body",
        ),
        (json!({ "buyerId": 1, "reason": "" }), "invalid_body"),
        (json!({ "amount": 5 }), "invalid_body"),
    ] {
        app.refund(payment, body, None)
            .await
            .expect_problem(400, code);
    }
    app.post_json("/payments/abc/refunds", &json!({ "buyerId": 1 }), None)
        .await
        .expect_problem(400, "invalid_payment_id");
    assert_eq!(app.balance_of(1).await, (600, 2), "nothing refunded");
}

#[actix_web::test]
async fn a_refund_past_the_balance_limit_is_refused() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.buyers.max_balance = payment_engine::domain::Points::new(1_000)
    })
    .await;
    let (_, payment) = paid_order(&app, 1, 1_000, 400).await;
    app.charge_ok(1, 300).await; // 900
    app.refund(payment, json!({ "buyerId": 1, "amount": 101 }), None)
        .await
        .expect_problem(422, "balance_limit_exceeded");
    app.refund(payment, json!({ "buyerId": 1, "amount": 100 }), None)
        .await
        .expect(201);
}

#[actix_web::test]
async fn a_refund_with_an_idempotency_key_is_made_once() {
    let app = spawn_app().await;
    let (_, payment) = paid_order(&app, 1, 1_000, 400).await;
    let key = new_key();
    let body = json!({ "buyerId": 1, "amount": 100, "reason": "late" });
    let first = app
        .refund(payment, body.clone(), Some(&key))
        .await
        .expect(201);
    let again = app.refund(payment, body, Some(&key)).await;
    assert!(again.is_replay(), "a retry is a replay");
    assert_eq!(again.expect(201), first);
    app.refund(payment, json!({ "buyerId": 1, "amount": 99 }), Some(&key))
        .await
        .expect_problem(422, "idempotency_key_mismatch");
    assert_eq!(app.balance_of(1).await, (700, 3), "refunded once");
}

#[actix_web::test]
async fn creating_an_order_with_an_idempotency_key_creates_it_once() {
    let app = spawn_app().await;
    let key = new_key();
    let body = json!({ "buyerId": 1, "totalPrice": 250 });
    let first = app.post_json("/orders", &body, Some(&key)).await;
    let first_body = first.expect(201);
    let again = app.post_json("/orders", &body, Some(&key)).await;
    assert!(again.is_replay(), "a retry is a replay");
    assert_eq!(again.expect(201), first_body);
    app.post_json(
        "/orders",
        &json!({ "buyerId": 1, "totalPrice": 251 }),
        Some(&key),
    )
    .await
    .expect_problem(422, "idempotency_key_mismatch");
    let mut conn = app.db_conn();
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 1);
}
