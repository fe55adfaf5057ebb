//! Property tests of request parsing, without a database: the pure parsing helpers against
//! independent oracles, and the same extractors (JSON, query and path configuration, body
//! deadline) in a minimal App whose handlers answer what they parsed. Every input is either
//! parsed to exactly what it denotes or refused with a 4xx problem+json and its stable code.
//!
//! The tests are here; `oracles`, `app` and `strategies` hold what they are built from.

mod app;
mod oracles;
mod strategies;

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{ApiError, extract, extract::HISTORY_LIMIT_MAX};
use crate::domain::Points;
use app::{call, percent_encode, post_json};
use oracles::{expected_id, expected_order, expected_pay, expected_point, order_refusal_code};
use strategies::{json_body, number_like};

const MAX_CHARGE: i64 = 10_000_000;
const MAX_ORDER: i64 = 1_000_000_000;
const BODY_LIMIT: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_point_is_the_integer_it_denotes_within_1_to_max_or_refused_with_400(
        raw in number_like(),
    ) {
        let parsed = extract::charge_amount(Some(&raw), Points::new(MAX_CHARGE));
        match (parsed, expected_point(&raw, MAX_CHARGE)) {
            (Ok(points), Ok(expected)) => prop_assert_eq!(points.get(), expected),
            (Err(error), Err(reason)) => {
                prop_assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
                prop_assert_eq!(error.code_and_title().0, "invalid_point");
                prop_assert!(matches!(&error, ApiError::InvalidPoint(r) if *r == reason),
                    "{raw:?}: {error:?}, expected {reason:?}");
            }
            (parsed, expected) => prop_assert!(false, "{raw:?}: {parsed:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn an_id_is_the_integer_it_denotes_within_1_to_i64_max_or_refused_with_400(
        raw in number_like(),
    ) {
        let expected = expected_id(&raw);
        let buyer = extract::buyer_id(&raw);
        let order = extract::order_id(&raw);
        match expected {
            Ok(n) => {
                prop_assert_eq!(buyer.map(|id| id.get()).ok(), Some(n));
                prop_assert_eq!(order.map(|id| id.get()).ok(), Some(n));
            }
            Err(reason) => {
                let buyer = buyer.expect_err("a refused buyer id");
                let order = order.expect_err("a refused order id");
                prop_assert!(matches!(&buyer, ApiError::InvalidBuyerId(r) if *r == reason));
                prop_assert!(matches!(&order, ApiError::InvalidOrderId(r) if *r == reason));
                prop_assert_eq!(buyer.status_code(), StatusCode::BAD_REQUEST);
                prop_assert_eq!(order.status_code(), StatusCode::BAD_REQUEST);
            }
        }
    }

    #[test]
    fn a_charge_request_parses_its_path_and_query_or_answers_a_400_problem(
        buyer in prop_oneof![
            (1..=i64::MAX).prop_map(|n| n.to_string()),
            "[0-9]{1,20}",
            "[-+.~_0-9a-zA-Z]{1,22}",
        ],
        point in number_like(),
    ) {
        let uri = format!("/points/{buyer}?point={}", percent_encode(&point));
        let answer = call(TestRequest::post().uri(&uri));
        match (expected_id(&buyer), expected_point(&point, MAX_CHARGE)) {
            (Ok(buyer), Ok(amount)) => {
                prop_assert_eq!(answer.status, StatusCode::OK);
                prop_assert_eq!(answer.body, json!({ "buyerId": buyer, "amount": amount }));
            }
            (Err(_), _) => answer.assert_problem(400, "invalid_buyer_id")?,
            (Ok(_), Err(_)) => answer.assert_problem(400, "invalid_point")?,
        }
    }

    #[test]
    fn a_history_limit_is_1_to_100_and_a_cursor_a_positive_version_or_400(
        limit in prop::option::of(number_like()),
        cursor in prop::option::of(number_like()),
    ) {
        let mut query = Vec::new();
        if let Some(limit) = &limit {
            query.push(format!("limit={}", percent_encode(limit)));
        }
        if let Some(cursor) = &cursor {
            query.push(format!("cursor={}", percent_encode(cursor)));
        }
        let answer = call(TestRequest::get().uri(&format!("/points/history/7?{}", query.join("&"))));
        let expected_limit = match &limit {
            None => Some(20),
            Some(raw) => raw.parse::<i128>().ok().filter(|n| (1..=i128::from(HISTORY_LIMIT_MAX)).contains(n)),
        };
        let expected_before = match cursor.as_deref() {
            None | Some("") => Some(None),
            Some(raw) => raw.parse::<i128>().ok().filter(|v| (1..=i128::from(i64::MAX)).contains(v)).map(Some),
        };
        match (expected_limit, expected_before) {
            (None, _) => answer.assert_problem(400, "invalid_limit")?,
            (Some(_), None) => answer.assert_problem(400, "invalid_cursor")?,
            (Some(limit), Some(before)) => {
                prop_assert_eq!(answer.status, StatusCode::OK);
                prop_assert_eq!(answer.body, json!({ "buyerId": 7, "limit": limit, "before": before }));
            }
        }
    }

    #[test]
    fn every_cursor_the_api_returns_reads_back_as_the_same_version(version in 1..=i64::MAX) {
        let cursor = extract::history_cursor(version);
        prop_assert_eq!(extract::parse_history_cursor(Some(&cursor)).ok(), Some(Some(version)));
    }

    #[test]
    fn any_json_payment_body_is_parsed_exactly_or_refused_with_400_invalid_body(body in json_body()) {
        let answer = call(post_json("/orders/payment/kafka", serde_json::to_vec(&body).unwrap()));
        match expected_pay(&body) {
            Some(expected) => {
                prop_assert_eq!(answer.status, StatusCode::OK, "{} answered {}", body, answer.body);
                prop_assert_eq!(answer.body, expected);
            }
            None => answer.assert_problem(400, "invalid_body")?,
        }
    }

    #[test]
    fn any_json_order_body_is_parsed_exactly_or_refused_with_400(body in json_body()) {
        let answer = call(post_json("/orders", serde_json::to_vec(&body).unwrap()));
        match expected_order(&body) {
            Some(expected) => {
                prop_assert_eq!(answer.status, StatusCode::OK, "{} answered {}", body, answer.body);
                prop_assert_eq!(answer.body, expected);
            }
            None => answer.assert_problem(400, order_refusal_code(&body))?,
        }
    }

    #[test]
    fn any_bytes_as_a_json_body_are_parsed_exactly_or_refused_with_400(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[{}\\[\\]\":,0-9a-zA-Z -]{0,64}".prop_map(String::into_bytes),
        ],
    ) {
        let as_json = serde_json::from_slice::<Value>(&bytes).ok();
        let answer = call(post_json("/orders/payment/kafka", bytes.clone()));
        match as_json.as_ref().and_then(expected_pay) {
            Some(expected) => prop_assert_eq!(answer.body, expected),
            None => answer.assert_problem(400, "invalid_body")?,
        }
        let answer = call(post_json("/orders", bytes));
        match as_json.as_ref().and_then(expected_order) {
            Some(expected) => prop_assert_eq!(answer.body, expected),
            None => {
                let code = as_json.as_ref().map_or("invalid_body", order_refusal_code);
                answer.assert_problem(400, code)?;
            }
        }
    }

    #[test]
    fn a_body_is_read_up_to_the_limit_and_refused_with_413_beyond(len in 0..BODY_LIMIT * 2) {
        // JSON allows any amount of trailing whitespace: only the size varies.
        let mut body = json!({ "buyerId": 1, "orderId": 2 }).to_string();
        let padding = len.saturating_sub(body.len());
        body.push_str(&" ".repeat(padding));
        let answer = call(post_json("/orders/payment/kafka", body.clone()));
        if body.len() <= BODY_LIMIT {
            prop_assert_eq!(answer.body, json!({ "buyerId": 1, "orderId": 2 }));
        } else {
            answer.assert_problem(413, "payload_too_large")?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Examples the generators would rarely hit
// ---------------------------------------------------------------------------------------------

#[test]
fn a_positional_array_is_not_a_body() {
    for (uri, body) in [("/orders/payment/kafka", "[1, 2]"), ("/orders", "[1, 500]")] {
        call(post_json(uri, body))
            .assert_problem(400, "invalid_body")
            .unwrap();
    }
}

#[test]
fn deeply_nested_json_is_refused_with_400_without_exhausting_the_stack() {
    let depth = BODY_LIMIT / 2 - 20;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for body in [
        nested.clone(),
        "[".repeat(BODY_LIMIT),
        format!(r#"{{"buyerId": {nested}, "orderId": 2}}"#),
        format!("{}1{}", r#"{"a":"#.repeat(depth / 3), "}".repeat(depth / 3)),
    ] {
        call(post_json("/orders/payment/kafka", body.clone()))
            .assert_problem(400, "invalid_body")
            .unwrap_or_else(|e| panic!("{:.60}...: {e}", body));
    }
    // An unknown field is skipped without recursion (serde_json), however deep.
    let ignored = format!(r#"{{"buyerId": 1, "orderId": 2, "x": {nested}}}"#);
    let answer = call(post_json("/orders/payment/kafka", ignored));
    assert_eq!(
        (answer.status, answer.body),
        (StatusCode::OK, json!({ "buyerId": 1, "orderId": 2 }))
    );
}

#[test]
fn a_field_given_twice_is_refused_not_resolved() {
    for (uri, body) in [
        (
            "/orders/payment/kafka",
            r#"{"buyerId": 1, "buyerId": 2, "orderId": 3}"#,
        ),
        (
            "/orders",
            r#"{"buyerId": 1, "totalPrice": 5, "totalPrice": 500}"#,
        ),
    ] {
        call(post_json(uri, body))
            .assert_problem(400, "invalid_body")
            .unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

#[test]
fn a_body_that_is_not_declared_json_is_refused_with_415() {
    let body = json!({ "buyerId": 1, "orderId": 2 }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded"),
        Some("json"),
        Some(""),
    ] {
        let mut request = TestRequest::post()
            .uri("/orders/payment/kafka")
            .set_payload(body.clone());
        if let Some(content_type) = content_type {
            request = request.insert_header(("content-type", content_type));
        }
        call(request)
            .assert_problem(415, "unsupported_media_type")
            .unwrap_or_else(|e| panic!("{content_type:?}: {e}"));
    }
}

#[test]
fn a_repeated_query_parameter_is_refused_not_resolved() {
    call(TestRequest::post().uri("/points/1?point=1&point=2"))
        .assert_problem(400, "invalid_query")
        .unwrap();
}
