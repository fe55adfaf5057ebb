//! The registry of live buyer actors, and their supervisor.
//!
//! An actor is created on a buyer's first request, on one of a fixed set of actor threads, and
//! leaves the registry when it passivates: after being idle for the idle timeout, or, past
//! `MAX_LIVE_BUYERS`, to make room for a new buyer (the least recently used idle actor of a
//! sample, see [`super::live`]). Either way the registry only asks ([`Passivate`]); the actor
//! stops only if nothing is queued or in flight. If an actor has died (a panic
//! unwinds its task and closes its mailbox), the next request finds its address disconnected and
//! starts a fresh one, which reloads the buyer from the database: a panic never leaves a buyer
//! unreachable. actix's `Supervisor` is not used: it restarts only actors that stop themselves,
//! and passivation must really stop them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::WeakAddr;
use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;

use super::buyer::{BuyerActor, BuyerCommand, BuyerDeps, Command, OnStop, Passivate};
use super::errors::{BuyerError, OverloadReason, Receipt};
use super::live::{Activity, LiveSet};
use super::mailbox::Mailbox;
use crate::domain::{BuyerId, IdempotencyKey};

/// Most evictions one new actor asks for: one keeps the live set from growing, the second
/// brings it back down after a time over the limit (all actors busy).
const EVICTIONS_PER_SPAWN: usize = 2;

/// A live actor and its counted mailbox.
#[derive(Clone)]
pub struct BuyerHandle {
    pub addr: Addr<BuyerActor>,
    pub mailbox: Arc<Mailbox>,
    pub activity: Arc<Activity>,
}

/// How the live set reaches an actor: a weak address, so it keeps no actor's channel alive.
type Reach = (BuyerId, WeakAddr<BuyerActor>, Arc<Mailbox>);

type Actors = Arc<DashMap<BuyerId, BuyerHandle>>;
type Live = Arc<LiveSet<Reach>>;

pub struct BuyerRegistry {
    deps: Arc<BuyerDeps>,
    actors: Actors,
    live: Live,
    /// Lets a passivated actor's address go (only if it is still the registered one).
    on_stop: OnStop,
    arbiters: Vec<Arbiter>,
    mailbox_capacity: usize,
    /// `MAX_LIVE_BUYERS` (0: no limit).
    max_live: usize,
    sweeper: tokio::task::JoinHandle<()>,
}

impl BuyerRegistry {
    /// Must be called inside the actix system: it starts the idle sweep there.
    pub fn new(deps: BuyerDeps, threads: usize, mailbox_capacity: usize, max_live: usize) -> Self {
        let actors: Actors = Arc::default();
        let live: Live = Arc::default();
        let (registered, set) = (Arc::clone(&actors), Arc::clone(&live));
        let on_stop: OnStop = Arc::new(move |buyer, addr| {
            if let Some((_, handle)) = registered.remove_if(&buyer, |_, h| h.addr == *addr) {
                set.remove(&handle.activity);
            }
        });
        deps.metrics
            .buyers
            .limit
            .set(i64::try_from(max_live).unwrap_or(i64::MAX));
        let sweeper = sweep_idle(Arc::clone(&actors), Arc::clone(&live), deps.idle_timeout);
        BuyerRegistry {
            deps: Arc::new(deps),
            actors,
            live,
            on_stop,
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            mailbox_capacity,
            max_live,
            sweeper,
        }
    }

    /// Buyer actors alive now.
    pub fn live_actors(&self) -> usize {
        self.actors.len()
    }

    /// Live actors and the deepest mailbox among them (read at scrape time).
    pub fn population(&self) -> (usize, usize) {
        let deepest = self
            .actors
            .iter()
            .map(|entry| entry.mailbox.depth())
            .max()
            .unwrap_or(0);
        (self.actors.len(), deepest)
    }

