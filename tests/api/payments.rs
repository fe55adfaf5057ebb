//! POST /orders/payment/kafka.

use serde_json::{Value, json};

use crate::helpers::{
    assert_buyer_invariants, balance_row, int, ledger, ledger_count, order_row, payments_for_order,
    rfc3339, spawn_app,
};

const PAY: &str = "/orders/payment/kafka";

#[actix_web::test]
async fn paying_an_order_deducts_its_price_marks_it_paid_and_records_a_payment_entry() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_100).await;
    let order = app.new_order(1, 500).await;

    let body = app.pay(1, order).await.ok();
    let payment_id = int(&body, "paymentId");
    assert!(payment_id > 0, "paymentId must be positive: {body}");
    assert_eq!(
        (
            int(&body, "orderId"),
            int(&body, "buyerId"),
            int(&body, "amount"),
            int(&body, "balance"),
            int(&body, "version")
        ),
        (order, 1, 500, 600, 2),
        "payment response: {body}"
    );
    let paid_at = rfc3339(&body, "paidAt");

    assert_eq!(app.balance_of(1).await, (600, 2));

    let order_body = app.get_order(order).await.ok();
    assert_eq!(order_body["status"], json!("PAID"), "{order_body}");
    let order_paid_at = rfc3339(&order_body, "paidAt");
    let skew = (order_paid_at - paid_at).num_microseconds().unwrap().abs();
    assert!(
        skew < 1_000,
        "the order's paidAt {order_paid_at} must be the payment's {paid_at}"
    );

    let history = app.history(1, None, None).await.ok();
    let newest = &history["entries"][0];
    assert_eq!(
        (
            int(newest, "version"),
            newest["kind"].as_str(),
            int(newest, "amount"),
            int(newest, "balanceAfter"),
            newest["orderId"].as_i64(),
            newest["paymentId"].as_i64()
        ),
        (2, Some("PAYMENT"), -500, 600, Some(order), Some(payment_id)),
        "newest history entry: {history}"
    );

    let mut conn = app.db_conn();
    let payments = payments_for_order(&mut conn, order);
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (
            payments[0].id,
            payments[0].buyer_id,
            payments[0].ledger_version
        ),
        (payment_id, 1, 2)
    );
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn paying_the_whole_balance_leaves_exactly_zero() {
    let app = spawn_app().await;
    app.charge_ok(1, 500).await;
    let order = app.new_order(1, 500).await;

    let body = app.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (0, 2));
    assert_eq!(app.balance_of(1).await, (0, 2));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn paying_an_already_paid_order_is_rejected_with_409_and_moves_nothing() {
    let app = spawn_app().await;
    app.charge_ok(1, 2_000).await;
    let order = app.new_order(1, 500).await;
    app.pay(1, order).await.ok();

    app.pay(1, order)
        .await
        .expect_problem(409, "order_already_paid");

    assert_eq!(app.balance_of(1).await, (1_500, 2));
    let mut conn = app.db_conn();
    assert_eq!(payments_for_order(&mut conn, order).len(), 1);
    assert_eq!(ledger_count(&mut conn, 1), 2);
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn paying_with_insufficient_balance_is_rejected_with_422_and_changes_nothing() {
    let app = spawn_app().await;
    app.charge_ok(1, 100).await;
    let order = app.new_order(1, 500).await;

    app.pay(1, order)
        .await
        .expect_problem(422, "insufficient_balance");

    assert_eq!(app.balance_of(1).await, (100, 1));
    let order_body = app.get_order(order).await.ok();
    assert_eq!(
        (order_body["status"].clone(), order_body["paidAt"].clone()),
        (json!("PENDING"), Value::Null)
    );
    let mut conn = app.db_conn();
    assert!(
        payments_for_order(&mut conn, order).is_empty(),
        "no payment row for a refused payment"
    );
    assert_eq!(ledger_count(&mut conn, 1), 1);
    let row = order_row(&mut conn, order).unwrap();
    assert_eq!((row.status.as_str(), row.has_paid_at), ("PENDING", 0));

    // Once the balance suffices, the same order can be paid.
    app.charge_ok(1, 400).await;
    let body = app.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (0, 3));
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn paying_as_a_buyer_never_charged_is_rejected_with_422_and_creates_no_balance() {
    let app = spawn_app().await;
    let order = app.new_order(5, 100).await;

    app.pay(5, order)
        .await
        .expect_problem(422, "insufficient_balance");

    assert_eq!(app.balance_of(5).await, (0, 0));
    let mut conn = app.db_conn();
    assert!(balance_row(&mut conn, 5).is_none());
    assert!(payments_for_order(&mut conn, order).is_empty());
}

#[actix_web::test]
async fn paying_an_order_of_another_buyer_is_rejected_with_404_like_an_unknown_order() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    app.charge_ok(2, 10_000).await;
    let order_of_2 = app.new_order(2, 500).await;

    let foreign = app.pay(1, order_of_2).await;
    let foreign_body = foreign.expect_problem(404, "order_not_found");
    let unknown = app.pay(1, 987_654_321).await;
    let unknown_body = unknown.expect_problem(404, "order_not_found");
    assert_eq!(
        (&foreign_body["type"], &foreign_body["title"]),
        (&unknown_body["type"], &unknown_body["title"]),
        "another buyer's order must be indistinguishable from an unknown one"
    );

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(app.balance_of(2).await, (10_000, 1));
    assert_eq!(
        app.get_order(order_of_2).await.ok()["status"],
        json!("PENDING")
    );
    let mut conn = app.db_conn();
    assert!(payments_for_order(&mut conn, order_of_2).is_empty());
    assert_eq!(ledger(&mut conn, 1).len(), 1);

    // Its owner can still pay it.
    app.pay(2, order_of_2).await.ok();
    assert_eq!(app.balance_of(2).await, (9_500, 2));
    assert_buyer_invariants(&mut conn, 1);
    assert_buyer_invariants(&mut conn, 2);
}

