//! The enums stored as text columns, typed down to the column: a row carries an `OrderStatus`,
//! not a string, and a status the engine does not know fails the read (a bug, 500) instead of
//! travelling on as text.
//!
//! The impls live here rather than as derives on the domain types so that `domain` stays free
//! of Diesel. Each type is written with its `as_str()` and read with its `parse()`: the column
//! holds exactly the wire spelling the API and the CHECK constraints of the migrations use.

use diesel::deserialize::{self, FromSql, Queryable};
use diesel::dsl::AsExprOf;
use diesel::expression::AsExpression;
use diesel::mysql::{Mysql, MysqlValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use super::models::OutboxStatus;
use crate::domain::{EntryKind, OrderStatus};

/// `ToSql`, `FromSql`, `Queryable` and `AsExpression` for `Text` (`VARCHAR`) columns, for a
/// type with `as_str(self) -> &'static str` and `parse(&str) -> Option<Self>`.
macro_rules! text_column {
    ($($ty:ident),* $(,)?) => {$(
        impl ToSql<Text, Mysql> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
                <str as ToSql<Text, Mysql>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Mysql> for $ty {
            fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                $ty::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($ty)).into())
            }
        }

        impl Queryable<Text, Mysql> for $ty {
            type Row = Self;

            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }

        impl AsExpression<Text> for $ty {
            type Expression = AsExprOf<&'static str, Text>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Text>::as_expression(self.as_str())
            }
        }

        impl AsExpression<Text> for &$ty {
            type Expression = AsExprOf<&'static str, Text>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Text>::as_expression(self.as_str())
            }
        }
    )*};
}

text_column!(OrderStatus, EntryKind, OutboxStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_as_written() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        for kind in [EntryKind::Charge, EntryKind::Payment, EntryKind::Refund] {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        for status in [
            OutboxStatus::Pending,
            OutboxStatus::Published,
            OutboxStatus::Dead,
        ] {
            assert_eq!(OutboxStatus::parse(status.as_str()), Some(status));
        }
    }
}
