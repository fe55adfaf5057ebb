//! The Idempotency-Key header on POST /points/{buyerId} and POST /orders/payment/kafka.

use std::time::Duration;

use futures::future::join_all;
use payment_engine::domain::Points;
use serde_json::{Value, json};

use crate::helpers::{
    ApiResponse, BalanceLock, assert_buyer_invariants, int, ledger_count, new_key,
    payments_for_order, spawn_app, spawn_app_with,
};

#[actix_web::test]
async fn replaying_a_charge_returns_the_original_response_and_moves_money_once() {
    let app = spawn_app().await;
    let key = new_key();

    let first = app.charge_with_key(1, 100, &key).await;
    let original = first.ok();
    assert!(
        !first.is_replay(),
        "the original answer is not a replay: {:?}",
        first.headers
    );
    assert_eq!(
        original,
        json!({ "buyerId": 1, "amount": 100, "balance": 100, "version": 1 })
    );

    for _ in 0..3 {
        let again = app.charge_with_key(1, 100, &key).await;
        assert_eq!(again.ok(), original, "a replay answers the original body");
        assert!(
            again.is_replay(),
            "a replay carries Idempotent-Replayed: true: {:?}",
            again.headers
        );
    }

    assert_eq!(app.balance_of(1).await, (100, 1));
    let mut conn = app.db_conn();
    assert_eq!(ledger_count(&mut conn, 1), 1, "money moved once");
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn a_replay_answers_the_original_body_even_after_the_balance_moved_on() {
    let app = spawn_app().await;
    let key = new_key();
    let original = app.charge_with_key(1, 100, &key).await.ok();
    app.charge_ok(1, 50).await;
    app.charge_ok(1, 25).await;

    let replay = app.charge_with_key(1, 100, &key).await;
    assert_eq!(replay.ok(), original);
    assert!(replay.is_replay());
    assert_eq!(app.balance_of(1).await, (175, 3));
}

#[actix_web::test]
async fn different_keys_are_different_requests() {
    let app = spawn_app().await;

    let a = app.charge_with_key(1, 100, &new_key()).await;
    let b = app.charge_with_key(1, 100, &new_key()).await;
    assert!(!a.is_replay() && !b.is_replay());
    assert_eq!((int(&a.ok(), "version"), int(&b.ok(), "version")), (1, 2));
    assert_eq!(app.balance_of(1).await, (200, 2));
}

#[actix_web::test]
async fn reusing_a_key_for_a_different_charge_is_rejected_with_422_mismatch() {
    let app = spawn_app().await;
    let key = new_key();
    app.charge_with_key(1, 100, &key).await.ok();

    // A different amount, a different buyer, a different route: all different requests.
    app.charge_with_key(1, 101, &key)
        .await
        .expect_problem(422, "idempotency_key_mismatch");
    app.charge_with_key(2, 100, &key)
        .await
        .expect_problem(422, "idempotency_key_mismatch");
    let order = app.new_order(1, 10).await;
    app.pay_with_key(1, order, &key)
        .await
        .expect_problem(422, "idempotency_key_mismatch");

    assert_eq!(app.balance_of(1).await, (100, 1));
    assert_eq!(app.balance_of(2).await, (0, 0));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));

    // The original request still replays.
    let replay = app.charge_with_key(1, 100, &key).await;
    assert!(replay.is_replay());
    assert_eq!(int(&replay.ok(), "version"), 1);
}

#[actix_web::test]
async fn replaying_a_payment_returns_the_original_response_instead_of_409() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;
    let order = app.new_order(1, 400).await;
    let key = new_key();

    let first = app.pay_with_key(1, order, &key).await;
    let original = first.ok();
    assert!(!first.is_replay());

    let again = app.pay_with_key(1, order, &key).await;
    assert_eq!(
        again.ok(),
        original,
        "a replayed payment answers the original body, not 409"
    );
    assert!(again.is_replay());

    // Without the key the same payment is a new request and the order is already paid.
    app.pay(1, order)
        .await
        .expect_problem(409, "order_already_paid");

    assert_eq!(app.balance_of(1).await, (600, 2));
    let mut conn = app.db_conn();
    assert_eq!(payments_for_order(&mut conn, order).len(), 1);
    assert_eq!(ledger_count(&mut conn, 1), 2);
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn reusing_a_payment_key_for_another_order_is_rejected_with_422_mismatch() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;
    let first_order = app.new_order(1, 100).await;
    let second_order = app.new_order(1, 100).await;
    let key = new_key();
    app.pay_with_key(1, first_order, &key).await.ok();

    app.pay_with_key(1, second_order, &key)
        .await
        .expect_problem(422, "idempotency_key_mismatch");

    assert_eq!(
        app.get_order(second_order).await.ok()["status"],
        json!("PENDING")
    );
    assert_eq!(app.balance_of(1).await, (900, 2));
}

