//! The batch as set-based statements: one per table whatever the number of buyers.
//!
//! Every statement states its expectations in its WHERE clause and the affected-row count is
//! compared with the number of writes; any shortfall (a stale fence, an order no longer
//! pending) or duplicate key rolls the whole transaction back, and the caller applies the batch
//! again the checked way, which finds out which write was refused.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::shaped::{Shaped, stamp};
use super::tx;
use super::{
    BalanceChange, WriteCommand, WriteOp, WriteResult, balance_groups, insert_committed_rows,
    insert_new_orders, is_contiguous_chain, is_refusal, not_owned,
};
use crate::db::models::IdempotencyRow;
use crate::db::schema::idempotency_keys;
use crate::domain::OrderStatus;

mod lifecycle;

/// Something in the batch was refused; roll back and apply it checked.
struct Refused;

enum Failure {
    Refused,
    Db(DieselError),
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Self {
        if is_refusal(&error) {
            Failure::Refused
        } else {
            Failure::Db(error)
        }
    }
}

impl From<Refused> for Failure {
    fn from(_: Refused) -> Self {
        Failure::Refused
    }
}

/// Commits the whole batch if nothing in it is refused. `Ok(false)`: rolled back, nothing
/// committed, apply it checked.
pub(super) fn try_commit(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let groups = balance_groups(ops);
    if !groups.iter().all(|group| is_contiguous_chain(ops, group)) {
        return Ok(false);
    }
    let all = vec![WriteResult::Committed; ops.len()];
    let outcome = tx::transaction::<(), Failure>(conn, |conn| {
        // First, so the lease rows are share-locked before anything is written.
        if !not_owned(conn, ops)?.is_empty() {
            return Err(Failure::Refused);
        }
        insert_new_orders(conn, ops, &all)?;
        insert_idempotency_records(conn, ops, now)?;
        lifecycle::cancel_orders(conn, ops)?;
        lifecycle::refund_payments(conn, ops)?;
        mark_orders_paid(conn, ops)?;
        write_balances(conn, ops, &groups, now)?;
        insert_committed_rows(conn, ops, &all)?;
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(true),
        Err(Failure::Refused) => Ok(false),
        Err(Failure::Db(error)) => Err(error),
    }
}

fn expect_rows(affected: usize, expected: usize) -> Result<(), Refused> {
    if affected == expected {
        Ok(())
    } else {
        Err(Refused)
    }
}

/// `count` copies of `one`, comma-separated (a list) or, for CASE arms, space-separated.
fn placeholders(count: usize, one: &str) -> String {
    let separator = if one.starts_with("WHEN") { " " } else { ", " };
    vec![one; count].join(separator)
}

fn insert_idempotency_records(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let records: Vec<&IdempotencyRow> = ops
        .iter()
        .filter_map(|op| op.idempotency.as_ref())
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    // Expired records no longer hold their key (pruning is lazy).
    let keys: Vec<&str> = records.iter().map(|r| r.idempotency_key.as_str()).collect();
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::idempotency_key.eq_any(&keys))
            .filter(idempotency_keys::expires_at.le(now)),
    )
    .execute(conn)?;
    diesel::insert_into(idempotency_keys::table)
        .values(records)
        .execute(conn)?;
    Ok(())
}

/// Marks the order of every payment paid, each only if still pending and the payer's.
fn mark_orders_paid(conn: &mut MysqlConnection, ops: &[WriteOp]) -> Result<(), Failure> {
    let paid: Vec<_> = ops
        .iter()
        .filter_map(|op| match &op.command {
            WriteCommand::Pay { payment, .. } => {
                Some((payment.order_id, payment.buyer_id, stamp(payment.paid_at)))
            }
            _ => None,
        })
        .collect();
    if paid.is_empty() {
        return Ok(());
    }
    let affected = Shaped::new(MARK_ORDERS_PAID)
        .rows(&paid)
        .text(OrderStatus::Pending.as_str())
        .text(OrderStatus::Paid.as_str())
        .run(conn)?;
    expect_rows(affected, paid.len())?;
    Ok(())
}

const MARK_ORDERS_PAID: &str = "UPDATE orders o JOIN JSON_TABLE(?, '$[*]' COLUMNS (\
    id BIGINT PATH '$[0]', buyer_id BIGINT PATH '$[1]', paid_at DATETIME(6) PATH '$[2]')) AS j \
    ON o.id = j.id AND o.buyer_id = j.buyer_id AND o.status = ? \
    SET o.status = ?, o.paid_at = j.paid_at";

/// One fenced write per buyer, all buyers at once: existing rows in one UPDATE that only
/// touches rows still at the expected (version, token), new buyers in one INSERT.
fn write_balances(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    groups: &[Vec<usize>],
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let mut updates = Vec::new();
    let mut inserts = Vec::new();
    for group in groups {
        let (Some(first), Some(last)) = (
            group.first().and_then(|&i| ops[i].balance_change()),
            group.last().and_then(|&i| ops[i].balance_change()),
        ) else {
            continue;
        };
        let buyer_id = ops[group[0]].buyer_id;
        match first.expected {
            Some(_) => updates.push((buyer_id, first, last)),
            None => inserts.push((buyer_id, last.balance, last.entry.version, last.fence_token)),
        }
    }
    if !inserts.is_empty() {
        Shaped::new(INSERT_BALANCES)
            .datetime(now)
            .rows(&inserts)
            .run(conn)?;
    }
    if !updates.is_empty() {
        update_balances(conn, &updates, now)?;
    }
    Ok(())
}

fn update_balances(
    conn: &mut MysqlConnection,
    updates: &[(i64, &BalanceChange, &BalanceChange)],
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let mut rows = Vec::with_capacity(updates.len());
    for (buyer_id, first, last) in updates {
        let Some(fence) = first.expected else {
            return Err(Failure::Refused);
        };
        let (balance, version, token) = (last.balance, last.entry.version, last.fence_token);
        rows.push((
            *buyer_id,
            balance,
            version,
            token,
            fence.version,
            fence.token,
        ));
    }
    // In key order, as an IN list would lock them: batches of other lanes or engines then
    // never wait for each other in a cycle.
    rows.sort_unstable_by_key(|row| row.0);
    let affected = Shaped::new(UPDATE_BALANCES)
        .rows(&rows)
        .datetime(now)
        .run(conn)?;
    expect_rows(affected, rows.len())?;
    Ok(())
}

const INSERT_BALANCES: &str = "INSERT INTO balances (buyer_id, balance, version, fence_token, \
    updated_at) SELECT j.*, ? FROM JSON_TABLE(?, '$[*]' COLUMNS (buyer_id BIGINT PATH '$[0]', \
    balance BIGINT PATH '$[1]', version BIGINT PATH '$[2]', fence_token BIGINT PATH '$[3]')) AS j";

/// Each row only if still at the version and token the write was decided on.
const UPDATE_BALANCES: &str = "UPDATE balances b JOIN JSON_TABLE(?, '$[*]' COLUMNS (\
    buyer_id BIGINT PATH '$[0]', balance BIGINT PATH '$[1]', version BIGINT PATH '$[2]', \
    fence_token BIGINT PATH '$[3]', expected_version BIGINT PATH '$[4]', \
    expected_token BIGINT PATH '$[5]')) AS j \
    ON b.buyer_id = j.buyer_id AND b.version = j.expected_version \
    AND b.fence_token = j.expected_token \
    SET b.balance = j.balance, b.version = j.version, b.fence_token = j.fence_token, \
    b.updated_at = ?";
