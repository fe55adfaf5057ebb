//! A minimal App with the engine's extractor configuration, and handlers that echo what they
//! parsed.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::{self as actix_test, TestRequest};
use actix_web::{App, HttpResponse, web};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{BODY_LIMIT, MAX_CHARGE, MAX_ORDER};
use crate::domain::Points;
use crate::http::ApiError;
use crate::http::deadline::{BodyDeadline, body_deadline};
use crate::http::extract::{self, JsonObject};
use crate::http::orders::{CreateOrderRequest, PayRequest};
use crate::http::points::{ChargeQuery, HistoryQuery};

pub(super) struct Answer {
    pub(super) status: StatusCode,
    content_type: String,
    pub(super) body: Value,
}

impl Answer {
    /// Asserts a problem+json refusal with `status` and `code`.
    pub(super) fn assert_problem(&self, status: u16, code: &str) -> Result<(), TestCaseError> {
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
pub(super) fn call(request: TestRequest) -> Answer {
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

pub(super) fn post_json(uri: &str, body: impl Into<actix_web::web::Bytes>) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.into())
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), for a query value.
pub(super) fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
