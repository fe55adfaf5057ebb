//! Bounded, measured mailboxes.
//!
//! actix exposes neither a mailbox's length nor a hard bound (`do_send` ignores capacity and
//! every `Addr` clone gets an extra slot), so every actor's queue is counted here instead: a
//! sender reserves a [`Permit`] before it sends, and gets none when the queue is full. The permit
//! travels with the message and frees its slot when dropped, which also happens if the message
//! is never handled.
//!
//! The mailbox is also where every actor is measured: the depth gauge moves with the permits,
//! [`Permit::start`] records the queue wait when handling begins, and the [`Handling`] it
//! returns records the handling time and outcome (see [`crate::metrics`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::{ActorMetrics, Outcome};

/// The queue of one actor (or of one kind of actor's single instance).
#[derive(Debug)]
pub struct Mailbox {
    depth: AtomicUsize,
    capacity: usize,
    metrics: Arc<ActorMetrics>,
}

impl Mailbox {
    pub fn new(capacity: usize, metrics: Arc<ActorMetrics>) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            depth: AtomicUsize::new(0),
            capacity: capacity.max(1),
            metrics,
        })
    }

    /// Messages queued now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// A slot in the queue, or `None` when it is full.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Permit> {
        let reserved = self
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |depth| {
                (depth < self.capacity).then_some(depth + 1)
            })
            .is_ok();
        reserved.then(|| {
            self.metrics.depth.inc();
            Permit {
                mailbox: Arc::clone(self),
                enqueued_at: Instant::now(),
            }
        })
    }
}

/// One reserved slot; frees it when dropped.
#[derive(Debug)]
pub struct Permit {
    mailbox: Arc<Mailbox>,
    enqueued_at: Instant,
}

impl Permit {
    /// How long the message has waited since it was enqueued.
    pub fn waited(&self) -> Duration {
        self.enqueued_at.elapsed()
    }

    /// Handling of the message begins: records how long it waited. Call once per message.
    pub fn start(&self) -> Handling {
        let metrics = &self.mailbox.metrics;
        metrics.queue_wait.observe(self.waited().as_secs_f64());
        Handling {
            metrics: Arc::clone(metrics),
            started_at: Instant::now(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.mailbox.depth.fetch_sub(1, Ordering::AcqRel);
        self.mailbox.metrics.depth.dec();
    }
}

/// A message being handled; [`Handling::finish`] records how long it took and how it ended.
#[derive(Debug)]
#[must_use = "finish() records the handling time and outcome"]
pub struct Handling {
    metrics: Arc<ActorMetrics>,
    started_at: Instant,
}

impl Handling {
    pub fn finish(self, outcome: Outcome) {
        self.metrics.handled(outcome, self.started_at.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_mailbox_refuses_until_a_permit_is_dropped() {
        let metrics = ActorMetrics::detached();
        let mailbox = Mailbox::new(2, Arc::clone(&metrics));
        let first = mailbox.try_reserve().unwrap();
        let _second = mailbox.try_reserve().unwrap();
        assert!(mailbox.try_reserve().is_none());
        assert_eq!(mailbox.depth(), 2);
        drop(first);
        assert_eq!(mailbox.depth(), 1);
        assert_eq!(metrics.depth.get(), 1);
        assert!(mailbox.try_reserve().is_some());
    }

    #[test]
    fn handling_records_its_outcome_and_frees_the_slot() {
        let metrics = ActorMetrics::detached();
        let mailbox = Mailbox::new(4, Arc::clone(&metrics));
        let permit = mailbox.try_reserve().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let handling = permit.start();
        drop(permit);
        handling.finish(Outcome::Refused);
        assert_eq!(metrics.depth.get(), 0);
        assert_eq!(metrics.refused.get(), 1);
    }
}
