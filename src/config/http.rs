//! The HTTP server: where it listens, how much it serves at once, how long it waits.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::http::KeepAlive;
use clap::Args;
use clap::builder::RangedU64ValueParser;

use super::{millis, seconds};
use crate::http::auth::ApiTokens;

#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(
        long = "bind",
        env = "BIND_ADDR",
        global = true,
        default_value = "0.0.0.0:8080"
    )]
    pub bind_addr: SocketAddr,

    /// HTTP worker threads (0: one per core).
    #[arg(
        id = "http_workers",
        value_name = "HTTP_WORKERS",
        long = "http-workers",
        env = "HTTP_WORKERS",
        global = true,
        default_value_t = 0
    )]
    pub workers: usize,

    /// Most requests served at once (all buyers together), the ceiling of the adaptive limit;
    /// beyond the limit requests answer 503 at once.
    #[arg(
        long,
        env = "MAX_IN_FLIGHT_REQUESTS",
        global = true,
        default_value_t = 512,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=u64::from(u32::MAX))
    )]
    pub max_in_flight_requests: usize,

    /// Fewest requests served at once however slow answers get: the floor of the adaptive
    /// limit (at most `MAX_IN_FLIGHT_REQUESTS`; equal to it for a fixed limit).
    #[arg(
        long,
        env = "MIN_IN_FLIGHT_REQUESTS",
        global = true,
        default_value_t = 32,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=u64::from(u32::MAX))
    )]
    pub min_in_flight_requests: usize,

    /// How much slower than the latency learnt at normal load answers may get before the
    /// in-flight limit shrinks (a ratio, at least 1).
    #[arg(
        long,
        env = "IN_FLIGHT_LATENCY_TOLERANCE",
        global = true,
        default_value_t = 2.0,
        value_parser = tolerance
    )]
    pub in_flight_latency_tolerance: f64,

    /// How long a request may wait for its commit before answering 503 (the write may still
    /// commit: retry with the same Idempotency-Key to learn the outcome).
    #[arg(
        id = "request_timeout_ms",
        value_name = "REQUEST_TIMEOUT_MS",
        long = "request-timeout-ms",
        env = "REQUEST_TIMEOUT_MS",
        global = true,
        default_value = "10000",
        value_parser = millis
    )]
    pub request_timeout: Duration,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "MAX_BODY_BYTES", global = true, default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// A client must send a request's head (its first request on a connection) and then its
    /// body within this long each; a slower one gets 408 and its connection is closed.
    #[arg(
        id = "client_request_timeout_ms",
        value_name = "CLIENT_REQUEST_TIMEOUT_MS",
        long = "client-request-timeout-ms",
        env = "CLIENT_REQUEST_TIMEOUT_MS",
        global = true,
        default_value = "5000",
        value_parser = millis
    )]
    pub client_request_timeout: Duration,

    /// How long an idle keep-alive connection stays open (0: close after each answer). Keep it
    /// longer than the idle timeout of the clients and load balancers that pool connections to
    /// the engine: a server that closes an idle connection first races the client's next request
    /// on it, which then fails without an answer (actix's default of 5 s did, under k6). 75 s
    /// is nginx's default and outlasts the common 60 s of load balancers.
    #[arg(
        id = "keep_alive_s",
        value_name = "KEEP_ALIVE_S",
        long = "keep-alive-s",
        env = "KEEP_ALIVE_S",
        global = true,
        default_value = "75",
        value_parser = seconds
    )]
    pub keep_alive: Duration,

    /// On SIGTERM (or SIGINT), how long the engine keeps serving before it stops accepting
    /// connections: `/health/ready` answers 503 and every answer closes its connection meanwhile,
    /// so load balancers and clients move away. Match the load balancer's deregistration delay.
    /// A second signal ends the drain at once.
    #[arg(
        id = "shutdown_drain_ms",
        value_name = "SHUTDOWN_DRAIN_MS",
        long = "shutdown-drain-ms",
        env = "SHUTDOWN_DRAIN_MS",
        global = true,
        default_value = "2000",
        value_parser = millis
    )]
    pub shutdown_drain: Duration,

    /// After the drain, how long accepted requests get to finish.
    #[arg(
        id = "shutdown_timeout_s",
        value_name = "SHUTDOWN_TIMEOUT_S",
        long = "shutdown-timeout-s",
        env = "SHUTDOWN_TIMEOUT_S",
        global = true,
        default_value = "30",
        value_parser = seconds
    )]
    pub shutdown_timeout: Duration,

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
}

impl HttpSettings {
    /// The adaptive in-flight limit's bounds and tolerance (a floor above the ceiling is the
    /// ceiling).
    pub fn in_flight_limit(&self) -> crate::http::limit::LimitSettings {
        crate::http::limit::LimitSettings {
            min: self.min_in_flight_requests.min(self.max_in_flight_requests),
            max: self.max_in_flight_requests,
            tolerance: self.in_flight_latency_tolerance,
        }
    }

    /// The worker threads to start: as configured, or one per core.
    pub fn worker_threads(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }

    /// actix's keep-alive: a zero duration closes each connection after its answer.
    pub fn keep_alive_policy(&self) -> KeepAlive {
        if self.keep_alive.is_zero() {
            KeepAlive::Disabled
        } else {
            self.keep_alive.into()
        }
    }
}

/// A latency tolerance: a finite ratio of at least 1.
fn tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if ratio.is_finite() && ratio >= 1.0 => Ok(ratio),
        _ => Err(format!("`{text}` is not a ratio of at least 1 (e.g. 2.0)")),
    }
}
