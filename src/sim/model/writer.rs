//! `db::writer::commit_batch` over [`Tables`], statement for statement: first the set-based
//! attempt ([`super::bulk`]), and if anything in it is refused, the checked path with a
//! savepoint per buyer group and per write.
//!
//! Mirroring the real statements rather than restating the rules is what keeps the corner
//! cases equal: which refusal wins when a write breaks two rules, what a coalesced chain checks,
//! which errors fail the whole batch.

use chrono::NaiveDateTime;

use super::ModelError;
use super::bulk;
use super::tables::{BalanceUpdate, Tables, has_status};
use crate::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow, RefundRow,
};
use crate::db::writer::{
    BalanceChange, Fence, RefundWrite, Rejection, WriteCommand, WriteOp, WriteResult,
};
use crate::domain::OrderStatus;

/// `commit_batch`: one result per op, or an error and nothing applied.
pub(super) fn commit_batch(
    tables: &mut Tables,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> Result<Vec<WriteResult>, ModelError> {
    let outcome = tables.atomically(|t| {
        if bulk::try_commit(t, ops, now)? {
            return Ok(vec![WriteResult::Committed; ops.len()]);
        }
        commit_checked(t, ops, now)
    });
    tables.commit();
    outcome
}

/// The real writer's `GroupError`.
enum GroupError {
    Rejected(Rejection),
    Db(ModelError),
}

impl From<ModelError> for GroupError {
    fn from(error: ModelError) -> Self {
        GroupError::Db(error)
    }
}

fn commit_checked(
    t: &mut Tables,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> Result<Vec<WriteResult>, ModelError> {
    let mut results = vec![WriteResult::Committed; ops.len()];
    apply_order_writes(t, ops, now, &mut results)?;
    for indices in balance_groups(ops) {
        apply_buyer_group(t, ops, &indices, now, &mut results)?;
    }
    insert_committed_rows(t, ops, &results)?;
    Ok(results)
}

/// The real writer's `lifecycle::apply_order_writes`: each creation or cancellation in a
/// savepoint with its key record.
fn apply_order_writes(
    t: &mut Tables,
    ops: &[WriteOp],
    now: NaiveDateTime,
    results: &mut [WriteResult],
) -> Result<(), ModelError> {
    for (index, op) in ops.iter().enumerate() {
        if results[index] != WriteResult::Committed || balance_change(op).is_some() {
            continue;
        }
        let applied = t.atomically(|t| {
            if let Some(record) = &op.idempotency {
                insert_idempotency_record(t, record, now)?;
            }
            match &op.command {
                WriteCommand::CreateOrder(order) => Ok(t.insert_orders(&[order])?),
                &WriteCommand::Cancel {
                    order_id,
                    cancelled_at,
                } => cancel_order(t, op.buyer_id, order_id, cancelled_at),
                _ => Ok(()),
            }
        });
        results[index] = match applied {
            Ok(()) => WriteResult::Committed,
            Err(GroupError::Rejected(rejection)) => WriteResult::Rejected(rejection),
            // A duplicate order id is the engine's bug, not a request's: the batch fails.
            Err(GroupError::Db(error)) => return Err(error),
        };
    }
    Ok(())
}

fn cancel_order(
    t: &mut Tables,
    buyer_id: i64,
    order_id: i64,
    at: NaiveDateTime,
) -> Result<(), GroupError> {
    if t.cancel_order(buyer_id, order_id, at) {
        return Ok(());
    }
    Err(GroupError::Rejected(match t.orders.get(&order_id) {
        Some(order) if order.buyer_id == buyer_id && order.status.is_paid() => {
            Rejection::OrderAlreadyPaid
        }
        Some(order) if order.buyer_id == buyer_id => Rejection::StaleFence,
        _ => Rejection::OrderNotFound,
    }))
}

pub(super) fn insert_new_orders(t: &mut Tables, ops: &[WriteOp]) -> Result<(), ModelError> {
    let rows: Vec<&OrderRow> = ops
        .iter()
        .filter_map(|op| match &op.command {
            WriteCommand::CreateOrder(order) => Some(order),
            _ => None,
        })
        .collect();
    t.insert_orders(&rows)
}

/// Indices of the balance-changing ops, grouped by buyer in order of first appearance, each
/// group in submission order.
pub(super) fn balance_groups(ops: &[WriteOp]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        if balance_change(op).is_none() {
            continue;
        }
        match groups.iter_mut().find(|(buyer, _)| *buyer == op.buyer_id) {
            Some((_, group)) => group.push(index),
            None => groups.push((op.buyer_id, vec![index])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

pub(super) fn balance_change(op: &WriteOp) -> Option<&BalanceChange> {
    match &op.command {
        WriteCommand::Charge(change)
        | WriteCommand::Pay { change, .. }
        | WriteCommand::Refund(RefundWrite { change, .. }) => Some(change),
        WriteCommand::CreateOrder(_) | WriteCommand::Cancel { .. } => None,
    }
}

/// The fence a change leaves behind.
pub(super) fn fence_after(change: &BalanceChange) -> Fence {
    Fence {
        version: change.entry.version,
        token: change.fence_token,
    }
}

/// Whether each write of the group expects exactly the state the previous one leaves.
pub(super) fn is_contiguous_chain(ops: &[WriteOp], indices: &[usize]) -> bool {
    indices.windows(2).all(|pair| {
        match (balance_change(&ops[pair[0]]), balance_change(&ops[pair[1]])) {
            (Some(prev), Some(next)) => next.expected == Some(fence_after(prev)),
            _ => false,
        }
    })
}

/// The buyer's writes as one coalesced step if they form a chain; otherwise, or if that is
/// refused, one by one, each in its own savepoint.
fn apply_buyer_group(
    t: &mut Tables,
    ops: &[WriteOp],
    indices: &[usize],
    now: NaiveDateTime,
    results: &mut [WriteResult],
) -> Result<(), ModelError> {
    if is_contiguous_chain(ops, indices) {
        match t.atomically(|t| apply_writes(t, ops, indices, now)) {
            Ok(()) => return Ok(()),
            Err(GroupError::Db(error)) if !is_refusal(&error) => return Err(error),
            Err(_) => {}
        }
    }
    for &index in indices {
        results[index] = match t.atomically(|t| apply_writes(t, ops, &[index], now)) {
            Ok(()) => WriteResult::Committed,
            Err(GroupError::Rejected(rejection)) => WriteResult::Rejected(rejection),
            // A duplicate order id is the engine's bug, not a request's: the batch fails.
            Err(GroupError::Db(error)) => return Err(error),
        };
    }
    Ok(())
}

/// Idempotency records, order updates, then one fenced balance write for the whole chain:
/// only the last write's balance meets the CHECK constraints.
fn apply_writes(
    t: &mut Tables,
    ops: &[WriteOp],
    indices: &[usize],
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    for &index in indices {
        let op = &ops[index];
        if let Some(record) = &op.idempotency {
            insert_idempotency_record(t, record, now)?;
        }
        match &op.command {
            WriteCommand::Pay { payment, .. } => mark_order_paid(t, payment)?,
            WriteCommand::Refund(refund) => refund_payment(t, op.buyer_id, refund)?,
            _ => {}
        }
    }
    let (Some(first), Some(last)) = (
        indices.first().and_then(|&i| balance_change(&ops[i])),
        indices.last().and_then(|&i| balance_change(&ops[i])),
    ) else {
        return Ok(());
    };
    write_balance(t, ops[indices[0]].buyer_id, first.expected, last, now)
}

fn insert_idempotency_record(
    t: &mut Tables,
    record: &IdempotencyRow,
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    t.delete_expired_keys(&[record.idempotency_key.as_str()], now);
    match t.insert_keys(&[record]) {
        Ok(()) => Ok(()),
        Err(error) if is_refusal(&error) => match t.live_key(&record.idempotency_key, now) {
            Some(existing) => Err(GroupError::Rejected(Rejection::IdempotencyKeyUsed(
                Box::new(existing.clone()),
            ))),
            None => Err(GroupError::Db(error)),
        },
        Err(error) => Err(error.into()),
    }
}

fn mark_order_paid(t: &mut Tables, payment: &PaymentRow) -> Result<(), GroupError> {
    if t.mark_orders_paid(&[payment]) == 1 {
        return Ok(());
    }
    let rejection = match t.orders.get(&payment.order_id) {
        Some(order) if order.buyer_id == payment.buyer_id && order.status.is_paid() => {
            Rejection::OrderAlreadyPaid
        }
        Some(order)
            if order.buyer_id == payment.buyer_id && has_status(order, OrderStatus::Cancelled) =>
        {
            Rejection::OrderCancelled
        }
        _ => Rejection::OrderNotFound,
    };
    Err(GroupError::Rejected(rejection))
}

/// The real writer's `lifecycle::try_refund`: the payment fenced on the refunded total the
/// refund was decided on, then its order's status; whether the payment was as expected.
pub(super) fn try_refund(
    t: &mut Tables,
    buyer_id: i64,
    refund: &RefundWrite,
) -> Result<bool, ModelError> {
    let (before, after) = (refund.refunded_before, refund.refunded_after);
    if !t.refund_payment(buyer_id, refund.row.payment_id, before, after)? {
        return Ok(false);
    }
    t.set_order_status(buyer_id, refund.row.order_id, refund.order_status);
    Ok(true)
}

fn refund_payment(t: &mut Tables, buyer_id: i64, refund: &RefundWrite) -> Result<(), GroupError> {
    if try_refund(t, buyer_id, refund)? {
        return Ok(());
    }
    Err(GroupError::Rejected(
        match t.payments.get(&refund.row.payment_id) {
            Some(payment) if payment.buyer_id == buyer_id => Rejection::StaleFence,
            _ => Rejection::PaymentNotFound,
        },
    ))
}

fn write_balance(
    t: &mut Tables,
    buyer_id: i64,
    expected: Option<Fence>,
    last: &BalanceChange,
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    let written = match expected {
        None => t
            .insert_balances(&[new_balance(buyer_id, last, now)])
            .map(|()| 1),
        Some(fence) => t.update_balances(&[balance_update(buyer_id, fence, last)], now),
    };
    match written {
        Ok(1) => Ok(()),
        Ok(_) => Err(GroupError::Rejected(Rejection::StaleFence)),
        Err(error) if is_refusal(&error) => Err(GroupError::Rejected(Rejection::StaleFence)),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn new_balance(buyer_id: i64, last: &BalanceChange, now: NaiveDateTime) -> BalanceRow {
    BalanceRow {
        buyer_id,
        balance: last.balance,
        version: last.entry.version,
        fence_token: last.fence_token,
        updated_at: now,
    }
}

pub(super) fn balance_update(buyer_id: i64, fence: Fence, last: &BalanceChange) -> BalanceUpdate {
    BalanceUpdate {
        buyer_id,
        fence,
        balance: last.balance,
        version: last.entry.version,
        fence_token: last.fence_token,
    }
}

/// Ledger entries, payments and outbox events of the committed writes, in submission order.
pub(super) fn insert_committed_rows(
    t: &mut Tables,
    ops: &[WriteOp],
    results: &[WriteResult],
) -> Result<(), ModelError> {
    let mut entries: Vec<&LedgerRow> = Vec::new();
    let mut paid: Vec<&PaymentRow> = Vec::new();
    let mut refunded: Vec<&RefundRow> = Vec::new();
    let mut events: Vec<&NewOutboxEvent> = Vec::new();
    for (op, _) in ops
        .iter()
        .zip(results)
        .filter(|(_, result)| **result == WriteResult::Committed)
    {
        events.extend(op.event.as_ref());
        match &op.command {
            WriteCommand::Charge(change) => entries.push(&change.entry),
            WriteCommand::Pay { change, payment } => {
                entries.push(&change.entry);
                paid.push(payment);
            }
            WriteCommand::Refund(refund) => {
                entries.push(&refund.change.entry);
                refunded.push(&refund.row);
            }
            WriteCommand::CreateOrder(_) | WriteCommand::Cancel { .. } => {}
        }
    }
    // The real writer skips an empty insert; an empty statement here changes nothing either,
    // and takes no `seq`.
    t.insert_ledger(&entries)?;
    t.insert_payments(&paid)?;
    t.insert_refunds(&refunded)?;
    t.insert_events(&events)
}

/// The real writer's `is_refusal`: a duplicate key. MariaDB reports a failed CHECK as error
/// 4025, which Diesel (knowing MySQL's 3819 only) does not classify as `CheckViolation`: to the
/// writer it is an error that fails the whole batch.
pub(super) fn is_refusal(error: &ModelError) -> bool {
    matches!(error, ModelError::Duplicate { .. })
}
