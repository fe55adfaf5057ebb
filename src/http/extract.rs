//! Extractor configuration and request parsing helpers: every bad input becomes an ApiError.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};
use chrono::Utc;

use super::{ApiError, AppState, replay};
use crate::actors::StoredResponse;
use crate::db::queries;
use crate::domain::{BuyerId, IdempotencyKey, OrderId};

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| {
            let api_error = match error {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge { limit }
                }
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::Deserialize(e) => {
                    ApiError::InvalidBody(format!("invalid JSON body: {e}"))
                }
                JsonPayloadError::Serialize(_) => ApiError::Internal,
                other => ApiError::InvalidBody(format!("cannot read the body: {other}")),
            };
            api_error.into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let QueryPayloadError::Deserialize(e) = &error else {
            return ApiError::InvalidQuery("invalid query string".to_owned()).into();
        };
        ApiError::InvalidQuery(format!("invalid query string: {e}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error: PathError, _req| {
        ApiError::InvalidQuery(format!("invalid path: {error}")).into()
    })
}

pub fn buyer_id(raw: &str) -> Result<BuyerId, ApiError> {
    raw.parse().map_err(ApiError::InvalidBuyerId)
}

pub fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse().map_err(ApiError::InvalidOrderId)
}

/// The optional Idempotency-Key header.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey(
            "send one Idempotency-Key header".to_owned(),
        ));
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(|e| ApiError::InvalidIdempotencyKey(e.to_string()))
}

/// The committed answer for `key`, if any: replayed when the request matches, refused when not.
pub async fn committed_answer(
    state: &AppState,
    key: Option<&IdempotencyKey>,
    fingerprint: impl FnOnce() -> String,
) -> Result<Option<actix_web::HttpResponse>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let lookup = key.as_str().to_owned();
    let record = state
        .db
        .run(move |conn| queries::find_idempotency_record(conn, &lookup, Utc::now().naive_utc()))
        .await
        .map_err(ApiError::from_db)?;
    match record {
        None => Ok(None),
        Some(row) if row.fingerprint == fingerprint() => {
            Ok(Some(replay(StoredResponse::from_row(&row))))
        }
        Some(_) => Err(ApiError::IdempotencyKeyMismatch),
    }
}
