//! The buyer actors: the limits they enforce, how long they remember, how much they queue.

use std::num::ParseIntError;
use std::time::Duration;

use clap::Args;

use super::seconds;
use crate::domain::Points;

#[derive(Debug, Clone, Args)]
pub struct BuyerSettings {
    /// Largest charge accepted in one request, in points.
    #[arg(
        id = "max_charge_points",
        value_name = "MAX_CHARGE_POINTS",
        long = "max-charge-points",
        env = "MAX_CHARGE_POINTS",
        global = true,
        default_value = "10000000",
        value_parser = points
    )]
    pub max_charge: Points,

    /// Largest balance a buyer may hold, in points.
    #[arg(
        id = "max_balance_points",
        value_name = "MAX_BALANCE_POINTS",
        long = "max-balance-points",
        env = "MAX_BALANCE_POINTS",
        global = true,
        default_value = "1000000000000",
        value_parser = points
    )]
    pub max_balance: Points,

    /// Largest order total accepted, in points.
    #[arg(
        id = "max_order_points",
        value_name = "MAX_ORDER_POINTS",
        long = "max-order-points",
        env = "MAX_ORDER_POINTS",
        global = true,
        default_value = "1000000000",
        value_parser = points
    )]
    pub max_order: Points,

    /// How long an Idempotency-Key's answer is kept.
    #[arg(
        id = "idempotency_ttl_s",
        value_name = "IDEMPOTENCY_TTL_S",
        long = "idempotency-ttl-s",
        env = "IDEMPOTENCY_TTL_S",
        global = true,
        default_value = "86400",
        value_parser = seconds
    )]
    pub idempotency_ttl: Duration,

    /// A buyer actor with nothing to do for this long stops and frees its memory.
    #[arg(
        id = "buyer_idle_timeout_s",
        value_name = "BUYER_IDLE_TIMEOUT_S",
        long = "buyer-idle-timeout-s",
        env = "BUYER_IDLE_TIMEOUT_S",
        global = true,
        default_value = "60",
        value_parser = seconds
    )]
    pub idle_timeout: Duration,

    /// Most buyer actors kept in memory (0: no limit but the idle timeout). A new buyer past
    /// it first passivates the least recently used idle one; when none is idle the new buyer
    /// is served all the same, over the limit.
    #[arg(
        id = "max_live_buyers",
        value_name = "MAX_LIVE_BUYERS",
        long = "max-live-buyers",
        env = "MAX_LIVE_BUYERS",
        global = true,
        default_value_t = 50_000
    )]
    pub max_live_buyers: usize,

    /// Most requests queued for one buyer; beyond it requests answer 503.
    #[arg(
        id = "buyer_mailbox_capacity",
        value_name = "BUYER_MAILBOX_CAPACITY",
        long = "buyer-mailbox-capacity",
        env = "BUYER_MAILBOX_CAPACITY",
        global = true,
        default_value_t = 1024
    )]
    pub mailbox_capacity: usize,

    /// Threads dedicated to buyer actors (0: none; each buyer's actor lives on the HTTP worker
    /// thread that first serves it).
    #[arg(long, env = "ACTOR_THREADS", global = true, default_value_t = 0)]
    pub actor_threads: usize,
}

/// For clap: a configured amount (a limit, trusted as given).
fn points(raw: &str) -> Result<Points, ParseIntError> {
    raw.parse().map(Points::new)
}
