//! The database: where it is, and how the pool hands out connections.

use std::num::ParseIntError;
use std::time::Duration;

use clap::Args;

use super::millis;
use crate::db::{DatabaseUrl, PoolSettings};

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// MySQL/MariaDB URL; the database is created if missing.
    #[arg(
        id = "database_url",
        value_name = "DATABASE_URL",
        long = "database-url",
        env = "DATABASE_URL",
        global = true,
        default_value = "mysql://root@127.0.0.1:3306/payment_engine",
        // It may hold a password: `--help` must not show the environment's value.
        hide_env_values = true,
        value_parser = DatabaseUrl::from_flag
    )]
    pub url: DatabaseUrl,

    /// Database connections in the pool (each commit lane uses one; reads and state loads the
    /// rest).
    #[arg(
        id = "db_pool_size",
        value_name = "DB_POOL_SIZE",
        long = "db-pool-size",
        env = "DB_POOL_SIZE",
        global = true,
        default_value_t = 16
    )]
    pub pool_size: u32,

    /// How long a request waits for a free database connection before answering 503.
    #[arg(
        id = "db_checkout_timeout_ms",
        value_name = "DB_CHECKOUT_TIMEOUT_MS",
        long = "db-checkout-timeout-ms",
        env = "DB_CHECKOUT_TIMEOUT_MS",
        global = true,
        default_value = "1000",
        value_parser = millis
    )]
    pub checkout_timeout: Duration,

    /// How long a statement waits for a row lock before failing.
    #[arg(
        id = "db_lock_wait_timeout_s",
        value_name = "DB_LOCK_WAIT_TIMEOUT_S",
        long = "db-lock-wait-timeout-s",
        env = "DB_LOCK_WAIT_TIMEOUT_S",
        global = true,
        default_value = "5",
        value_parser = whole_seconds
    )]
    pub lock_wait_timeout: Duration,
}

impl DatabaseSettings {
    /// The pool's settings.
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            // The writer uses one connection: at least one more serves reads and state loads.
            max_size: self.pool_size.max(2),
            checkout_timeout: self.checkout_timeout,
            lock_wait_timeout: self.lock_wait_timeout,
        }
    }
}

/// Seconds as MariaDB's `innodb_lock_wait_timeout` takes them: a whole number that fits in 32
/// bits.
fn whole_seconds(raw: &str) -> Result<Duration, ParseIntError> {
    raw.parse::<u32>()
        .map(|seconds| Duration::from_secs(seconds.into()))
}
