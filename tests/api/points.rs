//! POST /points/{buyerId}?point=N and GET /points/{buyerId}.

use payment_engine::domain::Points;
use serde_json::json;

use crate::helpers::{
    assert_buyer_invariants, balance_row, ledger, ledger_count, spawn_app, spawn_app_with,
};

#[actix_web::test]
async fn charging_a_new_buyer_creates_the_balance_at_version_1() {
    let app = spawn_app().await;

    let body = app.charge(1, 100).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 1, "amount": 100, "balance": 100, "version": 1 })
    );

    let body = app.balance(1).await.ok();
    assert_eq!(body, json!({ "buyerId": 1, "balance": 100, "version": 1 }));

    let mut conn = app.db_conn();
    let row = balance_row(&mut conn, 1).expect("a balances row after the first charge");
    assert_eq!((row.balance, row.version), (100, 1));
    let entries = ledger(&mut conn, 1);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].kind.as_str(),
            entries[0].amount,
            entries[0].balance_after
        ),
        ("CHARGE", 100, 100)
    );
    assert_buyer_invariants(&mut conn, 1);
}

#[actix_web::test]
async fn successive_charges_add_up_and_bump_the_version_by_one_each() {
    let app = spawn_app().await;

    let mut expected_balance = 0;
    for (i, points) in [100_i64, 250, 1, 9_999].into_iter().enumerate() {
        expected_balance += points;
        let body = app.charge(3, points).await.ok();
        assert_eq!(
            body,
            json!({ "buyerId": 3, "amount": points, "balance": expected_balance, "version": i + 1 })
        );
    }
    assert_eq!(app.balance_of(3).await, (expected_balance, 4));
    assert_buyer_invariants(&mut app.db_conn(), 3);
}

#[actix_web::test]
async fn a_buyer_never_charged_has_balance_0_at_version_0_and_reading_creates_nothing() {
    let app = spawn_app().await;

    let body = app.balance(42).await.ok();
    assert_eq!(body, json!({ "buyerId": 42, "balance": 0, "version": 0 }));

    let mut conn = app.db_conn();
    assert!(
        balance_row(&mut conn, 42).is_none(),
        "a read must not create a balances row"
    );
    assert_eq!(ledger_count(&mut conn, 42), 0);
}

#[actix_web::test]
async fn balances_of_different_buyers_are_independent() {
    let app = spawn_app().await;

    app.charge_ok(1, 100).await;
    app.charge_ok(2, 7).await;
    app.charge_ok(1, 50).await;

    assert_eq!(app.balance_of(1).await, (150, 2));
    assert_eq!(app.balance_of(2).await, (7, 1));
    assert_eq!(app.balance_of(3).await, (0, 0));
    let mut conn = app.db_conn();
    assert_buyer_invariants(&mut conn, 1);
    assert_buyer_invariants(&mut conn, 2);
}

#[actix_web::test]
async fn the_largest_buyer_id_is_accepted() {
    let app = spawn_app().await;

    let body = app.charge(i64::MAX, 5).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": i64::MAX, "amount": 5, "balance": 5, "version": 1 })
    );
    assert_eq!(app.balance_of(i64::MAX).await, (5, 1));
}

#[actix_web::test]
async fn charge_with_negative_points_is_rejected_with_400() {
    let app = spawn_app().await;

    app.charge_raw("1", "point=-5", None)
        .await
        .expect_problem(400, "invalid_point");

    assert_eq!(app.balance_of(1).await, (0, 0));
    assert!(balance_row(&mut app.db_conn(), 1).is_none());
}

#[actix_web::test]
async fn charge_with_zero_points_is_rejected_with_400() {
    let app = spawn_app().await;

    app.charge_raw("1", "point=0", None)
        .await
        .expect_problem(400, "invalid_point");

    assert_eq!(app.balance_of(1).await, (0, 0));
}

#[actix_web::test]
async fn charge_with_non_integer_points_is_rejected_with_400() {
    let app = spawn_app().await;

    for point in [
        "abc",
        "1.5",
        "1e3",
        "0x10",
        "12abc",
        "99999999999999999999999",
    ] {
        let response = app.charge_raw("1", &format!("point={point}"), None).await;
        assert_eq!(
            response.code().as_deref(),
            Some("invalid_point"),
            "point={point}: {}",
            response.text
        );
        response.expect_problem(400, "invalid_point");
    }
    assert_eq!(app.balance_of(1).await, (0, 0));
    assert_eq!(ledger_count(&mut app.db_conn(), 1), 0);
}