    /// Hands `command` to the buyer's actor and waits for its answer: a refusal at once, an
    /// accepted write's receipt once it is durable.
    pub async fn dispatch(
        &self,
        buyer: BuyerId,
        command: Command,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Receipt, BuyerError> {
        // A command reaching an actor that just passivated (or died) is sent once more to a new
        // one, but only if handling never started, so nothing runs twice.
        for _ in 0..3 {
            let handle = self.handle_for(buyer);
            let permit = handle
                .mailbox
                .try_reserve()
                .ok_or(BuyerError::Overloaded(OverloadReason::BuyerMailbox))?;
            let started = Arc::new(AtomicBool::new(false));
            let (reply, answer) = oneshot::channel();
            let message = BuyerCommand {
                command: command.clone(),
                idempotency_key: idempotency_key.clone(),
                permit,
                started: Arc::clone(&started),
                reply,
            };
            // No response envelope: the actor (or, for a committed write, the coordinator)
            // answers through `reply`, so this task is woken once, with the answer.
            if handle.addr.try_send(message).is_err() {
                // The mailbox is closed (our permit keeps actix's own bound from biting).
                self.forget(buyer, &handle);
                continue;
            }
            match answer.await {
                Ok(result) => return result,
                // The actor stopped with the command still queued: it never ran.
                Err(_) if !started.load(Ordering::Acquire) => self.forget(buyer, &handle),
                Err(_) => {
                    tracing::error!(buyer_id = %buyer, "buyer actor died while handling a command");
                    self.forget(buyer, &handle);
                    return Err(BuyerError::Internal);
                }
            }
        }
        Err(BuyerError::Overloaded(OverloadReason::BuyerMailbox))
    }

    fn handle_for(&self, buyer: BuyerId) -> BuyerHandle {
        if let Some(handle) = self.actors.get(&buyer) {
            if handle.addr.connected() {
                return handle.clone();
            }
        }
        let mut spawned = false;
        let handle = {
            let mut entry = self.actors.entry(buyer).or_insert_with(|| {
                spawned = true;
                self.spawn(buyer)
            });
            if !entry.addr.connected() {
                tracing::warn!(buyer_id = %buyer, "buyer actor found dead; starting a new one");
                self.deps.metrics.buyer.restarts.inc();
                self.live.remove(&entry.activity);
                *entry = self.spawn(buyer);
                spawned = true;
            }
            entry.clone()
        };
        // Outside the entry's lock: the victims' own on-stop callbacks take such locks.
        if spawned {
            self.make_room();
        }
        handle
    }

    /// Past the limit, asks the least recently used idle actors of a sample to passivate. None
    /// idle: the live set stays over the limit until some are (every new buyer is served).
    fn make_room(&self) {
        if self.max_live == 0 {
            return;
        }
        let excess = self.live.len().saturating_sub(self.max_live);
        let mut rng = rand::rng();
        for _ in 0..excess.min(EVICTIONS_PER_SPAWN) {
            let quiet = |(_, _, mailbox): &Reach| mailbox.depth() == 0;
            let Some((activity, reach)) = self.live.pick_victim(&mut rng, quiet) else {
                break;
            };
            ask_to_passivate(&self.actors, &self.live, &activity, reach, Passivate::Evict);
        }
    }

    fn forget(&self, buyer: BuyerId, handle: &BuyerHandle) {
        self.actors
            .remove_if(&buyer, |_, current| current.addr == handle.addr);
        self.live.remove(&handle.activity);
    }

    fn spawn(&self, buyer: BuyerId) -> BuyerHandle {
        // With no actor threads of its own, a buyer's actor lives on the thread that first
        // serves it (an HTTP worker): that request, and every later one arriving there, reaches
        // it without waking another thread.
        let arbiter = match self.arbiters.len() {
            0 => Arbiter::current(),
            threads => {
                let thread = (buyer.get().unsigned_abs() % threads as u64) as usize;
                self.arbiters[thread].handle()
            }
        };
        let mailbox = Mailbox::new(self.mailbox_capacity, Arc::clone(&self.deps.metrics.buyer));
        self.deps.metrics.buyers.started.inc();
        let activity = self.live.new_activity(buyer.get().unsigned_abs());
        let deps = Arc::clone(&self.deps);
        let (actor_mailbox, actor_activity) = (Arc::clone(&mailbox), Arc::clone(&activity));
        let capacity = self.mailbox_capacity;
        let on_stop = Arc::clone(&self.on_stop);
        let addr = BuyerActor::start_in_arbiter(&arbiter, move |ctx| {
            // Our Mailbox bounds the queue; actix's bound must not make senders wait first.
            ctx.set_mailbox_capacity(capacity + 1);
            BuyerActor::new(buyer, deps, actor_mailbox, actor_activity, on_stop)
        });
        let reach = (buyer, addr.downgrade(), Arc::clone(&mailbox));
        self.live.insert(&activity, reach);
        BuyerHandle {
            addr,
            mailbox,
            activity,
        }
    }

    /// Stops the idle sweep and the actor threads (at shutdown, after the HTTP server has
    /// drained).
    pub fn stop(&self) {
        self.sweeper.abort();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Asks an actor to passivate. One found dead (it panicked) is let go here, so a dead actor
/// never counts against the limit.
fn ask_to_passivate(
    actors: &Actors,
    live: &Live,
    activity: &Arc<Activity>,
    (buyer, weak, _): Reach,
    why: Passivate,
) {
    match weak.upgrade().map(|addr| addr.try_send(why)) {
        Some(Ok(())) => {}
        // Its actix queue is full of commands: it is not idle.
        Some(Err(SendError::Full(_))) => activity.passivation_refused(),
        None | Some(Err(SendError::Closed(_))) => {
            actors.remove_if(&buyer, |_, handle| Arc::ptr_eq(&handle.activity, activity));
            live.remove(activity);
        }
    }
}

/// Every half idle timeout, asks the actors idle that long to passivate (each checks for
/// itself). One sweep for all actors rather than a timer in each: a timer is memory every live
/// actor would hold, and a wake-up each would take.
fn sweep_idle(actors: Actors, live: Live, idle_timeout: Duration) -> tokio::task::JoinHandle<()> {
    let every = (idle_timeout / 2).max(Duration::from_millis(100));
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for (activity, reach) in live.idle_for_at_least(idle_timeout) {
                ask_to_passivate(&actors, &live, &activity, reach, Passivate::IdleTimeout);
            }
        }
    })
}
