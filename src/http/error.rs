//! The API's one error type: each variant maps to a status and an RFC 9457 problem+json body
//! with a stable machine-readable `code`. Internal causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use super::metrics::Rejection;
use crate::actors::{BuyerError, OverloadReason};
use crate::db::{DbError, ErrorClass};
use crate::domain::buyer::Refusal;
use crate::domain::{AmountParseError, DomainError, IdParseError, OrderStatus, RejectionReason};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_S: &str = "1";

/// Marks a `not_owner` answer for the engine that forwarded the request, whatever the body.
pub const NOT_OWNER_HEADER: &str = "x-payment-engine-not-owner";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("buyerId {0}")]
    InvalidBuyerId(IdParseError),
    #[error("orderId {0}")]
    InvalidOrderId(IdParseError),
    #[error("paymentId {0}")]
    InvalidPaymentId(IdParseError),
    #[error("the query parameter `point` is required")]
    MissingPoint,
    #[error("point {0}")]
    InvalidPoint(AmountParseError),
    #[error("totalPrice {0}")]
    InvalidAmount(AmountParseError),
    #[error("amount {0}")]
    InvalidRefundAmount(AmountParseError),
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("limit must be between 1 and {max}")]
    InvalidLimit { max: i64 },
    #[error("the cursor is not one this list returned")]
    InvalidCursor,
    #[error("status must be one of {}", OrderStatus::ALL.map(OrderStatus::as_str).join(", "))]
    InvalidStatus,
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error("no order with this id for this buyer")]
    OrderNotFound,
    #[error("no payment with this id (for this buyer)")]
    PaymentNotFound,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed on this resource")]
    MethodNotAllowed {
        /// The methods the resource serves, for the `Allow` header (RFC 9110).
        allow: &'static str,
    },
    #[error("the order is already paid")]
    OrderAlreadyPaid,
    #[error("the order is cancelled")]
    OrderCancelled,
    #[error("the refunds would exceed the payment: {refundable} points are left to refund")]
    RefundExceedsPayment { refundable: i64 },
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    IdempotencyKeyInFlight,
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("{0}")]
    Rule(DomainError),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyMismatch,
    #[error("the engine is overloaded ({}); retry later", .0.as_str())]
    Overloaded(OverloadReason),
    #[error("the database is unavailable; retry later")]
    DatabaseUnavailable,
    #[error("the buyer's balance changed concurrently; retry")]
    WriteConflict,
    #[error(
        "the request did not complete in time; retry with the same Idempotency-Key to learn its outcome"
    )]
    Timeout,
    #[error("the engine is shutting down; send requests to another instance")]
    ShuttingDown,
    /// Answered to a forwarded request only (the forwarding engine routes it again).
    #[error("this engine does not own the buyer's shard")]
    NotOwner,
    #[error("the engine serving this buyer is unavailable; retry after {retry_after_s} s")]
    OwnerUnavailable { retry_after_s: u64 },
    #[error("this route needs `Authorization: Bearer <token>` with a valid service token")]
    Unauthorized,
    #[error("internal error")]
    Internal,
}

/// An RFC 9457 problem details body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `insufficient_balance`.
    pub code: &'static str,
}

impl ApiError {
    /// The stable code and a short title.
    pub fn code_and_title(&self) -> (&'static str, &'static str) {
        use ApiError as E;
        match self {
            E::InvalidBuyerId(_) => ("invalid_buyer_id", "Invalid buyer id"),
            E::InvalidOrderId(_) => ("invalid_order_id", "Invalid order id"),
            E::InvalidPaymentId(_) => ("invalid_payment_id", "Invalid payment id"),
            E::MissingPoint => ("missing_point", "Missing point"),
            E::InvalidPoint(_) => ("invalid_point", "Invalid point"),
            E::InvalidAmount(_) | E::InvalidRefundAmount(_) => ("invalid_amount", "Invalid amount"),
            E::InvalidBody(_) => ("invalid_body", "Invalid request body"),
            E::InvalidQuery(_) => ("invalid_query", "Invalid query"),
            E::InvalidLimit { .. } => ("invalid_limit", "Invalid limit"),
            E::InvalidCursor => ("invalid_cursor", "Invalid cursor"),
            E::InvalidStatus => ("invalid_status", "Invalid status"),
            E::InvalidIdempotencyKey(_) => ("invalid_idempotency_key", "Invalid Idempotency-Key"),
            E::OrderNotFound => ("order_not_found", "Order not found"),
            E::PaymentNotFound => ("payment_not_found", "Payment not found"),
            E::NotFound => ("not_found", "Not found"),
            E::MethodNotAllowed { .. } => ("method_not_allowed", "Method not allowed"),
            E::OrderAlreadyPaid => ("order_already_paid", "Order already paid"),
            E::OrderCancelled => ("order_cancelled", "Order cancelled"),
            E::RefundExceedsPayment { .. } => ("refund_exceeds_payment", "Refund exceeds payment"),
            E::IdempotencyKeyInFlight => ("idempotency_key_in_flight", "Request in flight"),
            E::PayloadTooLarge { .. } => ("payload_too_large", "Payload too large"),
            E::UnsupportedMediaType => ("unsupported_media_type", "Unsupported media type"),
            E::BodyTimeout => ("body_timeout", "Request body timeout"),
            E::Rule(DomainError::InsufficientBalance { .. }) => {
                ("insufficient_balance", "Insufficient balance")
            }
            E::Rule(DomainError::BalanceLimitExceeded { .. }) => {
                ("balance_limit_exceeded", "Balance limit exceeded")
            }
            E::IdempotencyKeyMismatch => ("idempotency_key_mismatch", "Idempotency-Key reused"),
            E::Overloaded(_) => ("overloaded", "Overloaded"),
            E::DatabaseUnavailable => ("database_unavailable", "Database unavailable"),
            E::WriteConflict => ("write_conflict", "Write conflict"),
            E::Timeout => ("timeout", "Timeout"),
            E::ShuttingDown => ("shutting_down", "Shutting down"),
            E::NotOwner => ("not_owner", "Not the owner"),
            E::OwnerUnavailable { .. } => ("owner_unavailable", "Owner unavailable"),
            E::Unauthorized => ("unauthorized", "Unauthorized"),
            E::Internal => ("internal_error", "Internal error"),
        }
    }

