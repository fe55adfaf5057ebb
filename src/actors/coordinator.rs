//! The PaymentCoordinator: every write goes through it and commits in group-commit batches.
//!
//! The coordinator commits on its own thread, blocking it; writes arriving meanwhile wait in its
//! mailbox and, once it is drained, go into the next batch (at most `batch_max_ops`). One batch
//! is in flight at a time, so the writes of one buyer commit in submission order.
//!
//! There are `COMMIT_LANES` coordinators, each a lane with its own thread, queue and
//! connection, for a fixed share of the buyers (their shards modulo the lane count): their
//! batches commit in parallel and touch disjoint buyers' rows, so they do not wait for each
//! other's row locks, and a buyer's writes all go through one lane, in order.
//!
//! After a commit each write's [`Completion`] runs here: the buyer actor's completion answers a
//! committed write's HTTP request directly, so the request's task is woken once, by the commit,
//! not by a relay through the actor's thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;

use super::mailbox::{Handling, Mailbox, Permit};
use super::publisher::{OutboundEvent, PublisherHandle};
use crate::cluster::Cluster;
use crate::db::writer::{Rejection, WriteOp, WriteResult, commit_batch};
use crate::db::{Db, DbError, ErrorClass};
use crate::domain::BuyerId;
use crate::metrics::{LaneMetrics, Metrics, Outcome};

/// The answer to one submitted write.
pub type CommitReply = Result<WriteResult, CommitError>;

/// What to do with a write's result, on the coordinator's thread once its batch has committed
/// (or failed). It must be quick: it delays the next batch.
pub type Completion = Box<dyn FnOnce(CommitReply) + Send>;

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
    completion: Completion,
    // Held until the answer is sent: the queue bound covers writes waiting and committing.
    permit: Permit,
}

impl Message for Submit {
    type Result = ();
}

/// Sends writes to the coordinator's lanes without ever queueing past a lane's capacity.
#[derive(Clone)]
pub struct CoordinatorHandle {
    lanes: Arc<[Lane]>,
    /// The shard count: a buyer's lane is its shard modulo the number of lanes.
    shards: u64,
}

struct Lane {
    addr: Addr<PaymentCoordinator>,
    mailbox: Arc<Mailbox>,
}

impl CoordinatorHandle {
    fn lane(&self, buyer: i64) -> &Lane {
        let shard = buyer.unsigned_abs() % self.shards.max(1);
        // The lane count is at most 64, so the index fits.
        &self.lanes[(shard % self.lanes.len() as u64) as usize]
    }

    /// A place in the commit queue of `buyer`'s lane, or `QueueFull`.
    pub fn reserve(&self, buyer: BuyerId) -> Result<Permit, QueueFull> {
        self.lane(buyer.get())
            .mailbox
            .try_reserve()
            .ok_or(QueueFull)
    }

    /// Writes waiting for or in a commit, in every lane.
    pub fn in_flight(&self) -> usize {
        self.lanes.iter().map(|lane| lane.mailbox.depth()).sum()
    }

    /// Queues `op` in the place `permit` holds (reserved for the same buyer); `completion` gets
    /// its result after the batch's commit. If the coordinator is gone, `completion` is dropped
    /// uncalled.
    pub fn submit(&self, permit: Permit, op: WriteOp, completion: Completion) {
        // The actix mailbox is sized to our capacity, so try_send only fails if the coordinator
        // is gone; the permit (dropped with the message) keeps the count right either way.
        let _ = self.lane(op.buyer_id).addr.try_send(Submit {
            op,
            completion,
            permit,
        });
    }
}

/// What the coordinator's lanes are started with.
pub struct CoordinatorOptions {
    pub lanes: usize,
    pub batch_max_ops: usize,
    /// Per lane.
    pub capacity: usize,
    /// The shard count of the cluster's shard map.
    pub shards: u32,
}

pub struct PaymentCoordinator {
    db: Db,
    /// Told of leases found lost by a commit, so the next request routes anew.
    cluster: Arc<Cluster>,
    publisher: PublisherHandle,
    metrics: Arc<Metrics>,
    lane: LaneMetrics,
    batch_max_ops: usize,
    capacity: usize,
    pending: VecDeque<Submit>,
    commit_scheduled: bool,
}

