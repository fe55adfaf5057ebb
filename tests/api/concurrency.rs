//! Many requests at once: nothing is lost, nothing is applied twice, the books always balance.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{
    ApiResponse, assert_all_invariants, assert_buyer_invariants, int, ledger, ledger_summary,
    orders_of, payments_of, spawn_app, spawn_app_with,
};

#[actix_web::test]
async fn two_hundred_concurrent_charges_to_one_buyer_all_land_without_gaps() {
    let app = spawn_app().await;
    let n: i64 = 200;

    let responses: Vec<ApiResponse> = join_all((1..=n).map(|amount| app.charge(1, amount))).await;

    let expected_sum: i64 = (1..=n).sum();
    let mut versions = Vec::new();
    let mut conn = app.db_conn();
    let rows = ledger(&mut conn, 1);
    for (amount, response) in (1..=n).zip(&responses) {
        let body = response.ok();
        assert_eq!(
            (int(&body, "buyerId"), int(&body, "amount")),
            (1, amount),
            "{body}"
        );
        let version = int(&body, "version");
        versions.push(version);
        let row = rows
            .get((version - 1) as usize)
            .unwrap_or_else(|| panic!("response {body} names a version missing from the ledger"));
        assert_eq!(
            (row.version, row.amount, row.balance_after),
            (version, amount, int(&body, "balance")),
            "the ledger entry of {body}"
        );
    }
    versions.sort();
    assert_eq!(
        versions,
        (1..=n).collect::<Vec<_>>(),
        "each charge got its own version"
    );

    assert_eq!(app.balance_of(1).await, (expected_sum, n));
    let history = app.full_history(1, 100).await;
    let history_versions: Vec<i64> = history.iter().map(|e| int(e, "version")).collect();
    assert_eq!(history_versions, (1..=n).rev().collect::<Vec<_>>());

    let summary = ledger_summary(&mut conn, 1);
    assert_eq!(
        (
            summary.count,
            summary.min_version,
            summary.max_version,
            summary.sum
        ),
        (n, Some(1), Some(n), expected_sum)
    );
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn concurrent_charges_and_payments_on_one_buyer_keep_the_books_balanced() {
    let app = spawn_app().await;
    let buyer = 4;
    let price = 1_000;
    let orders: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(app.new_order(buyer, price).await);
        }
        ids
    };
    // 25 charges of 600: enough for 15 of the 40 orders in the end.
    let charges = 25;
    let charge_amount = 600;
    let total_charged = charges * charge_amount;

    enum Op {
        Charge,
        Pay(i64),
    }
    let mut ops = Vec::new();
    let mut pending = orders.iter();
    for i in 0..(orders.len() as i64 + charges) {
        if i % 3 == 0 && ops.iter().filter(|o| matches!(o, Op::Charge)).count() < charges as usize {
            ops.push(Op::Charge);
        } else if let Some(order) = pending.next() {
            ops.push(Op::Pay(*order));
        } else {
            ops.push(Op::Charge);
        }
    }
    let app = &app;
    let responses = join_all(ops.iter().map(|op| async move {
        match op {
            Op::Charge => (None, app.charge(buyer, charge_amount).await),
            Op::Pay(order) => (Some(*order), app.pay(buyer, *order).await),
        }
    }))
    .await;

    let mut paid = HashSet::new();
    for (order, response) in &responses {
        match order {
            None => {
                response.ok();
            }
            Some(order) => match response.status() {
                200 => {
                    let body = response.json();
                    assert!(int(&body, "balance") >= 0, "{body}");
                    assert_eq!(int(&body, "amount"), price);
                    assert!(paid.insert(*order), "order {order} paid twice");
                }
                422 => {
                    response.expect_problem(422, "insufficient_balance");
                }
                other => panic!(
                    "paying order {order}: unexpected {other}: {}",
                    response.text
                ),
            },
        }
    }

    let mut conn = app.db_conn();
    let paid_in_db: HashSet<i64> = orders_of(&mut conn, buyer)
        .into_iter()
        .filter(|o| o.status == "PAID")
        .map(|o| o.id)
        .collect();
    assert_eq!(
        paid_in_db, paid,
        "the orders answered 200 are exactly the PAID ones"
    );
    assert_eq!(payments_of(&mut conn, buyer).len(), paid.len());
    let expected_balance = total_charged - price * paid.len() as i64;
    assert_eq!(
        app.balance_of(buyer).await,
        (expected_balance, charges + paid.len() as i64)
    );
    assert_buyer_invariants(&mut conn, buyer);

    // Paying the rest one by one spends the balance down to exactly what 15 orders cost.
    for order in &orders {
        if paid.contains(order) {
            continue;
        }
        let response = app.pay(buyer, *order).await;
        match response.status() {
            200 => {
                paid.insert(*order);
            }
            _ => {
                response.expect_problem(422, "insufficient_balance");
            }
        }
    }
    assert_eq!(paid.len() as i64, total_charged / price);
    assert_eq!(
        app.balance_of(buyer).await,
        (0, charges + paid.len() as i64)
    );
    assert_buyer_invariants(&mut conn, buyer);
}

