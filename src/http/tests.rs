//! Property tests of request parsing, without a database: the pure parsing helpers against
//! independent oracles, and the same extractors (JSON, query and path configuration, body
//! deadline) in a minimal App whose handlers answer what they parsed. Every input is either
//! parsed to exactly what it denotes or refused with a 4xx problem+json and its stable code.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::{self as actix_test, TestRequest};
use actix_web::{App, HttpResponse, ResponseError, web};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::deadline::{BodyDeadline, body_deadline};
use super::extract::{self, JsonObject};
use super::orders::{CreateOrderRequest, PayRequest};
use super::points::{ChargeQuery, HistoryQuery};
use super::{ApiError, extract::HISTORY_LIMIT_MAX};
use crate::domain::{AmountParseError, IdParseError, Points};

const MAX_CHARGE: i64 = 10_000_000;
const MAX_ORDER: i64 = 1_000_000_000;
const BODY_LIMIT: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Oracles, written independently of the parsers
// ---------------------------------------------------------------------------------------------

/// The decimal number `digits` (ASCII digits only) denotes, if it is in 1..=max.
fn decimal_in_range(digits: &str, max: i64) -> Result<i64, Ordering> {
    let significant = digits.trim_start_matches('0');
    let max_digits = max.to_string();
    if significant.is_empty() {
        return Err(Ordering::Below);
    }
    if (significant.len(), significant) > (max_digits.len(), max_digits.as_str()) {
        return Err(Ordering::Above);
    }
    Ok(significant.parse().expect("at most max's digits"))
}

#[derive(Debug, PartialEq)]
enum Ordering {
    Below,
    Above,
}

/// What a `point` string must give: the integer it denotes when in 1..=max, else the reason.
fn expected_point(raw: &str, max: i64) -> Result<i64, AmountParseError> {
    let trimmed = raw.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountParseError::NotAnInteger);
    }
    if negative {
        return Err(AmountParseError::NotPositive);
    }
    decimal_in_range(digits, max).map_err(|o| match o {
        Ordering::Below => AmountParseError::NotPositive,
        Ordering::Above => AmountParseError::AboveMaximum { max },
    })
}

/// What an id string must give: ASCII digits only, denoting 1..=i64::MAX.
fn expected_id(raw: &str) -> Result<i64, IdParseError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdParseError::NotAnInteger);
    }
    decimal_in_range(raw, i64::MAX).map_err(|_| IdParseError::OutOfRange)
}

/// A positive i64 field of a JSON object.
fn positive_field(object: &serde_json::Map<String, Value>, name: &str) -> Option<i64> {
    object.get(name)?.as_i64().filter(|n| *n > 0)
}

fn expected_pay(body: &Value) -> Option<Value> {
    let object = body.as_object()?;
    let buyer = positive_field(object, "buyerId")?;
    let order = positive_field(object, "orderId")?;
    Some(json!({ "buyerId": buyer, "orderId": order }))
}

fn expected_order(body: &Value) -> Option<Value> {
    let object = body.as_object()?;
    let buyer = positive_field(object, "buyerId")?;
    let total = positive_field(object, "totalPrice").filter(|t| *t <= MAX_ORDER)?;
    Some(json!({ "buyerId": buyer, "totalPrice": total }))
}

/// The body problem code a refused order must carry: a well-typed but out-of-range total is
/// `invalid_amount`, anything else about the body `invalid_body`.
fn order_refusal_code(body: &Value) -> &'static str {
    let well_typed = body.as_object().is_some_and(|o| {
        positive_field(o, "buyerId").is_some() && o.get("totalPrice").is_some_and(Value::is_i64)
    });
    if well_typed {
        "invalid_amount"
    } else {
        "invalid_body"
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal App: the engine's extractor configuration, handlers that echo what they parsed
// ---------------------------------------------------------------------------------------------

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Answer {
    /// Asserts a problem+json refusal with `status` and `code`.
    fn assert_problem(&self, status: u16, code: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.status.as_u16(), status, "body {}", self.body);
        prop_assert_eq!(&self.content_type, "application/problem+json");
        prop_assert_eq!(self.body["code"].as_str(), Some(code), "body {}", self.body);
        prop_assert_eq!(&self.body["status"], &json!(status));
        Ok(())
    }
}

