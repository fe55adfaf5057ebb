//! Plain query functions. Each takes a connection so callers can compose them in a transaction.

use std::ops::Range;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned, Varchar};

use super::models::{BalanceRow, IdempotencyRow, LedgerRow, OrderRow, PaymentRow};
use super::schema::{balances, idempotency_keys, ledger_entries, orders, payments};

pub fn find_balance(conn: &mut MysqlConnection, buyer_id: i64) -> QueryResult<Option<BalanceRow>> {
    balances::table
        .find(buyer_id)
        .select(BalanceRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_order(conn: &mut MysqlConnection, order_id: i64) -> QueryResult<Option<OrderRow>> {
    orders::table
        .find(order_id)
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_payment(
    conn: &mut MysqlConnection,
    payment_id: i64,
) -> QueryResult<Option<PaymentRow>> {
    payments::table
        .find(payment_id)
        .select(PaymentRow::as_select())
        .first(conn)
        .optional()
}

/// Ledger entries of a buyer, newest first, with versions below `before_version` if given.
pub fn history(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    before_version: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LedgerRow>> {
    let mut query = ledger_entries::table
        .filter(ledger_entries::buyer_id.eq(buyer_id))
        .select(LedgerRow::as_select())
        .order(ledger_entries::version.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before_version {
        query = query.filter(ledger_entries::version.lt(before));
    }
    query.load(conn)
}

/// An unexpired Idempotency-Key record.
pub fn find_idempotency_record(
    conn: &mut MysqlConnection,
    key: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<IdempotencyRow>> {
    idempotency_keys::table
        .find(key)
        .filter(idempotency_keys::expires_at.gt(now))
        .select(IdempotencyRow::as_select())
        .first(conn)
        .optional()
}

/// Deletes up to `limit` expired Idempotency-Key records; returns how many went.
pub fn prune_idempotency_records(
    conn: &mut MysqlConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM idempotency_keys WHERE expires_at <= ? LIMIT ?")
        .bind::<diesel::sql_types::Datetime, _>(now)
        .bind::<BigInt, _>(limit)
        .execute(conn)
}

/// Reserves the next `block_size` ids of sequence `name` with a single atomic UPDATE.
pub fn reserve_id_block(
    conn: &mut MysqlConnection,
    name: &str,
    block_size: i64,
) -> QueryResult<Range<i64>> {
    // LAST_INSERT_ID(expr) stores expr for this connection: the UPDATE both moves the sequence and
    // tells us where it ended, without a transaction or a second round of locking.
    let updated = diesel::sql_query(
        "UPDATE id_blocks SET next_value = LAST_INSERT_ID(next_value + ?) WHERE name = ?",
    )
    .bind::<BigInt, _>(block_size)
    .bind::<Varchar, _>(name)
    .execute(conn)?;
    if updated != 1 {
        return Err(diesel::result::Error::NotFound);
    }
    let end: u64 = diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("LAST_INSERT_ID()"))
        .get_result(conn)?;
    let end = i64::try_from(end).map_err(|_| diesel::result::Error::NotFound)?;
    Ok(end - block_size..end)
}

/// Moves a sequence past `value` (used by the demo-data seed, which inserts fixed ids).
pub fn advance_sequence_past(
    conn: &mut MysqlConnection,
    name: &str,
    value: i64,
) -> QueryResult<()> {
    diesel::sql_query("UPDATE id_blocks SET next_value = GREATEST(next_value, ?) WHERE name = ?")
        .bind::<BigInt, _>(value + 1)
        .bind::<Varchar, _>(name)
        .execute(conn)?;
    Ok(())
}

/// Cheap liveness probe of a connection.
pub fn ping(conn: &mut MysqlConnection) -> QueryResult<()> {
    diesel::select(diesel::dsl::sql::<BigInt>("1"))
        .execute(conn)
        .map(|_| ())
}