    /// Why a 503 was answered, as counted by `payment_engine_rejections_total`.
    fn rejection_reason(&self) -> Option<RejectionReason> {
        match self {
            ApiError::Overloaded(reason) => Some(reason.rejection()),
            ApiError::DatabaseUnavailable => Some(RejectionReason::DatabaseUnavailable),
            ApiError::WriteConflict => Some(RejectionReason::WriteConflict),
            ApiError::Timeout => Some(RejectionReason::RequestTimeout),
            ApiError::ShuttingDown => Some(RejectionReason::ShuttingDown),
            ApiError::NotOwner => Some(RejectionReason::NotOwner),
            ApiError::OwnerUnavailable { .. } => Some(RejectionReason::OwnerUnavailable),
            _ => None,
        }
    }

    /// A database failure on a read path; classified and logged, once, by `DbError::classify`.
    pub fn from_db(error: DbError) -> ApiError {
        match error.classify("answering from the database") {
            ErrorClass::Transient => ApiError::DatabaseUnavailable,
            ErrorClass::Bug => ApiError::Internal,
        }
    }
}

impl From<BuyerError> for ApiError {
    fn from(error: BuyerError) -> Self {
        match error {
            BuyerError::Refused(refusal) => match refusal {
                Refusal::Rule(rule) => ApiError::Rule(rule),
                Refusal::OrderNotFound => ApiError::OrderNotFound,
                Refusal::OrderAlreadyPaid => ApiError::OrderAlreadyPaid,
                Refusal::OrderCancelled => ApiError::OrderCancelled,
                Refusal::PaymentNotFound => ApiError::PaymentNotFound,
                Refusal::RefundExceedsPayment { refundable } => ApiError::RefundExceedsPayment {
                    refundable: refundable.get(),
                },
                Refusal::IdempotencyKeyInFlight => ApiError::IdempotencyKeyInFlight,
                Refusal::IdempotencyKeyMismatch => ApiError::IdempotencyKeyMismatch,
                Refusal::StaleState => ApiError::WriteConflict,
                Refusal::NotOwner => ApiError::NotOwner,
            },
            BuyerError::Overloaded(reason) => ApiError::Overloaded(reason),
            BuyerError::DatabaseUnavailable => ApiError::DatabaseUnavailable,
            BuyerError::Internal => ApiError::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ApiError as E;
        match self {
            E::InvalidBuyerId(_)
            | E::InvalidOrderId(_)
            | E::InvalidPaymentId(_)
            | E::MissingPoint
            | E::InvalidPoint(_)
            | E::InvalidAmount(_)
            | E::InvalidRefundAmount(_)
            | E::InvalidBody(_)
            | E::InvalidQuery(_)
            | E::InvalidLimit { .. }
            | E::InvalidCursor
            | E::InvalidStatus
            | E::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            E::OrderNotFound | E::PaymentNotFound | E::NotFound => StatusCode::NOT_FOUND,
            E::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            E::Unauthorized => StatusCode::UNAUTHORIZED,
            E::OrderAlreadyPaid | E::OrderCancelled | E::IdempotencyKeyInFlight => {
                StatusCode::CONFLICT
            }
            E::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            E::Rule(_) | E::IdempotencyKeyMismatch | E::RefundExceedsPayment { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            E::Overloaded(_)
            | E::DatabaseUnavailable
            | E::WriteConflict
            | E::Timeout
            | E::ShuttingDown
            | E::NotOwner
            | E::OwnerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (code, title) = self.code_and_title();
        let problem = Problem {
            problem_type: format!("urn:payment-engine:problem:{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            ApiError::OwnerUnavailable { retry_after_s } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S)));
            }
            _ => {}
        }
        if let ApiError::NotOwner = self {
            response.insert_header((NOT_OWNER_HEADER, HeaderValue::from_static("true")));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let mut response = response.body(serde_json::to_string(&problem).unwrap_or_default());
        if let Some(reason) = self.rejection_reason() {
            response.extensions_mut().insert(Rejection(reason));
        }
        response
    }
}
