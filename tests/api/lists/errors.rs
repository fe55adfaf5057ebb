//! What the list routes refuse: bad limits, statuses and cursors, and cursors of another list.

use super::setup::{get_with, items, orders_page, paid_order, payments_page};
use crate::helpers::{TestApp, spawn_app};

/// A buyer with five orders (the first three paid), so lists of both kinds span pages.
async fn buyer_with_orders_and_payments(app: &TestApp, buyer: i64) {
    for total in [10, 20, 30] {
        paid_order(app, buyer, total).await;
    }
    for total in [40, 50] {
        app.new_order(buyer, total).await;
    }
}

/// A `nextCursor` of the list at `path` with pages of 1.
async fn cursor_of(app: &TestApp, path: &str, status: Option<&str>) -> String {
    let body = get_with(app, path, &[("limit", Some("1")), ("status", status)])
        .await
        .ok();
    body["nextCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} has a second page: {body}"))
        .to_string()
}

#[actix_web::test]
async fn a_limit_outside_1_to_100_is_refused_with_400_invalid_limit() {
    let app = spawn_app().await;
    buyer_with_orders_and_payments(&app, 1).await;

    for path in ["/buyers/1/orders", "/buyers/1/payments"] {
        for limit in ["0", "101", "-1", "abc", "1.5", "", "99999999999999999999"] {
            get_with(&app, path, &[("limit", Some(limit))])
                .await
                .expect_problem(400, "invalid_limit");
        }
        for limit in ["1", "100"] {
            get_with(&app, path, &[("limit", Some(limit))]).await.ok();
        }
    }
}

#[actix_web::test]
async fn a_status_that_is_none_of_the_statuses_is_refused_with_400_invalid_status() {
    let app = spawn_app().await;
    buyer_with_orders_and_payments(&app, 1).await;

    for status in ["paid", "Paid", "SHIPPED", " PAID", "PAID,PENDING", "1"] {
        orders_page(&app, 1, Some(status), None, None)
            .await
            .expect_problem(400, "invalid_status");
    }
}

#[actix_web::test]
async fn a_malformed_or_tampered_cursor_is_refused_with_400_invalid_cursor() {
    let app = spawn_app().await;
    buyer_with_orders_and_payments(&app, 1).await;
    let orders = cursor_of(&app, "/buyers/1/orders", None).await;
    let payments = cursor_of(&app, "/buyers/1/payments", None).await;

    for cursor in [&orders, &payments] {
        let mut tampered = vec![format!("{cursor}0"), cursor[1..].to_string()];
        if cursor.to_uppercase() != *cursor {
            tampered.push(cursor.to_uppercase());
        }
        // Every one-character change: the id's digits and the checksum's alike.
        for at in 0..cursor.len() {
            let mut bytes = cursor.clone().into_bytes();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            tampered.push(String::from_utf8(bytes).unwrap());
        }
        for bad in tampered {
            orders_page(&app, 1, None, Some(1), Some(&bad))
                .await
                .expect_problem(400, "invalid_cursor");
            payments_page(&app, 1, Some(1), Some(&bad))
                .await
                .expect_problem(400, "invalid_cursor");
        }
    }
    for bad in ["not-a-cursor", "3", "-1", "%%%", "\u{1F642}", "////"] {
        orders_page(&app, 1, None, None, Some(bad))
            .await
            .expect_problem(400, "invalid_cursor");
        payments_page(&app, 1, None, Some(bad))
            .await
            .expect_problem(400, "invalid_cursor");
    }
}

#[actix_web::test]
async fn a_cursor_of_another_list_buyer_or_filter_is_refused_with_400_invalid_cursor() {
    let app = spawn_app().await;
    buyer_with_orders_and_payments(&app, 1).await;
    buyer_with_orders_and_payments(&app, 2).await;
    let orders = cursor_of(&app, "/buyers/1/orders", None).await;
    let paid_orders = cursor_of(&app, "/buyers/1/orders", Some("PAID")).await;
    let payments = cursor_of(&app, "/buyers/1/payments", None).await;
    let history = cursor_of(&app, "/points/history/1", None).await;

    let refused: [(&str, Option<&str>, &str); 8] = [
        ("/buyers/1/payments", None, &orders),
        ("/buyers/1/orders", None, &payments),
        ("/buyers/1/orders", None, &history),
        ("/buyers/1/payments", None, &history),
        ("/buyers/2/orders", None, &orders),
        ("/buyers/2/payments", None, &payments),
        ("/buyers/1/orders", None, &paid_orders),
        ("/buyers/1/orders", Some("PENDING"), &paid_orders),
    ];
    for (path, status, cursor) in refused {
        get_with(&app, path, &[("status", status), ("cursor", Some(cursor))])
            .await
            .expect_problem(400, "invalid_cursor");
    }
    // History refuses the lists' cursors too.
    for cursor in [&orders, &payments] {
        app.history(1, None, Some(cursor))
            .await
            .expect_problem(400, "invalid_cursor");
    }
    // Each is accepted by its own list.
    let own: [(&str, Option<&str>, &str); 3] = [
        ("/buyers/1/orders", None, &orders),
        ("/buyers/1/orders", Some("PAID"), &paid_orders),
        ("/buyers/1/payments", None, &payments),
    ];
    for (path, status, cursor) in own {
        let body = get_with(&app, path, &[("status", status), ("cursor", Some(cursor))])
            .await
            .ok();
        let field = if path.ends_with("orders") {
            "orders"
        } else {
            "payments"
        };
        assert!(!items(&body, field, 1, 20).0.is_empty(), "{path}: {body}");
    }
}

#[actix_web::test]
async fn a_buyer_id_that_is_not_an_id_is_refused_with_400_invalid_buyer_id() {
    let app = spawn_app().await;

    for buyer in ["0", "-3", "abc", "9223372036854775808"] {
        for list in ["orders", "payments"] {
            app.get(&format!("/buyers/{buyer}/{list}"))
                .await
                .expect_problem(400, "invalid_buyer_id");
        }
    }
}

#[actix_web::test]
async fn the_read_routes_answer_405_to_other_methods() {
    let app = spawn_app().await;

    for path in ["/buyers/1/orders", "/buyers/1/payments", "/payments/1"] {
        let response = app.post_raw(path, "{}", Some("application/json")).await;
        response.expect_problem(405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some("GET"), "{path}");
    }
}
