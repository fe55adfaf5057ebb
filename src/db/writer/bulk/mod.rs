//! The batch as set-based statements: one per table whatever the number of buyers.
//!
//! Every statement states its expectations in its WHERE clause and the affected-row count is
//! compared with the number of writes; any shortfall (a stale fence, an order no longer
//! pending) or duplicate key rolls the whole transaction back, and the caller applies the batch
//! again the checked way, which finds out which write was refused.

use chrono::NaiveDateTime;
use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::query_builder::BoxedSqlQuery;
use diesel::query_builder::SqlQuery;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Datetime, Text};

use super::tx;
use super::{
    BalanceChange, WriteCommand, WriteOp, WriteResult, balance_groups, insert_committed_rows,
    insert_new_orders, is_contiguous_chain, is_refusal, not_owned,
};
use crate::db::models::{BalanceRow, IdempotencyRow, PaymentRow};
use crate::db::schema::{balances, idempotency_keys};
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
    let paid: Vec<&PaymentRow> = ops
        .iter()
        .filter_map(|op| match &op.command {
            WriteCommand::Pay { payment, .. } => Some(payment),
            _ => None,
        })
        .collect();
    if paid.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE orders SET status = ?, paid_at = CASE id {} END \
         WHERE id IN ({}) AND status = ? AND (id, buyer_id) IN ({})",
        placeholders(paid.len(), "WHEN ? THEN ?"),
        placeholders(paid.len(), "?"),
        placeholders(paid.len(), "(?, ?)"),
    );
    let mut query: BoxedSqlQuery<'_, Mysql, SqlQuery> = diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(OrderStatus::Paid);
    for payment in &paid {
        query = query
            .bind::<BigInt, _>(payment.order_id)
            .bind::<Datetime, _>(payment.paid_at);
    }
    for payment in &paid {
        query = query.bind::<BigInt, _>(payment.order_id);
    }
    query = query.bind::<Text, _>(OrderStatus::Pending);
    for payment in &paid {
        query = query
            .bind::<BigInt, _>(payment.order_id)
            .bind::<BigInt, _>(payment.buyer_id);
    }
    expect_rows(query.execute(conn)?, paid.len())?;
    Ok(())
}

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
            None => inserts.push(BalanceRow {
                buyer_id,
                balance: last.balance,
                version: last.entry.version,
                fence_token: last.fence_token,
                updated_at: now,
            }),
        }
    }
    if !inserts.is_empty() {
        diesel::insert_into(balances::table)
            .values(&inserts)
            .execute(conn)?;
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
    let n = updates.len();
    let sql = format!(
        "UPDATE balances SET balance = CASE buyer_id {cases} END, \
         version = CASE buyer_id {cases} END, fence_token = CASE buyer_id {cases} END, \
         updated_at = ? WHERE buyer_id IN ({ids}) AND (buyer_id, version, fence_token) IN ({fences})",
        cases = placeholders(n, "WHEN ? THEN ?"),
        ids = placeholders(n, "?"),
        fences = placeholders(n, "(?, ?, ?)"),
    );
    let mut query: BoxedSqlQuery<'_, Mysql, SqlQuery> = diesel::sql_query(sql).into_boxed();
    for (buyer_id, _, last) in updates {
        query = query
            .bind::<BigInt, _>(*buyer_id)
            .bind::<BigInt, _>(last.balance);
    }
    for (buyer_id, _, last) in updates {
        query = query
            .bind::<BigInt, _>(*buyer_id)
            .bind::<BigInt, _>(last.entry.version);
    }
    for (buyer_id, _, last) in updates {
        query = query
            .bind::<BigInt, _>(*buyer_id)
            .bind::<BigInt, _>(last.fence_token);
    }
    query = query.bind::<Datetime, _>(now);
    for (buyer_id, _, _) in updates {
        query = query.bind::<BigInt, _>(*buyer_id);
    }
    for (buyer_id, first, _) in updates {
        let Some(fence) = first.expected else {
            return Err(Failure::Refused);
        };
        query = query
            .bind::<BigInt, _>(*buyer_id)
            .bind::<BigInt, _>(fence.version)
            .bind::<BigInt, _>(fence.token);
    }
    expect_rows(query.execute(conn)?, n)?;
    Ok(())
}
