//! GET /payments/{paymentId} and GET /buyers/{buyerId}/payments?limit=&cursor=

use serde_json::{Value, json};

use super::setup::{ids, items, paid_order, payments_page, refund_with_sql};
use crate::helpers::{int, rfc3339, spawn_app};

/// The fields a payment's receipt and its view share, and the same in the view.
fn receipt_fields(receipt: &Value, view: &Value) -> [(Value, Value); 6] {
    [
        (receipt["paymentId"].clone(), view["paymentId"].clone()),
        (receipt["orderId"].clone(), view["orderId"].clone()),
        (receipt["buyerId"].clone(), view["buyerId"].clone()),
        (receipt["amount"].clone(), view["amount"].clone()),
        (receipt["balance"].clone(), view["balanceAfter"].clone()),
        (receipt["version"].clone(), view["version"].clone()),
    ]
}

#[actix_web::test]
async fn a_payment_shows_its_refunds_oldest_first_and_what_remains_refundable() {
    let app = spawn_app().await;
    app.charge_ok(1, 400).await;
    let (order, receipt) = paid_order(&app, 1, 600).await;
    let payment = int(&receipt, "paymentId");
    // The buyer's balance is 400 after paying; refunds give back 100, then 150.
    refund_with_sql(&app, 7, payment, 100, Some("damaged"));
    refund_with_sql(&app, 3, payment, 150, None);

    let body = app.get(&format!("/payments/{payment}")).await.ok();
    for (from_receipt, in_view) in receipt_fields(&receipt, &body) {
        assert_eq!(from_receipt, in_view, "the payment as paid: {body}");
    }
    assert_eq!(rfc3339(&body, "paidAt"), rfc3339(&receipt, "paidAt"));
    assert_eq!(
        (
            &body["orderId"],
            &body["refundedAmount"],
            &body["refundable"],
            &body["status"]
        ),
        (
            &json!(order),
            &json!(250),
            &json!(350),
            &json!("PARTIALLY_REFUNDED")
        ),
        "{body}"
    );
    assert_eq!(body["hasMoreRefunds"], json!(false), "{body}");
    let refunds = body["refunds"].as_array().expect("refunds array");
    let summary: Vec<_> = refunds
        .iter()
        .map(|r| {
            let fields = ["refundId", "amount", "balanceAfter", "version"].map(|f| int(r, f));
            (fields, r["reason"].clone())
        })
        .collect();
    // Oldest first even though the later refund has the lower id.
    assert_eq!(
        summary,
        vec![
            ([7, 100, 500, 4], json!("damaged")),
            ([3, 150, 650, 5], Value::Null)
        ]
    );
    assert!(rfc3339(&refunds[0], "refundedAt") <= rfc3339(&refunds[1], "refundedAt"));
    assert_eq!(
        app.get_order(order).await.ok()["status"],
        json!("PARTIALLY_REFUNDED")
    );

    refund_with_sql(&app, 8, payment, 350, Some("rest"));
    let body = app.get(&format!("/payments/{payment}")).await.ok();
    assert_eq!(
        (
            &body["refundedAmount"],
            &body["refundable"],
            &body["status"]
        ),
        (&json!(600), &json!(0), &json!("REFUNDED")),
        "{body}"
    );
    assert_eq!(body["refunds"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn a_payment_without_refunds_is_fully_refundable() {
    let app = spawn_app().await;
    let (_, receipt) = paid_order(&app, 4, 250).await;

    let body = app
        .get(&format!("/payments/{}", int(&receipt, "paymentId")))
        .await
        .ok();
    assert_eq!(
        (
            &body["refundedAmount"],
            &body["refundable"],
            &body["status"]
        ),
        (&json!(0), &json!(250), &json!("PAID")),
        "{body}"
    );
    assert_eq!(
        (&body["refunds"], &body["hasMoreRefunds"]),
        (&json!([]), &json!(false))
    );
}

#[actix_web::test]
async fn a_payment_lists_its_first_100_refunds_and_says_there_are_more() {
    let app = spawn_app().await;
    let (_, receipt) = paid_order(&app, 1, 1_000).await;
    let payment = int(&receipt, "paymentId");
    for refund in 1..=101 {
        refund_with_sql(&app, refund, payment, 1, None);
    }

    let body = app.get(&format!("/payments/{payment}")).await.ok();
    let refunds = body["refunds"].as_array().unwrap();
    assert_eq!(ids(refunds, "refundId"), (1..=100).collect::<Vec<_>>());
    assert_eq!(body["hasMoreRefunds"], json!(true));
    assert_eq!(
        (&body["refundedAmount"], &body["refundable"]),
        (&json!(101), &json!(899)),
        "the amounts count every refund, listed or not: {body}"
    );
}

#[actix_web::test]
async fn an_unknown_payment_is_404_payment_not_found() {
    let app = spawn_app().await;
    paid_order(&app, 1, 10).await;

    for id in ["999999", "9223372036854775807"] {
        app.get(&format!("/payments/{id}"))
            .await
            .expect_problem(404, "payment_not_found");
    }
    for id in ["0", "-1", "abc", "1.5", "9223372036854775808"] {
        app.get(&format!("/payments/{id}"))
            .await
            .expect_problem(400, "invalid_payment_id");
    }
}

#[actix_web::test]
async fn three_pages_of_payments_are_not_shifted_by_payments_made_meanwhile() {
    let app = spawn_app().await;
    let mut receipts = Vec::new();
    for total in [10, 20, 30, 40, 50] {
        receipts.push(paid_order(&app, 1, total).await.1);
        paid_order(&app, 2, total).await;
    }
    app.new_order(1, 5).await; // unpaid: no payment
    let newest_first: Vec<i64> = receipts.iter().rev().map(|r| int(r, "paymentId")).collect();

    let body = payments_page(&app, 1, Some(2), None).await.ok();
    let (page, next) = items(&body, "payments", 1, 2);
    assert_eq!(ids(&page, "paymentId"), newest_first[0..2]);
    for payment in &page {
        let receipt = receipts
            .iter()
            .find(|r| r["paymentId"] == payment["paymentId"])
            .unwrap();
        for (from_receipt, in_view) in receipt_fields(receipt, payment) {
            assert_eq!(from_receipt, in_view, "{payment}");
        }
        assert_eq!(
            (&payment["refundable"], &payment["status"]),
            (&payment["amount"], &json!("PAID"))
        );
        assert!(
            payment.get("refunds").is_none(),
            "a list item has no refunds: {payment}"
        );
    }
    let newer = paid_order(&app, 1, 60).await.1;

    let body = payments_page(&app, 1, Some(2), next.as_deref()).await.ok();
    let (page, next) = items(&body, "payments", 1, 2);
    assert_eq!(ids(&page, "paymentId"), newest_first[2..4]);
    refund_with_sql(&app, 1, newest_first[4], 4, None);

    let body = payments_page(&app, 1, Some(2), next.as_deref()).await.ok();
    let (page, next) = items(&body, "payments", 1, 2);
    assert_eq!(ids(&page, "paymentId"), newest_first[4..5]);
    assert_eq!(next, None, "the third page is the last: {body}");
    assert_eq!(
        (
            &page[0]["refundedAmount"],
            &page[0]["refundable"],
            &page[0]["status"]
        ),
        (&json!(4), &json!(6), &json!("PARTIALLY_REFUNDED")),
        "{body}"
    );

    let body = payments_page(&app, 1, None, None).await.ok();
    let (page, next) = items(&body, "payments", 1, 20);
    assert_eq!(page[0]["paymentId"], newer["paymentId"]);
    assert_eq!((page.len(), next), (6, None));
}

#[actix_web::test]
async fn a_buyer_without_payments_has_an_empty_list_of_payments() {
    let app = spawn_app().await;
    app.new_order(3, 10).await;

    for buyer in [3, 9] {
        let body = payments_page(&app, buyer, None, None).await.ok();
        assert_eq!(
            body,
            json!({ "buyerId": buyer, "payments": [], "nextCursor": null })
        );
    }
}
