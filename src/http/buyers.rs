//! `/buyers/{buyerId}/orders` and `/buyers/{buyerId}/payments`: a buyer's orders and payments,
//! newest first, cursor-paginated. A buyer the engine has never seen has empty lists.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::cursor::List;
use super::extract;
use super::payments::{PaymentSummary, payment_summary};
use super::{ApiError, AppState, Problem};
use crate::db::lists;
use crate::db::models::OrderRow;
use crate::domain::{OrderStatus, OrderView};

#[derive(Debug, Deserialize, IntoParams)]
pub struct OrdersQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    pub(super) status: Option<String>,
    /// Orders per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub(super) limit: Option<String>,
    /// `nextCursor` of the previous page, asked with the same `status`.
    pub(super) cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PaymentsQuery {
    /// Payments per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub(super) limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub(super) cursor: Option<String>,
}

/// A page of a buyer's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersPage {
    buyer_id: i64,
    orders: Vec<OrderView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// A page of a buyer's payments, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentsPage {
    buyer_id: i64,
    payments: Vec<PaymentSummary>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// A buyer's orders, newest first (by id), of one status if asked, cursor-paginated.
#[utoipa::path(
    get, path = "/buyers/{buyerId}/orders", tag = "buyers", operation_id = "list_orders_of_buyer",
    params(("buyerId" = i64, Path, minimum = 1, description = "Buyer id (positive)"), OrdersQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrdersPage),
        (status = 400, description = "Invalid buyer id, status, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn orders(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<OrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let status = extract::order_status(query.status.as_deref())?;
    let limit = extract::history_limit(query.limit.as_deref())?;
    let list = List::Orders { buyer, status };
    let before = list.parse_cursor(query.cursor.as_deref())?;
    let rows = state
        .db
        .run(move |conn| lists::orders_of_buyer(conn, buyer.get(), status, before, limit + 1))
        .await
        .map_err(ApiError::from_db)?;
    let (rows, next_cursor) = list.page(rows, limit, |row| row.id);
    Ok(HttpResponse::Ok().json(OrdersPage {
        buyer_id: buyer.get(),
        orders: rows.into_iter().map(order_view).collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// A buyer's payments, newest first (by id), with what of each has been refunded,
/// cursor-paginated.
#[utoipa::path(
    get, path = "/buyers/{buyerId}/payments", tag = "buyers", operation_id = "list_payments_of_buyer",
    params(("buyerId" = i64, Path, minimum = 1, description = "Buyer id (positive)"), PaymentsQuery),
    responses(
        (status = 200, description = "A page of payments", body = PaymentsPage),
        (status = 400, description = "Invalid buyer id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn payments(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PaymentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let limit = extract::history_limit(query.limit.as_deref())?;
    let list = List::Payments { buyer };
    let before = list.parse_cursor(query.cursor.as_deref())?;
    let rows = state
        .db
        .run(move |conn| lists::payments_of_buyer(conn, buyer.get(), before, limit + 1))
        .await
        .map_err(ApiError::from_db)?;
    let (rows, next_cursor) = list.page(rows, limit, |(payment, _)| payment.id);
    Ok(HttpResponse::Ok().json(PaymentsPage {
        buyer_id: buyer.get(),
        payments: rows
            .into_iter()
            .map(|(payment, status)| payment_summary(payment, status))
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

fn order_view(row: OrderRow) -> Result<OrderView, ApiError> {
    let id = row.id;
    lists::order_view(row).ok_or_else(|| {
        tracing::error!(order_id = id, "an order row holds an id out of range");
        ApiError::Internal
    })
}