#[actix_web::test]
async fn twenty_concurrent_payments_of_one_order_succeed_exactly_once() {
    let app = spawn_app().await;
    app.charge_ok(1, 100_000).await;
    let order = app.new_order(1, 2_500).await;

    let responses: Vec<ApiResponse> = join_all((0..20).map(|_| app.pay(1, order))).await;

    let ok: Vec<&ApiResponse> = responses.iter().filter(|r| r.status() == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one payment succeeds: {responses:#?}");
    for response in responses.iter().filter(|r| r.status() != 200) {
        response.expect_problem(409, "order_already_paid");
    }
    assert_eq!(app.balance_of(1).await, (97_500, 2));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn concurrent_charges_to_many_buyers_are_applied_to_each_independently() {
    let app = spawn_app().await;
    let buyers: Vec<i64> = (100..120).collect();

    let requests = buyers
        .iter()
        .flat_map(|&buyer| (1..=10).map(move |i| (buyer, buyer * 10 + i)));
    let responses = join_all(requests.map(|(buyer, amount)| app.charge(buyer, amount))).await;
    for response in &responses {
        response.ok();
    }

    let mut conn = app.db_conn();
    for &buyer in &buyers {
        let expected: i64 = (1..=10).map(|i| buyer * 10 + i).sum();
        assert_eq!(app.balance_of(buyer).await, (expected, 10), "buyer {buyer}");
        assert_buyer_invariants(&mut conn, buyer);
    }
}

#[actix_web::test]
async fn concurrent_order_creation_hands_out_distinct_ids() {
    let app = spawn_app().await;

    let responses = join_all((1..=50).map(|i| app.create_order(i % 5 + 1, 100 + i))).await;

    let mut ids = HashSet::new();
    for (i, response) in (1..=50).zip(&responses) {
        let body = response.expect(201);
        let id = int(&body, "orderId");
        assert!(ids.insert(id), "order id {id} handed out twice");
        assert_eq!(
            response.header("location"),
            Some(format!("/orders/{id}").as_str())
        );
        let read = app.get_order(id).await.ok();
        assert_eq!(
            (read["buyerId"].clone(), read["totalPrice"].clone()),
            (json!(i % 5 + 1), json!(100 + i))
        );
    }
}

#[actix_web::test]
async fn concurrent_payments_by_many_buyers_each_pay_their_own_orders() {
    let app = spawn_app().await;
    let buyers: Vec<i64> = (1..=10).collect();
    let mut orders = Vec::new();
    for &buyer in &buyers {
        app.charge_ok(buyer, 1_000).await;
        for price in [100, 200, 300] {
            orders.push((buyer, app.new_order(buyer, price).await));
        }
    }

    let responses = join_all(orders.iter().map(|&(buyer, order)| app.pay(buyer, order))).await;
    for response in &responses {
        response.ok();
    }

    let mut conn = app.db_conn();
    for &buyer in &buyers {
        assert_eq!(app.balance_of(buyer).await, (400, 4), "buyer {buyer}");
    }
    assert_all_invariants(&mut conn);
}

async fn burst_until_overloaded(
    app: &crate::helpers::TestApp,
    requests: impl Fn(usize) -> Vec<(i64, i64)>,
) -> Vec<((i64, i64), ApiResponse)> {
    let mut all = Vec::new();
    for attempt in 0..3 {
        let batch = requests(attempt);
        let responses = join_all(
            batch
                .iter()
                .map(|&(buyer, amount)| app.charge(buyer, amount)),
        )
        .await;
        let overloaded = responses.iter().any(|r| r.status() == 503);
        all.extend(batch.into_iter().zip(responses));
        if overloaded {
            break;
        }
    }
    all
}

#[actix_web::test]
async fn a_full_buyer_mailbox_answers_503_overloaded_and_moves_nothing_for_those() {
    let app = spawn_app_with(|s| s.buyers.mailbox_capacity = 1).await;

    let results =
        burst_until_overloaded(&app, |_| (1..=150).map(|amount| (1, amount)).collect()).await;

    let mut landed = 0;
    let mut count = 0;
    for ((_, amount), response) in &results {
        match response.status() {
            200 => {
                landed += amount;
                count += 1;
            }
            _ => {
                response.expect_problem(503, "overloaded");
            }
        }
    }
    assert!(
        results.iter().any(|(_, r)| r.status() == 503),
        "150 concurrent requests into a mailbox of 1 must overflow it"
    );
    assert!(count > 0, "some requests must still get through");
    assert_eq!(app.balance_of(1).await, (landed, count));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn a_full_commit_queue_answers_503_overloaded_and_moves_nothing_for_those() {
    let app = spawn_app_with(|s| s.coordinator.queue_capacity = 1).await;

    let results = burst_until_overloaded(&app, |attempt| {
        (1..=150)
            .map(|i| (1_000 * (attempt as i64 + 1) + i, i))
            .collect()
    })
    .await;

    for ((buyer, amount), response) in &results {
        match response.status() {
            200 => assert_eq!(app.balance_of(*buyer).await, (*amount, 1), "buyer {buyer}"),
            _ => {
                response.expect_problem(503, "overloaded");
                assert_eq!(app.balance_of(*buyer).await, (0, 0), "buyer {buyer}");
            }
        }
    }
    assert!(
        results.iter().any(|(_, r)| r.status() == 503),
        "150 concurrent writes into a commit queue of 1 must overflow it"
    );
    assert!(
        results.iter().any(|(_, r)| r.status() == 200),
        "some requests must still get through"
    );
    assert_all_invariants(&mut app.db_conn());
}

#[actix_web::test]
async fn beyond_max_in_flight_requests_the_excess_answers_503_at_once_and_probes_still_answer() {
    let app = spawn_app_with(|s| s.http.max_in_flight_requests = 2).await;
    app.charge_ok(1, 10).await; // the buyer's balance row exists, so the lock blocks its writes
    let lock = crate::helpers::BalanceLock::acquire(&app.db, 1);

    // Two writes of buyer 1 block on the lock (one committing, one queued behind it): both
    // in-flight slots are taken, and the next request is shed.
    let blocked = futures::future::join(app.charge(1, 1), app.charge(1, 2));
    let probe = async {
        lock.wait_for_a_waiter().await;
        let start = std::time::Instant::now();
        let mut shed = app.charge(2, 5).await;
        while shed.status() != 503 && start.elapsed() < std::time::Duration::from_secs(5) {
            // The second blocked write may not have reached the engine yet.
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
            shed = app.charge(2, 5).await;
        }
        let quick = std::time::Instant::now();
        let again = app.charge(3, 5).await;
        let took = quick.elapsed();
        let live = app.get("/health/live").await.status();
        let metrics = app.get("/metrics").await.status();
        lock.release();
        (shed, again, took, live, metrics)
    };
    let ((first, second), (shed, again, took, live, metrics)) =
        futures::future::join(blocked, probe).await;

    let body = shed.expect_problem(503, "overloaded");
    assert!(
        shed.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("in_flight_limit"),
        "{body}"
    );
    again.expect_problem(503, "overloaded");
    assert!(
        took < std::time::Duration::from_millis(500),
        "shedding must not wait: {took:?}"
    );
    assert_eq!(
        (live, metrics),
        (200, 200),
        "probes and /metrics are never shed"
    );
    first.ok();
    second.ok();
    // The slots came back: the next request is served.
    app.charge_ok(3, 5).await;
    assert_eq!(app.balance_of(1).await, (13, 3));
    assert_all_invariants(&mut app.db_conn());
}
