//! Extractor configuration and request parsing helpers: every bad input becomes an ApiError.

use std::fmt;
use std::marker::PhantomData;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};
use chrono::Utc;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::deadline::is_body_timeout;
use super::{ApiError, AppState, replay};
use crate::actors::StoredResponse;
use crate::db::queries;
use crate::domain::{BuyerId, IdempotencyKey, OrderId, OrderStatus, PaymentId, Points};

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
                JsonPayloadError::Payload(e) if is_body_timeout(&e) => ApiError::BodyTimeout,
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

/// A JSON body that must be an object. serde's derived structs also accept a positional array
/// (`[1, 2]` for `{"buyerId": 1, "orderId": 2}`), which is no part of the API's contract.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectOnly(PhantomData))
            .map(JsonObject)
    }
}

pub fn buyer_id(raw: &str) -> Result<BuyerId, ApiError> {
    raw.parse().map_err(ApiError::InvalidBuyerId)
}

pub fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse().map_err(ApiError::InvalidOrderId)
}

pub fn payment_id(raw: &str) -> Result<PaymentId, ApiError> {
    raw.parse().map_err(ApiError::InvalidPaymentId)
}

/// The `point` query parameter of a charge: required, a positive integer no greater than `max`.
pub fn charge_amount(raw: Option<&str>, max: Points) -> Result<Points, ApiError> {
    let raw = raw.ok_or(ApiError::MissingPoint)?;
    Points::parse_positive(raw, max).map_err(ApiError::InvalidPoint)
}

/// Largest page of history (and of a buyer's orders or payments).
pub const HISTORY_LIMIT_MAX: i64 = 100;
const HISTORY_LIMIT_DEFAULT: i64 = 20;

/// The `limit` query parameter of a history page, or of a page of a buyer's orders or payments:
/// 1 to [`HISTORY_LIMIT_MAX`], default 20.
pub fn history_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(HISTORY_LIMIT_DEFAULT);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|n| (1..=HISTORY_LIMIT_MAX).contains(n))
        .ok_or(ApiError::InvalidLimit {
            max: HISTORY_LIMIT_MAX,
        })
}

/// The `nextCursor` of a history page whose oldest entry has `version`.
pub fn history_cursor(version: i64) -> String {
    version.to_string()
}

/// A `cursor` query parameter: absent or empty is the first page, otherwise a cursor that
/// [`history_cursor`] made (the version the next page starts below).
pub fn parse_history_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .map(Some)
            .ok_or(ApiError::InvalidCursor),
    }
}

/// A `status` query parameter: absent or empty is no filter, otherwise a status exactly as the
/// API spells it (`PAID`, not `paid`).
pub fn order_status(raw: Option<&str>) -> Result<Option<OrderStatus>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => OrderStatus::parse(raw)
            .map(Some)
            .ok_or(ApiError::InvalidStatus),
    }
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
