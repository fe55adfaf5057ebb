//! The payment coordinator: how many commits it runs at once, how much each commits and how
//! much each queues.

use clap::Args;
use clap::builder::RangedU64ValueParser;

#[derive(Debug, Clone, Args)]
pub struct CoordinatorSettings {
    /// Most writes committed in one group-commit transaction.
    #[arg(
        long,
        env = "BATCH_MAX_OPS",
        global = true,
        default_value_t = 512,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096)
    )]
    pub batch_max_ops: usize,

    /// Commit lanes: group commits in flight at once, each on its own connection for a fixed
    /// share of the buyers (by shard), so one buyer's writes still commit in order.
    #[arg(
        long,
        env = "COMMIT_LANES",
        global = true,
        default_value_t = 1,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=64)
    )]
    pub commit_lanes: usize,

    /// Most writes waiting for or in a commit, per commit lane; beyond it requests answer 503.
    #[arg(
        id = "coordinator_queue_capacity",
        value_name = "COORDINATOR_QUEUE_CAPACITY",
        long = "coordinator-queue-capacity",
        env = "COORDINATOR_QUEUE_CAPACITY",
        global = true,
        default_value_t = 16384
    )]
    pub queue_capacity: usize,
}

impl CoordinatorSettings {
    /// The lanes, checked against the pool: each holds a connection while it commits, and the
    /// state loads and reads need at least one more.
    pub fn check(&self, pool_size: u32) -> Result<(), String> {
        if self.commit_lanes as u64 >= u64::from(pool_size.max(2)) {
            return Err(format!(
                "COMMIT_LANES ({}) must be below DB_POOL_SIZE ({pool_size}): each commit lane \
                 holds a connection while it commits, and state loads and reads need the rest",
                self.commit_lanes
            ));
        }
        Ok(())
    }
}
