//! The group-commit writer: applies a batch of many buyers' writes in one transaction.
//!
//! First as a few set-based statements for the whole batch (`bulk`); if anything in it is
//! refused, that transaction is rolled back and the batch is applied again, checked: each
//! buyer's writes are applied inside a savepoint, so a write that is refused (stale fence,
//! order already paid, Idempotency-Key taken) is rolled back alone while the rest of the batch
//! commits. Every balance change is fenced on the version and token its author last saw, so a
//! write that depended on a refused one is refused too.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

mod bulk;
mod fence;
mod lifecycle;
mod plan;
mod rows;
mod shaped;

use shaped::{Shaped, stamp};
mod tx;

use super::models::{
    BalanceRow, IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow, RefundRow,
};
use super::queries;
use super::schema::{balances, idempotency_keys};
use crate::domain::OrderStatus;

pub use super::leases::ShardLease;

pub use crate::domain::buyer::Fence;
use fence::not_owned;
pub use plan::{known_order, known_payment, stored_balance};
pub(super) use rows::insert_committed_rows;

/// A change of one buyer's balance and the ledger entry recording it.
#[derive(Debug, Clone)]
pub struct BalanceChange {
    /// `None`: the buyer has no balance row yet and this write creates it.
    pub expected: Option<Fence>,
    pub balance: i64,
    pub fence_token: i64,
    pub entry: LedgerRow,
}

impl BalanceChange {
    fn fence_after(&self) -> Fence {
        Fence {
            version: self.entry.version,
            token: self.fence_token,
        }
    }
}

#[derive(Debug, Clone)]
pub enum WriteCommand {
    Charge(BalanceChange),
    Pay {
        change: BalanceChange,
        payment: PaymentRow,
    },
    CreateOrder(OrderRow),
    /// A PENDING order of the op's buyer becomes CANCELLED.
    Cancel {
        order_id: i64,
        cancelled_at: NaiveDateTime,
    },
    Refund(RefundWrite),
}

/// A refund: its balance change and row, and the payment's refunded total it moves from
/// `refunded_before` (which the payment must still show) to `refunded_after`, leaving the order
/// `order_status`.
#[derive(Debug, Clone)]
pub struct RefundWrite {
    pub change: BalanceChange,
    pub row: RefundRow,
    pub refunded_before: i64,
    pub refunded_after: i64,
    pub order_status: OrderStatus,
}

/// One request's writes, built by its buyer's actor.
#[derive(Debug, Clone)]
pub struct WriteOp {
    pub buyer_id: i64,
    pub command: WriteCommand,
    pub idempotency: Option<IdempotencyRow>,
    /// The outbox event this write emits, committed with it (payments; charges if enabled).
    pub event: Option<NewOutboxEvent>,
    /// The shard lease this write was decided under: it commits only if its engine still
    /// holds the buyer's shard at that epoch. `None`: not fenced by a lease (tools, tests).
    pub lease: Option<ShardLease>,
}

impl WriteOp {
    pub(super) fn balance_change(&self) -> Option<&BalanceChange> {
        match &self.command {
            WriteCommand::Charge(change)
            | WriteCommand::Pay { change, .. }
            | WriteCommand::Refund(RefundWrite { change, .. }) => Some(change),
            WriteCommand::CreateOrder(_) | WriteCommand::Cancel { .. } => None,
        }
    }
}

/// Why one write was refused while its batch committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The balance row is not at the version/token the writer expected: another writer (or a
    /// refused earlier write of the same buyer) got in between.
    StaleFence,
    OrderNotFound,
    OrderAlreadyPaid,
    /// A payment found its order CANCELLED.
    OrderCancelled,
    /// A refund's payment is missing or another buyer's.
    PaymentNotFound,
    /// The Idempotency-Key already has a committed record (returned for replay or mismatch).
    IdempotencyKeyUsed(Box<IdempotencyRow>),
    /// This engine no longer holds the buyer's shard at the epoch the write was decided under:
    /// another engine owns the buyer now.
    NotOwner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    Committed,
    Rejected(Rejection),
}

