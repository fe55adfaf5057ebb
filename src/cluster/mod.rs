//! Several engines, one owner per buyer: shard leases in the database.
//!
//! Buyers are divided into a fixed number of shards (`buyer_id mod SHARDS`); a shard belongs to
//! at most one engine at a time, by a lease row in `shard_leases` (`db::leases`). An engine
//! claims a shard the first time it is asked for one of its buyers and the lease is free or
//! expired; it renews all its leases in one statement every `LEASE_RENEW_MS`; it gives them
//! up when it drains, or hands one back when the router sends that shard to another engine.
//!
//! The lease alone is not trusted: an engine may pause past its lease (GC, SIGSTOP, a slow
//! network) and go on as if it still held it. So every write carries the epoch its shard was
//! held at when the write was decided, and the group-commit batch checks it inside its
//! transaction (`db::writer`): a write of a lost lease commits nothing and is refused
//! `not_owner`, and the request is sent to the owner instead.
//!
//! This module keeps what this engine holds (one slot per shard, read on every request without
//! a lock), decides where a buyer's request goes ([`Route`]), and runs the renewal rounds.

mod release;
mod renew;

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::db::leases::{self, Holder, LeaseView, ShardLease};
use crate::db::{Db, DbError};
use crate::domain::BuyerId;
use crate::metrics::Metrics;

/// A slot's epoch when this engine does not hold the shard.
const NOT_HELD: i64 = 0;
/// A slot's epoch while its lease is being given up: requests wait for the release.
const RELEASING: i64 = -1;
/// Longest a request waits for a release in progress before routing anyway.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// Longest a request waits for an unreachable owner's lease to be released or to expire.
const UNREACHABLE_WAIT: Duration = Duration::from_secs(2);
/// How long a request for a shard promised to another engine (or held by one that cannot be
/// reached) is told to wait, when the lease does not say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything the leases need, from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub shards: u32,
    pub engine_id: String,
    pub address: String,
    pub ttl: Duration,
    pub renew_every: Duration,
    pub min_hold: Duration,
    pub handbacks_per_round: u32,
    /// Orphaned shards with unpublished events claimed per renewal round.
    pub claims_per_round: u32,
}

/// Where a buyer's request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here: this engine holds the buyer's shard at this lease.
    Local(ShardLease),
    /// At the engine holding the shard, at this address (one hop).
    Forward(String),
}

/// Why a request can be served neither here nor by forwarding it.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Another engine holds the shard, and this request may not be forwarded (it was already);
    /// the lease expires within `retry_after` unless renewed.
    #[error("another engine owns this buyer")]
    NotOwner { retry_after: Duration },
    /// The owner is unknown or unreachable; its lease expires within `retry_after`.
    #[error("the engine owning this buyer is unavailable")]
    OwnerUnavailable { retry_after: Duration },
    #[error(transparent)]
    Database(#[from] DbError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Serving = 0,
    /// Shutting down: serves and claims as usual, but asks for nothing and hands nothing back.
    Draining = 1,
    /// Gave up (or is giving up) every lease.
    Released = 2,
}

/// One shard as this engine sees it.
struct Slot {
    /// The epoch this engine holds the lease at; [`NOT_HELD`] or [`RELEASING`].
    epoch: AtomicI64,
    /// Until when (ms since `origin`) the lease is certainly still ours: the renewal's start
    /// plus most of the TTL, so it lapses here before it expires in the database.
    valid_until: AtomicU64,
}

