//! `/orders`: create, read, cancel, and pay (`/orders/payment/kafka`, the original system's
//! route).

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{self, JsonObject, committed_answer};
use super::routing::Onward;
use super::{ApiError, AppState, Problem};
use crate::actors::Command;
use crate::db::queries;
use crate::domain::{BuyerId, IdParseError, OrderId, OrderView, PaymentId, PaymentReceipt, Points};

/// Pay an order from the buyer's points.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayRequest {
    #[schema(minimum = 1)]
    buyer_id: i64,
    #[schema(minimum = 1)]
    order_id: i64,
}

/// Cancel a PENDING order of the buyer.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    #[schema(minimum = 1)]
    buyer_id: i64,
}

/// Create an order.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    #[schema(minimum = 1)]
    buyer_id: i64,
    /// Positive, no greater than `MAX_ORDER_POINTS` (1,000,000,000 by default).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    total_price: i64,
}

pub(super) fn body_id<T: TryFrom<i64, Error = IdParseError>>(
    value: i64,
    field: &str,
) -> Result<T, ApiError> {
    T::try_from(value).map_err(|e| ApiError::InvalidBody(format!("{field} {e}")))
}

impl PayRequest {
    /// The buyer and the order, checked.
    pub(super) fn parse(&self) -> Result<(BuyerId, OrderId), ApiError> {
        Ok((
            body_id(self.buyer_id, "buyerId")?,
            body_id(self.order_id, "orderId")?,
        ))
    }
}

impl CreateOrderRequest {
    /// The buyer and the total, checked against the largest order `max_order`.
    pub(super) fn parse(&self, max_order: Points) -> Result<(BuyerId, Points), ApiError> {
        let buyer = body_id(self.buyer_id, "buyerId")?;
        let total_price =
            Points::positive(self.total_price, max_order).map_err(ApiError::InvalidAmount)?;
        Ok((buyer, total_price))
    }
}

/// Pay an order: deducts its total, records the payment and marks it PAID, in one transaction.
#[utoipa::path(
    post, path = "/orders/payment/kafka", tag = "orders", request_body = PayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key (1-255 printable ASCII)")),
    responses(
        (status = 200, description = "Paid", body = PaymentReceipt),
        (status = 400, description = "Malformed body or invalid ids", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order for this buyer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Order already paid (`order_already_paid`) or cancelled (`order_cancelled`), or same Idempotency-Key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "Body not received within CLIENT_REQUEST_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Insufficient balance, or key reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, database unavailable or write conflict; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pay(
    state: web::Data<AppState>,
    body: web::Json<JsonObject<PayRequest>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (buyer, order_id) = body.0.0.parse()?;
    let key = extract::idempotency_key(&req)?;
    let fingerprint = || {
        // The payment id is not part of the request: any placeholder gives the same fingerprint.
        Command::Pay {
            order_id,
            payment_id: PaymentId::try_from(1).expect("1 is a valid id"),
        }
        .fingerprint(buyer)
        .0
    };
    if let Some(answer) = committed_answer(&state, key.as_ref(), fingerprint).await? {
        return Ok(answer);
    }
    let onward = Onward {
        req: &req,
        body: json_body(&body.0.0)?,
    };
    let command = async || {
        Ok(Command::Pay {
            order_id,
            payment_id: next_id(state.payment_ids.next().await)?,
        })
    };
    state.serve(onward, buyer, key, command).await
}

/// Create an order (status PENDING).
#[utoipa::path(
    post, path = "/orders", tag = "orders", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key (1-255 printable ASCII): a retry answers the same order")),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, created by an earlier request with this key)", body = OrderView, headers(("Location" = String, description = "/orders/{orderId}"))),
        (status = 400, description = "Malformed body, invalid buyer id, amount or key", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "Body not received within CLIENT_REQUEST_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Key reused with a different body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or database unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<JsonObject<CreateOrderRequest>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (buyer, total_price) = body.0.0.parse(state.max_order)?;
    let key = extract::idempotency_key(&req)?;
    let fingerprint = || {
        // The order id is allocated per request: any placeholder gives the same fingerprint.
        Command::CreateOrder {
            order_id: OrderId::try_from(1).expect("1 is a valid id"),
            total_price,
        }
        .fingerprint(buyer)
        .0
    };
    if let Some(answer) = committed_answer(&state, key.as_ref(), fingerprint).await? {
        return Ok(answer);
    }
    let onward = Onward {
        req: &req,
        body: json_body(&body.0.0)?,
    };
    let command = async || {
        Ok(Command::CreateOrder {
            order_id: next_id(state.order_ids.next().await)?,
            total_price,
        })
    };
    state.serve(onward, buyer, key, command).await
}

/// Cancel an order that is not paid: PENDING becomes CANCELLED, and it can never be paid.
/// Cancelling a cancelled order answers it again (idempotent by nature).
#[utoipa::path(
    post, path = "/orders/{orderId}/cancel", tag = "orders", request_body = CancelRequest,
    params(("orderId" = i64, Path, minimum = 1, description = "Order id (positive)")),
    responses(
        (status = 200, description = "The order, CANCELLED", body = OrderView),
        (status = 400, description = "Malformed body, invalid ids", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order for this buyer", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "Body not received within CLIENT_REQUEST_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is paid (`order_already_paid`: refund it instead)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, database unavailable or write conflict; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<JsonObject<CancelRequest>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let order_id = extract::order_id(&path)?;
    let buyer = body_id(body.0.0.buyer_id, "buyerId")?;
    let onward = Onward {
        req: &req,
        body: json_body(&body.0.0)?,
    };
    let command = async || Ok(Command::Cancel { order_id });
    state.serve(onward, buyer, None, command).await
}

/// The parsed body again, for the engine a request is forwarded to.
pub(super) fn json_body(body: &impl serde::Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|_| ApiError::Internal)
}

/// An order and its status.
#[utoipa::path(
    get, path = "/orders/{orderId}", tag = "orders",
    params(("orderId" = i64, Path, minimum = 1, description = "Order id (positive)")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "Invalid order id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let order_id = extract::order_id(&path)?;
    Ok(HttpResponse::Ok().json(view(&state, order_id).await?))
}

/// The order as stored.
pub(super) async fn view(state: &AppState, order_id: OrderId) -> Result<OrderView, ApiError> {
    let row = state
        .db
        .run(move |conn| queries::find_order(conn, order_id.get()))
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::OrderNotFound)?;
    Ok(OrderView {
        order_id,
        buyer_id: BuyerId::try_from(row.buyer_id).map_err(|_| ApiError::Internal)?,
        total_price: Points::new(row.total_price),
        status: row.status,
        created_at: row.created_at.and_utc(),
        paid_at: row.paid_at.map(|at| at.and_utc()),
        cancelled_at: row.cancelled_at.map(|at| at.and_utc()),
    })
}

pub(super) fn next_id<T: TryFrom<i64>>(id: Result<i64, crate::db::DbError>) -> Result<T, ApiError> {
    T::try_from(id.map_err(ApiError::from_db)?).map_err(|_| ApiError::Internal)
}