#[actix_web::test]
async fn paying_an_unknown_order_is_rejected_with_404() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;

    app.pay(1, 123_456)
        .await
        .expect_problem(404, "order_not_found");
    app.pay(1, i64::MAX)
        .await
        .expect_problem(404, "order_not_found");

    assert_eq!(app.balance_of(1).await, (1_000, 1));
}

#[actix_web::test]
async fn each_payment_gets_its_own_payment_id() {
    let app = spawn_app().await;
    app.charge_ok(1, 100_000).await;
    let mut payment_ids = Vec::new();
    for price in [100, 200, 300, 400, 500] {
        let order = app.new_order(1, price).await;
        payment_ids.push(int(&app.pay(1, order).await.ok(), "paymentId"));
    }
    let mut unique = payment_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        payment_ids.len(),
        "payment ids must be distinct: {payment_ids:?}"
    );
    assert_eq!(app.balance_of(1).await, (100_000 - 1_500, 6));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn payment_with_a_malformed_body_is_rejected_with_400_invalid_body() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let order = app.new_order(1, 100).await;

    let bodies = [
        "not json".to_string(),
        "{".to_string(),
        "".to_string(),
        "null".to_string(),
        "[]".to_string(),
        "{}".to_string(),
        json!({ "buyerId": 1 }).to_string(),
        json!({ "orderId": order }).to_string(),
        json!({ "buyerId": "1", "orderId": order }).to_string(),
        json!({ "buyerId": 1, "orderId": order.to_string() }).to_string(),
        json!({ "buyerId": 1.5, "orderId": order }).to_string(),
        json!({ "buyerId": null, "orderId": order }).to_string(),
        json!({ "buyerId": 0, "orderId": order }).to_string(),
        json!({ "buyerId": -1, "orderId": order }).to_string(),
        json!({ "buyerId": 1, "orderId": 0 }).to_string(),
        json!({ "buyerId": 1, "orderId": -7 }).to_string(),
        r#"{"buyerId": 1, "orderId": 99999999999999999999999}"#.to_string(),
    ];
    for body in bodies {
        let response = app
            .post_raw(PAY, body.clone(), Some("application/json"))
            .await;
        assert_eq!(
            (response.status(), response.code().as_deref()),
            (400, Some("invalid_body")),
            "body {body:?} answered {}",
            response.text
        );
        response.expect_problem(400, "invalid_body");
    }

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));
}

#[actix_web::test]
async fn payment_with_a_non_json_content_type_is_rejected_with_415() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let order = app.new_order(1, 100).await;
    let body = json!({ "buyerId": 1, "orderId": order }).to_string();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        app.post_raw(PAY, body.clone(), Some(content_type))
            .await
            .expect_problem(415, "unsupported_media_type");
    }

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));
}

#[actix_web::test]
async fn payment_body_larger_than_the_limit_is_rejected_with_413() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let order = app.new_order(1, 100).await;
    let padding = "x".repeat(app.settings.http.max_body_bytes + 1);
    let body = json!({ "buyerId": 1, "orderId": order, "padding": padding }).to_string();

    app.post_raw(PAY, body, Some("application/json"))
        .await
        .expect_problem(413, "payload_too_large");

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));
}
