//! What happens when a buyer's write has committed (or failed).
//!
//! The coordinator runs each write's [`Follow`] on its own thread after the batch. A committed
//! write's request is answered right there, then the actor is told ([`Settled`]) so it can
//! update what it knows. A refused or failed write goes to the actor first: it drops its state
//! (or finds a replay) before the request gets its answer, so a retry never meets the state
//! that failed. Either way the request's task is woken once.

use actix::prelude::*;

use super::{BuyerActor, Reply, Tracked};
use crate::actors::coordinator::{CommitError, CommitReply};
use crate::actors::errors::Receipt;
use crate::db::writer::WriteResult;

/// A submitted write's follow-up. Dropped without running (the coordinator stopped), it
/// settles the write as failed, so neither the actor nor the request waits forever.
pub(super) struct Follow {
    pub actor: Addr<BuyerActor>,
    pub generation: u64,
    /// The Idempotency-Key and fingerprint the write was sent with.
    pub keyed: Option<(String, String)>,
    pub tracked: Option<Tracked>,
    pub receipt: Option<Receipt>,
    pub reply: Option<Reply>,
}

impl Follow {
    pub fn run(mut self, result: CommitReply) {
        self.finish(result);
    }

    fn finish(&mut self, result: CommitReply) {
        let Some(tracked) = self.tracked.take() else {
            return;
        };
        let (reply, receipt) = if result == Ok(WriteResult::Committed) {
            let receipt = self.receipt.take();
            // The actor needs the receipt only to remember a keyed answer.
            let kept = self.keyed.as_ref().and_then(|_| receipt.clone());
            if let (Some(reply), Some(receipt)) = (self.reply.take(), receipt) {
                let _ = reply.send(Ok(receipt));
            }
            (None, kept)
        } else {
            // Not committed: the actor answers, after it has dropped its state.
            (self.reply.take(), None)
        };
        self.actor.do_send(Settled {
            generation: self.generation,
            keyed: self.keyed.take(),
            tracked,
            result,
            receipt,
            reply,
        });
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.finish(Err(CommitError::Internal));
    }
}

/// A write's result, for its actor. `reply` is still there when the request has not been
/// answered (the write did not commit); `receipt` only for a committed keyed write.
pub(super) struct Settled {
    pub generation: u64,
    pub keyed: Option<(String, String)>,
    pub tracked: Tracked,
    pub result: CommitReply,
    pub receipt: Option<Receipt>,
    pub reply: Option<Reply>,
}

impl Message for Settled {
    type Result = ();
}
