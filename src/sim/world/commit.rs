//! The coordinator's side of the world: writes queued as the engine's plan builds them
//! (`WriteOp::from_plan`, with the event `events::of_write_as` makes), batches committed into
//! the model with faults, and each write's result delivered to its request and its actor.

use rand::Rng;
use uuid::Uuid;

use super::{Response, World, buyer_id};
use crate::db::writer::{WriteOp, WriteResult};
use crate::domain::buyer::{
    BatchFailure, PendingWrite, PlannedWrite, Receipt, WriteOutcome, WriteRefusal,
};
use crate::events;
use crate::sim::actor::{Message, RequestId};

/// A write in the coordinator's queue.
pub(super) struct Submitted {
    buyer: usize,
    incarnation: u32,
    request: RequestId,
    op: WriteOp,
    pending: PendingWrite,
    receipt: Receipt,
    /// The disturbance epoch its generation was read at.
    generation_epoch: u64,
    /// Decided while a failure was delivered but not yet settled: the state may still count
    /// on what that write would have done (an order it was creating, say).
    excused: bool,
}

impl World {
    /// Queues `write` as the actor shell submits it: the rows `WriteOp::from_plan` builds, with
    /// the event the engine emits for it (payments, refunds and cancellations).
    pub(super) fn submit(&mut self, buyer: usize, request: RequestId, write: PlannedWrite) {
        // The event id comes from the request's number, not the clock: a seed replays exactly.
        let event = events::of_write_as(&write, false, Uuid::from_u128(u128::from(request)));
        let actor = &self.actors[buyer];
        let excused = actor.inbox.iter().any(|message| {
            matches!(message, Message::Settled { outcome, .. } if *outcome != WriteOutcome::Committed)
        });
        self.queue.push_back(Submitted {
            buyer,
            incarnation: actor.incarnation,
            request,
            op: WriteOp::from_plan(&write, event),
            pending: write.pending(),
            receipt: write.receipt,
            generation_epoch: actor.generation_epoch,
            excused,
        });
    }

    /// The coordinator commits its next batch, with a fault now and then when `faults`.
    pub(super) fn commit(&mut self, faults: bool) -> Result<Vec<usize>, String> {
        let size = self.queue.len().min(self.shape.batch_max_ops);
        let batch: Vec<Submitted> = self.queue.drain(..size).collect();
        let fault = if faults {
            self.rng.random_range(0..100)
        } else {
            100
        };
        let ops: Vec<WriteOp> = batch.iter().map(|write| write.op.clone()).collect();
        let now = self.now.naive_utc();
        let applied = match fault {
            // The batch fails before anything commits.
            0..5 => None,
            _ => Some(self.db.commit_batch(&ops, now).map_err(|e| e.to_string())?),
        };
        for (write, result) in batch.iter().zip(applied.iter().flatten()) {
            if let (WriteResult::Committed, Some(key)) = (result, &write.pending.key) {
                self.books.key_committed(key, self.now)?;
            }
        }
        // COMMIT succeeded but its answer is lost: the writes are told they failed.
        let results = applied.filter(|_| fault >= 9);
        match fault {
            _ if batch.is_empty() => {}
            0..5 => self.counts.failed_batches += 1,
            5..9 => self.counts.unknown_commits += 1,
            _ => {}
        }
        let touched = batch.iter().map(|write| write.buyer).collect();
        for (index, write) in batch.into_iter().enumerate() {
            let outcome = match &results {
                Some(results) => results[index].outcome(),
                None => WriteOutcome::Failed(BatchFailure::Unavailable),
            };
            self.deliver(write, outcome)?;
        }
        Ok(touched)
    }

    /// A write's result: a committed one is acknowledged at once (as the coordinator answers
    /// it); then its actor settles it, unless that actor has died since.
    fn deliver(&mut self, write: Submitted, outcome: WriteOutcome) -> Result<(), String> {
        let buyer = write.buyer;
        if self.trace {
            eprintln!(
                "  buyer {} incarnation {} {:?} request {}: {:?} -> {outcome:?}",
                buyer_id(buyer),
                write.incarnation,
                write.pending.generation,
                write.request,
                write.op.command
            );
        }
        let actor = &self.actors[buyer];
        // A commit of an older generation's write, or one made while a read is in progress,
        // may leave the state read from the database stale.
        let current = write.incarnation == actor.incarnation
            && write.pending.generation == actor.state.generation()
            && actor.loading.is_none();
        match &outcome {
            WriteOutcome::Committed => {
                self.counts.committed += 1;
                self.answer(buyer, write.request, Response::Receipt(write.receipt))?;
                if !current {
                    self.epochs[buyer] += 1;
                }
            }
            WriteOutcome::Refused(refusal) => {
                self.counts.refused_writes += 1;
                let surprise = !matches!(refusal, WriteRefusal::KeyUsed { .. })
                    && !write.excused
                    && self.epochs[buyer] == write.generation_epoch;
                if surprise {
                    return Err(format!(
                        "buyer {}: write of request {} refused ({refusal:?}) with nothing to explain it",
                        buyer_id(buyer),
                        write.request
                    ));
                }
                self.epochs[buyer] += 1;
            }
            WriteOutcome::Failed(_) => self.epochs[buyer] += 1,
        }
        let answered = outcome == WriteOutcome::Committed;
        if write.incarnation == self.actors[buyer].incarnation {
            self.actors[buyer].inbox.push_back(Message::Settled {
                pending: write.pending,
                outcome,
                request: write.request,
                answered,
            });
        } else if !answered {
            self.answer(buyer, write.request, Response::Lost)?;
        }
        Ok(())
    }
}