enum GroupError {
    Rejected(Rejection),
    Db(DieselError),
}

impl From<DieselError> for GroupError {
    fn from(error: DieselError) -> Self {
        GroupError::Db(error)
    }
}

/// Applies `ops` in one transaction; one result per op, in order. An `Err` means nothing
/// committed (or, for an error of COMMIT itself, that the outcome is unknown).
pub fn commit_batch(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> QueryResult<Vec<WriteResult>> {
    // The common case, nothing refused, takes a handful of set-based statements whatever the
    // batch size; only a batch with a refusal pays for savepoints and per-buyer statements.
    if bulk::try_commit(conn, ops, now)? {
        return Ok(vec![WriteResult::Committed; ops.len()]);
    }
    commit_checked(conn, ops, now)
}

/// The batch with one savepoint per buyer, so each refusal fails only its own writes.
fn commit_checked(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    now: NaiveDateTime,
) -> QueryResult<Vec<WriteResult>> {
    conn.transaction(|conn| {
        let mut results = vec![WriteResult::Committed; ops.len()];
        fence::refuse_not_owned(conn, ops, &mut results)?;
        lifecycle::apply_order_writes(conn, ops, now, &mut results)?;
        for mut indices in balance_groups(ops) {
            indices.retain(|&index| results[index] == WriteResult::Committed);
            apply_buyer_group(conn, ops, &indices, now, &mut results)?;
        }
        insert_committed_rows(conn, ops, &results)?;
        Ok(results)
    })
}

/// Orders go first: a payment (or a cancellation) later in the same batch may find one of
/// them. Only those of writes still to commit (`results`).
pub(super) fn insert_new_orders(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    results: &[WriteResult],
) -> QueryResult<()> {
    let rows: Vec<_> = ops
        .iter()
        .zip(results)
        .filter(|(_, result)| **result == WriteResult::Committed)
        .filter_map(|(op, _)| match &op.command {
            WriteCommand::CreateOrder(order) => Some(order_row(order)),
            _ => None,
        })
        .collect();
    if !rows.is_empty() {
        Shaped::new(INSERT_ORDERS).rows(&rows).run(conn)?;
    }
    Ok(())
}

type OrderColumns = (
    i64,
    i64,
    i64,
    &'static str,
    String,
    Option<String>,
    Option<String>,
);

fn order_row(order: &OrderRow) -> OrderColumns {
    let (paid, cancelled) = (order.paid_at.map(stamp), order.cancelled_at.map(stamp));
    let (id, buyer, total) = (order.id, order.buyer_id, order.total_price);
    let created = stamp(order.created_at);
    (
        id,
        buyer,
        total,
        order.status.as_str(),
        created,
        paid,
        cancelled,
    )
}

const INSERT_ORDERS: &str = "INSERT INTO orders (id, buyer_id, total_price, status, created_at, \
    paid_at, cancelled_at) SELECT * FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', \
    buyer_id BIGINT PATH '$[1]', total_price BIGINT PATH '$[2]', status VARCHAR(16) PATH '$[3]', \
    created_at DATETIME(6) PATH '$[4]', paid_at DATETIME(6) PATH '$[5]', \
    cancelled_at DATETIME(6) PATH '$[6]')) AS j";

/// Indices of the balance-changing ops, grouped by buyer, each group in submission order.
pub(super) fn balance_groups(ops: &[WriteOp]) -> Vec<Vec<usize>> {
    let mut position = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        if op.balance_change().is_none() {
            continue;
        }
        let slot = *position.entry(op.buyer_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(index);
    }
    groups
}

/// Tries the buyer's writes as one coalesced step; if any is refused, retries them one by one so
/// that only the refused write (and those depending on it, through their fences) fail.
fn apply_buyer_group(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    indices: &[usize],
    now: NaiveDateTime,
    results: &mut [WriteResult],
) -> QueryResult<()> {
    if is_contiguous_chain(ops, indices) {
        match conn.transaction(|conn| apply_writes(conn, ops, indices, now)) {
            Ok(()) => return Ok(()),
            Err(GroupError::Db(error)) if !is_refusal(&error) => return Err(error),
            Err(_) => {}
        }
    }
    for &index in indices {
        results[index] = match conn.transaction(|conn| apply_writes(conn, ops, &[index], now)) {
            Ok(()) => WriteResult::Committed,
            Err(GroupError::Rejected(rejection)) => WriteResult::Rejected(rejection),
            Err(GroupError::Db(error)) if is_refusal(&error) => {
                WriteResult::Rejected(Rejection::StaleFence)
            }
            Err(GroupError::Db(error)) => return Err(error),
        };
    }
    Ok(())
}

/// Whether each write expects exactly the state the previous one leaves.
pub(super) fn is_contiguous_chain(ops: &[WriteOp], indices: &[usize]) -> bool {
    indices.windows(2).all(|pair| {
        let (Some(prev), Some(next)) =
            (ops[pair[0]].balance_change(), ops[pair[1]].balance_change())
        else {
            return false;
        };
        next.expected == Some(prev.fence_after())
    })
}

/// Idempotency records, order and payment updates, then one fenced balance write for the whole
/// chain.
fn apply_writes(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    indices: &[usize],
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    for &index in indices {
        let op = &ops[index];
        if let Some(record) = &op.idempotency {
            insert_idempotency_record(conn, record, now)?;
        }
        match &op.command {
            WriteCommand::Pay { payment, .. } => lifecycle::mark_order_paid(conn, payment)?,
            WriteCommand::Refund(refund) => lifecycle::refund_payment(conn, op.buyer_id, refund)?,
            _ => {}
        }
    }
    let (Some(first), Some(last)) = (
        indices.first().and_then(|&i| ops[i].balance_change()),
        indices.last().and_then(|&i| ops[i].balance_change()),
    ) else {
        return Ok(());
    };
    write_balance(conn, ops[indices[0]].buyer_id, first.expected, last, now)
}

fn insert_idempotency_record(
    conn: &mut MysqlConnection,
    record: &IdempotencyRow,
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    // An expired record may still be there (pruning is lazy): it no longer holds the key.
    diesel::delete(
        idempotency_keys::table
            .find(&record.idempotency_key)
            .filter(idempotency_keys::expires_at.le(now)),
    )
    .execute(conn)?;
    match diesel::insert_into(idempotency_keys::table)
        .values(record)
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(error) if is_refusal(&error) => {
            match queries::find_idempotency_record(conn, &record.idempotency_key, now)? {
                Some(existing) => Err(GroupError::Rejected(Rejection::IdempotencyKeyUsed(
                    Box::new(existing),
                ))),
                None => Err(GroupError::Db(error)),
            }
        }
        Err(error) => Err(error.into()),
    }
}

