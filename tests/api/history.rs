//! GET /points/history/{buyerId}?limit=&cursor=

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_entry_matches_ledger, int, ledger, rfc3339, spawn_app};

fn versions(entries: &[Value]) -> Vec<i64> {
    entries.iter().map(|e| int(e, "version")).collect()
}

async fn charge_n_times(app: &TestApp, buyer: i64, n: i64) {
    for i in 1..=n {
        app.charge_ok(buyer, i).await;
    }
}

#[actix_web::test]
async fn history_of_a_buyer_never_charged_is_empty() {
    let app = spawn_app().await;

    let body = app.history(9, None, None).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 9, "entries": [], "nextCursor": null })
    );
}

#[actix_web::test]
async fn history_lists_entries_newest_first_with_every_field() {
    let app = spawn_app().await;
    app.charge_ok(1, 100).await;
    app.charge_ok(1, 200).await;
    let order = app.new_order(1, 250).await;
    let payment = app.pay(1, order).await.ok();

    let body = app.history(1, None, None).await.ok();
    assert_eq!(body["buyerId"], json!(1));
    assert_eq!(
        body["nextCursor"],
        Value::Null,
        "three entries fit one page: {body}"
    );
    let entries = body["entries"].as_array().unwrap();
    let summary: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                int(e, "version"),
                e["kind"].as_str().unwrap().to_string(),
                int(e, "amount"),
                int(e, "balanceAfter"),
                e["orderId"].as_i64(),
                e["paymentId"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                3,
                "PAYMENT".to_string(),
                -250,
                50,
                Some(order),
                Some(int(&payment, "paymentId"))
            ),
            (2, "CHARGE".to_string(), 200, 300, None, None),
            (1, "CHARGE".to_string(), 100, 100, None, None),
        ]
    );
    for entry in entries {
        for field in ["orderId", "paymentId"] {
            assert!(
                entry.get(field).is_some(),
                "{field} must be present (null for charges): {entry}"
            );
        }
    }
    let times: Vec<_> = entries.iter().map(|e| rfc3339(e, "createdAt")).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first means createdAt non-increasing: {times:?}"
    );

    let rows = ledger(&mut app.db_conn(), 1);
    for entry in entries {
        let row = &rows[(int(entry, "version") - 1) as usize];
        assert_entry_matches_ledger(entry, row);
    }
}

#[actix_web::test]
async fn history_limit_defaults_to_20() {
    let app = spawn_app().await;
    charge_n_times(&app, 1, 25).await;

    let body = app.history(1, None, None).await.ok();
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(versions(entries), (6..=25).rev().collect::<Vec<_>>());
    assert!(
        body["nextCursor"].is_string(),
        "more entries remain: {body}"
    );
}

#[actix_web::test]
async fn following_next_cursor_walks_the_whole_history_exactly_once() {
    let app = spawn_app().await;
    charge_n_times(&app, 1, 23).await;
    let all: Vec<i64> = (1..=23).rev().collect();

    for limit in [1, 3, 5, 22, 23, 24, 100] {
        let entries = app.full_history(1, limit).await;
        assert_eq!(versions(&entries), all, "walking with limit {limit}");
    }

    // Pages are exactly `limit` long except the last.
    let first = app.history(1, Some(5), None).await.ok();
    assert_eq!(
        versions(first["entries"].as_array().unwrap()),
        vec![23, 22, 21, 20, 19]
    );
    let second = app
        .history(1, Some(5), Some(first["nextCursor"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(
        versions(second["entries"].as_array().unwrap()),
        vec![18, 17, 16, 15, 14]
    );

    let rows = ledger(&mut app.db_conn(), 1);
    for entry in app.full_history(1, 7).await {
        assert_entry_matches_ledger(&entry, &rows[(int(&entry, "version") - 1) as usize]);
    }
}

#[actix_web::test]
async fn a_history_that_fills_its_last_page_exactly_still_ends() {
    let app = spawn_app().await;
    charge_n_times(&app, 1, 10).await;

    let entries = app.full_history(1, 5).await;
    assert_eq!(versions(&entries), (1..=10).rev().collect::<Vec<_>>());
    let entries = app.full_history(1, 10).await;
    assert_eq!(versions(&entries), (1..=10).rev().collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_cursor_keeps_its_place_when_new_entries_arrive() {
    let app = spawn_app().await;
    charge_n_times(&app, 1, 10).await;

    let first = app.history(1, Some(4), None).await.ok();
    assert_eq!(
        versions(first["entries"].as_array().unwrap()),
        vec![10, 9, 8, 7]
    );
    let mut cursor = first["nextCursor"].as_str().unwrap().to_string();

    // Three newer entries arrive while the client pages.
    charge_n_times(&app, 1, 3).await;

    let mut rest = Vec::new();
    loop {
        let page = app.history(1, Some(4), Some(&cursor)).await.ok();
        rest.extend(versions(page["entries"].as_array().unwrap()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
        assert!(rest.len() <= 20, "paging does not end: {rest:?}");
    }
    assert_eq!(
        rest,
        vec![6, 5, 4, 3, 2, 1],
        "older pages must neither repeat nor skip entries"
    );
}

#[actix_web::test]
async fn histories_of_different_buyers_are_not_mixed() {
    let app = spawn_app().await;
    app.charge_ok(1, 10).await;
    app.charge_ok(2, 20).await;
    app.charge_ok(1, 11).await;
    app.charge_ok(2, 21).await;

    let one = app.full_history(1, 100).await;
    let two = app.full_history(2, 100).await;
    let amounts = |entries: &[Value]| entries.iter().map(|e| int(e, "amount")).collect::<Vec<_>>();
    assert_eq!(amounts(&one), vec![11, 10]);
    assert_eq!(amounts(&two), vec![21, 20]);
}

#[actix_web::test]
async fn history_limit_outside_1_to_100_is_rejected_with_400_invalid_limit() {
    let app = spawn_app().await;
    app.charge_ok(1, 10).await;

    for limit in ["0", "101", "-1", "abc", "1.5", "99999999999999999999"] {
        app.get(&format!("/points/history/1?limit={limit}"))
            .await
            .expect_problem(400, "invalid_limit");
    }
    for limit in ["1", "100"] {
        let body = app
            .get(&format!("/points/history/1?limit={limit}"))
            .await
            .ok();
        assert_eq!(body["entries"].as_array().unwrap().len(), 1);
    }
}

#[actix_web::test]
async fn history_with_a_malformed_cursor_is_rejected_with_400_invalid_cursor() {
    let app = spawn_app().await;
    charge_n_times(&app, 1, 3).await;

    for cursor in [
        "not-a-cursor",
        "////",
        "\u{1F642}",
        "-1",
        "99999999999999999999999999",
        "%%%",
    ] {
        let response = app.history(1, Some(2), Some(cursor)).await;
        assert_eq!(
            (response.status(), response.code().as_deref()),
            (400, Some("invalid_cursor")),
            "cursor {cursor:?} answered {}",
            response.text
        );
        response.expect_problem(400, "invalid_cursor");
    }
}
