//! Hi/lo id allocation: ids come from blocks reserved in the database, so several engines on
//! one database never hand out the same id, and batched inserts need no RETURNING.

use std::ops::Range;
use std::sync::Mutex;

use super::{Db, DbError, queries};

pub struct IdAllocator {
    sequence: &'static str,
    block_size: i64,
    db: Db,
    current: Mutex<Range<i64>>,
    refill: tokio::sync::Mutex<()>,
}

impl IdAllocator {
    pub fn new(db: Db, sequence: &'static str, block_size: i64) -> Self {
        IdAllocator {
            sequence,
            block_size: block_size.max(1),
            db,
            current: Mutex::new(0..0),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    /// The next id, reserving a new block when the current one is used up.
    pub async fn next(&self) -> Result<i64, DbError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            // One task refills; the others wait for it and then take from the new block.
            let _refilling = self.refill.lock().await;
            if self.has_ids() {
                continue;
            }
            let (sequence, block_size) = (self.sequence, self.block_size);
            let block = self
                .db
                .run(move |conn| queries::reserve_id_block(conn, sequence, block_size))
                .await?;
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
