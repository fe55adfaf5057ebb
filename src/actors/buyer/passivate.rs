//! Passivation: an actor stops when the registry asks and it has nothing queued or in flight.
//!
//! The registry only proposes (an actor idle for the idle timeout, or the least recently used
//! idle one of a sample when a new buyer arrives past `MAX_LIVE_BUYERS`). The actor decides,
//! in its own mailbox order, so the decision cannot race a command: one whose slot was reserved
//! before the check counts in the mailbox depth and keeps it alive; one sent after the actor has
//! left the registry never started, and the registry resends it to a new actor.

use actix::prelude::*;

use super::BuyerActor;

/// A request to stop, and why it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passivate {
    /// Proposed by the idle sweep; the actor checks the idle time itself.
    IdleTimeout,
    /// Proposed to make room for a new buyer past `MAX_LIVE_BUYERS`.
    Evict,
}

impl Message for Passivate {
    type Result = ();
}

impl BuyerActor {
    /// Nothing for the actor to finish: no write in flight, no request waiting on one.
    fn settled(&self) -> bool {
        self.state.idle() && self.awaiting.is_empty()
    }

    /// Tells the registry whether it has work pending (a hint: [`Passivate`] rechecks).
    pub(super) fn publish_busy(&self) {
        self.activity.set_busy(!self.settled());
    }

    /// The end of a command handled without waiting on anything.
    pub(super) fn done(&self) -> AtomicResponse<Self, ()> {
        self.publish_busy();
        AtomicResponse::new(Box::pin(actix::fut::ready(())))
    }
}

impl Handler<Passivate> for BuyerActor {
    type Result = ();

    fn handle(&mut self, why: Passivate, ctx: &mut Context<Self>) {
        let due = match why {
            Passivate::IdleTimeout => self.activity.idle_for() >= self.deps.idle_timeout,
            Passivate::Evict => true,
        };
        if !(due && self.settled() && self.mailbox.depth() == 0) {
            self.activity.passivation_refused();
            return;
        }
        (self.on_stop)(self.state.buyer(), &ctx.address());
        let buyers = &self.deps.metrics.buyers;
        match why {
            Passivate::IdleTimeout => buyers.passivated.inc(),
            Passivate::Evict => buyers.evicted.inc(),
        };
        tracing::trace!(buyer_id = %self.state.buyer(), reason = ?why, "buyer actor passivated");
        ctx.stop();
    }
}
