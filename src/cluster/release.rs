//! Giving leases up: all of them at the end of a drain, or some handed back to the engine the
//! router sends them to. Either way requests for those shards wait while it happens, and the
//! release itself waits for any batch in flight holding their lease rows; a batch after it is
//! refused `not_owner`, so its requests go to the new owner.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Cluster, NOT_HELD, Phase, RELEASING};
use crate::db::leases;

impl Cluster {
    /// SIGTERM: keep serving (and claiming) until the engine stops; ask for and hand back
    /// nothing meanwhile.
    pub fn start_draining(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Serving as u8,
            Phase::Draining as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Requests for our shards wait while `settle` finishes what is in flight (commits,
    /// events), then every lease is released at once, so other engines claim the shards on
    /// their next request. At the end of a drain (`last` false) the engine is still listening:
    /// a forwarded request now hears `not_owner` and its engine claims the shard, while a
    /// client's own request may claim a shard again (released once more when the engine has
    /// stopped, `last`; after that nothing is claimed).
    pub async fn release_all(&self, settle: impl std::future::Future<Output = ()>, last: bool) {
        if last {
            self.phase.store(Phase::Released as u8, Ordering::Release);
        }
        let shards: Vec<i32> = (0..self.options.shards as i32)
            .filter(|&shard| self.mark_releasing(shard))
            .collect();
        settle.await;
        let token = self.holder.token;
        let holder = self.holder.clone();
        let released = self
            .db
            .run(move |conn| {
                let released = leases::release(conn, token, None)?;
                leases::heartbeat(conn, &holder, true)?;
                Ok(released)
            })
            .await;
        self.clear(&shards);
        match released {
            Ok(count) => {
                self.metrics.cluster.releases.inc_by(count as u64);
                tracing::info!(shards = count, "released every shard lease");
            }
            Err(error) => {
                tracing::warn!(error = %error, "releasing the shard leases failed: they expire")
            }
        }
    }

    /// Marks a held shard as being given up; false if it was not held.
    fn mark_releasing(&self, shard: i32) -> bool {
        let slot = &self.slots[shard as usize];
        let epoch = slot.epoch.load(Ordering::Acquire);
        epoch > 0
            && slot
                .epoch
                .compare_exchange(epoch, RELEASING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn clear(&self, shards: &[i32]) {
        for &shard in shards {
            self.slots[shard as usize]
                .epoch
                .store(NOT_HELD, Ordering::Release);
        }
    }

    /// Gives up `shards` to the engines that asked for them. Requests for them wait meanwhile;
    /// the release waits for any batch in flight that holds their lease rows, and a batch after
    /// it is refused `not_owner`, so its requests go to the new owner.
    pub(super) async fn hand_back(&self, shards: Vec<i32>) {
        let shards: Vec<i32> = shards
            .into_iter()
            .filter(|&shard| self.mark_releasing(shard))
            .collect();
        let (token, list) = (self.holder.token, shards.clone());
        let released = self
            .db
            .run(move |conn| leases::release(conn, token, Some(&list)))
            .await;
        self.clear(&shards);
        match released {
            Ok(count) => {
                let metrics = &self.metrics.cluster;
                metrics.releases.inc_by(count as u64);
                metrics.handbacks.inc_by(count as u64);
                tracing::info!(shards = ?shards, "handed shards back");
            }
            Err(error) => tracing::warn!(error = %error, "handing shards back failed"),
        }
        // Wait a little before the next round asks again, so the new owners claim first.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