fn echo(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

async fn charge(
    path: web::Path<String>,
    query: web::Query<ChargeQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let amount = extract::charge_amount(query.point.as_deref(), Points::new(MAX_CHARGE))?;
    Ok(echo(
        json!({ "buyerId": buyer.get(), "amount": amount.get() }),
    ))
}

async fn history(
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let limit = extract::history_limit(query.limit.as_deref())?;
    let before = extract::parse_history_cursor(query.cursor.as_deref())?;
    Ok(echo(
        json!({ "buyerId": buyer.get(), "limit": limit, "before": before }),
    ))
}

async fn get_order(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let order = extract::order_id(&path)?;
    Ok(echo(json!({ "orderId": order.get() })))
}

async fn pay(body: web::Json<JsonObject<PayRequest>>) -> Result<HttpResponse, ApiError> {
    let (buyer, order) = body.0.0.parse()?;
    Ok(echo(
        json!({ "buyerId": buyer.get(), "orderId": order.get() }),
    ))
}

async fn create_order(
    body: web::Json<JsonObject<CreateOrderRequest>>,
) -> Result<HttpResponse, ApiError> {
    let (buyer, total) = body.0.0.parse(Points::new(MAX_ORDER))?;
    Ok(echo(
        json!({ "buyerId": buyer.get(), "totalPrice": total.get() }),
    ))
}

/// Sends one request through the App (a fresh one: building it takes microseconds).
fn call(request: TestRequest) -> Answer {
    actix_web::rt::System::new().block_on(async move {
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(body_deadline))
                .app_data(BodyDeadline(Duration::from_secs(5)))
                .app_data(extract::json_config(BODY_LIMIT))
                .app_data(extract::query_config())
                .app_data(extract::path_config())
                .route("/points/history/{buyer_id}", web::get().to(history))
                .route("/points/{buyer_id}", web::post().to(charge))
                .route("/orders/payment/kafka", web::post().to(pay))
                .route("/orders", web::post().to(create_order))
                .route("/orders/{order_id}", web::get().to(get_order)),
        )
        .await;
        let response = actix_test::call_service(&app, request.to_request()).await;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = actix_test::read_body(response).await;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{status}: the body is not JSON ({e}): {bytes:?}");
        });
        Answer {
            status,
            content_type,
            body,
        }
    })
}

fn post_json(uri: &str, body: impl Into<actix_web::web::Bytes>) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.into())
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), for a query value.
fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings that look like integers, or nearly: signs, spaces, leading zeros, every magnitude up
/// to past u64, exponents and decimals; and anything at all.
fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0i64..=MAX_CHARGE + 2).prop_map(|n| n.to_string()),
        Just(i64::MAX.to_string()),
        Just("9223372036854775808".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just((i64::MIN).to_string()),
        "[ +-]{0,2}0{0,25}[0-9]{0,25}[ ]{0,2}",
        "[0-9]{1,5}[.eE_,xX][0-9]{0,3}",
        ".*",
    ]
}

/// JSON numbers around every boundary the bodies have, and values of every other type.
fn json_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (-2i64..=3).prop_map(Value::from),
        (MAX_ORDER - 1..=MAX_ORDER + 1).prop_map(Value::from),
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        ((i64::MAX as u64)..=u64::MAX).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(1.0)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        number_like().prop_map(Value::from),
        Just(json!([1])),
        Just(json!({ "value": 1 })),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("buyerId".to_owned()),
        Just("orderId".to_owned()),
        Just("totalPrice".to_owned()),
        Just("buyer_id".to_owned()),
        "[a-zA-Z]{0,8}",
    ]
}

/// Arbitrary JSON, biased toward objects with the bodies' own keys.
fn json_body() -> impl Strategy<Value = Value> {
    let leaf = json_field();
    let any_json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        prop::collection::btree_map(key(), json_field(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        any_json,
    ]
}

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
