use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An amount of points. Always an integer; arithmetic is checked and never wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Points(i64);

/// Why a requested amount is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("must be a positive integer number of points")]
    NotAnInteger,
    #[error("must be at least 1")]
    NotPositive,
    #[error("must be at most {max}")]
    AboveMaximum { max: i64 },
}

impl Points {
    pub const ZERO: Points = Points(0);

    /// Wraps a stored (trusted) amount.
    pub const fn new(value: i64) -> Self {
        Points(value)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0.checked_add(other.0).map(Points)
    }

    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0.checked_sub(other.0).map(Points)
    }

    /// Parses a caller-supplied positive amount no greater than `max`.
    pub fn parse_positive(s: &str, max: Points) -> Result<Points, AmountParseError> {
        let s = s.trim();
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountParseError::NotAnInteger);
        }
        match s.parse::<i64>() {
            // A well-formed integer that overflows i64 is above any configurable maximum.
            Err(_) if s.starts_with('-') => Err(AmountParseError::NotPositive),
            Err(_) => Err(AmountParseError::AboveMaximum { max: max.0 }),
            Ok(value) => Points::positive(value, max),
        }
    }

    /// Checks a caller-supplied amount: positive and no greater than `max`.
    pub fn positive(value: i64, max: Points) -> Result<Points, AmountParseError> {
        if value <= 0 {
            Err(AmountParseError::NotPositive)
        } else if value > max.0 {
            Err(AmountParseError::AboveMaximum { max: max.0 })
        } else {
            Ok(Points(value))
        }
    }
}

impl FromStr for Points {
    type Err = AmountParseError;

    /// Parses any positive amount (bounded only by i64).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Points::parse_positive(s, Points(i64::MAX))
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Points = Points(1_000_000);

    #[test]
    fn amounts_outside_one_to_max_are_rejected() {
        assert_eq!(
            Points::parse_positive("0", MAX),
            Err(AmountParseError::NotPositive)
        );
        assert_eq!(
            Points::parse_positive("-5", MAX),
            Err(AmountParseError::NotPositive)
        );
        assert_eq!(
            Points::parse_positive("1000001", MAX),
            Err(AmountParseError::AboveMaximum { max: 1_000_000 })
        );
        assert_eq!(
            Points::parse_positive("99999999999999999999", MAX),
            Err(AmountParseError::AboveMaximum { max: 1_000_000 })
        );
        assert_eq!(
            Points::parse_positive("1.5", MAX),
            Err(AmountParseError::NotAnInteger)
        );
        assert_eq!(
            Points::parse_positive("", MAX),
            Err(AmountParseError::NotAnInteger)
        );
        assert_eq!(
            Points::parse_positive("1e3", MAX),
            Err(AmountParseError::NotAnInteger)
        );
        assert_eq!(
            Points::parse_positive("1000000", MAX),
            Ok(Points(1_000_000))
        );
    }

    proptest! {
        #[test]
        fn parsing_accepts_exactly_one_to_max(n in any::<i64>()) {
            let parsed = Points::parse_positive(&n.to_string(), MAX);
            prop_assert_eq!(parsed.is_ok(), (1..=MAX.0).contains(&n));
        }

        #[test]
        fn checked_arithmetic_never_wraps(a in any::<i64>(), b in any::<i64>()) {
            let sum = Points(a).checked_add(Points(b));
            prop_assert_eq!(sum.map(Points::get), a.checked_add(b));
            let diff = Points(a).checked_sub(Points(b));
            prop_assert_eq!(diff.map(Points::get), a.checked_sub(b));
        }
    }
}
