//! The writer's set-based attempt (`db::writer::bulk`): one statement per table for the whole
//! batch, which commits only if nothing in it is refused. A duplicate key or a short row count
//! rolls it all back and the batch goes the checked way; any other error fails the batch.
//!
//! Modelled for what it decides, not only whether: the two paths differ where the real writer's
//! do (an Idempotency-Key on an order creation is stored only by this one; two writes with the
//! same key refuse it here even when the first record is already expired).

use chrono::NaiveDateTime;

use super::ModelError;
use super::tables::Tables;
use super::writer::{
    balance_change, balance_groups, balance_update, insert_committed_rows, insert_new_orders,
    is_contiguous_chain, is_refusal, new_balance, try_refund,
};
use crate::db::models::{IdempotencyRow, PaymentRow};
use crate::db::writer::{WriteCommand, WriteOp, WriteResult};

/// Something in the batch was refused: roll back and apply it checked.
enum Failure {
    Refused,
    Db(ModelError),
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        if is_refusal(&error) {
            Failure::Refused
        } else {
            Failure::Db(error)
        }
    }
}

/// Applies the whole batch if nothing in it is refused. `Ok(false)`: nothing applied.
pub(super) fn try_commit(
    t: &mut Tables,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> Result<bool, ModelError> {
    let groups = balance_groups(ops);
    if !groups.iter().all(|group| is_contiguous_chain(ops, group)) {
        return Ok(false);
    }
    let outcome = t.atomically(|t| {
        insert_new_orders(t, ops)?;
        insert_idempotency_records(t, ops, now)?;
        cancel_orders_and_refund(t, ops)?;
        mark_orders_paid(t, ops)?;
        write_balances(t, ops, &groups, now)?;
        let all = vec![WriteResult::Committed; ops.len()];
        insert_committed_rows(t, ops, &all)?;
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(true),
        Err(Failure::Refused) => Ok(false),
        Err(Failure::Db(error)) => Err(error),
    }
}

fn expect_rows(affected: usize, expected: usize) -> Result<(), Failure> {
    if affected == expected {
        Ok(())
    } else {
        Err(Failure::Refused)
    }
}

/// Every op's record, order creations' included; expired records of those keys go first.
fn insert_idempotency_records(
    t: &mut Tables,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let records: Vec<&IdempotencyRow> = ops
        .iter()
        .filter_map(|op| op.idempotency.as_ref())
        .collect();
    let keys: Vec<&str> = records.iter().map(|r| r.idempotency_key.as_str()).collect();
    t.delete_expired_keys(&keys, now);
    t.insert_keys(&records)?;
    Ok(())
}

/// Cancellations and refunds, one statement each, in submission order.
fn cancel_orders_and_refund(t: &mut Tables, ops: &[WriteOp]) -> Result<(), Failure> {
    for op in ops {
        let applied = match &op.command {
            &WriteCommand::Cancel {
                order_id,
                cancelled_at,
            } => t.cancel_order(op.buyer_id, order_id, cancelled_at),
            WriteCommand::Refund(refund) => try_refund(t, op.buyer_id, refund)?,
            _ => true,
        };
        if !applied {
            return Err(Failure::Refused);
        }
    }
    Ok(())
}

fn mark_orders_paid(t: &mut Tables, ops: &[WriteOp]) -> Result<(), Failure> {
    let paid: Vec<&PaymentRow> = ops
        .iter()
        .filter_map(|op| match &op.command {
            WriteCommand::Pay { payment, .. } => Some(payment),
            _ => None,
        })
        .collect();
    expect_rows(t.mark_orders_paid(&paid), paid.len())
}

/// New buyers' rows in one INSERT, then one fenced UPDATE of every other buyer's row.
fn write_balances(
    t: &mut Tables,
    ops: &[WriteOp],
    groups: &[Vec<usize>],
    now: NaiveDateTime,
) -> Result<(), Failure> {
    let mut updates = Vec::new();
    let mut inserts = Vec::new();
    for group in groups {
        let (Some(first), Some(last)) = (
            group.first().and_then(|&i| balance_change(&ops[i])),
            group.last().and_then(|&i| balance_change(&ops[i])),
        ) else {
            continue;
        };
        let buyer_id = ops[group[0]].buyer_id;
        match first.expected {
            Some(fence) => updates.push(balance_update(buyer_id, fence, last)),
            None => inserts.push(new_balance(buyer_id, last, now)),
        }
    }
    t.insert_balances(&inserts)?;
    if !updates.is_empty() {
        expect_rows(t.update_balances(&updates, now)?, updates.len())?;
    }
    Ok(())
}
