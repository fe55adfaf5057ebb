//! The chunk workers: one thread per connection, each taking the next range of buyer ids from
//! a shared cursor and checking it in its own snapshot; the results go back to the caller's
//! thread, which merges them (in whatever order they finish: the merge does not depend on it).
//!
//! Bounded: one connection per worker, and a result queue as long as there are workers, each
//! result holding at most `--max-findings` findings.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{AuditOptions, Checked, Chunk, Findings, books, events, in_snapshot, money};

/// What one chunk found.
pub(super) struct ChunkResult {
    pub checked: Checked,
    pub findings: Findings,
}

/// The first buyer id of the next chunk; `None` once the last chunk is taken (or on an error,
/// so that every worker stops).
type Cursor = Mutex<Option<i64>>;

/// The chunks of one audit.
pub(super) struct Jobs<'a> {
    pub options: &'a AuditOptions,
    /// Whether charges must have their events (resolved once, before the chunks).
    pub charge_events: bool,
}

impl Jobs<'_> {
    /// Checks every chunk, one worker per connection, handing each chunk's result to `merge`
    /// on this thread. Stops at the first error and returns it (workers finish the chunk they
    /// are on, and every chunk's transaction is ended).
    pub fn run(
        &self,
        conns: &mut [&mut MysqlConnection],
        mut merge: impl FnMut(ChunkResult),
    ) -> QueryResult<()> {
        let cursor: Cursor = Mutex::new(Some(self.options.buyer.unwrap_or(i64::MIN)));
        let (sender, results) = sync_channel(conns.len());
        std::thread::scope(|scope| {
            for conn in conns.iter_mut() {
                let (sender, cursor) = (sender.clone(), &cursor);
                scope.spawn(move || self.work(conn, cursor, &sender));
            }
            drop(sender);
            let mut failure = None;
            for result in results {
                match result {
                    Ok(done) if failure.is_none() => merge(done),
                    Ok(_) => {}
                    Err(error) => {
                        stop(&cursor);
                        failure.get_or_insert(error);
                    }
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }

    /// One worker: chunks from the cursor until there are none (or one failed).
    fn work(
        &self,
        conn: &mut MysqlConnection,
        cursor: &Cursor,
        results: &SyncSender<QueryResult<ChunkResult>>,
    ) {
        loop {
            let result = match self.take(conn, cursor) {
                Ok(None) => return,
                Ok(Some(chunk)) => in_snapshot(conn, |conn| self.check(conn, chunk)),
                Err(error) => Err(error),
            };
            let failed = result.is_err();
            if failed {
                stop(cursor);
            }
            if results.send(result).is_err() || failed {
                return;
            }
        }
    }

    /// The next chunk, and the cursor moved past it. The bound is read with the cursor held
    /// (one cheap index read), so the workers' ranges are disjoint and cover every id.
    fn take(&self, conn: &mut MysqlConnection, cursor: &Cursor) -> QueryResult<Option<Chunk>> {
        let mut next = cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(first) = *next else {
            return Ok(None);
        };
        let chunk = match self.options.buyer {
            Some(buyer) => Chunk {
                first: buyer,
                last: buyer,
            },
            None => next_chunk(conn, first, self.options.chunk_buyers)?,
        };
        *next = (self.options.buyer.is_none() && chunk.last < i64::MAX).then(|| chunk.last + 1);
        Ok(Some(chunk))
    }

    /// Every check of one chunk, in the chunk's snapshot (its own pruning watermarks too).
    fn check(&self, conn: &mut MysqlConnection, chunk: Chunk) -> QueryResult<ChunkResult> {
        let options = self.options;
        let watermarks = events::watermarks(conn)?;
        let mut findings = Findings::new(options.max_findings);
        let (mut checked, entry_kinds) =
            books::check(conn, chunk, options.max_balance, &mut findings)?;
        checked.add(money::check(conn, chunk, &entry_kinds, &mut findings)?);
        let charges = self.charge_events;
        checked.add(events::check(
            conn,
            chunk,
            &watermarks,
            charges,
            &mut findings,
        )?);
        Ok(ChunkResult { checked, findings })
    }
}

fn stop(cursor: &Cursor) {
    *cursor.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// The chunk starting at `first`: up to the `size`-th buyer with a balance row from there (the
/// last chunk runs to the end of the id space, so every row of every table is in some chunk).
fn next_chunk(conn: &mut MysqlConnection, first: i64, size: i64) -> QueryResult<Chunk> {
    #[derive(QueryableByName)]
    struct Bound {
        #[diesel(sql_type = BigInt)]
        buyer_id: i64,
    }
    let bound: Option<Bound> = diesel::sql_query(
        "SELECT buyer_id FROM balances WHERE buyer_id >= ? ORDER BY buyer_id LIMIT 1 OFFSET ?",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(size.max(1) - 1)
    .get_result(conn)
    .optional()?;
    Ok(Chunk {
        first,
        last: bound.map_or(i64::MAX, |b| b.buyer_id),
    })
}
