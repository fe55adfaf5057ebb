//! The PaymentCoordinator: every write goes through it and commits in group-commit batches.
//!
//! While one batch commits on a blocking thread, the next gathers in `pending`; when the commit
//! returns, each request is answered and the next batch (at most `batch_max_ops`) starts at once.
//! One batch is in flight at a time, so the writes of one buyer commit in submission order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::oneshot;

use super::mailbox::{Handling, Mailbox, Permit};
use super::publisher::{OutboundEvent, PublisherHandle};
use crate::db::writer::{WriteOp, WriteResult, commit_batch};
use crate::db::{Db, DbError};
use crate::metrics::{Metrics, Outcome};

/// The answer to one submitted write.
pub type CommitReply = Result<WriteResult, CommitError>;

/// Why a whole batch failed: nothing of it committed, or (COMMIT itself failed) the outcome is
/// unknown. Either way the requests get a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("the database is unavailable")]
    Unavailable,
    #[error("the commit failed unexpectedly")]
    Internal,
}

/// The coordinator's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the commit queue is full")]
pub struct QueueFull;

struct Submit {
    op: WriteOp,
    reply: oneshot::Sender<CommitReply>,
    // Held until the answer is sent: the queue bound covers writes waiting and committing.
    permit: Permit,
}

impl Message for Submit {
    type Result = ();
}

/// Sends writes to the coordinator without ever queueing past its capacity.
#[derive(Clone)]
pub struct CoordinatorHandle {
    addr: Addr<PaymentCoordinator>,
    mailbox: Arc<Mailbox>,
}

impl CoordinatorHandle {
    /// Queues `op`; the receiver yields its result after the batch's commit.
    pub fn submit(&self, op: WriteOp) -> Result<oneshot::Receiver<CommitReply>, QueueFull> {
        let permit = self.mailbox.try_reserve().ok_or(QueueFull)?;
        let (reply, receiver) = oneshot::channel();
        // The actix mailbox is sized to our capacity, so try_send only fails if the coordinator
        // is gone; the permit (dropped with the message) keeps the count right either way.
        self.addr
            .try_send(Submit { op, reply, permit })
            .map_err(|_| QueueFull)?;
        Ok(receiver)
    }

    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }
}

pub struct PaymentCoordinator {
    db: Db,
    publisher: PublisherHandle,
    metrics: Arc<Metrics>,
    batch_max_ops: usize,
    capacity: usize,
    pending: VecDeque<Submit>,
    committing: bool,
}

impl PaymentCoordinator {
    /// Starts the coordinator on its own arbiter (thread).
    pub fn start(
        db: Db,
        publisher: PublisherHandle,
        batch_max_ops: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> CoordinatorHandle {
        let mailbox = Mailbox::new(capacity, Arc::clone(&metrics.coordinator));
        let arbiter = Arbiter::new();
        let addr = PaymentCoordinator::start_in_arbiter(&arbiter.handle(), move |ctx| {
            // Our Mailbox counts and bounds the queue; actix's own bound must never bite first.
            ctx.set_mailbox_capacity(capacity + 1);
            PaymentCoordinator {
                db,
                publisher,
                metrics,
                batch_max_ops: batch_max_ops.max(1),
                capacity,
                pending: VecDeque::new(),
                committing: false,
            }
        });
        CoordinatorHandle { addr, mailbox }
    }

    fn start_next_batch(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.pending.is_empty() {
            return;
        }
        let size = self.pending.len().min(self.batch_max_ops);
        let (ops, waiters): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..size)
            .map(|submit| {
                let handling = submit.permit.start();
                (submit.op, (submit.reply, submit.permit, handling))
            })
            .unzip();
        self.committing = true;
        let db = self.db.clone();
        let started_at = Instant::now();
        let commit = async move {
            db.run(move |conn| {
                let results = commit_batch(conn, &ops, Utc::now().naive_utc())?;
                Ok((ops, results))
            })
            .await
        };
        ctx.spawn(commit.into_actor(self).map(move |outcome, act, ctx| {
            act.metrics
                .commits
                .commit(waiters.len(), started_at.elapsed(), outcome.is_ok());
            let outcome = outcome.map(|(ops, results)| {
                // Committed events go to the publisher right away; the outbox holds them
                // until it confirms delivery.
                let events = ops
                    .into_iter()
                    .zip(&results)
                    .filter(|(_, result)| **result == WriteResult::Committed)
                    .filter_map(|(op, _)| op.event.map(OutboundEvent::from))
                    .collect();
                act.publisher.hand_off(events);
                results
            });
            deliver(waiters, outcome);
            act.committing = false;
            act.start_next_batch(ctx);
        }));
    }
}

type Waiter = (oneshot::Sender<CommitReply>, Permit, Handling);

fn deliver(waiters: Vec<Waiter>, outcome: Result<Vec<WriteResult>, DbError>) {
    match outcome {
        Ok(results) => {
            for ((reply, _permit, handling), result) in waiters.into_iter().zip(results) {
                handling.finish(if result == WriteResult::Committed {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                });
                let _ = reply.send(Ok(result));
            }
        }
        Err(error) => {
            let reply_error = if error.is_transient() {
                tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), batch_ops = waiters.len(), "batch commit failed");
                CommitError::Unavailable
            } else {
                tracing::error!(error = ?error, batch_ops = waiters.len(), "batch commit failed unexpectedly");
                CommitError::Internal
            };
            for (reply, _permit, handling) in waiters {
                handling.finish(Outcome::Failed);
                let _ = reply.send(Err(reply_error));
            }
        }
    }
}

impl Actor for PaymentCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        tracing::debug!(
            capacity = self.capacity,
            batch_max_ops = self.batch_max_ops,
            "payment coordinator started"
        );
    }
}

impl Handler<Submit> for PaymentCoordinator {
    type Result = ();

    fn handle(&mut self, submit: Submit, ctx: &mut Context<Self>) {
        self.pending.push_back(submit);
        self.start_next_batch(ctx);
    }
}
