//! The renewal rounds: every `LEASE_RENEW_MS`, one statement extends every lease this engine
//! holds; if the count is not what this engine thinks it holds, the held set is read back and
//! the lost ones are forgotten. Then hand-backs: shards the router sends here are asked back
//! from their owners, and shards other engines asked for are given up, a few per round, once
//! held for `LEASE_MIN_HOLD_MS`, and never while an engine drains.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::task::JoinHandle;

use super::{Cluster, NOT_HELD, Phase, micros};
use crate::db::leases;

/// Engines not heard from for this many TTLs are removed from `cluster_engines`.
const FORGET_AFTER_TTLS: u32 = 10;

impl Cluster {
    /// Runs the renewal rounds until the task is aborted.
    pub fn spawn_renewals(self: &Arc<Self>) -> JoinHandle<()> {
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(cluster.options.renew_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if cluster.phase() == Phase::Released {
                    return;
                }
                cluster.renew_round().await;
                if cluster.phase() == Phase::Serving {
                    cluster.hand_back_round().await;
                    cluster.adopt_orphans().await;
                }
            }
        })
    }

    async fn renew_round(&self) {
        let started = Instant::now();
        let started_ms = self.now_ms();
        let before: Vec<i64> = self
            .slots
            .iter()
            .map(|slot| slot.epoch.load(Ordering::Acquire))
            .collect();
        let held_here = before.iter().filter(|&&epoch| epoch > 0).count();
        let (holder, ttl_us) = (self.holder.clone(), micros(self.options.ttl));
        let draining = self.phase() != Phase::Serving;
        let renewed = self
            .db
            .run(move |conn| {
                leases::heartbeat(conn, &holder, draining)?;
                let renewed = leases::renew(conn, holder.token, ttl_us)?;
                let held = match renewed == held_here {
                    true => None,
                    false => Some(leases::held(conn, holder.token)?),
                };
                Ok(held)
            })
            .await;
        let metrics = &self.metrics.cluster;
        metrics
            .renew_duration
            .observe(started.elapsed().as_secs_f64());
        let held = match renewed {
            Ok(held) => held,
            Err(error) => {
                metrics.renew_failures.inc();
                tracing::warn!(error = %error, "renewing shard leases failed");
                return;
            }
        };
        let valid_until = started_ms + self.valid_for_ms();
        for (shard, &epoch) in before.iter().enumerate() {
            if epoch <= 0 {
                continue;
            }
            let slot = &self.slots[shard];
            let still_ours = held
                .as_ref()
                .is_none_or(|held| held.iter().any(|&(s, e)| s as usize == shard && e == epoch));
            if still_ours {
                // Only if nothing claimed or released it meanwhile.
                if slot.epoch.load(Ordering::Acquire) == epoch {
                    slot.valid_until.store(valid_until, Ordering::Release);
                }
            } else if slot
                .epoch
                .compare_exchange(epoch, NOT_HELD, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                metrics.lost.inc();
                tracing::info!(shard, epoch, "shard lease lost to another engine");
            }
        }
        metrics.shards_owned.set(self.owned() as i64);
    }

    /// Asks for the shards the router sends here, and gives up those others asked for.
    async fn hand_back_round(&self) {
        let wanted = std::mem::take(&mut *self.wanted.lock().unwrap_or_else(|e| e.into_inner()));
        let holder = self.holder.clone();
        let (ttl_us, min_hold_us) = (micros(self.options.ttl), micros(self.options.min_hold));
        let limit = i64::from(self.options.handbacks_per_round);
        let up_long_enough = self.origin.elapsed() >= self.options.min_hold;
        let forget_us = micros(self.options.ttl * FORGET_AFTER_TTLS);
        let asked = self
            .db
            .run(move |conn| {
                if leases::other_draining(conn, holder.token, ttl_us)? {
                    return Ok(Vec::new());
                }
                if up_long_enough {
                    leases::want(conn, &holder, &wanted, ttl_us)?;
                }
                leases::forget_engines(conn, forget_us)?;
                match limit {
                    0 => Ok(Vec::new()),
                    _ => leases::wanted_from(conn, holder.token, min_hold_us, limit),
                }
            })
            .await;
        match asked {
            Ok(shards) if !shards.is_empty() => self.hand_back(shards).await,
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "the hand-back round failed"),
        }
    }

    /// Claims free or expired shards whose events are still to publish (an engine that was
    /// killed, or stopped with events pending), a few per round: nobody else would publish them
    /// until one of their buyers is served.
    async fn adopt_orphans(&self) {
        if self.options.claims_per_round == 0 {
            return;
        }
        let holder = self.holder.clone();
        let (shards, limit) = (
            self.options.shards as i32,
            i64::from(self.options.claims_per_round),
        );
        let orphans = self
            .db
            .run(move |conn| leases::orphans_with_events(conn, &holder, shards, limit))
            .await;
        let orphans = match orphans {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!(error = %error, "looking for orphaned shards failed");
                return;
            }
        };
        for shard in orphans {
            if let Err(error) = self.claim(shard).await {
                tracing::warn!(shard, error = %error, "claiming an orphaned shard failed");
                return;
            }
        }
    }
}
