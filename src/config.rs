//! Every setting: a flag, an environment variable and a default (`payment-engine --help`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};

use crate::db::DatabaseUrl;
use crate::domain::Points;
use crate::http::auth::ApiTokens;
use crate::telemetry::LogFormat;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// MySQL/MariaDB URL; the database is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "mysql://root@127.0.0.1:3306/payment_engine",
        // It may hold a password: `--help` must not show the environment's value.
        hide_env_values = true,
        value_parser = DatabaseUrl::from_flag
    )]
    pub database_url: DatabaseUrl,

    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(
        long = "bind",
        env = "BIND_ADDR",
        global = true,
        default_value = "0.0.0.0:8080"
    )]
    pub bind_addr: SocketAddr,

    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "HTTP_WORKERS", global = true, default_value_t = 0)]
    pub http_workers: usize,

    /// Threads dedicated to buyer actors (0: none; each buyer's actor lives on the HTTP worker
    /// thread that first serves it).
    #[arg(long, env = "ACTOR_THREADS", global = true, default_value_t = 0)]
    pub actor_threads: usize,

    /// Database connections in the pool (the writer uses one; reads and state loads the rest).
    #[arg(long, env = "DB_POOL_SIZE", global = true, default_value_t = 16)]
    pub db_pool_size: u32,

    /// How long a request waits for a free database connection before answering 503.
    #[arg(
        long,
        env = "DB_CHECKOUT_TIMEOUT_MS",
        global = true,
        default_value_t = 1000
    )]
    pub db_checkout_timeout_ms: u64,

    /// How long a statement waits for a row lock before failing.
    #[arg(
        long,
        env = "DB_LOCK_WAIT_TIMEOUT_S",
        global = true,
        default_value_t = 5
    )]
    pub db_lock_wait_timeout_s: u32,

    /// Most writes committed in one group-commit transaction.
    #[arg(long, env = "BATCH_MAX_OPS", global = true, default_value_t = 512,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch_max_ops: u16,

    /// Most writes waiting for or in a commit; beyond it requests answer 503.
    #[arg(
        long,
        env = "COORDINATOR_QUEUE_CAPACITY",
        global = true,
        default_value_t = 16384
    )]
    pub coordinator_queue_capacity: usize,

    /// Most requests queued for one buyer; beyond it requests answer 503.
    #[arg(
        long,
        env = "BUYER_MAILBOX_CAPACITY",
        global = true,
        default_value_t = 1024
    )]
    pub buyer_mailbox_capacity: usize,

    /// Most requests served at once (all buyers together); beyond it requests answer 503 at
    /// once. Bounds the latency of accepted requests under overload (this many ÷ throughput).
    #[arg(
        long,
        env = "MAX_IN_FLIGHT_REQUESTS",
        global = true,
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_in_flight_requests: u32,

    /// A buyer actor with nothing to do for this long stops and frees its memory.
    #[arg(
        long,
        env = "BUYER_IDLE_TIMEOUT_S",
        global = true,
        default_value_t = 60
    )]
    pub buyer_idle_timeout_s: u64,

    /// Largest charge accepted in one request, in points.
    #[arg(
        long,
        env = "MAX_CHARGE_POINTS",
        global = true,
        default_value_t = 10_000_000
    )]
    pub max_charge_points: i64,

    /// Largest balance a buyer may hold, in points.
    #[arg(
        long,
        env = "MAX_BALANCE_POINTS",
        global = true,
        default_value_t = 1_000_000_000_000
    )]
    pub max_balance_points: i64,

    /// Largest order total accepted, in points.
    #[arg(
        long,
        env = "MAX_ORDER_POINTS",
        global = true,
        default_value_t = 1_000_000_000
    )]
    pub max_order_points: i64,

    /// How long a request may wait for its commit before answering 503 (the write may still
    /// commit: retry with the same Idempotency-Key to learn the outcome).
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_MS",
        global = true,
        default_value_t = 10_000
    )]
    pub request_timeout_ms: u64,

    /// How long an Idempotency-Key's answer is kept.
    #[arg(
        long,
        env = "IDEMPOTENCY_TTL_S",
        global = true,
        default_value_t = 86_400
    )]
    pub idempotency_ttl_s: u64,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "MAX_BODY_BYTES", global = true, default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// A client must send a request's head (its first request on a connection) and then its
    /// body within this long each; a slower one gets 408 and its connection is closed.
    #[arg(
        long,
        env = "CLIENT_REQUEST_TIMEOUT_MS",
        global = true,
        default_value_t = 5_000
    )]
    pub client_request_timeout_ms: u64,

    /// How long an idle keep-alive connection stays open (0: close after each answer). Keep it
    /// longer than the idle timeout of the clients and load balancers that pool connections to
    /// the engine: a server that closes an idle connection first races the client's next request
    /// on it, which then fails without an answer (actix's default of 5 s did, under k6). 75 s
    /// is nginx's default and outlasts the common 60 s of load balancers.
    #[arg(long, env = "KEEP_ALIVE_S", global = true, default_value_t = 75)]
    pub keep_alive_s: u64,

    /// On SIGTERM (or SIGINT), how long the engine keeps serving before it stops accepting
    /// connections: `/health/ready` answers 503 and every answer closes its connection meanwhile,
    /// so load balancers and clients move away. Match the load balancer's deregistration delay.
    /// A second signal ends the drain at once.
    #[arg(long, env = "SHUTDOWN_DRAIN_MS", global = true, default_value_t = 2000)]
    pub shutdown_drain_ms: u64,

    /// After the drain, how long accepted requests get to finish.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_S", global = true, default_value_t = 30)]
    pub shutdown_timeout_s: u64,

    /// Service tokens, comma-separated: when set, every route but `/health/*` and `/metrics`
    /// requires `Authorization: Bearer <one of them>` (401 otherwise). Empty: no check.
    #[arg(
        long,
        env = "API_TOKENS",
        global = true,
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        value_parser = ApiTokens::from_flag
    )]
    pub api_tokens: ApiTokens,

    #[command(flatten)]
    pub kafka: crate::events::kafka::KafkaSettings,

    /// Log output format (filter with RUST_LOG).
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl Settings {
    /// The defaults, as `payment-engine` with no flags and no environment would use.
    pub fn defaults() -> Settings {
        Defaults::parse_from(["payment-engine"]).settings
    }

    pub fn max_charge(&self) -> Points {
        Points::new(self.max_charge_points)
    }

    pub fn max_balance(&self) -> Points {
        Points::new(self.max_balance_points)
    }

    pub fn max_order(&self) -> Points {
        Points::new(self.max_order_points)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn client_request_timeout(&self) -> Duration {
        Duration::from_millis(self.client_request_timeout_ms)
    }

    pub fn keep_alive(&self) -> actix_web::http::KeepAlive {
        match self.keep_alive_s {
            0 => actix_web::http::KeepAlive::Disabled,
            seconds => Duration::from_secs(seconds).into(),
        }
    }

    pub fn buyer_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.buyer_idle_timeout_s)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_s)
    }

    /// Dedicated buyer-actor threads; 0: none, actors live on the HTTP workers.
    pub fn actor_threads(&self) -> usize {
        self.actor_threads
    }

    pub fn http_workers(&self) -> usize {
        or_cores(self.http_workers)
    }
}

/// The settings alone, without the commands of the `payment-engine` binary (`cli`).
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    settings: Settings,
}

fn or_cores(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
