//! What survives a restart, an idle eviction, a graceful stop, and a second engine on the same
//! database (fencing: a stale writer must never lose or duplicate money).

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    ApiResponse, assert_all_invariants, assert_buyer_invariants, int, ledger, ledger_summary,
    new_key, payments_for_order, spawn_app, spawn_app_on, spawn_app_with,
};

#[actix_web::test]
async fn balances_history_and_orders_survive_a_restart_and_versions_continue() {
    let app = spawn_app().await;
    let key = new_key();
    app.charge_ok(1, 1_000).await;
    let paid_order = app.new_order(1, 300).await;
    app.pay(1, paid_order).await.ok();
    app.charge_ok(1, 50).await;
    let pending_order = app.new_order(1, 200).await;
    let keyed = app.charge_with_key(1, 10, &key).await.ok();
    app.charge_ok(2, 77).await;
    let history_before = app.full_history(1, 100).await;
    assert_eq!(history_before.len(), 4);

    app.handle.stop(true).await;
    let refused = app.client.get(app.url("/health/live")).send().await;
    assert!(
        refused.is_err(),
        "the stopped engine must no longer answer: {refused:?}"
    );
    let db = app.db.clone();
    drop(app);

    let app = spawn_app_on(&db).await;
    assert_eq!(app.balance_of(1).await, (760, 4));
    assert_eq!(app.balance_of(2).await, (77, 1));
    assert_eq!(
        app.full_history(1, 100).await,
        history_before,
        "history must be intact"
    );
    assert_eq!(
        app.get_order(paid_order).await.ok()["status"],
        json!("PAID")
    );
    assert_eq!(
        app.get_order(pending_order).await.ok()["status"],
        json!("PENDING")
    );

    // Idempotency records survive too.
    let replay = app.charge_with_key(1, 10, &key).await;
    assert_eq!(replay.ok(), keyed);
    assert!(replay.is_replay());

    // New writes continue the version sequence; old orders keep their state.
    assert_eq!(app.charge_ok(1, 5).await["version"], json!(5));
    let body = app.pay(1, pending_order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (565, 6));
    app.pay(1, paid_order)
        .await
        .expect_problem(409, "order_already_paid");
    let new_order = app.new_order(1, 1).await;
    assert!(
        new_order != paid_order && new_order != pending_order,
        "an order id {new_order} was handed out again after the restart"
    );
    assert_eq!(app.get_order(new_order).await.ok()["totalPrice"], json!(1));

    let mut conn = app.db_conn();
    assert_all_invariants(&mut conn);
}

#[actix_web::test]
async fn repeated_restarts_never_reuse_ids_or_versions() {
    let db = crate::helpers::TestDatabase::new();
    let mut order_ids = HashSet::new();
    let mut payment_ids = HashSet::new();
    for round in 1..=3_i64 {
        let app = spawn_app_on(&db).await;
        assert_eq!(
            app.balance_of(1).await,
            (900 * (round - 1), 2 * (round - 1))
        );
        app.charge_ok(1, 1_000).await;
        let order = app.new_order(1, 100).await;
        assert!(
            order_ids.insert(order),
            "order id {order} reused in round {round}"
        );
        let body = app.pay(1, order).await.ok();
        assert!(
            payment_ids.insert(int(&body, "paymentId")),
            "payment id reused in round {round}"
        );
        assert_eq!(int(&body, "version"), 2 * round);
        app.handle.stop(true).await;
    }
    assert_buyer_invariants(&mut db.connect(), 1);
}

