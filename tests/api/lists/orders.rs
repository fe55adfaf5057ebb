//! GET /buyers/{buyerId}/orders?status=&limit=&cursor=

use serde_json::json;

use super::setup::{
    all_orders, cancel_with_sql, ids, items, orders_page, paid_order, refund_with_sql,
};
use crate::helpers::{int, spawn_app};

#[actix_web::test]
async fn a_buyer_never_seen_has_an_empty_list_of_orders() {
    let app = spawn_app().await;
    app.new_order(1, 100).await;

    let body = orders_page(&app, 9, None, None, None).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 9, "orders": [], "nextCursor": null })
    );
    let body = orders_page(&app, 9, Some("PAID"), None, None).await.ok();
    assert_eq!(body["orders"], json!([]), "{body}");
}

#[actix_web::test]
async fn orders_are_listed_newest_first_as_get_order_shows_them() {
    let app = spawn_app().await;
    let first = app.new_order(1, 100).await;
    app.new_order(2, 999).await;
    let (second, _) = paid_order(&app, 1, 200).await;

    let body = orders_page(&app, 1, None, None, None).await.ok();
    let (orders, next) = items(&body, "orders", 1, 20);
    assert_eq!(ids(&orders, "orderId"), vec![second, first]);
    assert_eq!(next, None, "two orders fit a page: {body}");
    for order in &orders {
        let read = app.get_order(int(order, "orderId")).await.ok();
        assert_eq!(
            order, &read,
            "a listed order is the order GET /orders shows"
        );
    }
    assert_eq!(orders[0]["status"], json!("PAID"));
    assert_eq!(orders[1]["status"], json!("PENDING"));
}

#[actix_web::test]
async fn three_pages_of_orders_are_not_shifted_by_orders_created_meanwhile() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 1..=7 {
        created.push(app.new_order(1, 100 * i).await);
        app.new_order(2, 5).await;
    }
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();

    let body = orders_page(&app, 1, None, Some(3), None).await.ok();
    let (page, next) = items(&body, "orders", 1, 3);
    assert_eq!(ids(&page, "orderId"), newest_first[0..3]);
    // Orders created after the first page was read, for this buyer and another.
    let newer = app.new_order(1, 50).await;
    app.new_order(2, 50).await;

    let body = orders_page(&app, 1, None, Some(3), next.as_deref())
        .await
        .ok();
    let (page, next) = items(&body, "orders", 1, 3);
    assert_eq!(ids(&page, "orderId"), newest_first[3..6]);
    let newest = app.new_order(1, 60).await;

    let body = orders_page(&app, 1, None, Some(3), next.as_deref())
        .await
        .ok();
    let (page, next) = items(&body, "orders", 1, 3);
    assert_eq!(ids(&page, "orderId"), newest_first[6..7]);
    assert_eq!(next, None, "the third page is the last: {body}");

    let mut everything = vec![newest, newer];
    everything.extend(&newest_first);
    for limit in [1, 2, 9, 10, 100] {
        assert_eq!(
            all_orders(&app, 1, None, limit).await,
            everything,
            "limit {limit}"
        );
    }
}

#[actix_web::test]
async fn orders_of_one_status_are_listed_and_paged_alone() {
    let app = spawn_app().await;
    let pending = app.new_order(1, 10).await;
    let cancelled = app.new_order(1, 20).await;
    let (paid, _) = paid_order(&app, 1, 30).await;
    let (partly_refunded, partly) = paid_order(&app, 1, 40).await;
    let (refunded, payment) = paid_order(&app, 1, 50).await;
    let (paid_last, _) = paid_order(&app, 1, 60).await;
    let pending_last = app.new_order(1, 70).await;
    cancel_with_sql(&app, cancelled);
    refund_with_sql(&app, 1, int(&payment, "paymentId"), 50, None);
    refund_with_sql(&app, 2, int(&partly, "paymentId"), 15, None);

    let expected = [
        ("PENDING", vec![pending_last, pending]),
        ("PAID", vec![paid_last, paid]),
        ("CANCELLED", vec![cancelled]),
        ("REFUNDED", vec![refunded]),
        ("PARTIALLY_REFUNDED", vec![partly_refunded]),
    ];
    for (status, orders) in expected {
        for limit in [1, 2, 20] {
            let listed = all_orders(&app, 1, Some(status), limit).await;
            assert_eq!(listed, orders, "status {status}, limit {limit}");
        }
        let body = orders_page(&app, 1, Some(status), None, None).await.ok();
        let (page, _) = items(&body, "orders", 1, 20);
        assert!(page.iter().all(|o| o["status"] == json!(status)), "{body}");
    }
    // No filter, and an empty one, list them all.
    assert_eq!(all_orders(&app, 1, None, 3).await.len(), 7);
    assert_eq!(all_orders(&app, 1, Some(""), 3).await.len(), 7);
}