#[actix_web::test]
async fn concurrent_charges_with_the_same_key_move_money_exactly_once() {
    let app = spawn_app().await;
    let rounds: i64 = 5;
    let concurrency = 50;

    for round in 1..=rounds {
        let key = new_key();
        let amount = 100 * round;
        let responses: Vec<ApiResponse> =
            join_all((0..concurrency).map(|_| app.charge_with_key(1, amount, &key))).await;

        let mut bodies = Vec::new();
        let mut originals = 0;
        for response in &responses {
            match response.status() {
                200 => {
                    if !response.is_replay() {
                        originals += 1;
                    }
                    bodies.push(response.json());
                }
                409 => {
                    response.expect_problem(409, "idempotency_key_in_flight");
                }
                other => panic!("round {round}: unexpected {other}: {}", response.text),
            }
        }
        assert!(
            !bodies.is_empty(),
            "round {round}: at least the original request succeeds"
        );
        assert_eq!(
            originals, 1,
            "round {round}: exactly one answer is the original, the other 200s replay it"
        );
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "round {round}: every 200 carries the same body: {bodies:?}"
        );
        assert_eq!(int(&bodies[0], "version"), round);
        assert_eq!(int(&bodies[0], "amount"), amount);
    }

    let total: i64 = (1..=rounds).map(|r| 100 * r).sum();
    assert_eq!(app.balance_of(1).await, (total, rounds));
    let mut conn = app.db_conn();
    assert_eq!(
        ledger_count(&mut conn, 1),
        rounds,
        "one ledger entry per key"
    );
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn concurrent_same_key_charges_up_to_the_balance_limit_replay_instead_of_422() {
    // A replay must answer the stored response even when re-running the request would now break
    // a rule (here: the first charge already filled the balance to its maximum).
    let app = spawn_app_with(|s| {
        s.buyers.max_balance = Points::new(1_000);
        s.buyers.max_charge = Points::new(1_000);
    })
    .await;

    for buyer in 1..=5 {
        let key = new_key();
        let responses: Vec<ApiResponse> =
            join_all((0..30).map(|_| app.charge_with_key(buyer, 1_000, &key))).await;
        for response in &responses {
            if response.status() != 200 {
                response.expect_problem(409, "idempotency_key_in_flight");
            }
        }
        assert_eq!(
            responses
                .iter()
                .filter(|r| r.status() == 200 && !r.is_replay())
                .count(),
            1,
            "buyer {buyer}: exactly one original answer"
        );
        assert_eq!(app.balance_of(buyer).await, (1_000, 1));
    }
}

#[actix_web::test]
async fn concurrent_payments_with_the_same_key_pay_once_and_never_answer_already_paid() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let rounds = 5;

    for round in 1..=rounds {
        let order = app.new_order(1, 700).await;
        let key = new_key();
        let responses: Vec<ApiResponse> =
            join_all((0..30).map(|_| app.pay_with_key(1, order, &key))).await;

        let mut bodies: Vec<Value> = Vec::new();
        for response in &responses {
            match response.status() {
                200 => bodies.push(response.json()),
                _ => {
                    response.expect_problem(409, "idempotency_key_in_flight");
                }
            }
        }
        assert!(
            !bodies.is_empty(),
            "round {round}: the original payment succeeds"
        );
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "round {round}: identical bodies: {bodies:?}"
        );
        assert_eq!(
            responses
                .iter()
                .filter(|r| r.status() == 200 && !r.is_replay())
                .count(),
            1,
            "round {round}: exactly one original answer"
        );
        assert_eq!(payments_for_order(&mut app.db_conn(), order).len(), 1);
    }

    assert_eq!(app.balance_of(1).await, (10_000 - 700 * rounds, 1 + rounds));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn an_idempotency_key_of_invalid_form_is_rejected_with_400() {
    let app = spawn_app().await;
    app.charge_ok(1, 1_000).await;
    let order = app.new_order(1, 100).await;

    let too_long = "k".repeat(256);
    let invalid: Vec<&[u8]> = vec![
        b"",
        too_long.as_bytes(),
        b"a\tb",
        "cl\u{e9}".as_bytes(),
        b"\xff\xfe",
    ];
    for key in invalid {
        let charge = app.charge_raw("1", "point=10", Some(key)).await;
        assert_eq!(
            (charge.status(), charge.code().as_deref()),
            (400, Some("invalid_idempotency_key")),
            "charge with key {key:?}: {}",
            charge.text
        );
        charge.expect_problem(400, "invalid_idempotency_key");

        let body = serde_json::to_vec(&json!({ "buyerId": 1, "orderId": order })).unwrap();
        let pay = app
            .raw(
                reqwest::Method::POST,
                "/orders/payment/kafka",
                Some(body),
                Some("application/json"),
                Some(key),
            )
            .await;
        assert_eq!(
            (pay.status(), pay.code().as_deref()),
            (400, Some("invalid_idempotency_key")),
            "payment with key {key:?}: {}",
            pay.text
        );
    }

    assert_eq!(app.balance_of(1).await, (1_000, 1));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));
}

