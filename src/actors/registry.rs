//! The registry of live buyer actors, and their supervisor.
//!
//! An actor is created on a buyer's first request, on one of a fixed set of actor threads, and
//! leaves the registry when it passivates after being idle. If an actor has died (a panic
//! unwinds its task and closes its mailbox), the next request finds its address disconnected and
//! starts a fresh one, which reloads the buyer from the database: a panic never leaves a buyer
//! unreachable. actix's `Supervisor` is not used: it restarts only actors that stop themselves,
//! and passivation must really stop them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;

use super::buyer::{BuyerActor, BuyerCommand, BuyerDeps, Command, OnStop};
use super::errors::{BuyerError, OverloadReason, Receipt};
use super::mailbox::Mailbox;
use crate::domain::{BuyerId, IdempotencyKey};

/// A live actor and its counted mailbox.
#[derive(Clone)]
pub struct BuyerHandle {
    pub addr: Addr<BuyerActor>,
    pub mailbox: Arc<Mailbox>,
}

pub struct BuyerRegistry {
    deps: Arc<BuyerDeps>,
    actors: Arc<DashMap<BuyerId, BuyerHandle>>,
    /// Lets a passivated actor's address go (only if it is still the registered one).
    on_stop: OnStop,
    arbiters: Vec<Arbiter>,
    mailbox_capacity: usize,
}

impl BuyerRegistry {
    pub fn new(deps: BuyerDeps, threads: usize, mailbox_capacity: usize) -> Self {
        let actors: Arc<DashMap<BuyerId, BuyerHandle>> = Arc::default();
        let registered = Arc::clone(&actors);
        let on_stop: OnStop = Arc::new(move |buyer, addr| {
            registered.remove_if(&buyer, |_, handle| handle.addr == *addr);
        });
        BuyerRegistry {
            deps: Arc::new(deps),
            actors,
            on_stop,
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            mailbox_capacity,
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
        let mut entry = self
            .actors
            .entry(buyer)
            .or_insert_with(|| self.spawn(buyer));
        if !entry.addr.connected() {
            tracing::warn!(buyer_id = %buyer, "buyer actor found dead; starting a new one");
            self.deps.metrics.buyer.restarts.inc();
            *entry = self.spawn(buyer);
        }
        entry.clone()
    }

    fn forget(&self, buyer: BuyerId, handle: &BuyerHandle) {
        self.actors
            .remove_if(&buyer, |_, current| current.addr == handle.addr);
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
        let deps = Arc::clone(&self.deps);
        let actor_mailbox = Arc::clone(&mailbox);
        let capacity = self.mailbox_capacity;
        let on_stop = Arc::clone(&self.on_stop);
        let addr = BuyerActor::start_in_arbiter(&arbiter, move |ctx| {
            // Our Mailbox bounds the queue; actix's bound must not make senders wait first.
            ctx.set_mailbox_capacity(capacity + 1);
            BuyerActor::new(buyer, deps, actor_mailbox, on_stop)
        });
        BuyerHandle { addr, mailbox }
    }

    /// Stops the actor threads (at shutdown, after the HTTP server has drained).
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
