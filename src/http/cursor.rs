//! The cursors of the buyer lists (`/buyers/{buyerId}/orders`, `/buyers/{buyerId}/payments`):
//! opaque to clients, and bound to the list they were made for.
//!
//! A cursor is the id of the last item of a page (the next page starts below it, so items that
//! arrive meanwhile never shift it) and a checksum over that id and the list: its kind, buyer
//! and status filter. A cursor of another list, another buyer or another filter, or one mangled
//! on the way, fails the check and is refused with 400 `invalid_cursor` instead of silently
//! paging the wrong list. It is a checksum, not a signature: a cursor grants nothing (the list's
//! buyer and filter are in the URL), so one forged on purpose yields only a page its maker could
//! ask for anyway, and every engine of a cluster reads every other's cursors with no shared key.
//!
//! Layout: a format byte, the id and the checksum (big-endian), as lowercase hex.

use std::fmt::Write;

use super::ApiError;
use crate::domain::{BuyerId, OrderStatus};

/// The format byte; a new layout gets a new one, and old cursors then fail the check.
const FORMAT: u8 = 1;
/// Bytes in a cursor: the format byte, the id, the checksum.
const CURSOR_BYTES: usize = 1 + 8 + 8;

/// The list a cursor pages through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// A buyer's orders, of one status if given.
    Orders {
        buyer: BuyerId,
        status: Option<OrderStatus>,
    },
    /// A buyer's payments.
    Payments { buyer: BuyerId },
}

impl List {
    /// The checksum binding `id` to this list.
    fn checksum(self, id: i64) -> u64 {
        let (kind, buyer, status) = match self {
            List::Orders { buyer, status } => ("orders", buyer, status.map(OrderStatus::as_str)),
            List::Payments { buyer } => ("payments", buyer, None),
        };
        let mut hash = Fnv1a::new();
        hash.write(&[FORMAT]);
        hash.write(kind.as_bytes());
        hash.write(&[0]);
        hash.write(&buyer.get().to_be_bytes());
        hash.write(status.unwrap_or("").as_bytes());
        hash.write(&[0]);
        hash.write(&id.to_be_bytes());
        hash.finish()
    }

    /// The cursor of the page after the one whose last item has id `last_id`.
    pub fn cursor(self, last_id: i64) -> String {
        let mut bytes = Vec::with_capacity(CURSOR_BYTES);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&last_id.to_be_bytes());
        bytes.extend_from_slice(&self.checksum(last_id).to_be_bytes());
        bytes.iter().fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
    }

    /// A `cursor` query parameter: absent or empty is the first page (`None`), otherwise the id
    /// the page starts below, if [`List::cursor`] made it for this very list.
    pub fn parse_cursor(self, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
        let raw = match raw {
            None | Some("") => return Ok(None),
            Some(raw) => raw,
        };
        let bytes = decode_hex(raw).ok_or(ApiError::InvalidCursor)?;
        let (format, rest) = bytes.split_first().ok_or(ApiError::InvalidCursor)?;
        let (id, checksum) = rest.split_at(8);
        let id = i64::from_be_bytes(id.try_into().map_err(|_| ApiError::InvalidCursor)?);
        let checksum =
            u64::from_be_bytes(checksum.try_into().map_err(|_| ApiError::InvalidCursor)?);
        if *format != FORMAT || id <= 0 || checksum != self.checksum(id) {
            return Err(ApiError::InvalidCursor);
        }
        Ok(Some(id))
    }

    /// A page of `rows` read with `limit + 1`: the first `limit`, and the cursor of the next
    /// page if a row was left over.
    pub fn page<T>(
        self,
        mut rows: Vec<T>,
        limit: i64,
        id_of: impl Fn(&T) -> i64,
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(limit).unwrap_or(0);
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let next = rows.last().map(|row| self.cursor(id_of(row)));
        (rows, next)
    }
}

/// Exactly [`CURSOR_BYTES`] bytes from lowercase hex (the only spelling cursors are made in).
fn decode_hex(raw: &str) -> Option<Vec<u8>> {
    let digits = raw.as_bytes();
    if digits.len() != 2 * CURSOR_BYTES {
        return None;
    }
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// 64-bit FNV-1a: small, and fixed by its specification, so every engine and every release
/// computes the same checksum (std's `DefaultHasher` promises neither).
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn buyer(id: i64) -> BuyerId {
        BuyerId::try_from(id).unwrap()
    }

    fn orders(id: i64, status: Option<OrderStatus>) -> List {
        List::Orders {
            buyer: buyer(id),
            status,
        }
    }

    #[test]
    fn fnv1a_matches_the_specification_test_vectors() {
        for (input, expected) in [
            ("", 0xcbf2_9ce4_8422_2325),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut hash = Fnv1a::new();
            hash.write(input.as_bytes());
            assert_eq!(hash.finish(), expected, "{input:?}");
        }
    }

    #[test]
    fn a_cursor_is_refused_by_every_other_list() {
        let lists = [
            orders(1, None),
            orders(1, Some(OrderStatus::Paid)),
            orders(1, Some(OrderStatus::Pending)),
            orders(2, None),
            List::Payments { buyer: buyer(1) },
            List::Payments { buyer: buyer(2) },
        ];
        for made_for in lists {
            let cursor = made_for.cursor(42);
            for list in lists {
                let read = list.parse_cursor(Some(&cursor)).ok();
                let expected = (list == made_for).then_some(Some(42));
                assert_eq!(read, expected, "{made_for:?}'s cursor read as {list:?}'s");
            }
        }
    }

    #[test]
    fn an_empty_or_absent_cursor_is_the_first_page() {
        let list = List::Payments { buyer: buyer(1) };
        assert_eq!(list.parse_cursor(None).ok(), Some(None));
        assert_eq!(list.parse_cursor(Some("")).ok(), Some(None));
    }

    #[test]
    fn a_page_longer_than_the_limit_is_cut_and_gets_the_cursor_of_its_last_row() {
        let list = List::Payments { buyer: buyer(1) };
        assert_eq!(list.page(vec![9, 8, 7], 3, |id| *id), (vec![9, 8, 7], None));
        assert_eq!(
            list.page(vec![9, 8, 7, 6], 3, |id| *id),
            (vec![9, 8, 7], Some(list.cursor(7)))
        );
    }

    proptest! {
        #[test]
        fn every_cursor_reads_back_as_its_id(
            id in 1..=i64::MAX, buyer_id in 1..=i64::MAX, status in 0..=OrderStatus::ALL.len(),
        ) {
            let list = orders(buyer_id, OrderStatus::ALL.get(status).copied());
            let cursor = list.cursor(id);
            prop_assert_eq!(list.parse_cursor(Some(&cursor)).ok(), Some(Some(id)));
        }

        #[test]
        fn a_cursor_with_any_one_character_changed_is_refused(
            id in 1..=i64::MAX, at in 0..2 * CURSOR_BYTES, with in any::<char>(),
        ) {
            let list = List::Payments { buyer: buyer(3) };
            let cursor = list.cursor(id);
            let mut changed: Vec<char> = cursor.chars().collect();
            prop_assume!(changed[at] != with);
            changed[at] = with;
            let changed: String = changed.into_iter().collect();
            prop_assert!(matches!(list.parse_cursor(Some(&changed)), Err(ApiError::InvalidCursor)));
        }

        #[test]
        fn any_string_but_a_cursor_made_for_the_list_is_refused(raw in ".{1,40}") {
            let list = orders(5, None);
            let read = list.parse_cursor(Some(&raw));
            prop_assert!(read.is_err() || raw == list.cursor(read.unwrap().unwrap()));
        }
    }
}
