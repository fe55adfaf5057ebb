//! The lease fence of a batch: inside its transaction, before anything is written, the lease
//! rows of the batch's shards are read with a shared lock. A write whose engine no longer holds
//! its shard at the epoch the write was decided under is refused `not_owner`; a claim of any of
//! these shards by another engine waits until the batch has committed.

use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer};

use super::{Rejection, WriteOp, WriteResult};

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
    let lost = lost(conn, token, &fences)?;
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

/// Inside a batch's transaction: the (shard, epoch) pairs among `shards` that `token` no
/// longer holds (the shard is another's, free, or claimed again since). The lease rows are read
/// with a shared lock, so a claim of any of them waits until this transaction ends.
fn lost(
    conn: &mut MysqlConnection,
    token: i64,
    shards: &[(i32, i64)],
) -> QueryResult<Vec<(i32, i64)>> {
    if shards.is_empty() {
        return Ok(Vec::new());
    }
    let rows = FenceQuery::new(token, shards).load::<Held>(conn)?;
    Ok(shards
        .iter()
        .filter(|(shard, epoch)| {
            !rows
                .iter()
                .any(|row| row.shard == *shard && row.epoch == *epoch)
        })
        .copied()
        .collect())
}

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Integer)]
    shard: i32,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// The lease fence's statement. Unlike `sql_query` (which Diesel never caches) its text is
/// cached as a prepared statement: the shard list is bound, padded to a power of two with a
/// shard that does not exist, so the text takes one of a few forms and a batch pays one round
/// trip for its fence rather than a prepare, an execute and a close.
struct FenceQuery {
    token: i64,
    shards: Vec<i32>,
}

impl FenceQuery {
    fn new(token: i64, shards: &[(i32, i64)]) -> FenceQuery {
        let mut padded: Vec<i32> = shards.iter().map(|(shard, _)| *shard).collect();
        padded.resize(shards.len().next_power_of_two(), -1);
        FenceQuery {
            token,
            shards: padded,
        }
    }
}

impl QueryId for FenceQuery {
    type QueryId = ();
    // Told apart by its text, which Diesel's statement cache keys on.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for FenceQuery {
    type SqlType = diesel::sql_types::Untyped;
}

impl QueryFragment<Mysql> for FenceQuery {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql("SELECT shard, epoch FROM shard_leases WHERE owner_token = ");
        out.push_bind_param::<BigInt, _>(&self.token)?;
        out.push_sql(" AND shard IN (");
        for (index, shard) in self.shards.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Integer, _>(shard)?;
        }
        out.push_sql(") LOCK IN SHARE MODE");
        Ok(())
    }
}

impl RunQueryDsl<MysqlConnection> for FenceQuery {}