pub struct Cluster {
    holder: Holder,
    options: Options,
    slots: Box<[Slot]>,
    db: Db,
    metrics: Arc<Metrics>,
    origin: Instant,
    phase: AtomicU8,
    /// Shards the router sent here that another engine holds: asked back at the next round.
    wanted: Mutex<Vec<i32>>,
    /// Told when a shard is claimed, so its pending events go out before new ones.
    on_claim: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Cluster {
    /// Joins the database's cluster: creates the shard rows if this is its first engine, checks
    /// the shard count it was created with, and says who this engine is.
    pub async fn join(db: Db, options: Options, metrics: Arc<Metrics>) -> anyhow::Result<Cluster> {
        let holder = Holder {
            token: fresh_token(),
            engine_id: options.engine_id.clone(),
            address: options.address.clone(),
        };
        let (wanted, me) = (options.shards as i32, holder.clone());
        let stored = db
            .run(move |conn| {
                let stored = leases::ensure_shards(conn, wanted)?;
                leases::heartbeat(conn, &me, false)?;
                Ok(stored)
            })
            .await
            .map_err(|error| anyhow::anyhow!("cannot join the cluster: {error}"))?;
        anyhow::ensure!(
            stored == wanted,
            "this database's buyers are divided into {stored} shards, but SHARDS is {wanted}: \
             the shard count never changes for a database (set SHARDS={stored})"
        );
        let slots = (0..options.shards)
            .map(|_| Slot {
                epoch: AtomicI64::new(NOT_HELD),
                valid_until: AtomicU64::new(0),
            })
            .collect();
        tracing::info!(
            engine_id = %holder.engine_id,
            address = %holder.address,
            shards = options.shards,
            "joined the cluster"
        );
        Ok(Cluster {
            holder,
            options,
            slots,
            db,
            metrics,
            origin: Instant::now(),
            phase: AtomicU8::new(Phase::Serving as u8),
            wanted: Mutex::new(Vec::new()),
            on_claim: OnceLock::new(),
        })
    }

    /// Called whenever this engine claims a shard (set once, by start-up).
    pub fn on_claim(&self, callback: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_claim.set(callback);
    }

    pub fn engine_id(&self) -> &str {
        &self.holder.engine_id
    }

    /// This engine's owner token (the outbox relay publishes the events of its shards only).
    pub fn token(&self) -> i64 {
        self.holder.token
    }

    pub fn shards(&self) -> u32 {
        self.options.shards
    }

    pub fn shard_of(&self, buyer: BuyerId) -> i32 {
        // Buyer ids are positive, and the shard count fits an i32.
        (buyer.get().unsigned_abs() % u64::from(self.options.shards)) as i32
    }

    /// The lease this engine holds the buyer's shard at, if it certainly still does.
    pub fn held(&self, buyer: BuyerId) -> Option<ShardLease> {
        self.held_shard(self.shard_of(buyer))
    }

    fn held_shard(&self, shard: i32) -> Option<ShardLease> {
        let slot = &self.slots[shard as usize];
        let epoch = slot.epoch.load(Ordering::Acquire);
        (epoch > 0 && self.now_ms() < slot.valid_until.load(Ordering::Acquire)).then_some(
            ShardLease {
                shard,
                epoch,
                token: self.holder.token,
            },
        )
    }

    /// Shards held now.
    pub fn owned(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.epoch.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// The commit refused a write of `lease`: the shard is another engine's now. Forgotten
    /// here (unless claimed again meanwhile), so the next request routes anew.
    pub fn lost(&self, lease: ShardLease) {
        let slot = &self.slots[lease.shard as usize];
        if slot
            .epoch
            .compare_exchange(lease.epoch, NOT_HELD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.metrics.cluster.lost.inc();
        }
    }

    /// Where to serve a request of `buyer`: here (claiming the shard if it is free or
    /// expired), or at the owner's address, if `may_forward` (the request has not been
    /// forwarded yet).
    pub async fn route(&self, buyer: BuyerId, may_forward: bool) -> Result<Route, RouteError> {
        let shard = self.shard_of(buyer);
        self.wait_for_release(shard).await;
        if let Some(lease) = self.held_shard(shard) {
            return Ok(Route::Local(lease));
        }
        // A draining engine still claims for its own clients (a free shard has nobody else to
        // serve it; it gives every lease up once it stopped), but not for another engine's
        // forwarded request: that engine claims the shard itself.
        let may_claim = match self.phase() {
            Phase::Serving => true,
            Phase::Draining => may_forward,
            Phase::Released => false,
        };
        let view = if may_claim {
            let mut tries = 0;
            loop {
                match self.claim(shard).await? {
                    Ok(lease) => return Ok(Route::Local(lease)),
                    // Released between the claim and the read that followed it: claim again.
                    Err(view) if claimable(&view) && tries < 2 => tries += 1,
                    Err(view) => break view,
                }
            }
        } else {
            let view = self.db.run(move |conn| leases::lease(conn, shard)).await?;
            view.unwrap_or_else(|| LeaseView::free(shard))
        };
        if may_forward && view.owner_token != Some(self.holder.token) {
            let owner = if view.is_live() {
                view.address.clone()
            } else {
                view.wanted_address.clone()
            };
            if let Some(address) = owner {
                if view.is_live() && self.phase() == Phase::Serving {
                    self.want(shard);
                }
                return Ok(Route::Forward(address));
            }
        }
        // A forwarded request goes back to its forwarding engine, which routes it again
        // itself (and claims the shard if it is free for it).
        if !may_forward {
            return Err(RouteError::NotOwner {
                retry_after: retry_after(&view),
            });
        }
        tracing::info!(shard, phase = ?self.phase(), lease = ?view, "no engine to serve the shard");
        Err(RouteError::OwnerUnavailable {
            retry_after: retry_after(&view),
        })
    }

    /// The owner at `address` could not be connected to: waits until its lease of the buyer's
    /// shard is released (a drained engine gives its leases up right after it stops listening)
    /// or expires, or the shard is another's; at most [`UNREACHABLE_WAIT`] (or the TTL).
    pub async fn await_owner_change(&self, buyer: BuyerId, address: &str) -> Result<(), DbError> {
        let shard = self.shard_of(buyer);
        let deadline = Instant::now() + UNREACHABLE_WAIT.min(self.options.ttl);
        loop {
            let view = self.db.run(move |conn| leases::lease(conn, shard)).await?;
            let unchanged = view
                .as_ref()
                .is_some_and(|view| view.is_live() && view.address.as_deref() == Some(address));
            if !unchanged || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) async fn claim(&self, shard: i32) -> Result<Result<ShardLease, LeaseView>, DbError> {
        let (holder, ttl_us) = (self.holder.clone(), micros(self.options.ttl));
        let asked_at = self.now_ms();
        let claimed = self
            .db
            .run(move |conn| leases::claim(conn, shard, &holder, ttl_us))
            .await?;
        Ok(claimed.map(|epoch| {
            let slot = &self.slots[shard as usize];
            let previous = slot.epoch.swap(epoch, Ordering::AcqRel);
            slot.valid_until
                .store(asked_at + self.valid_for_ms(), Ordering::Release);
            if previous != epoch {
                self.metrics.cluster.claims.inc();
                tracing::debug!(shard, epoch, "claimed shard");
                if let Some(on_claim) = self.on_claim.get() {
                    on_claim();
                }
            }
            ShardLease {
                shard,
                epoch,
                token: self.holder.token,
            }
        }))
    }

    async fn wait_for_release(&self, shard: i32) {
        let slot = &self.slots[shard as usize];
        let deadline = Instant::now() + RELEASE_WAIT;
        while slot.epoch.load(Ordering::Acquire) == RELEASING && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The router sends `shard` here but another engine holds it: ask for it back.
    fn want(&self, shard: i32) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        if !wanted.contains(&shard) && wanted.len() < self.options.shards as usize {
            wanted.push(shard);
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Draining,
            _ => Phase::Released,
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// How long after a renewal (or claim) was sent the lease is trusted here: four fifths of
    /// the TTL, so it lapses here before the database lets another engine claim it.
    fn valid_for_ms(&self) -> u64 {
        (self.options.ttl.as_millis() as u64) * 4 / 5
    }
}

/// Free or expired, and promised to nobody: a claim would have taken it.
fn claimable(view: &LeaseView) -> bool {
    !view.is_live() && view.wanted_by.is_none()
}

/// How long until the lease can be claimed: its remaining time, at least a second.
fn retry_after(view: &LeaseView) -> Duration {
    match view.remaining_us {
        Some(us) if us > 0 && view.owner_token.is_some() => {
            Duration::from_micros(us as u64).max(DEFAULT_RETRY_AFTER)
        }
        _ => DEFAULT_RETRY_AFTER,
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A random positive owner token, new at every start.
fn fresh_token() -> i64 {
    (rand::random::<u64>() >> 1).max(1) as i64
}
