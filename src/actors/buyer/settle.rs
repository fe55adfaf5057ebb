//! What happens when a buyer's write has committed (or failed).
//!
//! The coordinator runs each write's [`Follow`] on its own thread after the batch. A committed
//! write's request is answered right there, then the actor is told ([`Settled`]) so it can
//! update what it knows. A refused or failed write goes to the actor first: it drops its state
//! (or finds a replay) before the request gets its answer, so a retry never meets the state
//! that failed. Either way the request's task is woken once.

use actix::prelude::*;

use super::{BuyerActor, Reply};
use crate::actors::coordinator::{CommitError, CommitReply};
use crate::actors::errors::Receipt;
use crate::domain::buyer::{BatchFailure, PendingWrite, WriteOutcome};

/// A submitted write's follow-up. Dropped without running (the coordinator stopped), it
/// settles the write as failed, so neither the actor nor the request waits forever.
pub(super) struct Follow {
    pub actor: Addr<BuyerActor>,
    /// `None` once it has run.
    pub pending: Option<PendingWrite>,
    pub receipt: Option<Receipt>,
    pub reply: Option<Reply>,
}

impl Follow {
    pub fn run(mut self, result: CommitReply) {
        self.finish(outcome_of(&result));
    }

    fn finish(&mut self, outcome: WriteOutcome) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let reply = if outcome == WriteOutcome::Committed {
            if let (Some(reply), Some(receipt)) = (self.reply.take(), self.receipt.take()) {
                let _ = reply.send(Ok(receipt));
            }
            None
        } else {
            // Not committed: the actor answers, after it has dropped its state.
            self.reply.take()
        };
        self.actor.do_send(Settled {
            pending,
            outcome,
            reply,
        });
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.finish(WriteOutcome::Failed(BatchFailure::Internal));
    }
}

fn outcome_of(result: &CommitReply) -> WriteOutcome {
    match result {
        Ok(result) => result.outcome(),
        Err(CommitError::Unavailable) => WriteOutcome::Failed(BatchFailure::Unavailable),
        Err(CommitError::Internal) => WriteOutcome::Failed(BatchFailure::Internal),
    }
}

/// A write's result, for its actor. `reply` is still there when the request has not been
/// answered (the write did not commit).
pub(super) struct Settled {
    pub pending: PendingWrite,
    pub outcome: WriteOutcome,
    pub reply: Option<Reply>,
}

impl Message for Settled {
    type Result = ();
}