#[actix_web::test]
async fn idempotency_keys_of_1_and_255_printable_characters_are_accepted() {
    let app = spawn_app().await;
    let printable: String = (0x21u8..=0x7e).map(char::from).collect();
    let long: String = printable.chars().cycle().take(255).collect();
    assert_eq!(long.len(), 255);

    for (i, key) in ["a".to_string(), "with inner space".to_string(), long]
        .iter()
        .enumerate()
    {
        let first = app.charge_with_key(1, 10, key).await;
        assert_eq!(int(&first.ok(), "version"), i as i64 + 1, "key {key:?}");
        let replay = app.charge_with_key(1, 10, key).await;
        assert!(
            replay.is_replay(),
            "key {key:?} must replay: {:?}",
            replay.headers
        );
    }
    assert_eq!(app.balance_of(1).await, (30, 3));
}

#[actix_web::test]
async fn an_expired_idempotency_key_is_forgotten() {
    let app = spawn_app_with(|s| s.buyers.idempotency_ttl = Duration::from_secs(1)).await;
    let key = new_key();
    app.charge_with_key(1, 100, &key).await.ok();

    actix_web::rt::time::sleep(std::time::Duration::from_millis(2_500)).await;

    let again = app.charge_with_key(1, 100, &key).await;
    let body = again.ok();
    assert!(
        !again.is_replay(),
        "after its TTL the key must not replay: {:?}",
        again.headers
    );
    assert_eq!(
        body,
        json!({ "buyerId": 1, "amount": 100, "balance": 200, "version": 2 })
    );
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn a_keyed_request_repeated_while_the_first_is_in_flight_is_rejected_with_409() {
    let app = spawn_app_with(|s| s.database.lock_wait_timeout = Duration::from_secs(30)).await;
    app.charge_ok(1, 10).await;
    let charge_key = new_key();

    // The first charge waits on a row lock the test holds: it is in flight.
    let lock = BalanceLock::acquire(&app.db, 1);
    let (first, (repeated, different)) =
        futures::join!(app.charge_with_key(1, 100, &charge_key), async {
            lock.wait_for_a_waiter().await;
            let repeated = app.charge_with_key(1, 100, &charge_key).await;
            let different = app.charge_with_key(1, 999, &charge_key).await;
            lock.release();
            (repeated, different)
        });

    repeated.expect_problem(409, "idempotency_key_in_flight");
    different.expect_problem(422, "idempotency_key_mismatch");
    let original = first.ok();
    assert!(!first.is_replay());
    assert_eq!(
        original,
        json!({ "buyerId": 1, "amount": 100, "balance": 110, "version": 2 })
    );
    let replay = app.charge_with_key(1, 100, &charge_key).await;
    assert_eq!(replay.ok(), original);
    assert!(replay.is_replay());

    // The same for a payment.
    let order = app.new_order(1, 60).await;
    let pay_key = new_key();
    let lock = BalanceLock::acquire(&app.db, 1);
    let (first, repeated) = futures::join!(app.pay_with_key(1, order, &pay_key), async {
        lock.wait_for_a_waiter().await;
        let repeated = app.pay_with_key(1, order, &pay_key).await;
        lock.release();
        repeated
    });
    repeated.expect_problem(409, "idempotency_key_in_flight");
    let paid = first.ok();
    assert_eq!((int(&paid, "balance"), int(&paid, "version")), (50, 3));
    let replay = app.pay_with_key(1, order, &pay_key).await;
    assert_eq!(replay.ok(), paid);

    let mut conn = app.db_conn();
    assert_eq!(ledger_count(&mut conn, 1), 3);
    assert_eq!(payments_for_order(&mut conn, order).len(), 1);
    assert_buyer_invariants(&mut conn, 1);
}
