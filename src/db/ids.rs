//! Hi/lo id allocation: ids come from blocks reserved in the database, so several engines on
//! one database never hand out the same id, and batched inserts need no RETURNING.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Db, DbError, queries};

pub struct IdAllocator {
    sequence: &'static str,
    block_size: i64,
    db: Db,
    current: Mutex<Range<i64>>,
    refill: tokio::sync::Mutex<()>,
    /// Failed refills so far: a task that waited for a refill which failed fails too.
    failed_refills: AtomicU64,
}

impl IdAllocator {
    pub fn new(db: Db, sequence: &'static str, block_size: i64) -> Self {
        IdAllocator {
            sequence,
            block_size: block_size.max(1),
            db,
            current: Mutex::new(0..0),
            refill: tokio::sync::Mutex::new(()),
            failed_refills: AtomicU64::new(0),
        }
    }

    /// The next id, reserving a new block when the current one is used up.
    ///
    /// One task refills; the others wait for it and then take from the new block. When that
    /// refill fails (the database is down), the tasks that waited for it fail at once too:
    /// retrying one after another behind the lock, each for a whole checkout timeout, kept
    /// order requests waiting many times their timeout during a database outage.
    pub async fn next(&self) -> Result<i64, DbError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let failures_before = self.failed_refills.load(Ordering::Acquire);
            let _refilling = self.refill.lock().await;
            if self.has_ids() {
                continue;
            }
            if self.failed_refills.load(Ordering::Acquire) != failures_before {
                return Err(DbError::FailedConcurrently);
            }
            let (sequence, block_size) = (self.sequence, self.block_size);
            let block = self
                .db
                .run(move |conn| queries::reserve_id_block(conn, sequence, block_size))
                .await
                .inspect_err(|_| {
                    self.failed_refills.fetch_add(1, Ordering::AcqRel);
                })?;
            *self
                .current
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = block;
        }
    }

    fn take(&self) -> Option<i64> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .next()
    }

    fn has_ids(&self) -> bool {
        !self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }
}
