//! The payment coordinator: how much it commits at once and how much it queues.

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

    /// Most writes waiting for or in a commit; beyond it requests answer 503.
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
