//! What each input must parse to, written independently of the parsers.

use serde_json::{Value, json};

use super::MAX_ORDER;
use crate::domain::{AmountParseError, IdParseError};

/// The decimal number `digits` (ASCII digits only) denotes, if it is in 1..=max.
fn decimal_in_range(digits: &str, max: i64) -> Result<i64, Ordering> {
    let significant = digits.trim_start_matches('0');
    let max_digits = max.to_string();
    if significant.is_empty() {
        return Err(Ordering::Below);
    }
    if (significant.len(), significant) > (max_digits.len(), max_digits.as_str()) {
        return Err(Ordering::Above);
    }
    Ok(significant.parse().expect("at most max's digits"))
}

#[derive(Debug, PartialEq)]
enum Ordering {
    Below,
    Above,
}

/// What a `point` string must give: the integer it denotes when in 1..=max, else the reason.
pub(super) fn expected_point(raw: &str, max: i64) -> Result<i64, AmountParseError> {
    let trimmed = raw.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountParseError::NotAnInteger);
    }
    if negative {
        return Err(AmountParseError::NotPositive);
    }
    decimal_in_range(digits, max).map_err(|o| match o {
        Ordering::Below => AmountParseError::NotPositive,
        Ordering::Above => AmountParseError::AboveMaximum { max },
    })
}

/// What an id string must give: ASCII digits only, denoting 1..=i64::MAX.
pub(super) fn expected_id(raw: &str) -> Result<i64, IdParseError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdParseError::NotAnInteger);
    }
    decimal_in_range(raw, i64::MAX).map_err(|_| IdParseError::OutOfRange)
}

/// A positive i64 field of a JSON object.
fn positive_field(object: &serde_json::Map<String, Value>, name: &str) -> Option<i64> {
    object.get(name)?.as_i64().filter(|n| *n > 0)
}

pub(super) fn expected_pay(body: &Value) -> Option<Value> {
    let object = body.as_object()?;
    let buyer = positive_field(object, "buyerId")?;
    let order = positive_field(object, "orderId")?;
    Some(json!({ "buyerId": buyer, "orderId": order }))
}

pub(super) fn expected_order(body: &Value) -> Option<Value> {
    let object = body.as_object()?;
    let buyer = positive_field(object, "buyerId")?;
    let total = positive_field(object, "totalPrice").filter(|t| *t <= MAX_ORDER)?;
    Some(json!({ "buyerId": buyer, "totalPrice": total }))
}

/// The body problem code a refused order must carry: a well-typed but out-of-range total is
/// `invalid_amount`, anything else about the body `invalid_body`.
pub(super) fn order_refusal_code(body: &Value) -> &'static str {
    let well_typed = body.as_object().is_some_and(|o| {
        positive_field(o, "buyerId").is_some() && o.get("totalPrice").is_some_and(Value::is_i64)
    });
    if well_typed {
        "invalid_amount"
    } else {
        "invalid_body"
    }
}
