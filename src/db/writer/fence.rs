//! The lease fence of a batch: inside its transaction, before anything is written, the lease
//! rows of the batch's shards are read with a shared lock. A write whose engine no longer holds
//! its shard at the epoch the write was decided under is refused `not_owner`; a claim of any of
//! these shards by another engine waits until the batch has committed.

use diesel::prelude::*;

use super::{Rejection, WriteOp, WriteResult};
use crate::db::leases;

/// Inside the batch's transaction: the indices of the ops whose shard lease this engine no
/// longer holds at the op's epoch (the lease rows stay share-locked until the transaction
/// ends, so no claim can overtake the batch).
pub(super) fn not_owned(conn: &mut MysqlConnection, ops: &[WriteOp]) -> QueryResult<Vec<usize>> {
    let mut fences: Vec<(i32, i64)> = Vec::new();
    let mut token = None;
    for lease in ops.iter().filter_map(|op| op.lease) {
        token = Some(lease.token);
        if !fences.contains(&(lease.shard, lease.epoch)) {
            fences.push((lease.shard, lease.epoch));
        }
    }
    let Some(token) = token else {
        return Ok(Vec::new());
    };
    let lost = leases::lost(conn, token, &fences)?;
    Ok(ops
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            op.lease
                .is_some_and(|lease| lost.contains(&(lease.shard, lease.epoch)))
        })
        .map(|(index, _)| index)
        .collect())
}

/// Marks the writes of lost leases refused `not_owner` (the checked path).
pub(super) fn refuse_not_owned(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    results: &mut [WriteResult],
) -> QueryResult<()> {
    for index in not_owned(conn, ops)? {
        results[index] = WriteResult::Rejected(Rejection::NotOwner);
    }
    Ok(())
}
