//! What a successful request answers: the bodies of the 200/201 responses. The buyer's actor
//! builds them before the commit, so an Idempotency-Key record can store the exact answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BuyerId, OrderId, OrderStatus, PaymentId, Points, RefundId};

/// The answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeReceipt {
    #[schema(value_type = i64, example = 1)]
    pub buyer_id: BuyerId,
    /// Points added.
    #[schema(value_type = i64, example = 500)]
    pub amount: Points,
    /// The balance after the charge.
    #[schema(value_type = i64, example = 1500)]
    pub balance: Points,
    /// The ledger version this charge wrote.
    pub version: i64,
}

/// The answer to a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReceipt {
    #[schema(value_type = i64)]
    pub payment_id: PaymentId,
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    #[schema(value_type = i64)]
    pub buyer_id: BuyerId,
    /// Points deducted (the order's total).
    #[schema(value_type = i64)]
    pub amount: Points,
    /// The balance after the payment.
    #[schema(value_type = i64)]
    pub balance: Points,
    /// The ledger version this payment wrote.
    pub version: i64,
    pub paid_at: DateTime<Utc>,
}

/// The answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundReceipt {
    #[schema(value_type = i64)]
    pub refund_id: RefundId,
    #[schema(value_type = i64)]
    pub payment_id: PaymentId,
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    #[schema(value_type = i64)]
    pub buyer_id: BuyerId,
    /// Points given back.
    #[schema(value_type = i64)]
    pub amount: Points,
    /// The balance after the refund.
    #[schema(value_type = i64)]
    pub balance: Points,
    /// The ledger version this refund wrote.
    pub version: i64,
    /// Why, as the request gave it.
    pub reason: Option<String>,
    pub refunded_at: DateTime<Utc>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    #[schema(value_type = i64)]
    pub buyer_id: BuyerId,
    #[schema(value_type = i64)]
    pub total_price: Points,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}