fn write_balance(
    conn: &mut MysqlConnection,
    buyer_id: i64,
    expected: Option<Fence>,
    last: &BalanceChange,
    now: NaiveDateTime,
) -> Result<(), GroupError> {
    let written = match expected {
        None => diesel::insert_into(balances::table)
            .values(BalanceRow {
                buyer_id,
                balance: last.balance,
                version: last.entry.version,
                fence_token: last.fence_token,
                updated_at: now,
            })
            .execute(conn),
        Some(fence) => diesel::update(
            balances::table
                .find(buyer_id)
                .filter(balances::version.eq(fence.version))
                .filter(balances::fence_token.eq(fence.token)),
        )
        .set((
            balances::balance.eq(last.balance),
            balances::version.eq(last.entry.version),
            balances::fence_token.eq(last.fence_token),
            balances::updated_at.eq(now),
        ))
        .execute(conn),
    };
    match written {
        Ok(1) => Ok(()),
        Ok(_) => Err(GroupError::Rejected(Rejection::StaleFence)),
        Err(error) if is_refusal(&error) => Err(GroupError::Rejected(Rejection::StaleFence)),
        Err(error) => Err(error.into()),
    }
}

/// A refusal by a constraint (duplicate key): the statement was rolled back, the transaction
/// goes on. Anything else (deadlock, lost connection) fails the whole batch.
pub(super) fn is_refusal(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::CheckViolation,
            _
        )
    )
}
