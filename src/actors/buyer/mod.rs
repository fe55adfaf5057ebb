//! The BuyerActor: one per active buyer, the only place that buyer's money moves.
//!
//! A thin shell around [`BuyerState`], where the buyer's rules live: it loads what a command
//! needs, lets the state decide, reserves a place in the commit queue for a write, submits it
//! to the coordinator and routes its result back to the state. Requests of one buyer are
//! handled in arrival order; a write's state advances as soon as it is submitted, so the next
//! request is decided while it commits (pipelining).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use chrono::{DateTime, Utc};

mod command;
mod deps;
mod load;
mod passivate;
mod settle;

pub use command::{BuyerCommand, Command, Reply};
pub use deps::{BuyerDeps, OnStop};
pub use passivate::Passivate;
use settle::{Follow, Settled};

use super::errors::{BuyerError, OverloadReason, Receipt};
use super::live::Activity;
use super::mailbox::Mailbox;
use crate::db::leases::ShardLease;
use crate::db::writer::WriteOp;
use crate::domain::buyer::{Answer, BuyerState, Decision, PlannedWrite, Refusal, awaited_answer};
use crate::domain::{BuyerId, IdempotencyKey, OrderId};
use crate::events;
use crate::metrics::Outcome;

pub struct BuyerActor {
    deps: Arc<BuyerDeps>,
    mailbox: Arc<Mailbox>,
    on_stop: OnStop,
    state: BuyerState,
    /// Requests for an order whose payment or cancellation is committing, answered by its
    /// outcome.
    awaiting: HashMap<OrderId, Vec<(Reply, Command)>>,
    /// When it last handled something and whether it has work pending, for passivation.
    activity: Arc<Activity>,
    /// The shard lease the current command is decided under; the state is trusted only while
    /// the lease stays at the epoch it was read under.
    lease: Option<ShardLease>,
}

/// A command the state refused, with the reply it has not used.
struct Refused {
    error: BuyerError,
    reply: Reply,
}

impl BuyerActor {
    pub fn new(
        buyer: BuyerId,
        deps: Arc<BuyerDeps>,
        mailbox: Arc<Mailbox>,
        activity: Arc<Activity>,
        on_stop: OnStop,
    ) -> Self {
        let state = BuyerState::new(buyer, deps.rules());
        BuyerActor {
            deps,
            mailbox,
            on_stop,
            state,
            awaiting: HashMap::new(),
            activity,
            lease: None,
        }
    }

    /// The lease this command is decided under. A lease at another epoch than the last one
    /// means the shard was away meanwhile: what is known of the buyer is dropped and read
    /// again. No lease: the request belongs to another engine.
    fn take_lease(&mut self) -> Result<(), BuyerError> {
        let lease = self
            .deps
            .cluster
            .held(self.state.buyer())
            .ok_or(BuyerError::Refused(Refusal::NotOwner))?;
        if self.lease.is_some_and(|held| held.epoch != lease.epoch) {
            self.state.forget();
        }
        self.lease = Some(lease);
        Ok(())
    }

    /// Lets the state decide `command`; answers it now or once its write has committed.
    fn execute(
        &mut self,
        ctx: &mut Context<Self>,
        command: &Command,
        key: Option<&IdempotencyKey>,
        reply: Reply,
    ) -> Result<(), Refused> {
        let decision = match self.state.decide(command, key, now_micros()) {
            Ok(decision) => decision,
            Err(refusal) => {
                let error = refusal.into();
                return Err(Refused { error, reply });
            }
        };
        match decision {
            Decision::Replay(answer) => {
                let _ = reply.send(Ok(Receipt::Replayed(answer)));
            }
            Decision::AwaitOrder(order_id) => {
                let waiting = (reply, command.clone());
                self.awaiting.entry(order_id).or_default().push(waiting);
            }
            Decision::Answer(receipt) => {
                let _ = reply.send(Ok(receipt));
            }
            Decision::Write(write) => {
                let Ok(place) = self.deps.coordinator.reserve(self.state.buyer()) else {
                    let error = OverloadReason::CommitQueue.into();
                    return Err(Refused { error, reply });
                };
                self.state.accept(&write);
                self.submit(ctx, place, write, reply);
            }
        }
        Ok(())
    }

    /// Sends the write to the coordinator and follows it: once it has committed the request
    /// gets its receipt and the state learns the result ([`Settled`]).
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        place: super::mailbox::Permit,
        write: PlannedWrite,
        reply: Reply,
    ) {
        let event = events::of_write(&write, self.deps.emit_charge_events);
        let mut op = WriteOp::from_plan(&write, event);
        op.lease = self.lease;
        let follow = Follow {
            actor: ctx.address(),
            pending: Some(write.pending()),
            receipt: Some(write.receipt),
            reply: Some(reply),
        };
        self.deps
            .coordinator
            .submit(place, op, Box::new(move |result| follow.run(result)));
    }

    /// Answers a request that was refused, recording how its handling ended.
    fn refuse(refused: Refused, handling: super::mailbox::Handling) {
        handling.finish(deps::outcome_of(&refused.error));
        let _ = refused.reply.send(Err(refused.error));
    }
}

/// Now, at the database's precision (microseconds), so a stored answer and a later read agree.
fn now_micros() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// No timer of its own: the registry's sweep and eviction ask it to passivate ([`Passivate`]).
impl Actor for BuyerActor {
    type Context = Context<Self>;
}

impl Handler<BuyerCommand> for BuyerActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, message: BuyerCommand, ctx: &mut Context<Self>) -> Self::Result {
        let BuyerCommand {
            command,
            idempotency_key: key,
            permit,
            started,
            reply,
        } = message;
        started.store(true, Ordering::Release);
        let handling = permit.start();
        drop(permit);
        self.activity.touch();
        self.activity.set_busy(true);

        if let Err(error) = self.take_lease() {
            Self::refuse(Refused { error, reply }, handling);
            return self.done();
        }
        let needs = self.state.needs(&command);
        if !needs.nothing() {
            return self.load_then_execute(command, key, needs, reply, handling);
        }
        match self.execute(ctx, &command, key.as_ref(), reply) {
            Ok(()) => handling.finish(Outcome::Ok),
            // A money rule refused on cached state; another engine on the same database may
            // have changed the buyer since. With none of our writes in flight, the database is
            // the truth: check once more against it before refusing.
            Err(Refused {
                error: BuyerError::Refused(Refusal::Rule(_)),
                reply,
            }) if self.state.idle() => {
                let needs = self.state.reload_needs(&command);
                return self.load_then_execute(command, key, needs, reply, handling);
            }
            Err(refused) => Self::refuse(refused, handling),
        }
        self.done()
    }
}

impl Handler<Settled> for BuyerActor {
    type Result = ();

    fn handle(&mut self, settled: Settled, _ctx: &mut Context<Self>) {
        let Settled {
            pending,
            outcome,
            reply,
        } = settled;
        self.activity.touch();
        let settlement = self.state.settle(&pending, &outcome);
        if let Some((order_id, fate)) = settlement.order {
            for (waiting, command) in self.awaiting.remove(&order_id).unwrap_or_default() {
                let answer = awaited_answer(&command, order_id, fate).map_err(BuyerError::from);
                let _ = waiting.send(answer);
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(match settlement.answer {
                Answer::Replay(answer) => Ok(Receipt::Replayed(answer)),
                Answer::Refused(refusal) => Err(refusal.into()),
                Answer::Failed(failure) => Err(failure.into()),
                // Only an uncommitted write comes with its reply: not reached.
                Answer::Committed => Err(BuyerError::Internal),
            });
        }
        self.publish_busy();
    }
}