#[actix_web::test]
async fn a_buyer_evicted_for_idleness_resumes_from_the_database() {
    let app = spawn_app_with(|s| s.buyers.idle_timeout = Duration::from_secs(1)).await;
    let key = new_key();
    let keyed = app.charge_with_key(1, 100, &key).await.ok();
    let order = app.new_order(1, 40).await;

    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;

    assert_eq!(app.balance_of(1).await, (100, 1));
    let replay = app.charge_with_key(1, 100, &key).await;
    assert_eq!(
        replay.ok(),
        keyed,
        "the replay must come from the stored record"
    );
    assert!(replay.is_replay());

    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;
    let body = app.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (60, 2));

    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(app.charge_ok(1, 1).await["version"], json!(3));
    app.pay(1, order)
        .await
        .expect_problem(409, "order_already_paid");
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn charges_acknowledged_before_a_graceful_stop_are_all_kept() {
    // A graceful stop force-closes what is still open at its timeout, answered or not. Without
    // idle keep-alive connections it ends as soon as the accepted requests are answered, so a
    // timeout well above that keeps the test about the engine, not about how loaded the machine is.
    let app = spawn_app_with(|s| s.http.shutdown_timeout = Duration::from_secs(30)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    app.charge_ok(1, 1).await;

    // Stop once some charges have been answered, while the rest are still in flight.
    let answered = std::cell::Cell::new(0_usize);
    let sends = (2..=301_i64).map(|amount| {
        let request = client.post(app.url(&format!("/points/1?point={amount}")));
        let answered = &answered;
        async move {
            let result = match request.send().await {
                Ok(response) => Some((amount, ApiResponse::read(response).await)),
                Err(_) => None,
            };
            answered.set(answered.get() + 1);
            result
        }
    });
    let stop = async {
        while answered.get() < 20 {
            actix_web::rt::time::sleep(Duration::from_millis(1)).await;
        }
        app.handle.stop(true).await;
    };
    let (results, ()) = futures::join!(join_all(sends), stop);

    let mut conn = app.db_conn();
    let rows = ledger(&mut conn, 1);
    let mut acknowledged = 1;
    for (amount, response) in results.into_iter().flatten() {
        if response.status() != 200 {
            continue;
        }
        acknowledged += 1;
        let body = response.json();
        let version = int(&body, "version");
        let row = rows
            .get((version - 1) as usize)
            .unwrap_or_else(|| panic!("acknowledged charge {body} is missing from the ledger"));
        assert_eq!(
            (row.amount, row.balance_after),
            (amount, int(&body, "balance")),
            "{body}"
        );
    }
    assert_eq!(
        rows.len(),
        acknowledged,
        "every ledger entry was acknowledged to its caller"
    );
    assert_buyer_invariants(&mut conn, 1);
}

// --- two engines on one database ------------------------------------------------------------

#[actix_web::test]
async fn two_engines_charging_one_buyer_never_lose_or_duplicate_a_charge() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    let n: i64 = 100;

    let responses = join_all((1..=n).map(|amount| {
        let engine = if amount % 2 == 0 { &a } else { &b };
        async move { (amount, engine.charge(1, amount).await) }
    }))
    .await;

    let mut acknowledged: Vec<(i64, Value)> = Vec::new();
    for (amount, response) in &responses {
        match response.status() {
            200 => acknowledged.push((*amount, response.json())),
            _ => {
                response.expect_problem(503, "write_conflict");
            }
        }
    }
    assert!(!acknowledged.is_empty(), "some charges must succeed");

    let mut conn = a.db_conn();
    let rows = ledger(&mut conn, 1);
    let mut versions = HashSet::new();
    for (amount, body) in &acknowledged {
        let version = int(body, "version");
        assert!(
            versions.insert(version),
            "version {version} acknowledged twice"
        );
        let row = rows
            .get((version - 1) as usize)
            .unwrap_or_else(|| panic!("acknowledged charge {body} is missing from the ledger"));
        assert_eq!(
            (row.amount, row.balance_after),
            (*amount, int(body, "balance")),
            "{body}"
        );
    }
    let acknowledged_sum: i64 = acknowledged.iter().map(|(amount, _)| amount).sum();
    let summary = ledger_summary(&mut conn, 1);
    assert_eq!(
        (summary.count, summary.sum),
        (acknowledged.len() as i64, acknowledged_sum),
        "the ledger holds exactly the acknowledged charges"
    );
    assert_buyer_invariants(&mut conn, 1);
}

/// Charges through `app` until it stops answering `write_conflict` (at most 5 tries).
async fn charge_retrying(app: &crate::helpers::TestApp, buyer: i64, amount: i64) -> Value {
    for _ in 0..5 {
        let response = app.charge(buyer, amount).await;
        if response.status() == 200 {
            return response.json();
        }
        response.expect_problem(503, "write_conflict");
    }
    panic!("charging {amount} to buyer {buyer} still conflicts after 5 tries")
}

