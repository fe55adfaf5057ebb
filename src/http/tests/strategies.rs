//! Strategies: inputs around every boundary the parsers have, and anything at all.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{MAX_CHARGE, MAX_ORDER};

/// Strings that look like integers, or nearly: signs, spaces, leading zeros, every magnitude up
/// to past u64, exponents and decimals; and anything at all.
pub(super) fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0i64..=MAX_CHARGE + 2).prop_map(|n| n.to_string()),
        Just(i64::MAX.to_string()),
        Just("9223372036854775808".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just((i64::MIN).to_string()),
        "[ +-]{0,2}0{0,25}[0-9]{0,25}[ ]{0,2}",
        "[0-9]{1,5}[.eE_,xX][0-9]{0,3}",
        ".*",
    ]
}

/// JSON numbers around every boundary the bodies have, and values of every other type.
fn json_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (-2i64..=3).prop_map(Value::from),
        (MAX_ORDER - 1..=MAX_ORDER + 1).prop_map(Value::from),
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        ((i64::MAX as u64)..=u64::MAX).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(1.0)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        number_like().prop_map(Value::from),
        Just(json!([1])),
        Just(json!({ "value": 1 })),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("buyerId".to_owned()),
        Just("orderId".to_owned()),
        Just("totalPrice".to_owned()),
        Just("buyer_id".to_owned()),
        "[a-zA-Z]{0,8}",
    ]
}

/// Arbitrary JSON, biased toward objects with the bodies' own keys.
pub(super) fn json_body() -> impl Strategy<Value = Value> {
    let leaf = json_field();
    let any_json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        prop::collection::btree_map(key(), json_field(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        any_json,
    ]
}
