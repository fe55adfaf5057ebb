//! `seed_demo_data` against a running engine's database.

use serde_json::{Value, json};

use crate::helpers::{assert_buyer_invariants, int, scalar, spawn_app, spawn_app_on};

#[actix_web::test]
async fn seeded_demo_data_is_served_and_payable() {
    let app = spawn_app().await;
    let mut conn = app.db_conn();
    payment_engine::seed::seed_demo_data(&mut conn).expect("seeding");

    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 114);
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) AS n FROM payments"), 7);
    for buyer in 1..=7 {
        // Charged 1,000,000, then paid its paid demo order 107 + buyer (2,000 + buyer * 100).
        let paid = 2_000 + buyer * 100;
        assert_eq!(
            app.balance_of(buyer).await,
            (1_000_000 - paid, 2),
            "buyer {buyer}"
        );
        let history = app.history(buyer, None, None).await.ok();
        let kinds: Vec<&Value> = history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["kind"])
            .collect();
        assert_eq!(kinds, [&json!("PAYMENT"), &json!("CHARGE")], "{history}");
        assert_eq!(
            app.get_order(107 + buyer).await.ok()["status"],
            json!("PAID")
        );
        assert_buyer_invariants(&mut conn, buyer);
    }
    assert_eq!(app.balance_of(8).await, (0, 0));
    // Each paid order's payment.completed event is in the outbox, as a payment's would be.
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT COUNT(*) AS n FROM outbox_events WHERE event_type = 'payment.completed'"
        ),
        7
    );

    let order_107 = app.get_order(107).await.ok();
    assert_eq!(
        (
            &order_107["buyerId"],
            &order_107["totalPrice"],
            &order_107["status"]
        ),
        (&json!(2), &json!(1_700), &json!("PENDING"))
    );

    // Order 1 belongs to buyer 1 and costs 1000 + 1 * 100; the first new payment is number 8.
    let paid = app.pay(1, 1).await.ok();
    assert_eq!(
        (
            int(&paid, "paymentId"),
            int(&paid, "orderId"),
            int(&paid, "amount"),
            int(&paid, "balance"),
            int(&paid, "version")
        ),
        (8, 1, 1_100, 997_900 - 1_100, 3)
    );
    assert_eq!(app.get_order(1).await.ok()["status"], json!("PAID"));
    // Order 8 also belongs to buyer 1: buyer 2 may not pay it.
    app.pay(2, 8).await.expect_problem(404, "order_not_found");
    app.pay(2, 1).await.expect_problem(404, "order_not_found");
    assert_eq!(app.balance_of(2).await, (997_800, 2));
    // Order 2 is buyer 2's.
    assert_eq!(int(&app.pay(2, 2).await.ok(), "balance"), 997_800 - 1_200);

    for buyer in 1..=7 {
        assert_buyer_invariants(&mut conn, buyer);
    }
}

#[actix_web::test]
async fn seeded_payments_are_refundable() {
    let app = spawn_app().await;
    let mut conn = app.db_conn();
    payment_engine::seed::seed_demo_data(&mut conn).expect("seeding");

    // Payment 3 is buyer 3's, of order 110, 2,300 points.
    let payment = app.get("/payments/3").await.ok();
    assert_eq!(
        (
            int(&payment, "orderId"),
            int(&payment, "amount"),
            int(&payment, "refundable")
        ),
        (110, 2_300, 2_300),
        "{payment}"
    );
    app.refund(3, json!({ "buyerId": 4 }), None)
        .await
        .expect_problem(404, "payment_not_found");
    let part = app
        .refund(
            3,
            json!({ "buyerId": 3, "amount": 300, "reason": "damaged" }),
            None,
        )
        .await
        .expect(201);
    assert_eq!(
        (
            int(&part, "amount"),
            int(&part, "balance"),
            int(&part, "version")
        ),
        (300, 997_700 + 300, 3)
    );
    assert_eq!(
        app.get_order(110).await.ok()["status"],
        json!("PARTIALLY_REFUNDED")
    );
    let rest = app
        .refund(3, json!({ "buyerId": 3 }), None)
        .await
        .expect(201);
    assert_eq!(
        (int(&rest, "amount"), int(&rest, "balance")),
        (2_000, 1_000_000)
    );
    assert_eq!(app.get_order(110).await.ok()["status"], json!("REFUNDED"));
    assert_buyer_invariants(&mut conn, 3);
}

#[actix_web::test]
async fn orders_created_after_seeding_do_not_reuse_seeded_ids() {
    let app = spawn_app().await;
    payment_engine::seed::seed_demo_data(&mut app.db_conn()).expect("seeding");
    app.handle.stop(true).await;
    let app = spawn_app_on(&app.db.clone()).await;

    let order = app.new_order(1, 500).await;
    assert!(
        order > 114,
        "new order id {order} collides with the seeded orders 1..=114"
    );
    let seeded = app.get_order(1).await.ok();
    assert_eq!(
        (&seeded["buyerId"], &seeded["totalPrice"]),
        (&json!(1), &json!(1_100))
    );
}