#[actix_web::test]
async fn a_stale_engine_answers_write_conflict_then_recovers() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;

    assert_eq!(a.charge_ok(1, 10).await["version"], json!(1));
    assert_eq!(charge_retrying(&b, 1, 20).await["version"], json!(2));
    // `a` last saw version 1: it must not write over version 2.
    let body = charge_retrying(&a, 1, 30).await;
    assert_eq!((int(&body, "balance"), int(&body, "version")), (60, 3));
    let body = charge_retrying(&b, 1, 40).await;
    assert_eq!((int(&body, "balance"), int(&body, "version")), (100, 4));
    assert_eq!(b.balance_of(1).await, (100, 4));

    let mut conn = a.db_conn();
    let amounts: Vec<i64> = ledger(&mut conn, 1).iter().map(|e| e.amount).collect();
    assert_eq!(amounts, vec![10, 20, 30, 40]);
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn two_engines_paying_one_order_pay_it_once() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    a.charge_ok(1, 10_000).await;
    let order = a.new_order(1, 1_500).await;

    let responses = join_all((0..20).map(|i| {
        if i % 2 == 0 {
            a.pay(1, order)
        } else {
            b.pay(1, order)
        }
    }))
    .await;

    let mut ok = 0;
    for response in &responses {
        match (response.status(), response.code().as_deref()) {
            (200, _) => ok += 1,
            (409, _) => {
                response.expect_problem(409, "order_already_paid");
            }
            _ => {
                response.expect_problem(503, "write_conflict");
            }
        }
    }
    assert!(ok <= 1, "the order was paid {ok} times");
    if ok == 0 {
        // Every attempt conflicted: a retry must now pay it.
        let mut retry = a.pay(1, order).await;
        if retry.status() != 200 {
            retry.expect_problem(503, "write_conflict");
            retry = a.pay(1, order).await;
        }
        retry.ok();
    }
    for engine in [&a, &b] {
        let response = engine.pay(1, order).await;
        if response.status() != 409 {
            response.expect_problem(503, "write_conflict");
            engine
                .pay(1, order)
                .await
                .expect_problem(409, "order_already_paid");
        }
    }

    let mut conn = a.db_conn();
    assert_eq!(payments_for_order(&mut conn, order).len(), 1);
    let summary = ledger_summary(&mut conn, 1);
    assert_eq!((summary.count, summary.sum), (2, 8_500));
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn two_engines_hand_out_distinct_order_and_payment_ids() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;

    let created = join_all((0..40).map(|i| {
        let engine = if i % 2 == 0 { &a } else { &b };
        engine.create_order(100 + i, 10)
    }))
    .await;
    let mut ids = HashSet::new();
    for response in &created {
        let id = int(&response.expect(201), "orderId");
        assert!(ids.insert(id), "order id {id} handed out by both engines");
    }

    // Each buyer pays its order through alternating engines; payment ids must not collide.
    for i in 0..40_i64 {
        let engine = if i % 2 == 0 { &a } else { &b };
        charge_retrying(engine, 100 + i, 10).await;
    }
    let orders: Vec<(i64, i64)> = created
        .iter()
        .map(|r| {
            let body = r.json();
            (int(&body, "buyerId"), int(&body, "orderId"))
        })
        .collect();
    let paid = join_all(orders.iter().enumerate().map(|(i, &(buyer, order))| {
        let engine = if i % 2 == 0 { &b } else { &a };
        engine.pay(buyer, order)
    }))
    .await;
    let mut payment_ids = HashSet::new();
    for response in &paid {
        if response.status() == 200 {
            let id = int(&response.json(), "paymentId");
            assert!(payment_ids.insert(id), "payment id {id} handed out twice");
        } else {
            response.expect_problem(503, "write_conflict");
        }
    }
    assert!(!payment_ids.is_empty());
    assert_all_invariants(&mut a.db_conn());
}

#[actix_web::test]
async fn an_order_created_on_one_engine_can_be_paid_on_the_other() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    // `a` holds buyer 1 in memory before the order exists.
    a.charge_ok(1, 1_000).await;
    a.new_order(1, 50).await;

    let order = b.new_order(1, 300).await;
    let body = a.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (700, 2));

    // And the other way round: an order of buyer 2 created on `a`, paid on `b`, which also
    // holds buyer 2 in memory already.
    charge_retrying(&b, 2, 500).await;
    let order = a.new_order(2, 200).await;
    let body = b.pay(2, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (300, 2));
    assert_all_invariants(&mut a.db_conn());
}

