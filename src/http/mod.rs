//! The HTTP layer: routes, extractors and error mapping. Handlers parse and delegate.

pub mod admission;
pub mod auth;
mod buyers;
mod cursor;
pub mod deadline;
mod error;
mod extract;
mod health;
pub mod limit;
pub mod metrics;
pub mod openapi;
mod orders;
mod payments;
mod points;
mod refunds;
mod routing;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};

pub use error::{ApiError, NOT_OWNER_HEADER, Problem};
pub use routing::{Forwarder, HOP_HEADER};

use crate::actors::{BuyerError, BuyerRegistry, Receipt};
use crate::db::Db;
use crate::db::ids::IdAllocator;
use crate::domain::Points;

/// Routes open to orchestrators and Prometheus, whatever the configuration: they need no token
/// (`auth`) and are never shed (`admission`).
const OPEN_PATHS: [&str; 3] = ["/health/live", "/health/ready", "/metrics"];

/// Shared by every handler.
pub struct AppState {
    pub registry: Arc<BuyerRegistry>,
    /// Which engine serves which buyer.
    pub cluster: Arc<crate::cluster::Cluster>,
    pub publisher: crate::actors::publisher::PublisherHandle,
    pub db: Db,
    pub order_ids: IdAllocator,
    pub payment_ids: IdAllocator,
    pub refund_ids: IdAllocator,
    pub max_charge: Points,
    pub max_order: Points,
    pub request_timeout: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub api_tokens: auth::ApiTokens,
    pub in_flight: admission::InFlight,
    pub draining: admission::Draining,
}

impl From<BuyerError> for actix_web::Error {
    fn from(error: BuyerError) -> Self {
        ApiError::from(error).into()
    }
}

/// Registers every route and the extractor error handlers on an App.
pub fn configure(
    max_body_bytes: usize,
    tokens_required: bool,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(extract::json_config(max_body_bytes))
            .app_data(extract::query_config())
            .app_data(extract::path_config())
            .app_data(web::PayloadConfig::new(max_body_bytes));
        money_routes(cfg);
        read_routes(cfg);
        cfg.service(openapi::swagger_ui(tokens_required));
    }
}

/// The routes that move money (each one a buyer's command).
fn money_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/points/{buyer_id}")
            .route(web::post().to(points::charge))
            .route(web::get().to(points::balance))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/orders/payment/kafka")
            .route(web::post().to(orders::pay))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/orders")
            .route(web::post().to(orders::create))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/orders/{order_id}/cancel")
            .route(web::post().to(orders::cancel))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/payments/{payment_id}/refunds")
            .route(web::post().to(refunds::refund))
            .default_service(method_not_allowed("POST")),
    );
}

/// The routes that only read: the books, the probes, the metrics.
fn read_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/points/history/{buyer_id}")
            .route(web::get().to(points::history))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/buyers/{buyer_id}/orders")
            .route(web::get().to(buyers::orders))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/buyers/{buyer_id}/payments")
            .route(web::get().to(buyers::payments))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/payments/{payment_id}")
            .route(web::get().to(payments::get))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/orders/{order_id}")
            .route(web::get().to(orders::get))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/health/live")
            .route(web::get().to(health::live))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/health/ready")
            .route(web::get().to(health::ready))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics::metrics))
            .default_service(method_not_allowed("GET")),
    );
}

/// The answer to a method a resource does not serve, naming those it does.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) })
}

/// The answer to unknown routes.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

impl AppState {
    /// A 200/201 with the receipt, or the stored answer of an Idempotency-Key replay. A
    /// cancellation answers the order as it is stored (durable: the cancellation committed).
    async fn answer(&self, receipt: Receipt) -> Result<HttpResponse, ApiError> {
        use actix_web::http::header::LOCATION;
        Ok(match receipt {
            Receipt::Charged(body) => HttpResponse::Ok().json(body),
            Receipt::Paid(body) => HttpResponse::Ok().json(body),
            Receipt::OrderCreated(body) => HttpResponse::Created()
                .insert_header((LOCATION, format!("/orders/{}", body.order_id)))
                .json(body),
            Receipt::Refunded(body) => HttpResponse::Created()
                .insert_header((LOCATION, format!("/payments/{}", body.payment_id)))
                .json(body),
            Receipt::Cancelled(order_id) => {
                HttpResponse::Ok().json(orders::view(self, order_id).await?)
            }
            Receipt::Replayed(stored) => replay(stored),
        })
    }
}

fn replay(stored: crate::actors::StoredResponse) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(stored.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Idempotent-Replayed", "true"))
        .body(stored.body)
}