impl PaymentCoordinator {
    /// Starts the coordinator's lanes, each on its own arbiter (thread).
    pub fn start(
        db: Db,
        cluster: Arc<Cluster>,
        publisher: PublisherHandle,
        options: CoordinatorOptions,
        metrics: Arc<Metrics>,
    ) -> CoordinatorHandle {
        let lanes = (0..options.lanes.max(1))
            .map(|lane| {
                let metrics = Arc::clone(&metrics);
                let capacity = options.capacity;
                let mailbox = Mailbox::new(capacity, Arc::clone(&metrics.coordinator));
                let coordinator = PaymentCoordinator {
                    db: db.clone(),
                    cluster: Arc::clone(&cluster),
                    publisher: publisher.clone(),
                    lane: metrics.commits.lane(lane),
                    metrics,
                    batch_max_ops: options.batch_max_ops.max(1),
                    capacity,
                    pending: VecDeque::new(),
                    commit_scheduled: false,
                };
                let addr =
                    PaymentCoordinator::start_in_arbiter(&Arbiter::new().handle(), move |ctx| {
                        // Our Mailbox counts and bounds the queue; actix's own bound must never
                        // bite first.
                        ctx.set_mailbox_capacity(capacity + 1);
                        coordinator
                    });
                Lane { addr, mailbox }
            })
            .collect();
        CoordinatorHandle {
            lanes,
            shards: u64::from(options.shards),
        }
    }

    /// Commits what is pending once the mailbox has been drained: actix handles every queued
    /// message before it polls spawned work, so all the writes that arrived during the last
    /// commit join the next one.
    fn schedule_commit(&mut self, ctx: &mut Context<Self>) {
        if self.commit_scheduled || self.pending.is_empty() {
            return;
        }
        self.commit_scheduled = true;
        ctx.spawn(actix::fut::ready(()).map(|(), act: &mut Self, ctx| {
            act.commit_scheduled = false;
            act.commit_next_batch();
            act.schedule_commit(ctx);
        }));
    }

    /// Commits up to `batch_max_ops` pending writes on this thread, blocking it: the
    /// coordinator has nothing else to do meanwhile, and writes arriving during the commit wait
    /// in the mailbox without waking it (a commit on another thread would have this thread
    /// woken for every one of them, then again for the result).
    fn commit_next_batch(&mut self) {
        let size = self.pending.len().min(self.batch_max_ops);
        if size == 0 {
            return;
        }
        let (ops, waiters): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..size)
            .map(|submit| {
                let handling = submit.permit.start();
                (submit.op, (submit.completion, submit.permit, handling))
            })
            .unzip();
        let started_at = Instant::now();
        let now = Utc::now().naive_utc();
        let mut outcome = self.db.run_here(|conn| commit_batch(conn, &ops, now));
        if outcome.as_ref().is_err_and(DbError::is_conflict) {
            // Rolled back whole, so nothing of it committed: once more, on the rows as the
            // winner left them (a write it invalidated is refused by its fence this time).
            self.metrics.commits.conflicts.inc();
            outcome = self.db.run_here(|conn| commit_batch(conn, &ops, now));
        }
        self.metrics
            .commits
            .commit(waiters.len(), started_at.elapsed(), outcome.is_ok());
        self.lane.batch(waiters.len());
        if let Ok(results) = &outcome {
            self.forget_lost_leases(&ops, results);
            // Committed events go to the publisher right away; the outbox holds them until it
            // confirms delivery.
            let events = ops
                .into_iter()
                .zip(results)
                .filter(|(_, result)| **result == WriteResult::Committed)
                .filter_map(|(op, _)| op.event.map(OutboundEvent::from))
                .collect();
            self.publisher.hand_off(events);
        }
        deliver(waiters, outcome);
    }
}

impl PaymentCoordinator {
    /// Writes refused `not_owner`: their shard is another engine's now.
    fn forget_lost_leases(&self, ops: &[WriteOp], results: &[WriteResult]) {
        for (op, result) in ops.iter().zip(results) {
            if *result == WriteResult::Rejected(Rejection::NotOwner) {
                self.metrics.cluster.not_owner.inc();
                if let Some(lease) = op.lease {
                    self.cluster.lost(lease);
                }
            }
        }
    }
}

type Waiter = (Completion, Permit, Handling);

fn deliver(waiters: Vec<Waiter>, outcome: Result<Vec<WriteResult>, DbError>) {
    match outcome {
        Ok(results) => {
            for ((complete, _permit, handling), result) in waiters.into_iter().zip(results) {
                handling.finish(if result == WriteResult::Committed {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                });
                complete(Ok(result));
            }
        }
        Err(error) => {
            let what = format!("committing a batch of {} writes", waiters.len());
            let reply_error = match error.classify(&what) {
                ErrorClass::Transient => CommitError::Unavailable,
                ErrorClass::Bug => CommitError::Internal,
            };
            for (complete, _permit, handling) in waiters {
                handling.finish(Outcome::Failed);
                complete(Err(reply_error));
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
        self.schedule_commit(ctx);
    }
}