#[actix_web::test]
async fn charge_without_a_point_parameter_is_rejected_with_400_missing_point() {
    let app = spawn_app().await;

    app.charge_raw("1", "", None)
        .await
        .expect_problem(400, "missing_point");
    app.charge_raw("1", "points=5", None)
        .await
        .expect_problem(400, "missing_point");

    assert_eq!(app.balance_of(1).await, (0, 0));
}

#[actix_web::test]
async fn charge_above_the_maximum_charge_is_rejected_and_the_maximum_itself_is_accepted() {
    let app = spawn_app().await;
    let max = app.settings.buyers.max_charge.get();

    app.charge(1, max + 1)
        .await
        .expect_problem(400, "invalid_point");
    assert_eq!(app.balance_of(1).await, (0, 0));

    let body = app.charge(1, max).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 1, "amount": max, "balance": max, "version": 1 })
    );
}

#[actix_web::test]
async fn a_configured_maximum_charge_is_enforced() {
    let app = spawn_app_with(|s| s.buyers.max_charge = Points::new(500)).await;

    app.charge(1, 501)
        .await
        .expect_problem(400, "invalid_point");
    app.charge_ok(1, 500).await;
    assert_eq!(app.balance_of(1).await, (500, 1));
}

#[actix_web::test]
async fn charge_that_would_pass_the_maximum_balance_is_rejected_with_422_and_moves_nothing() {
    let app = spawn_app_with(|s| {
        s.buyers.max_balance = Points::new(1_000);
        s.buyers.max_charge = Points::new(1_000);
    })
    .await;

    app.charge_ok(1, 600).await;
    app.charge(1, 401)
        .await
        .expect_problem(422, "balance_limit_exceeded");
    assert_eq!(app.balance_of(1).await, (600, 1));
    assert_eq!(ledger_count(&mut app.db_conn(), 1), 1);

    // Reaching the maximum exactly is allowed; one point more is not.
    let body = app.charge(1, 400).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 1, "amount": 400, "balance": 1_000, "version": 2 })
    );
    app.charge(1, 1)
        .await
        .expect_problem(422, "balance_limit_exceeded");
    assert_eq!(app.balance_of(1).await, (1_000, 2));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}

#[actix_web::test]
async fn invalid_buyer_ids_in_the_points_paths_are_rejected_with_400() {
    let app = spawn_app().await;

    for id in [
        "abc",
        "0",
        "-1",
        "9223372036854775808",
        "99999999999999999999",
        "1.0",
        "%201",
    ] {
        app.charge_raw(id, "point=10", None)
            .await
            .expect_problem(400, "invalid_buyer_id");
        app.get(&format!("/points/{id}"))
            .await
            .expect_problem(400, "invalid_buyer_id");
        app.get(&format!("/points/history/{id}"))
            .await
            .expect_problem(400, "invalid_buyer_id");
    }
    let mut conn = app.db_conn();
    assert_eq!(
        crate::helpers::scalar(&mut conn, "SELECT COUNT(*) AS n FROM ledger_entries"),
        0
    );
    assert_eq!(
        crate::helpers::scalar(&mut conn, "SELECT COUNT(*) AS n FROM balances"),
        0
    );
}

#[actix_web::test]
async fn a_charge_that_would_overflow_the_balance_is_rejected_with_422() {
    let app = spawn_app_with(|s| {
        s.buyers.max_balance = Points::new(i64::MAX);
        s.buyers.max_charge = Points::new(i64::MAX);
    })
    .await;

    let body = app.charge(1, i64::MAX).await.ok();
    assert_eq!(
        body,
        json!({ "buyerId": 1, "amount": i64::MAX, "balance": i64::MAX, "version": 1 })
    );
    app.charge(1, 1)
        .await
        .expect_problem(422, "balance_limit_exceeded");
    app.charge(1, i64::MAX)
        .await
        .expect_problem(422, "balance_limit_exceeded");

    assert_eq!(app.balance_of(1).await, (i64::MAX, 1));
    assert_buyer_invariants(&mut app.db_conn(), 1);
}
