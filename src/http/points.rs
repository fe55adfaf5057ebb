//! `/points`: charge, balance, history.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{self, committed_answer};
use super::routing::Onward;
use super::{ApiError, AppState, Problem};
use crate::actors::Command;
use crate::db::models::LedgerRow;
use crate::db::queries;
use crate::domain::{ChargeReceipt, EntryKind};

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChargeQuery {
    /// Points to add: a positive integer no greater than `MAX_CHARGE_POINTS` (10,000,000 by
    /// default).
    #[param(value_type = i64, required = true, minimum = 1, maximum = 10_000_000)]
    pub(super) point: Option<String>,
}

/// Charge points to a buyer (creates the balance if missing). Durable when answered.
#[utoipa::path(
    post, path = "/points/{buyerId}", tag = "points",
    params(("buyerId" = i64, Path, minimum = 1, description = "Buyer id (positive)"), ChargeQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key (1-255 printable ASCII)")),
    responses(
        (status = 200, description = "Charged", body = ChargeReceipt),
        (status = 400, description = "Invalid buyer id, point or key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Balance limit exceeded, or key reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, database unavailable or write conflict; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn charge(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ChargeQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let amount = extract::charge_amount(query.point.as_deref(), state.max_charge)?;
    let key = extract::idempotency_key(&req)?;
    let command = Command::Charge { amount };
    if let Some(answer) =
        committed_answer(&state, key.as_ref(), || command.fingerprint(buyer).0).await?
    {
        return Ok(answer);
    }
    let onward = Onward {
        req: &req,
        body: Bytes::new(),
    };
    state
        .serve(onward, buyer, key, async || Ok(command.clone()))
        .await
}

/// A buyer's balance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    buyer_id: i64,
    balance: i64,
    /// Number of ledger entries behind the balance.
    version: i64,
}

/// A buyer's committed balance (0 for a buyer never charged).
#[utoipa::path(
    get, path = "/points/{buyerId}", tag = "points",
    params(("buyerId" = i64, Path, minimum = 1, description = "Buyer id (positive)")),
    responses(
        (status = 200, description = "Balance", body = BalanceView),
        (status = 400, description = "Invalid buyer id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn balance(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let row = state
        .db
        .run(move |conn| queries::find_balance(conn, buyer.get()))
        .await
        .map_err(ApiError::from_db)?;
    let (balance, version) = row.map_or((0, 0), |row| (row.balance, row.version));
    Ok(HttpResponse::Ok().json(BalanceView {
        buyer_id: buyer.get(),
        balance,
        version,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Entries per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub(super) limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub(super) cursor: Option<String>,
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    version: i64,
    kind: EntryKind,
    /// Signed: positive for charges, negative for payments.
    amount: i64,
    balance_after: i64,
    order_id: Option<i64>,
    payment_id: Option<i64>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A page of history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    buyer_id: i64,
    entries: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// A buyer's ledger: charges and payments, newest first, cursor-paginated.
#[utoipa::path(
    get, path = "/points/history/{buyerId}", tag = "points",
    params(("buyerId" = i64, Path, minimum = 1, description = "Buyer id (positive)"), HistoryQuery),
    responses(
        (status = 200, description = "A page of history", body = HistoryPage),
        (status = 400, description = "Invalid buyer id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = extract::buyer_id(&path)?;
    let limit = extract::history_limit(query.limit.as_deref())?;
    let before = extract::parse_history_cursor(query.cursor.as_deref())?;
    let mut rows = state
        .db
        .run(move |conn| queries::history(conn, buyer.get(), before, limit + 1))
        .await
        .map_err(ApiError::from_db)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|row| extract::history_cursor(row.version))
    } else {
        None
    };
    let entries = rows.into_iter().map(history_entry).collect();
    Ok(HttpResponse::Ok().json(HistoryPage {
        buyer_id: buyer.get(),
        entries,
        next_cursor,
    }))
}

fn history_entry(row: LedgerRow) -> HistoryEntry {
    HistoryEntry {
        version: row.version,
        kind: row.kind,
        amount: row.amount,
        balance_after: row.balance_after,
        order_id: row.order_id,
        payment_id: row.payment_id,
        created_at: row.created_at.and_utc(),
    }
}
