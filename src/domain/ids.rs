use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string or number is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    #[error("must be a positive integer")]
    NotAnInteger,
    #[error("must be between 1 and {max}", max = i64::MAX)]
    OutOfRange,
}

macro_rules! positive_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// The id as stored in the database.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdParseError;

            fn try_from(value: i64) -> Result<Self, Self::Error> {
                if value > 0 { Ok(Self(value)) } else { Err(IdParseError::OutOfRange) }
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdParseError::NotAnInteger);
                }
                let value: i64 = s.parse().map_err(|_| IdParseError::OutOfRange)?;
                Self::try_from(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// A buyer, as named by the caller (the engine has no buyer registry of its own).
    BuyerId
);
positive_id!(
    /// An order; ids are allocated by the engine in blocks.
    OrderId
);
positive_id!(
    /// A payment of one order.
    PaymentId
);
positive_id!(
    /// A refund of part or all of one payment.
    RefundId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_negative_and_non_numeric_ids_are_rejected() {
        assert_eq!("0".parse::<BuyerId>(), Err(IdParseError::OutOfRange));
        assert_eq!("-1".parse::<BuyerId>(), Err(IdParseError::NotAnInteger));
        assert_eq!("abc".parse::<BuyerId>(), Err(IdParseError::NotAnInteger));
        assert_eq!("".parse::<BuyerId>(), Err(IdParseError::NotAnInteger));
        assert_eq!("+1".parse::<BuyerId>(), Err(IdParseError::NotAnInteger));
        assert_eq!(
            "9223372036854775808".parse::<BuyerId>(),
            Err(IdParseError::OutOfRange)
        );
    }

    proptest! {
        #[test]
        fn every_positive_i64_round_trips(n in 1i64..=i64::MAX) {
            let id: OrderId = n.to_string().parse().unwrap();
            prop_assert_eq!(id.get(), n);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = s.parse::<BuyerId>();
        }
    }
}
