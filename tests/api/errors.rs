//! The problem+json error format, and errors that only a broken database can cause.

use payment_engine::domain::Points;

use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn an_order_row_the_engine_cannot_represent_answers_500_with_an_opaque_detail() {
    let app = spawn_app().await;
    let order = app.new_order(1, 100).await;
    let mut conn = app.db_conn();
    for sql in [
        "ALTER TABLE orders DROP CONSTRAINT orders_status".to_string(),
        format!("UPDATE orders SET status = 'CORRUPTED_XYZ' WHERE id = {order}"),
    ] {
        diesel::RunQueryDsl::execute(diesel::sql_query(&sql), &mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let response = app.get_order(order).await;
    let body = response.expect_problem(500, "internal_error");
    let detail = body["detail"].as_str().unwrap().to_lowercase();
    for leak in ["corrupted_xyz", "select ", "diesel", "orders_status"] {
        assert!(
            !detail.contains(leak),
            "the 500 detail must be opaque, it mentions {leak:?}: {detail}"
        );
    }

    // The engine keeps serving everything else.
    app.charge_ok(1, 10).await;
    assert_eq!(app.balance_of(1).await, (10, 1));
}

#[actix_web::test]
async fn problem_details_carry_type_title_status_detail_and_code() {
    let app = spawn_app_with(|s| s.buyers.max_balance = Points::new(10)).await;

    let cases = [
        (
            app.charge_raw("x", "point=1", None).await,
            400,
            "invalid_buyer_id",
        ),
        (app.charge_raw("1", "", None).await, 400, "missing_point"),
        (app.get("/orders/999").await, 404, "order_not_found"),
        (app.get("/definitely/not/here").await, 404, "not_found"),
        (app.charge(1, 11).await, 422, "balance_limit_exceeded"),
    ];
    for (response, status, code) in &cases {
        let body = response.expect_problem(*status, code);
        for field in ["type", "title", "detail"] {
            assert!(
                !body[field].as_str().unwrap().is_empty(),
                "empty {field}: {body}"
            );
        }
    }
}
