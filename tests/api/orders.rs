//! POST /orders and GET /orders/{orderId}.

use payment_engine::domain::Points;
use serde_json::{Value, json};

use crate::helpers::{int, order_row, rfc3339, scalar, spawn_app, spawn_app_with};

#[actix_web::test]
async fn creating_an_order_answers_201_with_its_location_and_a_pending_order() {
    let app = spawn_app().await;

    let response = app.create_order(1, 500).await;
    let body = response.expect(201);
    let order = int(&body, "orderId");
    assert!(order > 0, "orderId must be positive: {body}");
    assert_eq!(
        (
            &body["buyerId"],
            &body["totalPrice"],
            &body["status"],
            &body["paidAt"]
        ),
        (&json!(1), &json!(500), &json!("PENDING"), &Value::Null),
        "created order: {body}"
    );
    rfc3339(&body, "createdAt");
    assert_eq!(
        response.header("location"),
        Some(format!("/orders/{order}").as_str())
    );

    let row = order_row(&mut app.db_conn(), order).expect("the order is stored");
    assert_eq!(
        (
            row.buyer_id,
            row.total_price,
            row.status.as_str(),
            row.has_paid_at
        ),
        (1, 500, "PENDING", 0)
    );
}

#[actix_web::test]
async fn a_created_order_reads_back_the_same() {
    let app = spawn_app().await;
    let created = app.create_order(7, 1_234).await.expect(201);
    let order = int(&created, "orderId");

    let read = app.get_order(order).await.ok();
    assert_eq!(read["orderId"], json!(order));
    assert_eq!(read["buyerId"], json!(7));
    assert_eq!(read["totalPrice"], json!(1_234));
    assert_eq!(read["status"], json!("PENDING"));
    assert_eq!(read["paidAt"], Value::Null);
    let skew = (rfc3339(&read, "createdAt") - rfc3339(&created, "createdAt"))
        .num_microseconds()
        .unwrap()
        .abs();
    assert!(
        skew < 1_000,
        "createdAt must read back the same: {created} vs {read}"
    );
}

#[actix_web::test]
async fn successive_orders_get_distinct_ids() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 1..=10 {
        ids.push(app.new_order(i % 3 + 1, 100 * i).await);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "order ids must be distinct: {ids:?}"
    );
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        10
    );
}

#[actix_web::test]
async fn a_paid_order_reads_back_as_paid_with_paid_at() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;
    let order = app.new_order(1, 300).await;
    app.pay(1, order).await.ok();

    let read = app.get_order(order).await.ok();
    assert_eq!(
        (&read["status"], &read["totalPrice"]),
        (&json!("PAID"), &json!(300))
    );
    let paid_at = rfc3339(&read, "paidAt");
    assert!(
        paid_at >= rfc3339(&read, "createdAt"),
        "paid before created: {read}"
    );
}

#[actix_web::test]
async fn reading_an_unknown_order_is_404_order_not_found() {
    let app = spawn_app().await;

    app.get_order(424_242)
        .await
        .expect_problem(404, "order_not_found");
    app.get_order(i64::MAX)
        .await
        .expect_problem(404, "order_not_found");
}

#[actix_web::test]
async fn an_invalid_order_id_in_the_path_is_rejected_with_400() {
    let app = spawn_app().await;

    for id in ["abc", "0", "-1", "9223372036854775808", "1.5"] {
        app.get(&format!("/orders/{id}"))
            .await
            .expect_problem(400, "invalid_order_id");
    }
}

#[actix_web::test]
async fn order_with_zero_or_negative_total_is_rejected_with_400_invalid_amount() {
    let app = spawn_app().await;

    for total in [0, -1, -500, i64::MIN] {
        app.create_order(1, total)
            .await
            .expect_problem(400, "invalid_amount");
    }
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn order_above_the_maximum_total_is_rejected_and_the_maximum_itself_is_accepted() {
    let app = spawn_app_with(|s| s.buyers.max_order = Points::new(5_000)).await;

    app.create_order(1, 5_001)
        .await
        .expect_problem(400, "invalid_amount");
    app.create_order(1, i64::MAX)
        .await
        .expect_problem(400, "invalid_amount");
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );

    let body = app.create_order(1, 5_000).await.expect(201);
    assert_eq!(body["totalPrice"], json!(5_000));
}

#[actix_web::test]
async fn order_with_a_malformed_body_is_rejected_with_400_invalid_body() {
    let app = spawn_app().await;

    let bodies = [
        "not json".to_string(),
        "{\"buyerId\": 1,".to_string(),
        "".to_string(),
        "null".to_string(),
        "[]".to_string(),
        "{}".to_string(),
        json!({ "buyerId": 1 }).to_string(),
        json!({ "totalPrice": 500 }).to_string(),
        json!({ "buyerId": "1", "totalPrice": 500 }).to_string(),
        json!({ "buyerId": 1, "totalPrice": "500" }).to_string(),
        json!({ "buyerId": 1, "totalPrice": null }).to_string(),
        json!({ "buyerId": 0, "totalPrice": 500 }).to_string(),
        json!({ "buyerId": -3, "totalPrice": 500 }).to_string(),
        json!({ "buyer_id": 1, "total_price": 500 }).to_string(),
    ];
    for body in bodies {
        let response = app
            .post_raw("/orders", body.clone(), Some("application/json"))
            .await;
        assert_eq!(
            (response.status(), response.code().as_deref()),
            (400, Some("invalid_body")),
            "body {body:?} answered {}",
            response.text
        );
        response.expect_problem(400, "invalid_body");
    }
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn order_with_a_non_json_content_type_is_rejected_with_415() {
    let app = spawn_app().await;
    let body = json!({ "buyerId": 1, "totalPrice": 500 }).to_string();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        app.post_raw("/orders", body.clone(), Some(content_type))
            .await
            .expect_problem(415, "unsupported_media_type");
    }
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn order_with_a_json_content_type_and_charset_is_accepted() {
    let app = spawn_app().await;
    let body = json!({ "buyerId": 1, "totalPrice": 500 }).to_string();

    let created = app
        .post_raw("/orders", body, Some("application/json; charset=utf-8"))
        .await
        .expect(201);
    assert_eq!(created["totalPrice"], json!(500));
}

#[actix_web::test]
async fn order_body_larger_than_the_limit_is_rejected_with_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(app.settings.http.max_body_bytes + 1);
    let body = json!({ "buyerId": 1, "totalPrice": 500, "padding": padding }).to_string();

    app.post_raw("/orders", body, Some("application/json"))
        .await
        .expect_problem(413, "payload_too_large");
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn a_configured_body_limit_is_enforced() {
    let app = spawn_app_with(|s| s.http.max_body_bytes = 64).await;
    let small = json!({ "buyerId": 1, "totalPrice": 500 }).to_string();
    assert!(small.len() <= 64);
    let large = json!({ "buyerId": 1, "totalPrice": 500, "note": "y".repeat(64) }).to_string();

    app.post_raw("/orders", small, Some("application/json"))
        .await
        .expect(201);
    app.post_raw("/orders", large, Some("application/json"))
        .await
        .expect_problem(413, "payload_too_large");
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        1
    );
}
