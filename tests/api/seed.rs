//! `seed_demo_data` against a running engine's database.

use serde_json::json;

use crate::helpers::{assert_buyer_invariants, int, scalar, spawn_app, spawn_app_on};

#[actix_web::test]
async fn seeded_demo_data_is_served_and_payable() {
    let app = spawn_app().await;
    let mut conn = app.db_conn();
    payment_engine::seed::seed_demo_data(&mut conn).expect("seeding");

    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 107);
    for buyer in 1..=7 {
        assert_eq!(app.balance_of(buyer).await, (1_000_000, 1), "buyer {buyer}");
        let history = app.history(buyer, None, None).await.ok();
        assert_eq!(history["entries"].as_array().unwrap().len(), 1, "{history}");
        assert_eq!(history["entries"][0]["kind"], json!("CHARGE"));
    }
    assert_eq!(app.balance_of(8).await, (0, 0));

    let order_107 = app.get_order(107).await.ok();
    assert_eq!(
        (
            &order_107["buyerId"],
            &order_107["totalPrice"],
            &order_107["status"]
        ),
        (&json!(2), &json!(1_700), &json!("PENDING"))
    );

    // Order 1 belongs to buyer 1 and costs 1000 + 1 * 100.
    let paid = app.pay(1, 1).await.ok();
    assert_eq!(
        (
            int(&paid, "orderId"),
            int(&paid, "amount"),
            int(&paid, "balance"),
            int(&paid, "version")
        ),
        (1, 1_100, 998_900, 2)
    );
    assert_eq!(app.get_order(1).await.ok()["status"], json!("PAID"));
    // Order 8 also belongs to buyer 1: buyer 2 may not pay it.
    app.pay(2, 8).await.expect_problem(404, "order_not_found");
    app.pay(2, 1).await.expect_problem(404, "order_not_found");
    assert_eq!(app.balance_of(2).await, (1_000_000, 1));
    // Order 2 is buyer 2's.
    assert_eq!(int(&app.pay(2, 2).await.ok(), "balance"), 1_000_000 - 1_200);

    for buyer in 1..=7 {
        assert_buyer_invariants(&mut conn, buyer);
    }
}

#[actix_web::test]
async fn orders_created_after_seeding_do_not_reuse_seeded_ids() {
    let app = spawn_app().await;
    payment_engine::seed::seed_demo_data(&mut app.db_conn()).expect("seeding");
    app.handle.stop(true).await;
    let app = spawn_app_on(&app.db.clone()).await;

    let order = app.new_order(1, 500).await;
    assert!(
        order > 107,
        "new order id {order} collides with the seeded orders 1..=107"
    );
    let seeded = app.get_order(1).await.ok();
    assert_eq!(
        (&seeded["buyerId"], &seeded["totalPrice"]),
        (&json!(1), &json!(1_100))
    );
}