#[actix_web::test]
async fn an_idempotency_key_replays_on_another_engine() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    let key = new_key();

    let original = a.charge_with_key(1, 100, &key).await.ok();
    let replay = b.charge_with_key(1, 100, &key).await;
    assert_eq!(replay.ok(), original);
    assert!(replay.is_replay());
    b.charge_with_key(1, 999, &key)
        .await
        .expect_problem(422, "idempotency_key_mismatch");

    let mut conn = a.db_conn();
    assert_eq!(ledger_summary(&mut conn, 1).count, 1);
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn the_same_key_sent_to_two_engines_at_once_moves_money_once() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;

    for round in 1..=5_i64 {
        let key = new_key();
        let responses = join_all((0..20).map(|i| {
            let engine = if i % 2 == 0 { &a } else { &b };
            engine.charge_with_key(1, 10 * round, &key)
        }))
        .await;
        let mut bodies = Vec::new();
        for response in &responses {
            match response.status() {
                200 => bodies.push(response.json()),
                409 => {
                    response.expect_problem(409, "idempotency_key_in_flight");
                }
                _ => {
                    response.expect_problem(503, "write_conflict");
                }
            }
        }
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "round {round}: identical bodies: {bodies:?}"
        );
        assert!(
            responses
                .iter()
                .filter(|r| r.status() == 200 && !r.is_replay())
                .count()
                <= 1,
            "round {round}: at most one original answer"
        );
        // Whatever the answers, retrying the key settles it: exactly one movement per key.
        let settled = loop {
            let response = a.charge_with_key(1, 10 * round, &key).await;
            if response.status() == 200 {
                break response.json();
            }
            response.expect_problem(503, "write_conflict");
        };
        if let Some(first) = bodies.first() {
            assert_eq!(
                &settled, first,
                "round {round}: the retry replays the same answer"
            );
        }
        let mut conn = a.db_conn();
        assert_eq!(
            ledger_summary(&mut conn, 1).count,
            round,
            "round {round}: one movement per key"
        );
    }
    assert_buyer_invariants(&mut a.db_conn(), 1);
}

/// Another writer changes the buyer's row (a tool, or an engine that took the buyer over and
/// gave it back) as a charge of `amount` would.
fn write_behind_the_engines_back(conn: &mut diesel::MysqlConnection, buyer: i64, amount: i64) {
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "INSERT INTO ledger_entries (buyer_id, version, kind, amount, balance_after, created_at) \
         SELECT buyer_id, version + 1, 'CHARGE', {amount}, balance + {amount}, NOW(6) \
         FROM balances WHERE buyer_id = {buyer}"
    ))
    .execute(conn)
    .unwrap();
    diesel::sql_query(format!(
        "UPDATE balances SET balance = balance + {amount}, version = version + 1, \
         fence_token = 42 WHERE buyer_id = {buyer}"
    ))
    .execute(conn)
    .unwrap();
}

#[actix_web::test]
async fn a_write_by_another_writer_is_fenced_off_and_the_request_decided_again_on_the_fresh_row() {
    let a = spawn_app().await;
    a.charge_ok(1, 10).await;
    let order = a.new_order(1, 25).await;
    let mut conn = a.db_conn();
    write_behind_the_engines_back(&mut conn, 1, 20);

    // The engine still holds version 1: its write is fenced off (nothing moves), it reloads
    // and decides the charge again on version 2 before answering.
    let body = a.charge(1, 30).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (60, 3));

    // The same for a payment.
    write_behind_the_engines_back(&mut conn, 1, 5);
    let body = a.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (40, 5));
    let amounts: Vec<i64> = ledger(&mut conn, 1).iter().map(|e| e.amount).collect();
    assert_eq!(amounts, vec![10, 20, 30, 5, -25]);
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn a_second_engine_forwards_a_buyers_requests_to_the_owner_so_none_conflicts() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    a.charge_ok(1, 10).await; // `a` claims buyer 1's shard
    b.charge_ok(1, 20).await;
    let order = b.new_order(1, 25).await;
    let body = a.charge(1, 30).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (60, 3));
    let body = b.pay(1, order).await.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (35, 4));
    assert!(
        b.get("/metrics")
            .await
            .text
            .contains("payment_engine_cluster_forwarded_requests_total{outcome=\"answered\"} 3"),
        "`b` forwarded its three requests to `a`"
    );
    assert_buyer_invariants(&mut a.db_conn(), 1);
}

#[actix_web::test]
async fn a_stale_engine_does_not_refuse_a_payment_that_the_current_balance_covers() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    a.charge_ok(1, 10).await;
    b.charge_ok(1, 20).await; // `b` now believes the balance is 30
    let order = b.new_order(1, 60).await; // and knows this order
    charge_retrying(&a, 1, 30).await; // the balance is really 60

    // `b` may answer write_conflict (retry) but must not refuse on its outdated balance of 30.
    let response = b.pay(1, order).await;
    let body = if response.status() == 200 {
        response.json()
    } else {
        response.expect_problem(503, "write_conflict");
        b.pay(1, order).await.ok()
    };
    assert_eq!((int(&body, "balance"), int(&body, "version")), (0, 4));
    assert_buyer_invariants(&mut a.db_conn(), 1);
}
