//! Several engines on one database: shards, their leases, hand-backs and forwarding.
//!
//! A single engine needs none of these: it claims every shard it is asked for. Engines sharing
//! a database find each other through the lease table alone.

use std::time::Duration;

use clap::Args;
use clap::builder::RangedU64ValueParser;

use super::millis;

#[derive(Debug, Clone, Args)]
pub struct ClusterSettings {
    /// Shards the buyers are divided into (shard = buyer id mod this); fixed when the database
    /// is first used: an engine configured otherwise refuses to start.
    #[arg(
        long,
        env = "SHARDS",
        global = true,
        default_value_t = 1024,
        value_parser = RangedU64ValueParser::<u32>::new().range(1..=65_536)
    )]
    pub shards: u32,

    /// This engine's name in the lease table, logs and metrics (default: its advertised
    /// address).
    #[arg(long, env = "ENGINE_ID", global = true)]
    pub engine_id: Option<String>,

    /// Where other engines forward requests for this engine's shards, as host:port (default:
    /// the bind address; set it when binding 0.0.0.0 or behind NAT/containers).
    #[arg(long, env = "ADVERTISE_ADDR", global = true)]
    pub advertise_addr: Option<String>,

    /// How long a shard lease lasts unless renewed (by the database's clock): how long a lost
    /// engine's buyers wait before another engine takes them over.
    #[arg(
        id = "lease_ttl_ms",
        value_name = "LEASE_TTL_MS",
        long = "lease-ttl-ms",
        env = "LEASE_TTL_MS",
        global = true,
        default_value = "5000",
        value_parser = millis
    )]
    pub lease_ttl: Duration,

    /// How often the engine renews all its leases (one statement) and looks for hand-backs.
    #[arg(
        id = "lease_renew_ms",
        value_name = "LEASE_RENEW_MS",
        long = "lease-renew-ms",
        env = "LEASE_RENEW_MS",
        global = true,
        default_value = "1000",
        value_parser = millis
    )]
    pub lease_renew: Duration,

    /// Shortest time a shard stays with an engine before it is handed back to the engine the
    /// router sends it to.
    #[arg(
        id = "lease_min_hold_ms",
        value_name = "LEASE_MIN_HOLD_MS",
        long = "lease-min-hold-ms",
        env = "LEASE_MIN_HOLD_MS",
        global = true,
        default_value = "10000",
        value_parser = millis
    )]
    pub min_hold: Duration,

    /// Most free or expired shards with events still to publish that an engine claims per
    /// renewal round (shards are otherwise claimed by their first request).
    #[arg(
        long,
        env = "LEASE_CLAIMS_PER_ROUND",
        global = true,
        default_value_t = 64,
        value_parser = RangedU64ValueParser::<u32>::new().range(0..=65_536)
    )]
    pub lease_claims_per_round: u32,

    /// Most shards an engine hands back per renewal round.
    #[arg(
        long,
        env = "LEASE_HANDBACKS_PER_ROUND",
        global = true,
        default_value_t = 32,
        value_parser = RangedU64ValueParser::<u32>::new().range(0..=65_536)
    )]
    pub lease_handbacks_per_round: u32,

    /// How long a request forwarded to the owning engine may take (connecting included).
    #[arg(
        id = "forward_timeout_ms",
        value_name = "FORWARD_TIMEOUT_MS",
        long = "forward-timeout-ms",
        env = "FORWARD_TIMEOUT_MS",
        global = true,
        default_value = "10000",
        value_parser = millis
    )]
    pub forward_timeout: Duration,
}

impl ClusterSettings {
    /// The lease settings, checked: renewing must be well within the lease's lifetime.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_renew * 2 > self.lease_ttl {
            return Err(format!(
                "LEASE_RENEW_MS ({} ms) must be at most half of LEASE_TTL_MS ({} ms)",
                self.lease_renew.as_millis(),
                self.lease_ttl.as_millis()
            ));
        }
        Ok(())
    }
}

impl ClusterSettings {
    /// The leases' options for an engine listening on `bound` (the bound address, port
    /// resolved). An unspecified bind address (0.0.0.0) is advertised as the loopback address,
    /// which only engines on the same machine can reach: set `ADVERTISE_ADDR` otherwise.
    pub fn options(&self, bound: std::net::SocketAddr) -> crate::cluster::Options {
        let address = self.advertise_addr.clone().unwrap_or_else(|| {
            let mut advertised = bound;
            if bound.ip().is_unspecified() {
                advertised.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            advertised.to_string()
        });
        crate::cluster::Options {
            shards: self.shards,
            engine_id: self.engine_id.clone().unwrap_or_else(|| address.clone()),
            address,
            ttl: self.lease_ttl,
            renew_every: self.lease_renew,
            min_hold: self.min_hold,
            handbacks_per_round: self.lease_handbacks_per_round,
            claims_per_round: self.lease_claims_per_round,
        }
    }
}
