//! Refunds, cancellations, payments and charges of one buyer racing each other, under load:
//! the books stay right whichever wins.

use futures::future::join_all;
use serde_json::json;

use super::{assert_lifecycle_books, paid_order};
use crate::helpers::{int, scalar, spawn_app};

#[actix_web::test]
async fn concurrent_partial_refunds_never_pass_the_payment_and_charges_keep_the_books() {
    let app = spawn_app().await;
    let (order, payment) = paid_order(&app, 1, 10_000, 1_000).await;
    // 40 refunds of 70 (at most 14 fit in 1,000), racing 40 charges of the same buyer.
    let refunds = (0..40).map(|i| {
        let body = json!({ "buyerId": 1, "amount": 70, "reason": format!("r{i}") });
        app.refund(payment, body, None)
    });
    let charges = (0..40).map(|_| app.charge(1, 5));
    let (refunded, charged) = futures::join!(join_all(refunds), join_all(charges));

    let mut accepted = 0;
    for response in &refunded {
        match response.status() {
            201 => accepted += int(&response.json(), "amount"),
            _ => {
                response.expect_problem(422, "refund_exceeds_payment");
            }
        }
    }
    assert_eq!(
        accepted,
        14 * 70,
        "as many refunds as fit are accepted, no more"
    );
    let charged_ok = charged.iter().filter(|r| r.status() == 200).count() as i64;
    assert_eq!(charged_ok, 40, "every charge is served");
    let (balance, _) = app.balance_of(1).await;
    assert_eq!(balance, 10_000 - 1_000 + accepted + 40 * 5);
    assert_eq!(
        app.get_order(order).await.ok()["status"],
        json!("PARTIALLY_REFUNDED")
    );
    let mut conn = app.db_conn();
    let refunded_amount = scalar(
        &mut conn,
        &format!("SELECT refunded_amount AS n FROM payments WHERE id = {payment}"),
    );
    assert_eq!(refunded_amount, accepted);
    assert_lifecycle_books(&mut conn);
}

#[actix_web::test]
async fn a_cancel_racing_a_payment_of_the_same_order_ends_in_exactly_one_of_them() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000_000).await;
    let mut orders = Vec::new();
    for _ in 0..30 {
        orders.push(app.new_order(1, 100).await);
    }
    let app = &app;
    let races = orders.iter().map(|&order| async move {
        let (paid, cancelled) = futures::join!(app.pay(1, order), app.cancel(1, order));
        (order, paid, cancelled)
    });
    let mut paid_count = 0;
    for (order, paid, cancelled) in join_all(races).await {
        let status = app.get_order(order).await.ok()["status"].clone();
        match (paid.status(), cancelled.status()) {
            (200, 409) => {
                cancelled.expect_problem(409, "order_already_paid");
                assert_eq!(status, json!("PAID"), "order {order}");
                paid_count += 1;
            }
            (409, 200) => {
                paid.expect_problem(409, "order_cancelled");
                assert_eq!(status, json!("CANCELLED"), "order {order}");
            }
            other => panic!("order {order}: pay and cancel answered {other:?}"),
        }
    }
    assert_eq!(app.balance_of(1).await.0, 1_000_000 - paid_count * 100);
    let mut conn = app.db_conn();
    assert_lifecycle_books(&mut conn);
}
