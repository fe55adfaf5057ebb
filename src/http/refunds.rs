//! `/payments/{paymentId}/refunds`: give part or all of a payment back to the buyer's points.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{self, JsonObject, committed_answer};
use super::orders::{body_id, json_body, next_id};
use super::routing::Onward;
use super::{ApiError, AppState, Problem};
use crate::actors::Command;
use crate::domain::{BuyerId, Points, RefundId, RefundReceipt};

/// Longest refund reason, in characters (the column's width).
pub const MAX_REASON_CHARS: usize = 255;

/// Refund part or all of a payment.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    #[schema(minimum = 1)]
    buyer_id: i64,
    /// Points to give back; all that is left of the payment when absent.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount: Option<i64>,
    /// Why (1-255 characters, no control characters), kept with the refund and its event.
    #[schema(min_length = 1, max_length = 255)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl RefundRequest {
    /// The buyer, the amount (checked against the largest order `max_order`) and the reason.
    fn parse(
        &self,
        max_order: Points,
    ) -> Result<(BuyerId, Option<Points>, Option<String>), ApiError> {
        let buyer = body_id(self.buyer_id, "buyerId")?;
        let amount = self
            .amount
            .map(|amount| Points::positive(amount, max_order))
            .transpose()
            .map_err(ApiError::InvalidRefundAmount)?;
        if let Some(reason) = &self.reason {
            let chars = reason.chars().count();
            if chars == 0 || chars > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
                return Err(ApiError::InvalidBody(format!(
                    "reason must be 1 to {MAX_REASON_CHARS} characters without control characters"
                )));
            }
        }
        Ok((buyer, amount, self.reason.clone()))
    }
}

/// Refund a payment, in part (`amount`) or in full (no amount: what is left of it). The points
/// go back to the buyer's balance as a REFUND ledger entry; the order becomes
/// PARTIALLY_REFUNDED, or REFUNDED once all of it is; a `payment.refunded` event is published.
/// All of it commits in one transaction.
#[utoipa::path(
    post, path = "/payments/{paymentId}/refunds", tag = "payments", request_body = RefundRequest,
    params(("paymentId" = i64, Path, minimum = 1, description = "Payment id (positive)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key (1-255 printable ASCII)")),
    responses(
        (status = 201, description = "Refunded", body = RefundReceipt, headers(("Location" = String, description = "/payments/{paymentId}"))),
        (status = 400, description = "Malformed body, invalid ids, amount, reason or key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment for this buyer", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "Body not received within CLIENT_REQUEST_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The refunds would exceed the payment (`refund_exceeds_payment`), the balance limit (`balance_limit_exceeded`), or key reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, database unavailable or write conflict; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refund(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<JsonObject<RefundRequest>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let payment_id = extract::payment_id(&path)?;
    let (buyer, amount, reason) = body.0.0.parse(state.max_order)?;
    let key = extract::idempotency_key(&req)?;
    let request = |refund_id| Command::Refund {
        payment_id,
        refund_id,
        amount,
        reason: reason.clone(),
    };
    // The refund id is allocated per request: any placeholder gives the same fingerprint.
    let placeholder = RefundId::try_from(1).expect("1 is a valid id");
    let fingerprint = || request(placeholder).fingerprint(buyer).0;
    if let Some(answer) = committed_answer(&state, key.as_ref(), fingerprint).await? {
        return Ok(answer);
    }
    let onward = Onward {
        req: &req,
        body: json_body(&body.0.0)?,
    };
    let command = async || Ok(request(next_id(state.refund_ids.next().await)?));
    state.serve(onward, buyer, key, command).await
}
