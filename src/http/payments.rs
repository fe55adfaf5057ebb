//! `GET /payments/{paymentId}`: a payment, how much of it has been refunded, and its refunds.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract;
use super::{ApiError, AppState, Problem};
use crate::db::lists;
use crate::db::models::{PaymentRow, RefundRow};
use crate::domain::OrderStatus;

/// Most refunds listed with a payment. A payment has at most a few hundred in practice; past
/// this many, `hasMoreRefunds` says so and `refundedAmount` still counts them all.
pub const REFUNDS_LISTED_MAX: i64 = 100;

/// A payment and how much of it has been refunded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSummary {
    payment_id: i64,
    order_id: i64,
    buyer_id: i64,
    /// Points the payment deducted (the order's total).
    amount: i64,
    /// Points given back by refunds so far.
    refunded_amount: i64,
    /// Points that can still be refunded: `amount - refundedAmount`.
    refundable: i64,
    /// The buyer's balance right after the payment.
    balance_after: i64,
    /// The buyer's ledger version the payment wrote.
    version: i64,
    paid_at: DateTime<Utc>,
    /// The order's status now: PAID, PARTIALLY_REFUNDED or REFUNDED.
    status: OrderStatus,
}

/// One refund of a payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundView {
    refund_id: i64,
    /// Points given back.
    amount: i64,
    /// Why, as the refund's request gave it.
    reason: Option<String>,
    /// The buyer's balance right after the refund.
    balance_after: i64,
    /// The buyer's ledger version the refund wrote.
    version: i64,
    refunded_at: DateTime<Utc>,
}

/// A payment with its refunds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDetail {
    #[serde(flatten)]
    payment: PaymentSummary,
    /// Oldest first (in the order they moved the buyer's balance); at most 100.
    refunds: Vec<RefundView>,
    /// The payment has more refunds than are listed.
    has_more_refunds: bool,
}

/// A payment, what of it has been refunded and may still be, and its refunds, oldest first.
#[utoipa::path(
    get, path = "/payments/{paymentId}", tag = "payments", operation_id = "get_payment",
    params(("paymentId" = i64, Path, minimum = 1, description = "Payment id (positive)")),
    responses(
        (status = 200, description = "The payment", body = PaymentDetail),
        (status = 400, description = "Invalid payment id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let payment_id = extract::payment_id(&path)?;
    let ((payment, status), mut refunds) = state
        .db
        .run(move |conn| {
            lists::payment_with_refunds(conn, payment_id.get(), REFUNDS_LISTED_MAX + 1)
        })
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::PaymentNotFound)?;
    let has_more_refunds = refunds.len() as i64 > REFUNDS_LISTED_MAX;
    refunds.truncate(REFUNDS_LISTED_MAX as usize);
    Ok(HttpResponse::Ok().json(PaymentDetail {
        payment: payment_summary(payment, status)?,
        refunds: refunds.into_iter().map(refund_view).collect(),
        has_more_refunds,
    }))
}

/// The view of a payment row and its order's status; a payment without its order is a bug.
pub fn payment_summary(
    row: PaymentRow,
    status: Option<OrderStatus>,
) -> Result<PaymentSummary, ApiError> {
    let Some(status) = status else {
        tracing::error!(
            payment_id = row.id,
            order_id = row.order_id,
            "a payment's order is missing"
        );
        return Err(ApiError::Internal);
    };
    Ok(PaymentSummary {
        payment_id: row.id,
        order_id: row.order_id,
        buyer_id: row.buyer_id,
        amount: row.amount,
        refunded_amount: row.refunded_amount,
        // The database keeps refunded_amount within 0..=amount (a CHECK constraint).
        refundable: row.amount - row.refunded_amount,
        balance_after: row.balance_after,
        version: row.ledger_version,
        paid_at: row.paid_at.and_utc(),
        status,
    })
}

fn refund_view(row: RefundRow) -> RefundView {
    RefundView {
        refund_id: row.id,
        amount: row.amount,
        reason: row.reason,
        balance_after: row.balance_after,
        version: row.ledger_version,
        refunded_at: row.refunded_at.and_utc(),
    }
}
